package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// RootContextID is the id of the plugin's root context in every VM.
const RootContextID = 1

// VM is one instance of the module: one Envoy worker's Wasm VM, with its own
// linear memory and Go globals, sharing the Host's shared data, metrics, logs
// and clock with the other VMs.
//
// A VM runs one callback at a time: every method takes the VM's lock, so a VM
// may be used from several goroutines, but callbacks never overlap, as on an
// Envoy worker thread. Calls into one VM from inside its own host functions
// are not possible (there are none in the API).
type VM struct {
	h   *Host
	id  int
	rt  wazero.Runtime
	mod api.Module
	mem api.Memory

	mu       sync.Mutex
	err      error // set once the VM failed; no callback reaches it any more
	closed   bool
	ctx      context.Context
	stack    [8]uint64
	started  time.Time // for WASIClockFollow monotonic time
	lastMono int64

	fn struct {
		alloc                                 api.Function
		ctxCreate, vmStart, configure, tick   api.Function
		reqHeaders, reqBody, reqTrailers      api.Function
		respHeaders, respBody, respTrailers   api.Function
		onDone, onLog, onDelete               api.Function
		initialize, start, mainFn, mainVoidFn api.Function
	}

	// State of the callback in progress.
	restrict  map[string]bool // non-nil: only these host calls are allowed
	phase     string          // "_initialize", "allocation", for the trap message
	effective uint32          // effective context id
	buffer    []byte          // buffer readable in this callback (body chunk)
	bufType   uint32          // its type, or ^0
	cfgBuf    []byte          // VM or plugin configuration, readable in on_vm_start / on_configure
	cfgType   uint32

	nextID  uint32
	streams map[uint32]*Stream
	pending []*Stream // close_stream requested in the current callback
	scratch []byte    // reused buffer for values handed to the guest

	tickPeriod time.Duration
	nextTick   time.Time

	metrics vmMetrics
	stats   VMStats
	byName  []uint64 // host calls by function index
	names   []string
}

// VMStats are counters a VM keeps about its own traffic with the host.
type VMStats struct {
	HostCalls      uint64 // every host function call (env and WASI)
	Callbacks      uint64 // every callback the host made into the module (allocator included)
	Allocations    uint64 // calls of the guest allocator
	BytesToGuest   uint64 // bytes the host wrote into linear memory
	BytesFromGuest uint64 // bytes the host read from linear memory
	CallbackNanos  uint64 // wall time inside callbacks (Config.TimeCallbacks)
}

// ErrConfigure is returned by NewVM when proxy_on_vm_start or
// proxy_on_configure returned false: Envoy refuses the plugin.
var ErrConfigure = errors.New("wasmhost: plugin refused its configuration")

// TrapError is a VM failure: a trap in the module, a forbidden host call in a
// restricted callback, proc_exit, or VM.Fail.
type TrapError struct {
	VM       int
	Callback string
	Msg      string
}

func (e *TrapError) Error() string {
	return fmt.Sprintf("wasmhost: VM %d failed in %s: %s", e.VM, e.Callback, e.Msg)
}

// Is makes errors.Is(err, ErrVMFailed) true for a TrapError.
func (e *TrapError) Is(target error) bool { return target == ErrVMFailed }

// trap is what a host function panics with to trap the module.
type trap struct{ msg string }

// NewVM starts one VM as an Envoy worker does: instantiate, `_initialize`
// (restricted callbacks), root context, proxy_on_vm_start,
// proxy_on_configure. A module that traps returns a *TrapError; one that
// refuses its configuration returns an error wrapping ErrConfigure. The VM
// is registered with the host either way (its logs are kept) but only a
// started VM is returned.
func (h *Host) NewVM(ctx context.Context) (*VM, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	vm := &VM{h: h, id: len(h.vms), ctx: context.Background(), nextID: RootContextID + 1,
		streams: make(map[uint32]*Stream), bufType: ^uint32(0), cfgType: ^uint32(0)}
	// The VM is listed (Host.VMs, Advance, Close) before it is built: hold
	// its lock until it is started or closed.
	vm.mu.Lock()
	defer vm.mu.Unlock()
	h.vms = append(h.vms, vm)
	h.mu.Unlock()

	vm.rt = wazero.NewRuntimeWithConfig(ctx, h.runtimeConfig())
	if err := vm.instantiate(ctx); err != nil {
		_ = vm.rt.Close(ctx)
		vm.closed = true
		return nil, err
	}
	if err := vm.boot(); err != nil {
		vm.closeLocked(ctx)
		return nil, err
	}
	return vm, nil
}

func (vm *VM) instantiate(ctx context.Context) error {
	if err := vm.registerEnv(ctx); err != nil {
		return err
	}
	for _, name := range []string{"wasi_snapshot_preview1", "wasi_unstable"} {
		if err := vm.registerWASI(ctx, name); err != nil {
			return err
		}
	}
	cm, err := vm.rt.CompileModule(ctx, vm.h.bin)
	if err != nil {
		return &LoadError{"Failed to load Wasm module: " + err.Error()}
	}
	mod, err := vm.rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithStartFunctions().
		WithName(fmt.Sprintf("vm%d", vm.id)))
	if err != nil {
		return &LoadError{"Failed to instantiate Wasm module: " + err.Error()}
	}
	vm.mod, vm.mem = mod, mod.Memory()
	if vm.mem == nil {
		return &LoadError{"Wasm module has no memory"}
	}
	f := mod.ExportedFunction
	vm.fn.alloc = f("malloc")
	if vm.fn.alloc == nil {
		vm.fn.alloc = f("proxy_on_memory_allocate")
	}
	vm.fn.ctxCreate, vm.fn.vmStart, vm.fn.configure = f("proxy_on_context_create"), f("proxy_on_vm_start"), f("proxy_on_configure")
	vm.fn.tick = f("proxy_on_tick")
	vm.fn.reqHeaders, vm.fn.reqBody, vm.fn.reqTrailers = f("proxy_on_request_headers"), f("proxy_on_request_body"), f("proxy_on_request_trailers")
	vm.fn.respHeaders, vm.fn.respBody, vm.fn.respTrailers = f("proxy_on_response_headers"), f("proxy_on_response_body"), f("proxy_on_response_trailers")
	vm.fn.onDone, vm.fn.onLog, vm.fn.onDelete = f("proxy_on_done"), f("proxy_on_log"), f("proxy_on_delete")
	vm.fn.initialize, vm.fn.start, vm.fn.mainFn, vm.fn.mainVoidFn = f("_initialize"), f("_start"), f("main"), f("__main_void")
	return nil
}

// boot runs the start functions and the root context's start-up callbacks.
func (vm *VM) boot() error {
	vm.started = vm.h.clock.Now()
	initSet := allowSet(vm.h.cfg.Profile.InitAllowed())
	if vm.fn.initialize != nil {
		if _, err := vm.callRestricted("_initialize", initSet, vm.fn.initialize); err != nil {
			return err
		}
		if vm.fn.mainFn != nil {
			if _, err := vm.callRestricted("main", initSet, vm.fn.mainFn, 0, 0); err != nil {
				return err
			}
		} else if vm.fn.mainVoidFn != nil {
			if _, err := vm.callRestricted("__main_void", initSet, vm.fn.mainVoidFn); err != nil {
				return err
			}
		}
	} else if vm.fn.start != nil {
		if _, err := vm.callRestricted("_start", initSet, vm.fn.start); err != nil {
			return err
		}
	}
	vm.effective = RootContextID
	if vm.fn.ctxCreate != nil {
		if _, err := vm.call("proxy_on_context_create", vm.fn.ctxCreate, RootContextID, 0); err != nil {
			return err
		}
	}
	if vm.fn.vmStart != nil {
		vm.cfgBuf, vm.cfgType = vm.h.cfg.VMConfig, bufVMConfig
		ok, err := vm.call("proxy_on_vm_start", vm.fn.vmStart, RootContextID, uint64(len(vm.h.cfg.VMConfig)))
		vm.cfgBuf, vm.cfgType = nil, ^uint32(0)
		if err != nil {
			return err
		}
		if uint32(ok) == 0 {
			return fmt.Errorf("%w: proxy_on_vm_start returned false (Envoy: Failed to start base Wasm in VM %d)", ErrConfigure, vm.id)
		}
	}
	if vm.fn.configure != nil {
		vm.cfgBuf, vm.cfgType = vm.h.cfg.PluginConfig, bufPluginConfig
		ok, err := vm.call("proxy_on_configure", vm.fn.configure, RootContextID, uint64(len(vm.h.cfg.PluginConfig)))
		vm.cfgBuf, vm.cfgType = nil, ^uint32(0)
		if err != nil {
			return err
		}
		if uint32(ok) == 0 {
			return fmt.Errorf("%w: proxy_on_configure returned false (Envoy: Unable to create Wasm HTTP filter)", ErrConfigure)
		}
	}
	return nil
}

func allowSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// ID is the VM's index in its host (0-based, in creation order).
func (vm *VM) ID() int { return vm.id }

// Err returns why the VM failed, or nil.
func (vm *VM) Err() error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.err
}

// MemoryBytes returns the size of the VM's linear memory in bytes.
func (vm *VM) MemoryBytes() uint64 {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.mem == nil || vm.closed {
		return 0
	}
	return uint64(vm.mem.Size())
}

// Stats returns the VM's counters.
func (vm *VM) Stats() VMStats {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.stats
}

// HostCallCounts returns how many times each host function was called
// ("env.proxy_log", "wasi_snapshot_preview1.fd_write", ...), zero counts omitted.
func (vm *VM) HostCallCounts() map[string]uint64 {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	out := map[string]uint64{}
	for i, n := range vm.byName {
		if n > 0 {
			out[vm.names[i]] = n
		}
	}
	return out
}

// LiveStreams returns the number of streams created and not yet deleted.
func (vm *VM) LiveStreams() int {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return len(vm.streams)
}

// Fail fails the VM as a trap would (fault injection): from now on no
// callback reaches it, streams get ErrVMFailed, ticks stop.
func (vm *VM) Fail(reason string) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	vm.failLocked("VM.Fail", reason)
}

func (vm *VM) failLocked(callback, msg string) error {
	if vm.err == nil {
		vm.err = &TrapError{VM: vm.id, Callback: callback, Msg: msg}
		vm.h.log(vm.id, 0, LogCritical, "Function: "+callback+" failed: "+msg)
	}
	return vm.err
}

// Close closes the VM's runtime. Open streams get no more callbacks.
func (vm *VM) Close(ctx context.Context) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.closeLocked(ctx)
}

func (vm *VM) closeLocked(ctx context.Context) error {
	if vm.closed {
		return nil
	}
	vm.closed = true
	return vm.rt.Close(ctx)
}

// usable reports why no callback may run.
func (vm *VM) usable() error {
	if vm.closed {
		return ErrClosed
	}
	return vm.err
}

// call runs one callback with the effective context already set. A trap
// fails the VM.
func (vm *VM) call(name string, fn api.Function, args ...uint64) (uint64, error) {
	if err := vm.usable(); err != nil {
		return 0, err
	}
	st := vm.stack[:]
	copy(st, args)
	vm.stats.Callbacks++
	var t0 time.Time
	if vm.h.cfg.TimeCallbacks {
		t0 = time.Now()
	}
	err := vm.safeCall(fn, st)
	if vm.h.cfg.TimeCallbacks {
		vm.stats.CallbackNanos += uint64(time.Since(t0))
	}
	if err != nil {
		return 0, vm.failLocked(name, trapMessage(err))
	}
	return st[0], nil
}

func (vm *VM) callRestricted(name string, allowed map[string]bool, fn api.Function, args ...uint64) (uint64, error) {
	prevR, prevP := vm.restrict, vm.phase
	vm.restrict, vm.phase = allowed, name
	defer func() { vm.restrict, vm.phase = prevR, prevP }()
	return vm.call(name, fn, args...)
}

// safeCall calls fn and turns any panic (a host function's trap, wazero's
// own) into an error.
func (vm *VM) safeCall(fn api.Function, st []uint64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return fn.CallWithStack(vm.ctx, st)
}

func trapMessage(err error) string {
	var t *trap
	if errors.As(err, &t) {
		return t.msg
	}
	return err.Error()
}

func (t *trap) Error() string { return t.msg }

// alloc asks the guest for size bytes with the allocator restrictions.
func (vm *VM) alloc(size uint32) (uint32, bool) {
	if vm.fn.alloc == nil {
		return 0, false
	}
	prevR, prevP := vm.restrict, vm.phase
	vm.restrict, vm.phase = allocAllowedSet(vm.h.cfg.Profile), "allocation"
	vm.stack[0] = uint64(size)
	vm.stats.Callbacks++
	vm.stats.Allocations++
	err := vm.fn.alloc.CallWithStack(vm.ctx, vm.stack[:])
	vm.restrict, vm.phase = prevR, prevP
	if err != nil {
		panic(&trap{"allocation failed: " + trapMessage(err)})
	}
	p := uint32(vm.stack[0])
	if p == 0 && size > 0 {
		return 0, false
	}
	return p, true
}

var (
	allocSet133 = allowSet(allocAllowed133)
	allocSet139 = allowSet(allocAllowed139)
)

func allocAllowedSet(p Profile) map[string]bool {
	if p == ProfileEnvoy139 {
		return allocSet139
	}
	return allocSet133
}

// RunTimers fires proxy_on_tick if the tick period has elapsed on the
// host's clock (one tick however many periods passed, as Envoy's timer).
// It reports whether a tick ran. A failed or closed VM returns its error.
func (vm *VM) RunTimers() (bool, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.usable(); err != nil {
		return false, err
	}
	if vm.tickPeriod <= 0 || vm.fn.tick == nil {
		return false, nil
	}
	now := vm.h.clock.Now()
	if now.Before(vm.nextTick) {
		return false, nil
	}
	vm.nextTick = now.Add(vm.tickPeriod)
	vm.effective = RootContextID
	_, err := vm.call("proxy_on_tick", vm.fn.tick, RootContextID)
	vm.applyCloses()
	return true, err
}

// TickPeriod returns the period the module asked for (0: none).
func (vm *VM) TickPeriod() time.Duration {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.tickPeriod
}

// applyCloses signals streams whose close was requested in the callback
// that just returned ("after the current callback returns").
func (vm *VM) applyCloses() {
	for i, s := range vm.pending {
		if !s.closeSignalled {
			s.closeSignalled = true
			close(s.closed)
		}
		vm.pending[i] = nil
	}
	vm.pending = vm.pending[:0]
}
