package localproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// DefaultTickInterval is how often the Wasm engine gives each VM the chance
// to run its on_tick. The filter's
// own tick (sse.tick, at least 100ms) is then late by at most this much.
const DefaultTickInterval = 100 * time.Millisecond

// WasmConfig configures NewWasmEngine.
type WasmConfig struct {
	// Module is the filter module (filter.wasm).
	Module []byte
	// PluginConfig is the plugin configuration JSON (Envoy `configuration`); nil for none.
	PluginConfig []byte
	// Env is vm_config.environment_variables.
	Env map[string]string
	// Workers is the number of VMs (Envoy --concurrency), >= 1.
	Workers int
	// Profile is the Envoy release imitated: "1.33-1.38" or ">=1.39" ("" = ">=1.39").
	Profile string
	// StatsTags are the stats tag-extraction rules for WritePrometheus.
	StatsTags []TagRule
	// JWTMetadataKey is jwt_authn's payload_in_metadata key: a verified
	// payload is exposed to the filter at
	// metadata.filter_metadata["envoy.filters.http.jwt_authn"][key]. "" for none.
	JWTMetadataKey string
	// Log receives the module's log lines and the engine's own messages
	// (slog.Default when nil). Its level is the one the module sees.
	Log *slog.Logger
	// TickInterval overrides DefaultTickInterval (tests).
	TickInterval time.Duration
	// CacheDir keeps the module's compiled machine code across runs (wazero's
	// file cache, keyed by the module's hash and wazero's version), so that
	// only the first start after a rebuild of filter.wasm pays the
	// compilation (seconds; tens of seconds on a busy machine). "" means
	// $XDG_CACHE_HOME/stoa-guard/wazero (os.UserCacheDir); "off" keeps it in
	// memory only. Delete the directory to reclaim the space.
	CacheDir string
}

var (
	cacheMu sync.Mutex
	caches  = map[string]wazero.CompilationCache{}
)

// compilationCache returns the process-wide cache for dir (one per
// directory, so that engines in one process share compiled code), or nil
// for wasmhost's in-memory default.
func compilationCache(dir string, log *slog.Logger) wazero.CompilationCache {
	if dir == "off" {
		return nil
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil
		}
		dir = filepath.Join(base, "stoa-guard", "wazero")
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if c, ok := caches[dir]; ok {
		return c
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Debug("no compilation cache on disk", "err", err)
		return nil
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		log.Debug("no compilation cache on disk", "err", err)
		return nil
	}
	caches[dir] = c
	return c
}

// WasmEngine runs the filter module in the project's proxy-wasm host
// (package wasmhost): one Host, one VM per worker, sharing shared data and
// metrics as Envoy's worker threads do. Time is real time, as in Envoy: WASI
// clocks come from the host, the host clock (proxy time, tick scheduling) is
// wasmhost.RealClock, and a ticker fires due on_tick callbacks.
type WasmEngine struct {
	host    *wasmhost.Host
	vms     []*wasmhost.VM
	log     *slog.Logger
	metaKey string

	failed    []atomic.Bool // per VM: failure already logged
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	logMu     sync.Mutex // serialises draining the host's log buffer
}

var _ Engine = (*WasmEngine)(nil)

// NewWasmEngine loads the module, starts cfg.Workers VMs and the ticker.
// Errors name the flag or the module's refusal (with the filter's own
// critical log line, which names the bad key and value).
func NewWasmEngine(ctx context.Context, cfg WasmConfig) (*WasmEngine, error) {
	if cfg.Workers < 1 {
		return nil, fmt.Errorf("-workers %d: want at least 1", cfg.Workers)
	}
	if cfg.Profile == "" {
		cfg.Profile = ">=1.39"
	}
	profile, ok := wasmhost.ParseProfile(cfg.Profile)
	if !ok {
		return nil, fmt.Errorf(`-profile %q: want "1.33-1.38" or ">=1.39"`, cfg.Profile)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = DefaultTickInterval
	}
	tags := make([]wasmhost.TagRule, len(cfg.StatsTags))
	for i, r := range cfg.StatsTags {
		tags[i] = wasmhost.TagRule{Name: r.Name, Regex: r.Regex}
	}
	h, err := wasmhost.NewHost(ctx, cfg.Module, wasmhost.Config{
		Profile:      profile,
		VMID:         "stoa-guard", // envoy.yaml's vm_config.vm_id
		PluginName:   "stoa-guard",
		PluginConfig: cfg.PluginConfig,
		Env:          cfg.Env,
		LogLevel:     guestLevel(cfg.Log),
		Clock:        wasmhost.RealClock(),
		WASIClock:    wasmhost.WASIClockHost,
		StatsTags:    tags,
		MaxLogs:      10000, // drained by the ticker

		CompilationCache: compilationCache(cfg.CacheDir, cfg.Log),
	})
	if err != nil {
		return nil, fmt.Errorf("-module: %w", err)
	}
	e := &WasmEngine{
		host: h, log: cfg.Log, metaKey: cfg.JWTMetadataKey,
		failed: make([]atomic.Bool, cfg.Workers),
		stop:   make(chan struct{}), done: make(chan struct{}),
	}
	for range cfg.Workers {
		vm, err := h.NewVM(ctx)
		if err != nil {
			msgs := h.LogMessages(wasmhost.LogCritical)
			e.drainLogs()
			_ = h.Close(context.Background())
			if errors.Is(err, wasmhost.ErrConfigure) && len(msgs) > 0 {
				return nil, fmt.Errorf("the filter refused its configuration (-config/-env): %s", msgs[len(msgs)-1])
			}
			return nil, fmt.Errorf("starting a worker VM: %w", err)
		}
		e.vms = append(e.vms, vm)
	}
	e.drainLogs()
	go e.ticker(cfg.TickInterval)
	return e, nil
}

// guestLevel is the proxy_get_log_level the module sees: the logger's.
func guestLevel(l *slog.Logger) wasmhost.LogLevel {
	ctx := context.Background()
	switch {
	case l.Enabled(ctx, slog.LevelDebug):
		return wasmhost.LogDebug
	case l.Enabled(ctx, slog.LevelInfo):
		return wasmhost.LogInfo
	case l.Enabled(ctx, slog.LevelWarn):
		return wasmhost.LogWarn
	default:
		return wasmhost.LogError
	}
}

// Workers implements Engine.
func (e *WasmEngine) Workers() int { return len(e.vms) }

// Host is the underlying proxy-wasm host (metrics, shared data, VMs), for
// diagnostics and tests.
func (e *WasmEngine) Host() *wasmhost.Host { return e.host }

// ticker runs due ticks on every VM, one
// after the other (each VM call takes that VM's lock, so a tick never
// overlaps a stream callback of the same worker), then forwards new log
// lines.
func (e *WasmEngine) ticker(every time.Duration) {
	defer close(e.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			for i, vm := range e.vms {
				if _, err := vm.RunTimers(); err != nil {
					e.vmFailed(i, err)
				}
			}
			e.drainLogs()
		}
	}
}

// vmFailed logs a worker's failure once. Like Envoy with fail_open false
// (failure_policy FAIL_CLOSED), the worker then answers every new stream
// with 503 wasm_fail_stream and resets streams in flight at their next event.
func (e *WasmEngine) vmFailed(i int, err error) {
	if errors.Is(err, wasmhost.ErrClosed) {
		return
	}
	if e.failed[i].CompareAndSwap(false, true) {
		e.log.Error("filter: worker VM failed; its new streams get 503 wasm_fail_stream", "worker", i, "err", err)
	}
}

// drainLogs forwards the module's captured log lines to the logger. The host
// only buffers them (MaxLogs, then counts): a line logged between Logs and
// ClearLogs is lost. A log sink in wasmhost.Config would close that gap.
func (e *WasmEngine) drainLogs() {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	logs := e.host.Logs()
	if len(logs) == 0 {
		return
	}
	e.host.ClearLogs()
	ctx := context.Background()
	for _, l := range logs {
		var lvl slog.Level
		switch l.Level {
		case wasmhost.LogTrace, wasmhost.LogDebug:
			lvl = slog.LevelDebug
		case wasmhost.LogInfo:
			lvl = slog.LevelInfo
		case wasmhost.LogWarn:
			lvl = slog.LevelWarn
		default:
			lvl = slog.LevelError
		}
		e.log.Log(ctx, lvl, l.Message, "source", "wasm", "worker", l.VM)
	}
}

// WritePrometheus implements Engine.
func (e *WasmEngine) WritePrometheus(w io.Writer) error {
	_, err := io.WriteString(w, e.host.Metrics().Prometheus())
	return err
}

// Close implements Engine: it stops the ticker and closes every VM.
// Idempotent.
func (e *WasmEngine) Close() error {
	e.closeOnce.Do(func() {
		close(e.stop)
		<-e.done
		e.drainLogs()
		e.closeErr = e.host.Close(context.Background())
	})
	return e.closeErr
}

// NewStream implements Engine.
func (e *WasmEngine) NewStream(w int, info StreamInfo) (Stream, error) {
	if w < 0 || w >= len(e.vms) {
		return nil, fmt.Errorf("localproxy: worker %d out of range [0,%d)", w, len(e.vms))
	}
	s, err := e.vms[w].NewStream(e.properties(info))
	if err != nil {
		if errors.Is(err, wasmhost.ErrVMFailed) {
			e.vmFailed(w, err)
			return failedStream{}, nil
		}
		return nil, err
	}
	return &wasmStream{e: e, w: w, s: s}, nil
}

// properties are the stream's host properties, as Envoy exposes them.
func (e *WasmEngine) properties(info StreamInfo) wasmhost.Properties {
	p := make(wasmhost.Properties, 10)
	if info.Source.IsValid() {
		p[wasmhost.Path("source", "address")] = info.Source.String() // "ip:port", "[v6]:port"
		p[wasmhost.Path("source", "port")] = int64(info.Source.Port())
	}
	if info.Destination.IsValid() {
		p[wasmhost.Path("destination", "address")] = info.Destination.String()
		p[wasmhost.Path("destination", "port")] = int64(info.Destination.Port())
	}
	p[wasmhost.Path("connection", "id")] = info.ConnectionID
	if info.Protocol != "" {
		p[wasmhost.Path("request", "protocol")] = info.Protocol
	}
	if info.RequestID != "" {
		p[wasmhost.Path("request", "id")] = info.RequestID
	}
	if e.metaKey != "" && len(info.JWTPayload) > 0 {
		var claims map[string]any
		// The payload was verified by the jwt_authn stand-in: it is a JSON object.
		if json.Unmarshal(info.JWTPayload, &claims) == nil && claims != nil {
			p[wasmhost.Path("metadata", "filter_metadata", "envoy.filters.http.jwt_authn", e.metaKey)] = claims
		}
	}
	return p
}

// failReply is Envoy's answer when the filter's VM has failed and the
// plugin's failure policy is FAIL_CLOSED: a local reply 503 with details
// wasm_fail_stream (Envoy's body is empty; the details go to the access log).
func failReply() *LocalReply {
	return &LocalReply{Status: 503}
}

// wasmStream adapts a wasmhost.Stream.
type wasmStream struct {
	e       *WasmEngine
	w       int
	s       *wasmhost.Stream
	endOnce sync.Once
}

func toHost(h []Header) []wasmhost.Header {
	out := make([]wasmhost.Header, len(h))
	for i, x := range h {
		out[i] = wasmhost.Header{Name: x.Name, Value: x.Value}
	}
	return out
}

func fromHost(h []wasmhost.Header) []Header {
	out := make([]Header, len(h))
	for i, x := range h {
		out[i] = Header{Name: x.Name, Value: x.Value}
	}
	return out
}

func localReply(lr *wasmhost.LocalResponse) *LocalReply {
	return &LocalReply{Status: lr.Status, Headers: fromHost(lr.Headers), Body: lr.Body}
}

// RequestHeaders implements Stream.
func (s *wasmStream) RequestHeaders(h []Header, eos bool) ([]Header, *LocalReply, error) {
	return s.headers(s.s.RequestHeaders, s.s.RequestHeaderList, h, eos)
}

// ResponseHeaders implements Stream.
func (s *wasmStream) ResponseHeaders(h []Header, eos bool) ([]Header, *LocalReply, error) {
	return s.headers(s.s.ResponseHeaders, s.s.ResponseHeaderList, h, eos)
}

// headers runs one header callback and returns the headers as the filter
// left them (list), its local reply, or Envoy's 503 when the VM failed.
func (s *wasmStream) headers(call func([]wasmhost.Header, bool) (wasmhost.Action, error),
	list func() []wasmhost.Header, h []Header, eos bool) ([]Header, *LocalReply, error) {
	if _, err := call(toHost(h), eos); err != nil {
		if errors.Is(err, wasmhost.ErrVMFailed) {
			s.e.vmFailed(s.w, err)
			return nil, failReply(), nil
		}
		return nil, nil, err
	}
	if lr := s.s.LocalResponse(); lr != nil {
		return nil, localReply(lr), nil
	}
	return fromHost(list()), nil, nil
}

// ResponseBody implements Stream. After a VM failure it returns the error:
// the proxy then resets the client's stream, as Envoy does when a failed
// filter cannot process a body chunk.
func (s *wasmStream) ResponseBody(chunk []byte, eos bool) error {
	_, err := s.s.ResponseBody(chunk, eos)
	if err != nil && errors.Is(err, wasmhost.ErrVMFailed) {
		s.e.vmFailed(s.w, err)
	}
	return err
}

// Closed implements Stream.
func (s *wasmStream) Closed() <-chan struct{} { return s.s.Closed() }

// End implements Stream: on_log, on_done, on_delete, once.
func (s *wasmStream) End() {
	s.endOnce.Do(func() {
		if err := s.s.End(); err != nil && !errors.Is(err, wasmhost.ErrVMFailed) && !errors.Is(err, wasmhost.ErrClosed) {
			s.e.log.Debug("filter: ending a stream failed", "worker", s.w, "err", err)
		}
	})
}

// failedStream is a stream on a worker whose VM has failed: every request
// gets 503 wasm_fail_stream.
type failedStream struct{}

var never = make(chan struct{})

func (failedStream) RequestHeaders([]Header, bool) ([]Header, *LocalReply, error) {
	return nil, failReply(), nil
}
func (failedStream) ResponseHeaders([]Header, bool) ([]Header, *LocalReply, error) {
	return nil, failReply(), nil
}
func (failedStream) ResponseBody([]byte, bool) error { return wasmhost.ErrVMFailed }
func (failedStream) Closed() <-chan struct{}         { return never }
func (failedStream) End()                            {}
