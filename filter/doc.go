// Package filter is stoa-guard's proxy-wasm plugin: the glue that runs the
// three controls of SPEC.md, in order, on every request.
//
// The decisions themselves live in pure sub-packages that know nothing of
// Wasm — identity (who the client is), cors (origin whitelist), audience (the
// verified JWT payload) and limiter (SSE admission in shared data). This
// package only reads the request once, calls them, answers refusals, and
// keeps per-stream state for release, idle and lifetime closing. It reaches
// the proxy through the Host interface alone and reads time from a Clock, so
// the same code runs inside the module (abi.Host), on the SDK's proxytest
// emulator, and in native tests.
//
// Memory: a Go reactor module collects garbage poorly (HOST.md), so the
// request path allocates nothing in steady state: per-stream state comes
// from a free list, header slices and scratch buffers are per-VM and reused,
// and every refusal body and header set is built once at configuration.
package filter
