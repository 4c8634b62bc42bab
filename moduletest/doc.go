// Package moduletest proves the compiled filter.wasm — built from this
// repository exactly as `make build` builds it — on the project's own
// proxy-wasm host (package wasmhost), under both Envoy profiles:
//
//   - SPEC.md's behaviour table (internal/spectable, shared with the native
//     tests of package filter), idle and lifetime closes, metric names as
//     Prometheus shows them;
//   - admission atomicity with 8 VMs on one shared-data store;
//   - linear memory flat after warm-up, shared-data keys and bytes bounded
//     by the configuration however many clients come;
//   - no leaked slot after abnormal stream ends and a VM failure;
//   - host calls per request.
//
// The package has tests only. Time is the host's manual Clock, followed by
// the guest's WASI clock (wasmhost.WASIClockFollow), so every idle, lifetime,
// rate and lease test is deterministic. Long variants run with STOA_LONG=1.
package moduletest
