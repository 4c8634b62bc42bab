// Command testguest is a tiny proxy-wasm plugin over package abi that
// exercises every export and every host call the filter needs. The abi
// tests build it with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared and drive
// it on wazero. It knows nothing of STOA.
//
// Behaviour (request path → effect):
//
//	/local    local response 418: x-echo (first x-echo request value),
//	          x-count (number of request headers), x-peer (source.address),
//	          body "local"; the callback pauses
//	/shared   increments shared key "testguest.counter" with CAS; local
//	          response 200 with x-shared = the new value
//	/measure  counts Go mallocs over 10 RequestHeaders calls (all served by
//	          the arena), then over 10 rounds of every other hot-path call;
//	          local response 200 with x-mallocs / x-mallocs-other = the counts
//	/continue reads the request headers and continues, nothing else
//	/close    registers the stream; the next tick closes it via
//	          set_effective_context + close_stream
//	other     reads x-echo (get_header_map_value), replaces x-replaced,
//	          removes x-remove-me, continues; the response gets x-echo
package main

import (
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// hostAPI is filter.Host's method set (copied so that the guest builds
// while package filter is being edited; abi/internal/hostcheck asserts
// abi.Host implements the real one). The guest goes through it like the
// filter does.
type hostAPI interface {
	Log(level abi.LogLevel, msg string)
	PluginConfig() ([]byte, error)
	RequestHeaders(dst []abi.Header) ([]abi.Header, error)
	AddResponseHeader(name, value string) error
	SendLocalResponse(status uint32, headers []abi.Header, body []byte, details string) error
	Property(path string) ([]byte, error)
	SharedGet(key string, dst []byte) ([]byte, uint32, error)
	SharedSet(key string, value []byte, cas uint32) error
	SetTickPeriod(d time.Duration) error
	SetEffectiveContext(id uint32) error
	CloseStream() error
	DefineMetric(kind abi.MetricKind, name string) (uint32, error)
	IncrementMetric(id uint32, delta int64) error
	RecordMetric(id uint32, value uint64) error
}

var host hostAPI = abi.Host{}

func init() { abi.SetVMContext(&vm{}) }

func main() {}

type vm struct{ types.DefaultVMContext }

var (
	measureHeaders = []abi.Header{{Name: "content-type", Value: "application/json"}, {Name: "retry-after", Value: "60"}}
	measureBody    = []byte(`{"error":"measure"}`)
)

func (*vm) OnVMStart(int) types.OnVMStartStatus {
	host.Log(abi.LogInfo, "testguest: vm start")
	return types.OnVMStartStatusOK
}

func (*vm) NewPluginContext(id uint32) types.PluginContext {
	return &root{id: id, hdrs: make([]abi.Header, 0, 64), scratch: make([]byte, 0, 64)}
}

type root struct {
	types.DefaultPluginContext
	id       uint32
	requests uint32
	gauge    uint32
	hdrs     []abi.Header
	scratch  []byte
	closeID  uint32
	free     []*stream
}

func (r *root) OnPluginStart(int) types.OnPluginStartStatus {
	cfg, err := host.PluginConfig()
	if err != nil || string(cfg) == "fail" {
		host.Log(abi.LogCritical, "testguest: bad configuration")
		return types.OnPluginStartStatusFailed
	}
	if r.requests, err = host.DefineMetric(abi.MetricCounter, "testguest_requests_total"); err != nil {
		return types.OnPluginStartStatusFailed
	}
	if r.gauge, err = host.DefineMetric(abi.MetricGauge, "testguest_active"); err != nil {
		return types.OnPluginStartStatusFailed
	}
	if err := host.SharedSet("testguest.config", cfg, 0); err != nil {
		return types.OnPluginStartStatusFailed
	}
	if err := host.SetTickPeriod(time.Second); err != nil {
		return types.OnPluginStartStatusFailed
	}
	host.Log(abi.LogInfo, "testguest: configured")
	return types.OnPluginStartStatusOK
}

func (r *root) OnTick() {
	if r.closeID == 0 {
		return
	}
	id := r.closeID
	r.closeID = 0
	if host.SetEffectiveContext(id) == nil {
		_ = host.CloseStream()
	}
}

// NewHttpContext reuses stream objects (freed in OnDelete): a reactor
// module's GC barely runs, so per-stream garbage would grow memory.
func (r *root) NewHttpContext(id uint32) types.HttpContext {
	var s *stream
	if n := len(r.free); n > 0 {
		s = r.free[n-1]
		r.free = r.free[:n-1]
		*s = stream{}
	} else {
		s = new(stream)
	}
	s.root, s.id = r, id
	return s
}

type stream struct {
	types.DefaultHttpContext
	root *root
	id   uint32
	echo string
	num  [20]byte
}

func (s *stream) itoa(v uint64) string {
	return string(strconv.AppendUint(s.num[:0], v, 10))
}

func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	r := s.root
	hdrs, err := host.RequestHeaders(r.hdrs)
	if err != nil {
		host.Log(abi.LogError, "testguest: request headers")
		return types.ActionContinue
	}
	r.hdrs = hdrs[:0]
	_ = host.IncrementMetric(r.requests, 1)
	_ = host.IncrementMetric(r.gauge, 1)
	var path, echo string
	for _, h := range hdrs {
		switch h.Name {
		case ":path":
			path = h.Value
		case "x-echo":
			if echo == "" {
				echo = h.Value
			}
		}
	}
	switch path {
	case "/local":
		peer, _ := host.Property("source\x00address")
		_ = host.SendLocalResponse(418, []abi.Header{
			{Name: "x-echo", Value: echo},
			{Name: "x-count", Value: s.itoa(uint64(len(hdrs)))},
			{Name: "x-peer", Value: string(peer)},
		}, []byte("local"), "testguest_local")
		return types.ActionPause
	case "/shared":
		v, cas, err := host.SharedGet("testguest.counter", r.scratch)
		n := uint64(0)
		if err == nil {
			n, _ = strconv.ParseUint(string(v), 10, 64)
		} else if err != abi.ErrNotFound {
			return types.ActionContinue
		}
		next := s.itoa(n + 1)
		if err := host.SharedSet("testguest.counter", []byte(next), cas); err != nil {
			next = "cas_mismatch"
		}
		_ = host.SendLocalResponse(200, []abi.Header{{Name: "x-shared", Value: next}}, nil, "testguest_shared")
		return types.ActionPause
	case "/measure":
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 0; i < 10; i++ {
			r.hdrs, _ = host.RequestHeaders(r.hdrs)
		}
		runtime.ReadMemStats(&after)
		r.hdrs = r.hdrs[:0]
		headersMallocs := after.Mallocs - before.Mallocs
		// Every other hot-path call, 10 times each.
		runtime.ReadMemStats(&before)
		for i := 0; i < 10; i++ {
			_, _ = host.Property("source\x00address")
			v, cas, _ := host.SharedGet("testguest.config", r.scratch)
			_ = host.SharedSet("testguest.measure", v, cas)
			_ = host.IncrementMetric(r.requests, 1)
			_ = host.RecordMetric(r.gauge, 1)
			_, _ = (abi.Host{}).HeaderMapValue(abi.MapRequestHeaders, ":path")
			_ = host.AddResponseHeader("x-measure", "1")
			host.Log(abi.LogDebug, "testguest: measure")
			_ = host.SendLocalResponse(200, measureHeaders, measureBody, "testguest_measure")
		}
		runtime.ReadMemStats(&after)
		_ = host.SendLocalResponse(200, []abi.Header{
			{Name: "x-mallocs", Value: s.itoa(headersMallocs)},
			{Name: "x-mallocs-other", Value: strconv.FormatUint(after.Mallocs-before.Mallocs, 10)},
		}, nil, "testguest_measure")
		return types.ActionPause
	case "/continue":
		return types.ActionContinue
	case "/close":
		r.closeID = s.id
		return types.ActionContinue
	}
	if v, err := (abi.Host{}).HeaderMapValue(abi.MapRequestHeaders, "x-echo"); err == nil {
		s.echo = strings.Clone(v) // v aliases memory reused after this callback
	}
	_ = (abi.Host{}).ReplaceHeaderMapValue(abi.MapRequestHeaders, "x-replaced", "yes")
	_ = (abi.Host{}).RemoveHeaderMapValue(abi.MapRequestHeaders, "x-remove-me")
	return types.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	if s.echo != "" {
		_ = host.AddResponseHeader("x-echo", s.echo)
	}
	return types.ActionContinue
}

func (s *stream) OnHttpResponseBody(int, bool) types.Action {
	_, _ = (abi.Host{}).BufferBytes(abi.BufferResponseBody, 0, 16)
	_ = (abi.Host{}).ContinueStream(abi.StreamResponse)
	return types.ActionContinue
}

func (s *stream) OnHttpStreamDone() {
	r := s.root
	_ = host.IncrementMetric(r.gauge, -1)
	_ = host.RecordMetric(r.gauge, 0)
	if v, err := (abi.Host{}).GetMetric(r.requests); err == nil && v == 0 {
		host.Log(abi.LogWarn, "testguest: counter lost")
	}
	if l, err := (abi.Host{}).LogLevel(); err == nil && l <= abi.LogDebug {
		host.Log(abi.LogDebug, "testguest: stream done")
	}
}

// OnDone implements abi.DoneHandler.
func (s *stream) OnDone() { host.Log(abi.LogDebug, "testguest: done") }

// OnDelete implements abi.DeleteHandler.
func (s *stream) OnDelete() {
	host.Log(abi.LogDebug, "testguest: delete")
	s.root.free = append(s.root.free, s)
}
