package abi

import "github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

// DoneHandler is implemented by an HTTP context that wants proxy_on_done
// (the SDK has no such callback for HTTP contexts). Stream end runs
// on_log → on_done → on_delete, but on_log may be skipped or come late.
type DoneHandler interface {
	OnDone()
}

// DeleteHandler is implemented by a root or HTTP context that wants
// proxy_on_delete, the last callback before its id is forgotten.
type DeleteHandler interface {
	OnDelete()
}

// HTTPCallResponseHandler is implemented by a root context that wants
// proxy_on_http_call_response (stoa-guard makes no HTTP calls; without it
// the callback is ignored).
type HTTPCallResponseHandler interface {
	OnHttpCallResponse(calloutID uint32, numHeaders, bodySize, numTrailers int)
}

// Dispatcher maps context ids to the plugin's contexts and routes every
// proxy-wasm callback to them, the way the SDK does:
//
//   - proxy_on_context_create(id, 0) → VMContext.NewPluginContext(id);
//     (id, parent) → parent's NewHttpContext(id). A nil context is not
//     registered (its callbacks are then ignored).
//   - proxy_on_log → HttpContext.OnHttpStreamDone.
//   - proxy_on_done → root: PluginContext.OnPluginDone; HTTP: DoneHandler.
//   - proxy_on_delete → DeleteHandler, then the id is forgotten.
//
// Callbacks for unknown ids (never created, or already deleted: Envoy can
// call on_log after on_delete) are ignored: HTTP callbacks return
// ActionContinue, on_done returns true, on_configure returns false. The
// Dispatcher itself never panics; a panic in a context's method is not
// recovered (it kills the VM, as in the SDK).
//
// It also owns the allocator Arena and resets it on entry of every
// top-level callback (not on re-entrant ones), so memory the host wrote
// during a callback stays valid until that callback returns.
//
// The zero value is usable after SetVMContext. Not safe for concurrent use
// (a Wasm VM is single-threaded).
type Dispatcher struct {
	vm    types.VMContext
	roots map[uint32]types.PluginContext
	https map[uint32]types.HttpContext
	arena Arena
	depth int
}

// defaultDispatcher is the module's one dispatcher, fed by the wasmexports.
var defaultDispatcher Dispatcher

// SetVMContext registers the plugin with the module's dispatcher and
// preallocates the allocator arena. Call it from init() (a c-shared module
// never runs main). It makes no host call.
func SetVMContext(vm types.VMContext) { defaultDispatcher.SetVMContext(vm) }

// SetVMContext registers vm and preallocates the arena (if not done yet).
func (d *Dispatcher) SetVMContext(vm types.VMContext) {
	d.vm = vm
	if d.arena.buf == nil {
		d.arena.Init(0, 0)
	}
}

// Arena returns the dispatcher's allocator arena.
func (d *Dispatcher) Arena() *Arena { return &d.arena }

// Alloc serves proxy_on_memory_allocate from the arena (see Arena.Alloc).
// It never calls the host and, in the common case, allocates no Go memory.
func (d *Dispatcher) Alloc(size uint32) []byte { return d.arena.Alloc(size) }

// Contexts reports how many root and HTTP contexts are registered.
func (d *Dispatcher) Contexts() (roots, https int) { return len(d.roots), len(d.https) }

// enter marks the start of a callback; the outermost one resets the arena.
func (d *Dispatcher) enter() {
	if d.depth == 0 {
		d.arena.Reset()
	}
	d.depth++
}

func (d *Dispatcher) exit() { d.depth-- }

// OnContextCreate handles proxy_on_context_create.
func (d *Dispatcher) OnContextCreate(id, parent uint32) {
	d.enter()
	defer d.exit()
	if parent == 0 {
		if d.vm == nil {
			return
		}
		if root := d.vm.NewPluginContext(id); root != nil {
			if d.roots == nil {
				d.roots = make(map[uint32]types.PluginContext)
			}
			d.roots[id] = root
		}
		return
	}
	root, ok := d.roots[parent]
	if !ok {
		return
	}
	if h := root.NewHttpContext(id); h != nil {
		if d.https == nil {
			d.https = make(map[uint32]types.HttpContext)
		}
		d.https[id] = h
	}
}

// OnVMStart handles proxy_on_vm_start; false (VM start fails) when no
// VMContext was registered.
func (d *Dispatcher) OnVMStart(root uint32, vmConfigSize int) bool {
	d.enter()
	defer d.exit()
	if d.vm == nil {
		return false
	}
	return bool(d.vm.OnVMStart(vmConfigSize))
}

// OnConfigure handles proxy_on_configure; false for an unknown root.
func (d *Dispatcher) OnConfigure(root uint32, pluginConfigSize int) bool {
	d.enter()
	defer d.exit()
	r, ok := d.roots[root]
	if !ok {
		return false
	}
	return bool(r.OnPluginStart(pluginConfigSize))
}

// OnTick handles proxy_on_tick.
func (d *Dispatcher) OnTick(root uint32) {
	d.enter()
	defer d.exit()
	if r, ok := d.roots[root]; ok {
		r.OnTick()
	}
}

// OnQueueReady handles proxy_on_queue_ready.
func (d *Dispatcher) OnQueueReady(root, queueID uint32) {
	d.enter()
	defer d.exit()
	if r, ok := d.roots[root]; ok {
		r.OnQueueReady(queueID)
	}
}

// OnHttpCallResponse handles proxy_on_http_call_response (see
// HTTPCallResponseHandler).
func (d *Dispatcher) OnHttpCallResponse(root, calloutID uint32, numHeaders, bodySize, numTrailers int) {
	d.enter()
	defer d.exit()
	if h, ok := d.roots[root].(HTTPCallResponseHandler); ok {
		h.OnHttpCallResponse(calloutID, numHeaders, bodySize, numTrailers)
	}
}

// OnRequestHeaders handles proxy_on_request_headers.
func (d *Dispatcher) OnRequestHeaders(id uint32, numHeaders int, endOfStream bool) types.Action {
	d.enter()
	defer d.exit()
	if h, ok := d.https[id]; ok {
		return h.OnHttpRequestHeaders(numHeaders, endOfStream)
	}
	return types.ActionContinue
}

// OnRequestBody handles proxy_on_request_body.
func (d *Dispatcher) OnRequestBody(id uint32, bodySize int, endOfStream bool) types.Action {
	d.enter()
	defer d.exit()
	if h, ok := d.https[id]; ok {
		return h.OnHttpRequestBody(bodySize, endOfStream)
	}
	return types.ActionContinue
}

// OnRequestTrailers handles proxy_on_request_trailers.
func (d *Dispatcher) OnRequestTrailers(id uint32, numTrailers int) types.Action {
	d.enter()
	defer d.exit()
	if h, ok := d.https[id]; ok {
		return h.OnHttpRequestTrailers(numTrailers)
	}
	return types.ActionContinue
}

// OnResponseHeaders handles proxy_on_response_headers.
func (d *Dispatcher) OnResponseHeaders(id uint32, numHeaders int, endOfStream bool) types.Action {
	d.enter()
	defer d.exit()
	if h, ok := d.https[id]; ok {
		return h.OnHttpResponseHeaders(numHeaders, endOfStream)
	}
	return types.ActionContinue
}

// OnResponseBody handles proxy_on_response_body.
func (d *Dispatcher) OnResponseBody(id uint32, bodySize int, endOfStream bool) types.Action {
	d.enter()
	defer d.exit()
	if h, ok := d.https[id]; ok {
		return h.OnHttpResponseBody(bodySize, endOfStream)
	}
	return types.ActionContinue
}

// OnResponseTrailers handles proxy_on_response_trailers.
func (d *Dispatcher) OnResponseTrailers(id uint32, numTrailers int) types.Action {
	d.enter()
	defer d.exit()
	if h, ok := d.https[id]; ok {
		return h.OnHttpResponseTrailers(numTrailers)
	}
	return types.ActionContinue
}

// OnLog handles proxy_on_log: HttpContext.OnHttpStreamDone. Ignored for
// roots and unknown ids (on_log may come after on_delete).
func (d *Dispatcher) OnLog(id uint32) {
	d.enter()
	defer d.exit()
	if h, ok := d.https[id]; ok {
		h.OnHttpStreamDone()
	}
}

// OnDone handles proxy_on_done. A root answers with OnPluginDone; an HTTP
// context gets DoneHandler.OnDone and the result is true, as for unknown ids.
func (d *Dispatcher) OnDone(id uint32) bool {
	d.enter()
	defer d.exit()
	if h, ok := d.https[id]; ok {
		if dh, ok := h.(DoneHandler); ok {
			dh.OnDone()
		}
		return true
	}
	if r, ok := d.roots[id]; ok {
		return r.OnPluginDone()
	}
	return true
}

// OnDelete handles proxy_on_delete: DeleteHandler.OnDelete, then the id is
// forgotten. A second delete, or one for an unknown id, does nothing.
func (d *Dispatcher) OnDelete(id uint32) {
	d.enter()
	defer d.exit()
	if h, ok := d.https[id]; ok {
		if dh, ok := h.(DeleteHandler); ok {
			dh.OnDelete()
		}
		delete(d.https, id)
		return
	}
	if r, ok := d.roots[id]; ok {
		if dh, ok := r.(DeleteHandler); ok {
			dh.OnDelete()
		}
		delete(d.roots, id)
	}
}
