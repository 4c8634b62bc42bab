// Package perf holds the per-request benchmarks of the compiled filter on
// the project's wazero host (README "Performance and limits"): the floor (an
// empty standard-Go proxy-wasm module, perf/internal/emptyguest), a plain
// authenticated request, a CORS preflight, an SSE admission plus release and
// a refused request. Each reports ns/op, the ratio to the floor measured in
// the same run (x-floor), host calls, bytes copied across the boundary per
// request, and the host side's Go allocations.
//
//	go test -run '^$' -bench . -benchtime 20000x ./perf/
package perf
