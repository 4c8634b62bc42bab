package wasmhost

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// MemoryLimitPages caps a VM's linear memory at 1 GiB, as Envoy does
// (PROXY_WASM_HOST_MAX_WASM_MEMORY_SIZE_BYTES).
const MemoryLimitPages = 16384

// Config describes one plugin as an Envoy Wasm filter would be configured.
// The zero value is usable: profile 1.33–1.38, empty vm_id and
// configuration, real time, crypto/rand.
type Config struct {
	// Profile selects the Envoy release imitated (WASI set, restricted callbacks).
	Profile Profile
	// VMID is vm_config.vm_id: the shared-data namespace (Istio leaves it empty).
	VMID string
	// RootID is the plugin's root_id (reported as property plugin_root_id).
	RootID string
	// PluginName is the plugin's name (property plugin_name).
	PluginName string
	// VMConfig is vm_config.configuration (buffer type VmConfiguration, size
	// passed to proxy_on_vm_start).
	VMConfig []byte
	// PluginConfig is the plugin configuration (buffer type
	// PluginConfiguration, readable during proxy_on_configure only).
	PluginConfig []byte
	// Env is vm_config.environment_variables: what WASI environ shows the guest
	// (os.Getenv works in init()). Entries are passed in sorted key order.
	Env map[string]string
	// LogLevel is what proxy_get_log_level reports. Envoy's default is info;
	// the zero value here is trace. Every log is captured whatever the level.
	LogLevel LogLevel
	// Clock drives proxy time and ticks. nil: a clock following real time is
	// not available, so a Clock started at time.Now() is created; advance it.
	Clock *Clock
	// WASIClock chooses what WASI clock_time_get reports (default: host clocks).
	WASIClock WASIClockMode
	// Random feeds WASI random_get (default crypto/rand).
	Random io.Reader
	// Properties are host-level properties (node.*, plugin_*, ...), visible
	// from every context; stream properties take precedence.
	Properties Properties
	// Shared is the shared-data store. nil: a store private to this Host. Pass
	// one store to several Hosts to model several plugins in one Envoy.
	Shared *SharedData
	// StatsTags are the stats tag-extraction rules (envoy.yaml stats_tags).
	StatsTags []TagRule
	// Metrics is the stats store. nil: a new one built from StatsTags.
	Metrics *Metrics
	// CompilationCache is shared by every runtime. nil: a package-wide cache.
	CompilationCache wazero.CompilationCache
	// MaxLogs bounds the captured log entries (default 100000); later entries
	// are counted, not stored.
	MaxLogs int
	// TimeCallbacks records each callback's wall-clock duration in VMStats.
	TimeCallbacks bool
	// Trace, if set, receives one line per host call ("==> proxy_log") —
	// slow, for debugging.
	Trace func(vm int, line string)
}

// LoadError is a module refused at load, with Envoy's message.
type LoadError struct{ Msg string }

func (e *LoadError) Error() string { return e.Msg }

var (
	defaultCacheOnce sync.Once
	defaultCache     wazero.CompilationCache
)

// DefaultCompilationCache is the package-wide compilation cache used when
// Config.CompilationCache is nil. It lives for the process.
func DefaultCompilationCache() wazero.CompilationCache {
	defaultCacheOnce.Do(func() { defaultCache = wazero.NewCompilationCache() })
	return defaultCache
}

// Host is one plugin (one module, one configuration) in one simulated Envoy.
// It creates VMs — one per simulated worker — which share its shared-data
// store, metrics, logs and clock. Host methods are safe for concurrent use;
// a VM is not (see VM).
type Host struct {
	cfg      Config
	bin      []byte
	abi      ABIVersion
	clock    *Clock
	shared   *SharedData
	metrics  *Metrics
	cache    wazero.CompilationCache
	random   io.Reader
	env      []string       // "K=V"
	compiled wazero.Runtime // holds the compiled module in the cache until Close

	mu     sync.Mutex
	vms    []*VM
	closed bool

	logMu     sync.Mutex
	logs      []LogEntry
	logCounts [6]int
	logDrop   int
}

// LogEntry is one captured log line (proxy_log, or fd_write: stdout → info,
// stderr → error, trailing newline removed as Envoy does).
type LogEntry struct {
	VM      int
	Context uint32
	Level   LogLevel
	Message string
}

// NewHost validates the module as Envoy would and prepares the plugin. Load
// errors are *LoadError with Envoy's exact messages:
//
//	Missing or unknown Proxy-Wasm ABI version
//	Failed to load Wasm module due to a missing import: <module>.<name>
//	Failed to load Wasm module due to an import type mismatch: ...
//	Bad function signature for: <export>, want: ... -> ..., but the module exports: ... -> ...
//	Wasm module is missing malloc function.
func NewHost(ctx context.Context, wasm []byte, cfg Config) (*Host, error) {
	h := &Host{cfg: cfg, bin: wasm, clock: cfg.Clock, shared: cfg.Shared, metrics: cfg.Metrics,
		cache: cfg.CompilationCache, random: cfg.Random}
	if h.clock == nil {
		h.clock = NewClock(time.Now())
	}
	if h.shared == nil {
		h.shared = NewSharedData()
	}
	if h.metrics == nil {
		m, err := NewMetrics(cfg.StatsTags)
		if err != nil {
			return nil, err
		}
		h.metrics = m
	}
	if h.cache == nil {
		h.cache = DefaultCompilationCache()
	}
	if h.random == nil {
		h.random = rand.Reader
	}
	if h.cfg.MaxLogs == 0 {
		h.cfg.MaxLogs = 100000
	}
	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.env = append(h.env, k+"="+cfg.Env[k])
	}

	// The module is compiled once, here: this runtime stays open until
	// Close, so its compiled code stays in the shared compilation cache and
	// every VM's runtime finds it there instead of compiling again.
	h.compiled = wazero.NewRuntimeWithConfig(ctx, h.runtimeConfig())
	cm, err := h.compiled.CompileModule(ctx, wasm)
	if err != nil {
		_ = h.compiled.Close(ctx)
		return nil, &LoadError{"Failed to load Wasm module: " + err.Error()}
	}
	if err := h.check(cm); err != nil {
		_ = h.compiled.Close(ctx)
		return nil, err
	}
	return h, nil
}

func (h *Host) runtimeConfig() wazero.RuntimeConfig {
	return wazero.NewRuntimeConfig().WithCompilationCache(h.cache).
		WithMemoryLimitPages(MemoryLimitPages).WithCloseOnContextDone(false)
}

// check runs Envoy's load-time checks in Envoy's order: ABI marker, imports, exports.
func (h *Host) check(cm wazero.CompiledModule) error {
	exports := cm.ExportedFunctions()
	switch {
	case exports["proxy_abi_version_0_2_1"] != nil:
		h.abi = ABI021
	case exports["proxy_abi_version_0_2_0"] != nil:
		h.abi = ABI020
	case exports["proxy_abi_version_0_1_0"] != nil:
		h.abi = ABI010
	default:
		return &LoadError{"Missing or unknown Proxy-Wasm ABI version"}
	}
	for _, imp := range cm.ImportedFunctions() {
		mod, name, _ := imp.Import()
		want, ok := h.importSig(mod, name)
		if !ok {
			return &LoadError{"Failed to load Wasm module due to a missing import: " + mod + "." + name}
		}
		if !sameTypes(want[0], imp.ParamTypes()) || !sameTypes(want[1], imp.ResultTypes()) {
			return &LoadError{"Failed to load Wasm module due to an import type mismatch: " + mod + "." + name +
				", want: " + typeList(imp.ParamTypes()) + " -> " + typeList(imp.ResultTypes()) +
				", but host exports: " + typeList(want[0]) + " -> " + typeList(want[1])}
		}
	}
	for _, imp := range cm.ImportedMemories() {
		mod, name, _ := imp.Import()
		return &LoadError{"Failed to load Wasm module due to a missing import: " + mod + "." + name}
	}
	// Exports Envoy looks up, in its order (WasmBase::getFunctions): main and
	// __main_void only with _initialize, _start only without, the allocator
	// alias only without malloc, then the callbacks.
	names := []string{"_initialize"}
	if exports["_initialize"] != nil {
		names = append(names, "main", "__main_void")
	} else {
		names = append(names, "_start")
	}
	names = append(names, "malloc")
	if exports["malloc"] == nil {
		names = append(names, "proxy_on_memory_allocate")
	}
	var cbs []string
	for n := range exportSig {
		if strings.HasPrefix(n, "proxy_") && n != "proxy_on_memory_allocate" {
			cbs = append(cbs, n)
		}
	}
	cbs = append(cbs, "proxy_on_request_headers", "proxy_on_response_headers")
	sort.Strings(cbs)
	names = append(names, cbs...)
	for _, n := range names {
		def := exports[n]
		if def == nil {
			continue
		}
		want, ok := exportSig[n]
		if !ok {
			want = headersSig(h.abi)
		}
		if !sameTypes(want[0], def.ParamTypes()) || !sameTypes(want[1], def.ResultTypes()) {
			return &LoadError{"Bad function signature for: " + n + ", want: " + typeList(want[0]) + " -> " +
				typeList(want[1]) + ", but the module exports: " + typeList(def.ParamTypes()) + " -> " +
				typeList(def.ResultTypes())}
		}
	}
	if exports["malloc"] == nil && exports["proxy_on_memory_allocate"] == nil {
		return &LoadError{"Wasm module is missing malloc function."}
	}
	return nil
}

func (h *Host) importSig(mod, name string) ([2][]api.ValueType, bool) {
	switch mod {
	case "env":
		if !envAvailable(name, h.abi) {
			return [2][]api.ValueType{}, false
		}
		s, ok := envSig[name]
		return s, ok
	case "wasi_snapshot_preview1", "wasi_unstable":
		if !h.cfg.Profile.hasWASI(name) {
			return [2][]api.ValueType{}, false
		}
		s, ok := wasiSig[name]
		return s, ok
	}
	return [2][]api.ValueType{}, false
}

func (p Profile) hasWASI(name string) bool {
	if p == ProfileEnvoy139 {
		_, ok := wasiSig[name]
		return ok
	}
	for _, n := range wasi133 {
		if n == name {
			return true
		}
	}
	return false
}

// ABI returns the module's proxy-wasm ABI version.
func (h *Host) ABI() ABIVersion { return h.abi }

// Clock returns the host's clock.
func (h *Host) Clock() *Clock { return h.clock }

// Shared returns the shared-data store.
func (h *Host) Shared() *SharedData { return h.shared }

// SharedNamespace returns the store's view for this plugin's vm_id.
func (h *Host) SharedNamespace() *SharedNamespace { return h.shared.Namespace(h.cfg.VMID) }

// Metrics returns the stats store.
func (h *Host) Metrics() *Metrics { return h.metrics }

// Config returns the configuration the host was created with.
func (h *Host) Config() Config { return h.cfg }

// VMs returns the VMs created so far (closed ones included).
func (h *Host) VMs() []*VM {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*VM(nil), h.vms...)
}

// Advance moves the clock forward by d and then fires due ticks on every
// live VM, one VM after the other. Only for tests that drive all VMs from one
// goroutine; otherwise advance the Clock and call VM.RunTimers from each
// VM's goroutine. Returns the first VM error (a VM failing in on_tick).
func (h *Host) Advance(d time.Duration) error {
	h.clock.Advance(d)
	var first error
	for _, vm := range h.VMs() {
		if _, err := vm.RunTimers(); err != nil && first == nil && !errors.Is(err, ErrClosed) {
			first = err
		}
	}
	return first
}

// Close closes every VM (and its wazero runtime), then the runtime that
// holds the compiled module.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	vms := h.vms
	h.mu.Unlock()
	var first error
	for _, vm := range vms {
		if err := vm.Close(ctx); err != nil && first == nil {
			first = err
		}
	}
	if err := h.compiled.Close(ctx); err != nil && first == nil {
		first = err
	}
	return first
}

func (h *Host) log(vm int, ctxID uint32, level LogLevel, msg string) {
	h.logMu.Lock()
	if int(level) < len(h.logCounts) {
		h.logCounts[level]++
	}
	if len(h.logs) < h.cfg.MaxLogs {
		h.logs = append(h.logs, LogEntry{vm, ctxID, level, msg})
	} else {
		h.logDrop++
	}
	h.logMu.Unlock()
}

// Logs returns the captured log entries, oldest first.
func (h *Host) Logs() []LogEntry {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return append([]LogEntry(nil), h.logs...)
}

// LogMessages returns the captured messages at exactly level.
func (h *Host) LogMessages(level LogLevel) []string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	var out []string
	for _, e := range h.logs {
		if e.Level == level {
			out = append(out, e.Message)
		}
	}
	return out
}

// LogCount returns how many lines were logged at level (stored or not).
func (h *Host) LogCount(level LogLevel) int {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	if int(level) >= len(h.logCounts) {
		return 0
	}
	return h.logCounts[level]
}

// ClearLogs drops the captured entries and counts.
func (h *Host) ClearLogs() {
	h.logMu.Lock()
	h.logs, h.logCounts, h.logDrop = nil, [6]int{}, 0
	h.logMu.Unlock()
}
