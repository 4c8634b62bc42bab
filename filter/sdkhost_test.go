package filter

import (
	"strings"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/filter/limiter/limitertest"
)

// sdkHost implements Host over the SDK's public API, whose host calls the
// proxytest emulator answers when compiled natively. It is the adapter that
// lets the SDK's emulator drive the real filter.
//
// Shared data is the one exception: proxytest's CAS differs from Envoy's
// (its cas 0 is not unconditional and it derives the next cas from the
// caller's), so shared data goes to limitertest.MemStore, which follows
// Envoy exactly.
type sdkHost struct {
	kinds  map[uint32]abi.MetricKind
	shared *limitertest.MemStore
}

var _ Host = (*sdkHost)(nil)

func newSDKHost() *sdkHost {
	return &sdkHost{kinds: map[uint32]abi.MetricKind{}, shared: limitertest.NewMemStore()}
}

func sdkErr(err error) error {
	switch err {
	case nil:
		return nil
	case types.ErrorStatusNotFound:
		return abi.ErrNotFound
	case types.ErrorStatusCasMismatch:
		return abi.ErrCasMismatch
	case types.ErrorStatusBadArgument:
		return abi.ErrBadArgument
	case types.ErrorStatusEmpty:
		return abi.ErrEmpty
	}
	return abi.StatusInternalFailure
}

func (*sdkHost) Log(level abi.LogLevel, msg string) {
	switch level {
	case abi.LogTrace:
		proxywasm.LogTrace(msg)
	case abi.LogDebug:
		proxywasm.LogDebug(msg)
	case abi.LogInfo:
		proxywasm.LogInfo(msg)
	case abi.LogWarn:
		proxywasm.LogWarn(msg)
	case abi.LogError:
		proxywasm.LogError(msg)
	default:
		proxywasm.LogCritical(msg)
	}
}

func (*sdkHost) PluginConfig() ([]byte, error) {
	b, err := proxywasm.GetPluginConfiguration()
	return b, sdkErr(err)
}

func (*sdkHost) RequestHeaders(dst []abi.Header) ([]abi.Header, error) {
	hs, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		return dst, sdkErr(err)
	}
	for _, h := range hs {
		dst = append(dst, abi.Header{Name: h[0], Value: h[1]})
	}
	return dst, nil
}

func (*sdkHost) AddResponseHeader(name, value string) error {
	return sdkErr(proxywasm.AddHttpResponseHeader(name, value))
}

func (*sdkHost) SendLocalResponse(status uint32, headers []abi.Header, body []byte, _ string) error {
	hs := make([][2]string, len(headers))
	for i, h := range headers {
		hs[i] = [2]string{h.Name, h.Value}
	}
	return sdkErr(proxywasm.SendHttpResponse(status, hs, body, -1))
}

func (*sdkHost) Property(path string) ([]byte, error) {
	b, err := proxywasm.GetProperty(strings.Split(path, "\x00"))
	return b, sdkErr(err)
}

func (h *sdkHost) SharedGet(key string, dst []byte) ([]byte, uint32, error) {
	return h.shared.Get(key, dst)
}

func (h *sdkHost) SharedSet(key string, value []byte, cas uint32) error {
	return h.shared.Set(key, value, cas)
}

func (*sdkHost) SetTickPeriod(d time.Duration) error {
	return sdkErr(proxywasm.SetTickPeriodMilliSeconds(uint32(d / time.Millisecond)))
}

func (*sdkHost) SetEffectiveContext(id uint32) error {
	return sdkErr(proxywasm.SetEffectiveContext(id))
}

func (*sdkHost) CloseStream() error { return sdkErr(proxywasm.CloseDownstream()) }

func (h *sdkHost) DefineMetric(kind abi.MetricKind, name string) (uint32, error) {
	var id uint32
	switch kind {
	case abi.MetricCounter:
		id = uint32(proxywasm.DefineCounterMetric(name))
	case abi.MetricGauge:
		id = uint32(proxywasm.DefineGaugeMetric(name))
	default:
		id = uint32(proxywasm.DefineHistogramMetric(name))
	}
	h.kinds[id] = kind
	return id, nil
}

func (h *sdkHost) IncrementMetric(id uint32, delta int64) error {
	switch h.kinds[id] {
	case abi.MetricCounter:
		proxywasm.MetricCounter(id).Increment(uint64(delta))
	case abi.MetricGauge:
		proxywasm.MetricGauge(id).Add(delta)
	default:
		return abi.ErrBadArgument
	}
	return nil
}

// RecordMetric sets a gauge (the SDK's emulator has no set: Add the
// difference) or records a histogram sample, as Envoy's record_metric does.
func (h *sdkHost) RecordMetric(id uint32, value uint64) error {
	switch h.kinds[id] {
	case abi.MetricGauge:
		g := proxywasm.MetricGauge(id)
		g.Add(int64(value) - g.Value())
	case abi.MetricHistogram:
		proxywasm.MetricHistogram(id).Record(value)
	default:
		return abi.ErrBadArgument
	}
	return nil
}
