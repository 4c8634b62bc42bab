package abi

import (
	"math"
	"time"
	"unsafe"
)

// Host is the proxy as seen from inside the module: each method is one raw
// proxy-wasm host call acting on the current context (the one whose
// callback is running, or the one set by SetEffectiveContext). It is a
// zero-size value; it implements filter.Host.
//
// Contracts shared by every method:
//   - 0 Go allocations: strings go out by address (unsafe.StringData), and
//     results are decoded in place from the memory the host wrote through
//     the module's allocator (the arena).
//   - Returned strings and slices that are not copied into a caller buffer
//     alias that memory: valid until the current callback returns.
//   - Errors are Status values (compare with ErrNotFound, ErrCasMismatch...).
//     A result pointer that does not lie in memory the allocator handed out
//     is refused with StatusInternalFailure, never dereferenced.
//   - No method panics.
//
// Outside a wasip1 build every call returns StatusUnimplemented.
type Host struct{}

// str returns the address and length of s for a host call.
func str(s string) (*byte, uint32) {
	return unsafe.StringData(s), uint32(len(s))
}

// bytesArg returns the address and length of b for a host call.
func bytesArg(b []byte) (*byte, uint32) {
	return unsafe.SliceData(b), uint32(len(b))
}

// hostBytes turns an address/size pair written by the host back into a
// slice, after checking it lies in memory the allocator handed out.
func hostBytes(addr, size uint32) ([]byte, error) {
	b, ok := defaultDispatcher.arena.Lookup(uintptr(addr), size)
	if !ok {
		return nil, StatusInternalFailure
	}
	return b, nil
}

// Log writes msg at level (proxy_log). Errors are dropped: there is nowhere
// to report them. msg must never hold a token, a payload or an allow list.
func (Host) Log(level LogLevel, msg string) {
	p, n := str(msg)
	proxyLog(uint32(level), p, n)
}

// LogLevel returns the host's current log level (proxy_get_log_level).
func (Host) LogLevel() (LogLevel, error) {
	var l uint32
	if s := Status(proxyGetLogLevel(&l)); s != StatusOK {
		return LogTrace, s
	}
	return LogLevel(l), nil
}

// BufferBytes returns up to maxSize bytes from start of buffer t
// (proxy_get_buffer_bytes). The result aliases arena memory.
func (Host) BufferBytes(t BufferType, start, maxSize uint32) ([]byte, error) {
	var addr, size uint32
	if s := Status(proxyGetBufferBytes(uint32(t), start, maxSize, &addr, &size)); s != StatusOK {
		return nil, s
	}
	return hostBytes(addr, size)
}

// PluginConfig returns the plugin configuration (buffer type 7); nil and no
// error when none was given (the host reports NotFound or Empty then).
func (h Host) PluginConfig() ([]byte, error) {
	b, err := h.BufferBytes(BufferPluginConfiguration, 0, math.MaxInt32)
	if err == ErrNotFound || err == ErrEmpty {
		return nil, nil
	}
	return b, err
}

// HeaderMapPairs appends every entry of map m, duplicates included and in
// order, to dst[:0] with one proxy_get_header_map_pairs call. The strings
// alias arena memory. It allocates only when dst is too small.
func (Host) HeaderMapPairs(m MapType, dst []Header) ([]Header, error) {
	var addr, size uint32
	if s := Status(proxyGetHeaderMapPairs(uint32(m), &addr, &size)); s != StatusOK {
		return dst[:0], s
	}
	b, err := hostBytes(addr, size)
	if err != nil {
		return dst[:0], err
	}
	out, err := DecodePairs(b, dst[:0])
	if err != nil {
		return dst[:0], StatusSerializationFailure
	}
	return out, nil
}

// RequestHeaders is HeaderMapPairs(MapRequestHeaders, dst).
func (h Host) RequestHeaders(dst []Header) ([]Header, error) {
	return h.HeaderMapPairs(MapRequestHeaders, dst)
}

// HeaderMapValue returns the first value of name in map m
// (proxy_get_header_map_value); ErrNotFound when absent. Use HeaderMapPairs
// to see duplicates. The result aliases arena memory.
func (Host) HeaderMapValue(m MapType, name string) (string, error) {
	var addr, size uint32
	p, n := str(name)
	if s := Status(proxyGetHeaderMapValue(uint32(m), p, n, &addr, &size)); s != StatusOK {
		return "", s
	}
	b, err := hostBytes(addr, size)
	if err != nil {
		return "", err
	}
	return aliasString(b), nil
}

// AddHeaderMapValue appends a value to name in map m.
func (Host) AddHeaderMapValue(m MapType, name, value string) error {
	kp, kn := str(name)
	vp, vn := str(value)
	return Status(proxyAddHeaderMapValue(uint32(m), kp, kn, vp, vn)).AsError()
}

// ReplaceHeaderMapValue sets name in map m to value, replacing every value.
func (Host) ReplaceHeaderMapValue(m MapType, name, value string) error {
	kp, kn := str(name)
	vp, vn := str(value)
	return Status(proxyReplaceHeaderMapValue(uint32(m), kp, kn, vp, vn)).AsError()
}

// RemoveHeaderMapValue removes every value of name from map m.
func (Host) RemoveHeaderMapValue(m MapType, name string) error {
	kp, kn := str(name)
	return Status(proxyRemoveHeaderMapValue(uint32(m), kp, kn)).AsError()
}

// AddResponseHeader appends a response header value (response phase).
func (h Host) AddResponseHeader(name, value string) error {
	return h.AddHeaderMapValue(MapResponseHeaders, name, value)
}

// SendLocalResponse answers the stream from the filter
// (proxy_send_local_response, no gRPC status); the upstream is never
// reached. The callback must then return types.ActionPause. The headers are
// encoded into arena memory: no Go allocation.
func (Host) SendLocalResponse(status uint32, headers []Header, body []byte, details string) error {
	size := PairsLen(headers)
	if size < 0 {
		return ErrBadArgument
	}
	buf := defaultDispatcher.arena.Alloc(uint32(size))
	if buf == nil {
		return ErrBadArgument
	}
	enc, err := AppendPairs(buf[:0], headers)
	if err != nil {
		return ErrBadArgument
	}
	dp, dn := str(details)
	bp, bn := bytesArg(body)
	hp, hn := bytesArg(enc)
	return Status(proxySendLocalResponse(status, dp, dn, bp, bn, hp, hn, -1)).AsError()
}

// Property reads a host property (proxy_get_property); path is its
// segments joined by NUL ("source\x00address"). ErrNotFound when absent.
// The result aliases arena memory.
func (Host) Property(path string) ([]byte, error) {
	var addr, size uint32
	p, n := str(path)
	if s := Status(proxyGetProperty(p, n, &addr, &size)); s != StatusOK {
		return nil, s
	}
	return hostBytes(addr, size)
}

// SharedGet copies the value of key into dst[:0] (proxy_get_shared_data)
// and returns it with its CAS; ErrNotFound when the key does not exist. It
// allocates only when dst is too small.
func (Host) SharedGet(key string, dst []byte) ([]byte, uint32, error) {
	var addr, size, cas uint32
	p, n := str(key)
	if s := Status(proxyGetSharedData(p, n, &addr, &size, &cas)); s != StatusOK {
		return dst[:0], 0, s
	}
	b, err := hostBytes(addr, size)
	if err != nil {
		return dst[:0], 0, err
	}
	return append(dst[:0], b...), cas, nil
}

// SharedSet writes value under key (proxy_set_shared_data) with Envoy's
// rules: cas 0 writes unconditionally, another cas must equal the current
// one (ErrCasMismatch), a missing key is created whatever the cas.
func (Host) SharedSet(key string, value []byte, cas uint32) error {
	kp, kn := str(key)
	vp, vn := bytesArg(value)
	return Status(proxySetSharedData(kp, kn, vp, vn, cas)).AsError()
}

// SetTickPeriod asks for OnTick on the root context every d
// (proxy_set_tick_period_milliseconds); 0 stops. d is rounded down to the
// millisecond, except that a positive d below 1ms becomes 1ms; periods
// above 2^32-1 ms are clamped. Negative d is ErrBadArgument.
func (Host) SetTickPeriod(d time.Duration) error {
	if d < 0 {
		return ErrBadArgument
	}
	ms := d / time.Millisecond
	if ms == 0 && d > 0 {
		ms = 1
	}
	if ms > math.MaxUint32 {
		ms = math.MaxUint32
	}
	return Status(proxySetTickPeriodMilliseconds(uint32(ms))).AsError()
}

// Now returns the proxy's wall-clock time (proxy_get_current_time_nanoseconds):
// one host call, where Go's time.Now costs two WASI clock_time_get calls.
// If the host refuses, it falls back to time.Now. The result carries no
// monotonic reading: compare such times only with each other.
func (Host) Now() time.Time {
	var ns uint64
	if Status(proxyGetCurrentTimeNanoseconds(&ns)) != StatusOK {
		return time.Now()
	}
	return time.Unix(0, int64(ns))
}

// SetEffectiveContext makes later calls in this callback act on context id
// (used from OnTick to reach a stream).
func (Host) SetEffectiveContext(id uint32) error {
	return Status(proxySetEffectiveContext(id)).AsError()
}

// CloseStream resets the current HTTP stream once the callback returns
// (proxy_close_stream on the request side, which resets the whole stream
// in Envoy in either phase).
func (h Host) CloseStream() error {
	return h.CloseStreamSide(StreamRequest)
}

// CloseStreamSide is proxy_close_stream for side st.
func (Host) CloseStreamSide(st StreamType) error {
	return Status(proxyCloseStream(uint32(st))).AsError()
}

// ContinueStream resumes side st of a paused stream (proxy_continue_stream).
func (Host) ContinueStream(st StreamType) error {
	return Status(proxyContinueStream(uint32(st))).AsError()
}

// DefineMetric returns the id of the metric called name, created if new
// (proxy_define_metric). Envoy prefixes the stat name with "wasmcustom.".
func (Host) DefineMetric(kind MetricKind, name string) (uint32, error) {
	var id uint32
	p, n := str(name)
	if s := Status(proxyDefineMetric(uint32(kind), p, n, &id)); s != StatusOK {
		return 0, s
	}
	return id, nil
}

// IncrementMetric adds delta to metric id (negative for gauges going down).
func (Host) IncrementMetric(id uint32, delta int64) error {
	return Status(proxyIncrementMetric(id, delta)).AsError()
}

// RecordMetric sets a gauge or records a histogram sample.
func (Host) RecordMetric(id uint32, value uint64) error {
	return Status(proxyRecordMetric(id, value)).AsError()
}

// GetMetric returns the current value of metric id (proxy_get_metric).
func (Host) GetMetric(id uint32) (uint64, error) {
	var v uint64
	if s := Status(proxyGetMetric(id, &v)); s != StatusOK {
		return 0, s
	}
	return v, nil
}
