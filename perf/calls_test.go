package perf

import (
	"testing"

	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// TestHostCallsPerRequest pins the deterministic host-call counts per
// request kind (README "Performance and limits"): a plain authenticated
// request at most 2, an SSE admission plus release at most 12.
func TestHostCallsPerRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the wasm module")
	}
	fixed = 0 // one client reconnecting: its records stay in the VM's cache
	defer func() { fixed = -1 }()
	limits := map[string]uint64{"plain": 2, "preflight": 3, "sse": 12, "refused": 3}
	for _, profile := range []wasmhost.Profile{wasmhost.ProfileEnvoy139, wasmhost.ProfileEnvoy133} {
		_, vm := newVM(t, "github.com/stoa-platform/stoa-guard", profile)
		for i := range requests {
			r := &requests[i]
			for range 50 {
				if !serve(vm, r, []byte("data: {}\n\n")) {
					t.Fatalf("%s: unexpected outcome", r.name)
				}
			}
			const n = 200
			before, beforeBy := vm.Stats().HostCalls, vm.HostCallCounts()
			for range n {
				serve(vm, r, []byte("data: {}\n\n"))
			}
			after, afterBy := vm.Stats().HostCalls, vm.HostCallCounts()
			per := float64(after-before) / n
			by := map[string]float64{}
			for k, v := range afterBy {
				if d := v - beforeBy[k]; d > 0 {
					by[k] = float64(d) / n
				}
			}
			t.Logf("%s %s: %.2f host calls per request: %v", profile, r.name, per, by)
			if per > float64(limits[r.name]) {
				t.Errorf("%s %s: %.2f host calls per request, want <= %d", profile, r.name, per, limits[r.name])
			}
		}
	}
}
