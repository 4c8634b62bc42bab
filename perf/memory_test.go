package perf

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stoa-platform/stoa-guard/internal/wasmbuild"
	"github.com/stoa-platform/stoa-guard/wasmhost"
)

const mib = 1 << 20

// TestCollectionPolicy measures what the module's memory policy (no garbage
// on the request path, the host's allocations served from a reused arena,
// no explicit runtime.GC) is compared with: a guest over the same ABI layer
// making ~2 KB of garbage per request, without and with runtime.GC every
// 1,000 requests, under both profiles. It reports linear memory and the
// runtime's poll_oneoff calls (ENOSYS on 1.33–1.38). The filter's own
// flatness is asserted in moduletest.
func TestCollectionPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm modules")
	}
	const n = 10_000
	wasm, err := os.ReadFile(wasmbuild.Build(t, "github.com/stoa-platform/stoa-guard/perf/internal/garbageguest", buildFlags...))
	if err != nil {
		t.Fatal(err)
	}
	for _, profile := range []wasmhost.Profile{wasmhost.ProfileEnvoy139, wasmhost.ProfileEnvoy133} {
		for _, gcEvery := range []int{0, 1000} {
			t.Run(fmt.Sprintf("%s/gc-every-%d", profile, gcEvery), func(t *testing.T) {
				ctx := context.Background()
				h, err := wasmhost.NewHost(ctx, wasm, wasmhost.Config{Profile: profile,
					Env: map[string]string{"GARBAGE_GC_EVERY": fmt.Sprint(gcEvery)}})
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close(ctx)
				vm, err := h.NewVM(ctx)
				if err != nil {
					t.Fatal(err)
				}
				start := vm.MemoryBytes()
				served := 0
				for served < n && serve(vm, &requests[0], nil) {
					served++
				}
				polls := vm.HostCallCounts()["wasi_snapshot_preview1.poll_oneoff"]
				t.Logf("garbage guest, %s, runtime.GC every %d: %d MiB -> %d MiB after %d requests; poll_oneoff calls %d; VM error: %v",
					profile, gcEvery, start/mib, vm.MemoryBytes()/mib, served, polls, vm.Err())
				if served < n && !(profile == wasmhost.ProfileEnvoy133 && gcEvery > 0 && polls > 0) {
					t.Errorf("VM failed unexpectedly: %v; logs: %s", vm.Err(), lastLogs(h, 3))
				}
				if vm.MemoryBytes() >= wasmhost.MemoryLimitPages*65536/2 {
					t.Errorf("memory near Envoy's 1 GiB cap: %d MiB", vm.MemoryBytes()/mib)
				}
			})
		}
	}
}

func lastLogs(h *wasmhost.Host, n int) string {
	logs := h.Logs()
	if len(logs) > n {
		logs = logs[len(logs)-n:]
	}
	var b strings.Builder
	for _, l := range logs {
		fmt.Fprintf(&b, "[%s] %s; ", l.Level, l.Message)
	}
	return b.String()
}
