package perf

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"testing"

	"github.com/stoa-platform/stoa-guard/internal/wasmbuild"
	"github.com/stoa-platform/stoa-guard/wasmhost"
)

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m)) }

var buildFlags = []string{"-trimpath", "-ldflags=-s -w"}

// benchConfig raises the SSE rate so that sequential admissions measure
// admission, not the rate limiter's refusal.
const benchConfig = `{"sse":{"rate_limit_per_min":1000}}`

var payload = base64.RawURLEncoding.EncodeToString([]byte(
	`{"iss":"https://auth.stoa.local/realms/demo","sub":"bench","aud":["stoa-mcp-gateway"],"tenant_id":"acme","exp":4102444800}`))

// request is one kind of request, driven through a whole stream.
type request struct {
	name     string
	headers  []wasmhost.Header
	response []wasmhost.Header // nil: a local response is expected
}

var requests = []request{
	{"plain", []wasmhost.Header{{Name: ":method", Value: "POST"}, {Name: ":path", Value: "/mcp"},
		{Name: ":authority", Value: "gw.stoa.local"}, {Name: ":scheme", Value: "https"},
		{Name: "content-type", Value: "application/json"}, {Name: "x-jwt-payload", Value: payload}},
		[]wasmhost.Header{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/json"}}},
	{"preflight", []wasmhost.Header{{Name: ":method", Value: "OPTIONS"}, {Name: ":path", Value: "/mcp"},
		{Name: ":authority", Value: "gw.stoa.local"}, {Name: ":scheme", Value: "https"},
		{Name: "origin", Value: "https://console.stoa.dev"}, {Name: "access-control-request-method", Value: "POST"},
		{Name: "access-control-request-headers", Value: "authorization,content-type"}}, nil},
	{"sse", []wasmhost.Header{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/mcp/sse"},
		{Name: ":authority", Value: "gw.stoa.local"}, {Name: ":scheme", Value: "https"},
		{Name: "accept", Value: "text/event-stream"}, {Name: "x-jwt-payload", Value: payload}},
		[]wasmhost.Header{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "text/event-stream"}}},
	{"refused", []wasmhost.Header{{Name: ":method", Value: "POST"}, {Name: ":path", Value: "/mcp"},
		{Name: ":authority", Value: "gw.stoa.local"}, {Name: ":scheme", Value: "https"}}, nil},
}

// clients are the peers requests come from, in turn: sequential SSE
// admissions from 4096 addresses stay under the per-client rate.
var clients = func() []wasmhost.Properties {
	out := make([]wasmhost.Properties, 4096)
	for i := range out {
		out[i] = wasmhost.Properties{wasmhost.Path("source", "address"): fmt.Sprintf("10.%d.%d.7:41000", i>>8, i&255)}
	}
	return out
}()

// next picks the client of the next request.
var next int

// newVM starts one VM of the module built from pkg.
func newVM(tb testing.TB, pkg string, profile wasmhost.Profile) (*wasmhost.Host, *wasmhost.VM) {
	wasm, err := os.ReadFile(wasmbuild.Build(tb, pkg, buildFlags...))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	h, err := wasmhost.NewHost(ctx, wasm, wasmhost.Config{Profile: profile, PluginConfig: []byte(benchConfig),
		WASIClock: wasmhost.WASIClockFollow})
	if err != nil {
		tb.Fatal(err)
	}
	vm, err := h.NewVM(ctx)
	if err != nil {
		tb.Fatal(err, h.Logs())
	}
	tb.Cleanup(func() { _ = h.Close(ctx) })
	return h, vm
}

// serve drives one stream of r to its end and reports whether the filter
// answered as expected (upstream reached or local response).
func serve(vm *wasmhost.VM, r *request, body []byte) (ok bool) {
	next++
	s, err := vm.NewStream(clients[next%len(clients)])
	if err != nil {
		return false
	}
	defer func() {
		if s.End() != nil {
			ok = false
		}
	}()
	if _, err := s.RequestHeaders(r.headers, r.response == nil || r.name == "plain"); err != nil {
		return false
	}
	if lr := s.LocalResponse(); lr != nil {
		return r.response == nil
	}
	if r.response == nil {
		return false
	}
	if _, err := s.ResponseHeaders(r.response, false); err != nil {
		return false
	}
	_, err = s.ResponseBody(body, true)
	return err == nil
}

func BenchmarkRequest(b *testing.B) {
	body := []byte("data: {}\n\n")
	for _, profile := range []wasmhost.Profile{wasmhost.ProfileEnvoy139, wasmhost.ProfileEnvoy133} {
		var floor float64
		run := func(name, pkg string, r *request) {
			b.Run(profile.String()+"/"+name, func(b *testing.B) {
				_, vm := newVM(b, pkg, profile)
				for range 100 { // warm up: pools, arena, shared-data records
					if !serve(vm, r, body) {
						b.Fatal("unexpected outcome")
					}
				}
				before := vm.Stats()
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if !serve(vm, r, body) {
						b.Fatal("unexpected outcome")
					}
				}
				b.StopTimer()
				after := vm.Stats()
				n := float64(b.N)
				ns := float64(b.Elapsed().Nanoseconds()) / n
				if name == "floor" {
					floor = ns
				}
				b.ReportMetric(float64(after.HostCalls-before.HostCalls)/n, "hostcalls/op")
				b.ReportMetric(float64(after.Callbacks-before.Callbacks)/n, "callbacks/op")
				b.ReportMetric(float64(after.BytesToGuest-before.BytesToGuest+after.BytesFromGuest-before.BytesFromGuest)/n, "B-copied/op")
				b.ReportMetric(ns/floor, "x-floor")
			})
		}
		run("floor", "github.com/stoa-platform/stoa-guard/perf/internal/emptyguest", &requests[0])
		for i := range requests {
			run(requests[i].name, "github.com/stoa-platform/stoa-guard", &requests[i])
		}
	}
}
