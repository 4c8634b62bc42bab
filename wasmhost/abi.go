package wasmhost

import (
	"errors"
	"strconv"
)

// Status is a proxy-wasm host-call result (WasmResult in proxy-wasm-cpp-host).
type Status uint32

// Statuses returned to the guest by host calls.
const (
	StatusOK                  Status = 0
	StatusNotFound            Status = 1
	StatusBadArgument         Status = 2
	StatusSerializationFailed Status = 3
	StatusParseFailure        Status = 4
	StatusBadExpression       Status = 5
	StatusInvalidMemoryAccess Status = 6
	StatusEmpty               Status = 7
	StatusCasMismatch         Status = 8
	StatusResultMismatch      Status = 9
	StatusInternalFailure     Status = 10
	StatusBrokenConnection    Status = 11
	StatusUnimplemented       Status = 12
)

var statusNames = [...]string{"Ok", "NotFound", "BadArgument", "SerializationFailure", "ParseFailure",
	"BadExpression", "InvalidMemoryAccess", "Empty", "CasMismatch", "ResultMismatch", "InternalFailure",
	"BrokenConnection", "Unimplemented"}

// Error implements error so a Status can be returned by the Go API (SharedData).
func (s Status) Error() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Errors returned by SharedData, matching the statuses the guest sees.
var (
	ErrNotFound    error = StatusNotFound
	ErrCasMismatch error = StatusCasMismatch
)

// Errors of the Go API.
var (
	// ErrVMFailed: the VM trapped (or was failed by VM.Fail); like Envoy, no
	// callback reaches it any more. VM.Err tells why. What the stream then
	// gets (Envoy: 503, or continue with fail_open) is the caller's choice.
	ErrVMFailed = errors.New("wasmhost: VM failed")
	// ErrStreamDone: the stream has ended (End, Reset, close_stream).
	ErrStreamDone = errors.New("wasmhost: stream already ended")
	// ErrStreamStopped: a local response was sent; Envoy delivers no more
	// request or upstream-response events to the filter.
	ErrStreamStopped = errors.New("wasmhost: stream stopped by a local response")
	// ErrClosed: the VM or host was closed.
	ErrClosed = errors.New("wasmhost: closed")
)

// Action is the value an HTTP callback returns (0 Continue, 1 Pause = StopIteration).
// Envoy also accepts 3 StopAllIterationAndBuffer and 4 StopAllIterationAndWatermark;
// the raw value is returned unchanged except that a local response forces 4 as Envoy does.
type Action uint32

// Actions.
const (
	ActionContinue                     Action = 0
	ActionPause                        Action = 1
	ActionStopAllIterationAndWatermark Action = 4
)

// LogLevel is proxy-wasm's log level.
type LogLevel uint32

// Log levels.
const (
	LogTrace LogLevel = iota
	LogDebug
	LogInfo
	LogWarn
	LogError
	LogCritical
)

var levelNames = [...]string{"trace", "debug", "info", "warn", "error", "critical"}

func (l LogLevel) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "LogLevel(" + strconv.Itoa(int(l)) + ")"
}

// MetricType is proxy-wasm's metric type.
type MetricType uint32

// Metric types.
const (
	MetricCounter   MetricType = 0
	MetricGauge     MetricType = 1
	MetricHistogram MetricType = 2
)

// StreamType names the side of a stream in close_stream / continue_stream.
type StreamType uint32

// Stream types.
const (
	StreamRequest    StreamType = 0
	StreamResponse   StreamType = 1
	StreamDownstream StreamType = 2
	StreamUpstream   StreamType = 3
)

// Header map types (WasmHeaderMapType).
const (
	mapRequestHeaders   = 0
	mapRequestTrailers  = 1
	mapResponseHeaders  = 2
	mapResponseTrailers = 3
	mapMax              = 7
)

// Buffer types (WasmBufferType).
const (
	bufRequestBody  = 0
	bufResponseBody = 1
	bufVMConfig     = 6
	bufPluginConfig = 7
	bufCallData     = 8
	bufMax          = 8
)

// Header is one header or Pairs entry.
type Header struct {
	Name, Value string
}
