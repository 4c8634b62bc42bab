package filter

import (
	"time"

	"github.com/stoa-platform/stoa-guard/abi"
)

// Host is everything the filter asks of the proxy. It is the only way the
// filter reaches the host: abi.Host implements it inside the Wasm module, the
// test adapter over the SDK's proxytest emulator implements it natively.
//
// Every method acts on the current context (the one whose callback is
// running, or the one set with SetEffectiveContext). Byte slices and strings
// returned alias memory that is reused once the current callback returns.
// No method may panic; errors are abi.Status values (compare with
// abi.ErrNotFound, abi.ErrCasMismatch, ...).
type Host interface {
	// Log writes msg at level. msg must never contain a token, a payload or an allow list.
	Log(level abi.LogLevel, msg string)

	// PluginConfig returns the plugin configuration (Envoy `configuration`,
	// Istio `pluginConfig`); empty when none was given.
	PluginConfig() ([]byte, error)

	// RequestHeaders appends every request header, duplicates included and in
	// order, to dst[:0] with one host call.
	RequestHeaders(dst []abi.Header) ([]abi.Header, error)
	// AddResponseHeader appends a response header value.
	AddResponseHeader(name, value string) error
	// SendLocalResponse answers the stream from the filter; the upstream is
	// never reached. The callback must then return types.ActionPause.
	SendLocalResponse(status uint32, headers []abi.Header, body []byte, details string) error

	// Property reads a host property; path is its segments joined by NUL
	// ("source\x00address"). abi.ErrNotFound when absent.
	Property(path string) ([]byte, error)

	// SharedGet copies the value of key into dst[:0] and returns it with its
	// CAS. abi.ErrNotFound when the key does not exist.
	SharedGet(key string, dst []byte) ([]byte, uint32, error)
	// SharedSet writes value with Envoy's rules: cas 0 writes unconditionally,
	// any other cas must equal the current one (abi.ErrCasMismatch), and a
	// missing key is created whatever the cas.
	SharedSet(key string, value []byte, cas uint32) error

	// SetTickPeriod asks for OnTick on the root context every d (0 stops).
	SetTickPeriod(d time.Duration) error
	// SetEffectiveContext makes later calls act on context id (used from OnTick).
	SetEffectiveContext(id uint32) error
	// CloseStream resets the current stream once the callback returns.
	CloseStream() error

	// DefineMetric returns the id of the metric called name (created if new).
	DefineMetric(kind abi.MetricKind, name string) (uint32, error)
	// IncrementMetric adds delta (negative for gauges going down).
	IncrementMetric(id uint32, delta int64) error
	// RecordMetric sets a gauge or records a histogram sample.
	RecordMetric(id uint32, value uint64) error
}

// Clock returns the current time. The filter never calls time.Now itself, so
// tests drive idle and lifetime closes deterministically.
type Clock func() time.Time

// Env looks up an environment variable, telling unset from empty
// (os.LookupEnv in the module: Envoy passes vm_config.environment_variables
// through WASI environ).
type Env func(key string) (string, bool)
