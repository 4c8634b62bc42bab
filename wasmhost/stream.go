package wasmhost

import "github.com/tetratelabs/wazero/api"

// Stream is one HTTP stream (one HTTP context) in a VM, driven by the caller
// the way Envoy's connection manager drives a filter: request headers, body,
// trailers, then response headers, body chunks, trailers, then End (on_log,
// on_done, on_delete). Every method takes the VM's lock.
//
// Header slices passed in are copied; the filter's mutations are read back
// with RequestHeaderList / ResponseHeaderList.
type Stream struct {
	vm *VM
	id uint32

	props Properties

	reqHeaders, reqTrailers   []Header
	respHeaders, respTrailers []Header
	haveReq, haveResp         bool

	local   *LocalResponse
	stopped bool // a local response was sent

	closeRequested bool
	closeSignalled bool
	closed         chan struct{}
	closedTypes    []StreamType
	continues      int

	ended bool
}

// LocalResponse is what the filter sent with proxy_send_local_response.
type LocalResponse struct {
	Status     int
	Details    string
	Body       []byte
	Headers    []Header
	GRPCStatus int32 // -1 when none
}

// EndMode chooses how a stream ends (fault injection).
type EndMode int

// End modes.
const (
	// EndNormal: on_log, on_done, on_delete — every end in Envoy, resets included.
	EndNormal EndMode = iota
	// EndSkipLog: on_done, on_delete, never on_log.
	EndSkipLog
	// EndLogAfterDelete: on_done, on_delete, then on_log (HTTP/3 deferred access log).
	EndLogAfterDelete
)

// NewStream creates an HTTP context (proxy_on_context_create(id, root)).
// props are the stream's properties (source.address, request.*, metadata),
// looked up before the host's.
func (vm *VM) NewStream(props Properties) (*Stream, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if err := vm.usable(); err != nil {
		return nil, err
	}
	s := &Stream{vm: vm, id: vm.nextID, props: props, closed: make(chan struct{})}
	vm.nextID++
	if vm.nextID == 0 {
		vm.nextID = RootContextID + 1
	}
	vm.streams[s.id] = s
	if vm.fn.ctxCreate != nil {
		vm.effective = s.id
		if _, err := vm.call("proxy_on_context_create", vm.fn.ctxCreate, uint64(s.id), RootContextID); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ID is the stream's context id.
func (s *Stream) ID() uint32 { return s.id }

// VM returns the VM the stream lives in.
func (s *Stream) VM() *VM { return s.vm }

func (s *Stream) run(name string, which int, a1, a2 uint64) (Action, error) {
	vm := s.vm
	if s.ended {
		return 0, ErrStreamDone
	}
	if err := vm.usable(); err != nil {
		return 0, err
	}
	fn := vm.streamFn(which)
	if fn == nil {
		return ActionContinue, nil
	}
	vm.effective = s.id
	r, err := vm.call(name, fn, uint64(s.id), a1, a2)
	vm.applyCloses()
	if err != nil {
		return 0, err
	}
	a := Action(uint32(r))
	if s.stopped {
		a = ActionStopAllIterationAndWatermark
	}
	return a, nil
}

const (
	fnReqHeaders = iota
	fnReqBody
	fnReqTrailers
	fnRespHeaders
	fnRespBody
	fnRespTrailers
)

func (vm *VM) streamFn(which int) api.Function {
	switch which {
	case fnReqHeaders:
		return vm.fn.reqHeaders
	case fnReqBody:
		return vm.fn.reqBody
	case fnReqTrailers:
		return vm.fn.reqTrailers
	case fnRespHeaders:
		return vm.fn.respHeaders
	case fnRespBody:
		return vm.fn.respBody
	case fnRespTrailers:
		return vm.fn.respTrailers
	}
	return nil
}

func boolArg(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// RequestHeaders runs proxy_on_request_headers with a copy of h.
func (s *Stream) RequestHeaders(h []Header, endOfStream bool) (Action, error) {
	return s.headers(fnReqHeaders, "proxy_on_request_headers", &s.reqHeaders, &s.haveReq, h, boolArg(endOfStream))
}

// headers stores a copy of h in *dst (marking the map present) and runs the
// header or trailer callback which with len(h) and a2.
func (s *Stream) headers(which int, name string, dst *[]Header, have *bool, h []Header, a2 uint64) (Action, error) {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	if s.stopped {
		return 0, ErrStreamStopped
	}
	*dst = append((*dst)[:0], h...)
	if have != nil {
		*have = true
	}
	return s.run(name, which, uint64(len(h)), a2)
}

// RequestBody runs proxy_on_request_body with one chunk.
func (s *Stream) RequestBody(chunk []byte, endOfStream bool) (Action, error) {
	return s.body(fnReqBody, bufRequestBody, "proxy_on_request_body", chunk, endOfStream)
}

// ResponseBody runs proxy_on_response_body with one chunk.
func (s *Stream) ResponseBody(chunk []byte, endOfStream bool) (Action, error) {
	return s.body(fnRespBody, bufResponseBody, "proxy_on_response_body", chunk, endOfStream)
}

func (s *Stream) body(which int, typ uint32, name string, chunk []byte, eos bool) (Action, error) {
	vm := s.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if s.stopped {
		return 0, ErrStreamStopped
	}
	vm.buffer, vm.bufType = chunk, typ
	a, err := s.run(name, which, uint64(len(chunk)), boolArg(eos))
	vm.buffer, vm.bufType = nil, ^uint32(0)
	return a, err
}

// RequestTrailers runs proxy_on_request_trailers.
func (s *Stream) RequestTrailers(h []Header) (Action, error) {
	return s.headers(fnReqTrailers, "proxy_on_request_trailers", &s.reqTrailers, nil, h, 0)
}

// ResponseHeaders runs proxy_on_response_headers (h starts with ":status").
func (s *Stream) ResponseHeaders(h []Header, endOfStream bool) (Action, error) {
	return s.headers(fnRespHeaders, "proxy_on_response_headers", &s.respHeaders, &s.haveResp, h, boolArg(endOfStream))
}

// ResponseTrailers runs proxy_on_response_trailers.
func (s *Stream) ResponseTrailers(h []Header) (Action, error) {
	return s.headers(fnRespTrailers, "proxy_on_response_trailers", &s.respTrailers, nil, h, 0)
}

// End ends the stream normally: on_log, on_done, on_delete. Idempotent;
// after a VM failure nothing is called (as in Envoy).
func (s *Stream) End() error { return s.EndWith(EndNormal) }

// Reset is End for a reset stream (client disconnect, upstream reset,
// timeout, close_stream): Envoy runs the same callbacks.
func (s *Stream) Reset() error { return s.EndWith(EndNormal) }

// EndWith ends the stream with a chosen callback order (fault injection).
func (s *Stream) EndWith(mode EndMode) error {
	vm := s.vm
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if s.ended {
		return nil
	}
	s.ended = true
	// The stream stays known during its end callbacks: Envoy's on_log (and
	// on_done, on_delete) still read its properties and headers.
	defer delete(vm.streams, s.id)
	if err := vm.usable(); err != nil {
		return err
	}
	vm.effective = s.id
	id := uint64(s.id)
	if mode == EndNormal && vm.fn.onLog != nil {
		if _, err := vm.call("proxy_on_log", vm.fn.onLog, id); err != nil {
			return err
		}
	}
	if vm.fn.onDone != nil {
		if _, err := vm.call("proxy_on_done", vm.fn.onDone, id); err != nil {
			return err
		}
	}
	if vm.fn.onDelete != nil {
		if _, err := vm.call("proxy_on_delete", vm.fn.onDelete, id); err != nil {
			return err
		}
	}
	if mode == EndLogAfterDelete && vm.fn.onLog != nil {
		if _, err := vm.call("proxy_on_log", vm.fn.onLog, id); err != nil {
			return err
		}
	}
	vm.applyCloses()
	return nil
}

// Ended reports whether End (or EndWith/Reset) ran.
func (s *Stream) Ended() bool {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return s.ended
}

// LocalResponse returns the local response the filter sent, or nil.
func (s *Stream) LocalResponse() *LocalResponse {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return s.local
}

// RequestHeaderList returns the request headers as the filter left them.
func (s *Stream) RequestHeaderList() []Header {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return append([]Header(nil), s.reqHeaders...)
}

// ResponseHeaderList returns the response headers as the filter left them.
func (s *Stream) ResponseHeaderList() []Header {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return append([]Header(nil), s.respHeaders...)
}

// Closed is closed once the filter called proxy_close_stream for this stream
// (signalled after the callback that asked for it returns). The caller then
// resets the stream: cut the connection and call Reset.
func (s *Stream) Closed() <-chan struct{} { return s.closed }

// CloseRequested reports whether the filter asked to close the stream.
func (s *Stream) CloseRequested() bool {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return s.closeRequested
}

// Continues counts proxy_continue_stream calls for this stream.
func (s *Stream) Continues() int {
	s.vm.mu.Lock()
	defer s.vm.mu.Unlock()
	return s.continues
}

// HeaderValue returns the first value of name in hs (names are compared as
// given: proxy-wasm header names are lower case).
func HeaderValue(hs []Header, name string) (string, bool) {
	for _, h := range hs {
		if h.Name == name {
			return h.Value, true
		}
	}
	return "", false
}
