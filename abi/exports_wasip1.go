//go:build wasip1

package abi

import "unsafe"

// The proxy-wasm 0.2.1 callbacks. Every parameter and result is an i32;
// booleans are returned as 0/1 and end_of_stream is read as "non-zero".
// Each export is one call into the module's Dispatcher.

//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion021() {}

// proxyOnMemoryAllocate serves the host's allocations from the arena. It
// makes no host call and, in the common case, no Go allocation. 0 means
// failure (the request was larger than MaxAllocSize).
//
//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) uint32 {
	b := defaultDispatcher.Alloc(size)
	if b == nil {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(id, parent uint32) { defaultDispatcher.OnContextCreate(id, parent) }

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(root, vmConfigSize uint32) uint32 {
	return b2u(defaultDispatcher.OnVMStart(root, int(vmConfigSize)))
}

//go:wasmexport proxy_on_configure
func proxyOnConfigure(root, pluginConfigSize uint32) uint32 {
	return b2u(defaultDispatcher.OnConfigure(root, int(pluginConfigSize)))
}

//go:wasmexport proxy_on_tick
func proxyOnTick(root uint32) { defaultDispatcher.OnTick(root) }

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(id, numHeaders, endOfStream uint32) uint32 {
	return uint32(defaultDispatcher.OnRequestHeaders(id, int(numHeaders), endOfStream != 0))
}

//go:wasmexport proxy_on_request_body
func proxyOnRequestBody(id, bodySize, endOfStream uint32) uint32 {
	return uint32(defaultDispatcher.OnRequestBody(id, int(bodySize), endOfStream != 0))
}

//go:wasmexport proxy_on_request_trailers
func proxyOnRequestTrailers(id, numTrailers uint32) uint32 {
	return uint32(defaultDispatcher.OnRequestTrailers(id, int(numTrailers)))
}

//go:wasmexport proxy_on_response_headers
func proxyOnResponseHeaders(id, numHeaders, endOfStream uint32) uint32 {
	return uint32(defaultDispatcher.OnResponseHeaders(id, int(numHeaders), endOfStream != 0))
}

//go:wasmexport proxy_on_response_body
func proxyOnResponseBody(id, bodySize, endOfStream uint32) uint32 {
	return uint32(defaultDispatcher.OnResponseBody(id, int(bodySize), endOfStream != 0))
}

//go:wasmexport proxy_on_response_trailers
func proxyOnResponseTrailers(id, numTrailers uint32) uint32 {
	return uint32(defaultDispatcher.OnResponseTrailers(id, int(numTrailers)))
}

//go:wasmexport proxy_on_http_call_response
func proxyOnHttpCallResponse(root, calloutID, numHeaders, bodySize, numTrailers uint32) {
	defaultDispatcher.OnHttpCallResponse(root, calloutID, int(numHeaders), int(bodySize), int(numTrailers))
}

//go:wasmexport proxy_on_queue_ready
func proxyOnQueueReady(root, queueID uint32) { defaultDispatcher.OnQueueReady(root, queueID) }

//go:wasmexport proxy_on_log
func proxyOnLog(id uint32) { defaultDispatcher.OnLog(id) }

//go:wasmexport proxy_on_done
func proxyOnDone(id uint32) uint32 { return b2u(defaultDispatcher.OnDone(id)) }

//go:wasmexport proxy_on_delete
func proxyOnDelete(id uint32) { defaultDispatcher.OnDelete(id) }

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
