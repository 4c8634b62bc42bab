# stoa-guard — a proxy-wasm filter (standard Go) for Envoy and Istio.
# `make run` runs the filter in front of a real MCP server, no Envoy needed.
# `make test` runs every test; `make check` the static checks.

GO        ?= go
WASM      ?= filter.wasm
WASM_ENV  := GOOS=wasip1 GOARCH=wasm
# -s -w drop the symbol and DWARF tables; the module keeps its names section
# out too, which is what Envoy needs and nothing more. -trimpath and
# -buildvcs=false keep paths and the git commit out: the module, and the image
# digest pinned in istio/wasmplugin.yaml, depend only on the sources and the Go release.
WASM_FLAGS := -buildmode=c-shared -trimpath -buildvcs=false -ldflags='-s -w'
IMAGE_OUT ?= out/oci
WASMPLUGIN := istio/wasmplugin.yaml
FUZZTIME  ?= 10s

.PHONY: all build test test-root fuzz-short test-e2e check vet fmt tidy-check run image image-update push bench fuzz clean

all: build

## build: compile the filter to $(WASM)
build:
	$(WASM_ENV) $(GO) build $(WASM_FLAGS) -o $(WASM) .

## image: the Istio Wasm OCI image of $(WASM), as an OCI layout in $(IMAGE_OUT); prints its
## digest and fails if istio/wasmplugin.yaml pins another one (then: make image-update)
image: build
	cd e2e && $(GO) run ./cmd/wasm-image build -wasm $(abspath $(WASM)) -out $(abspath $(IMAGE_OUT)) -check $(abspath $(WASMPLUGIN))

## image-update: make image, then pin its digest (and the Go release) in istio/wasmplugin.yaml
image-update: build
	cd e2e && $(GO) run ./cmd/wasm-image build -wasm $(abspath $(WASM)) -out $(abspath $(IMAGE_OUT)) -update $(abspath $(WASMPLUGIN)) -toolchain "$$($(GO) env GOVERSION)"

## push: push the image to IMAGE (make push IMAGE=registry.example.com/team/stoa-guard:v1) with
## your docker credentials, and point istio/wasmplugin.yaml at it (same digest)
push: build
	@test -n "$(IMAGE)" || { echo "usage: make push IMAGE=<registry>/<repository>:<tag>"; exit 2; }
	cd e2e && $(GO) run ./cmd/wasm-image push -wasm $(abspath $(WASM)) -update $(abspath $(WASMPLUGIN)) -toolchain "$$($(GO) env GOVERSION)" $(IMAGE)

## run: the filter in front of the demo MCP server, no Envoy (scripts/run.sh; Ctrl-C stops both)
run: build
	./scripts/run.sh

## test: every test of every module (the README's test command)
test: build test-root fuzz-short test-e2e

test-root:
	$(GO) test -count=1 ./...

## fuzz-short: every fuzz target briefly (FUZZTIME from the environment, else 2s; see the script)
fuzz-short:
	GO=$(GO) ./scripts/fuzz-short.sh

test-e2e:
	cd e2e && $(GO) test -count=1 ./...
	cd cmd/mcp-demo && $(GO) test -count=1 ./...

## check: vet (native and wasip1), gofmt, and go mod tidy leaving no diff
check: vet fmt tidy-check

vet:
	$(GO) vet ./...
	$(WASM_ENV) $(GO) vet . ./abi/... ./config/... ./filter/...
	cd e2e && $(GO) vet ./...
	cd cmd/mcp-demo && $(GO) vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

tidy-check:
	@for d in . e2e cmd/mcp-demo; do \
	  (cd $$d && cp go.mod /tmp/stoa-go.mod.bak && cp go.sum /tmp/stoa-go.sum.bak && $(GO) mod tidy && \
	   if ! cmp -s go.mod /tmp/stoa-go.mod.bak || ! cmp -s go.sum /tmp/stoa-go.sum.bak; then \
	     cp /tmp/stoa-go.mod.bak go.mod; cp /tmp/stoa-go.sum.bak go.sum; echo "go mod tidy changes $$d/go.mod or go.sum"; exit 1; fi) || exit 1; \
	done

## bench: the committed benchmarks (see README "Performance and limits")
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -f $(WASM)
	rm -rf out bin
