// Package abi is stoa-guard's own proxy-wasm ABI layer for the standard Go
// compiler (GOOS=wasip1, -buildmode=c-shared), ABI version 0.2.1.
//
// The files without a build tag are pure Go and compile everywhere: the
// vocabulary below, the Pairs codec (pairs.go), the allocator arena
// (arena.go), the context dispatcher (dispatch.go) and Host (host.go), the
// implementation of the host interface the filter is written against. The
// files tagged wasip1 hold the raw //go:wasmimport host calls
// (hostcalls_wasip1.go) and the //go:wasmexport callbacks
// (exports_wasip1.go), each a one-line call into the Dispatcher; natively,
// hostcalls_other.go stands in for the host calls with StatusUnimplemented.
//
// A plugin registers itself from init() with SetVMContext (a c-shared
// module never runs main). abi knows nothing of STOA.
package abi

import "strconv"

// Header is one header (or one Pairs entry). In values handed out by Host the
// strings alias guest memory that is reused after the current callback
// returns: copy what must outlive it.
type Header struct {
	Name, Value string
}

// LogLevel is proxy-wasm's log level.
type LogLevel uint32

const (
	LogTrace LogLevel = iota
	LogDebug
	LogInfo
	LogWarn
	LogError
	LogCritical
)

// MetricKind is proxy-wasm's metric type.
type MetricKind uint32

const (
	MetricCounter MetricKind = iota
	MetricGauge
	MetricHistogram
)

// StreamType names the side of an HTTP stream for close/continue calls.
type StreamType uint32

const (
	StreamRequest  StreamType = 0
	StreamResponse StreamType = 1
)

// Status is a proxy-wasm host-call result. The zero value is success and is
// never returned as an error; every other value is an error.
type Status uint32

const (
	StatusOK                   Status = 0
	StatusNotFound             Status = 1
	StatusBadArgument          Status = 2
	StatusSerializationFailure Status = 3
	StatusParseFailure         Status = 4
	StatusEmpty                Status = 7
	StatusCasMismatch          Status = 8
	StatusInternalFailure      Status = 10
	StatusUnimplemented        Status = 12
)

// Errors for the statuses callers branch on. Compare with ==.
var (
	ErrNotFound    error = StatusNotFound
	ErrBadArgument error = StatusBadArgument
	ErrCasMismatch error = StatusCasMismatch
	ErrEmpty       error = StatusEmpty
)

// Error implements error without allocating for the known statuses.
func (s Status) Error() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotFound:
		return "not found"
	case StatusBadArgument:
		return "bad argument"
	case StatusSerializationFailure:
		return "serialization failure"
	case StatusParseFailure:
		return "parse failure"
	case StatusEmpty:
		return "empty"
	case StatusCasMismatch:
		return "cas mismatch"
	case StatusInternalFailure:
		return "internal failure"
	case StatusUnimplemented:
		return "unimplemented"
	}
	return "status " + strconv.FormatUint(uint64(s), 10)
}

// AsError returns nil for StatusOK and the status itself otherwise.
func (s Status) AsError() error {
	if s == StatusOK {
		return nil
	}
	return s
}

// MapType names a header map in the header-map host calls.
type MapType uint32

const (
	MapRequestHeaders   MapType = 0
	MapRequestTrailers  MapType = 1
	MapResponseHeaders  MapType = 2
	MapResponseTrailers MapType = 3
)

// BufferType names a buffer in proxy_get_buffer_bytes.
type BufferType uint32

const (
	BufferRequestBody         BufferType = 0
	BufferResponseBody        BufferType = 1
	BufferVMConfiguration     BufferType = 6
	BufferPluginConfiguration BufferType = 7
)
