package abi

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

type recorder struct{ events []string }

func (r *recorder) add(e string) { r.events = append(r.events, e) }

type fakeVM struct {
	rec      *recorder
	nilRoots bool
	start    bool
}

func (v *fakeVM) OnVMStart(int) types.OnVMStartStatus {
	v.rec.add("vm_start")
	return types.OnVMStartStatus(v.start)
}

func (v *fakeVM) NewPluginContext(id uint32) types.PluginContext {
	v.rec.add("new_root")
	if v.nilRoots {
		return nil
	}
	return &fakeRoot{rec: v.rec, id: id}
}

type fakeRoot struct {
	types.DefaultPluginContext
	rec      *recorder
	id       uint32
	nilHTTP  bool
	d        *Dispatcher
	onStream func(s *fakeStream)
}

func (r *fakeRoot) OnPluginStart(n int) types.OnPluginStartStatus {
	r.rec.add("configure")
	return n != 13
}
func (r *fakeRoot) OnPluginDone() bool  { r.rec.add("root_done"); return false }
func (r *fakeRoot) OnTick()             { r.rec.add("tick") }
func (r *fakeRoot) OnQueueReady(uint32) { r.rec.add("queue") }
func (r *fakeRoot) OnDelete()           { r.rec.add("root_delete") }
func (r *fakeRoot) OnHttpCallResponse(uint32, int, int, int) {
	r.rec.add("call_response")
}

func (r *fakeRoot) NewHttpContext(id uint32) types.HttpContext {
	r.rec.add("new_http")
	if r.nilHTTP {
		return nil
	}
	return &fakeStream{rec: r.rec, root: r}
}

type fakeStream struct {
	rec  *recorder
	root *fakeRoot
}

func (s *fakeStream) OnHttpRequestHeaders(int, bool) types.Action {
	s.rec.add("req_headers")
	if s.root.onStream != nil {
		s.root.onStream(s)
	}
	return types.ActionPause
}
func (s *fakeStream) OnHttpRequestBody(int, bool) types.Action {
	s.rec.add("req_body")
	return types.ActionPause
}
func (s *fakeStream) OnHttpRequestTrailers(int) types.Action {
	s.rec.add("req_trailers")
	return types.ActionPause
}
func (s *fakeStream) OnHttpResponseHeaders(int, bool) types.Action {
	s.rec.add("resp_headers")
	return types.ActionPause
}
func (s *fakeStream) OnHttpResponseBody(int, bool) types.Action {
	s.rec.add("resp_body")
	return types.ActionPause
}
func (s *fakeStream) OnHttpResponseTrailers(int) types.Action {
	s.rec.add("resp_trailers")
	return types.ActionPause
}
func (s *fakeStream) OnHttpStreamDone() { s.rec.add("stream_done") }
func (s *fakeStream) OnDone()           { s.rec.add("done") }
func (s *fakeStream) OnDelete()         { s.rec.add("delete") }

func newTestDispatcher() (*Dispatcher, *recorder) {
	rec := &recorder{}
	d := &Dispatcher{}
	d.SetVMContext(&fakeVM{rec: rec, start: true})
	return d, rec
}

func TestDispatchLifecycle(t *testing.T) {
	d, rec := newTestDispatcher()
	d.OnContextCreate(1, 0)
	require.True(t, d.OnVMStart(1, 0))
	require.True(t, d.OnConfigure(1, 10))
	require.False(t, d.OnConfigure(1, 13), "the root's refusal is passed on")
	d.OnContextCreate(2, 1)
	require.Equal(t, types.ActionPause, d.OnRequestHeaders(2, 3, false))
	require.Equal(t, types.ActionPause, d.OnRequestBody(2, 10, true))
	require.Equal(t, types.ActionPause, d.OnRequestTrailers(2, 1))
	require.Equal(t, types.ActionPause, d.OnResponseHeaders(2, 3, false))
	require.Equal(t, types.ActionPause, d.OnResponseBody(2, 10, true))
	require.Equal(t, types.ActionPause, d.OnResponseTrailers(2, 1))
	d.OnTick(1)
	d.OnQueueReady(1, 7)
	d.OnHttpCallResponse(1, 9, 0, 0, 0)
	d.OnLog(2)
	require.True(t, d.OnDone(2))
	d.OnDelete(2)
	require.False(t, d.OnDone(1), "the root's OnPluginDone result is passed on")
	d.OnDelete(1)
	require.Equal(t, []string{
		"new_root", "vm_start", "configure", "configure", "new_http",
		"req_headers", "req_body", "req_trailers", "resp_headers", "resp_body", "resp_trailers",
		"tick", "queue", "call_response", "stream_done", "done", "delete", "root_done", "root_delete",
	}, rec.events)
	roots, https := d.Contexts()
	require.Zero(t, roots)
	require.Zero(t, https)
}

// TestDispatchUnknownContextIDs pins that a callback for an id never
// created never panics and gets the harmless default.
func TestDispatchUnknownContextIDs(t *testing.T) {
	d, rec := newTestDispatcher()
	require.NotPanics(t, func() {
		require.False(t, d.OnConfigure(99, 0))
		d.OnTick(99)
		d.OnQueueReady(99, 1)
		d.OnHttpCallResponse(99, 1, 0, 0, 0)
		require.Equal(t, types.ActionContinue, d.OnRequestHeaders(99, 1, false))
		require.Equal(t, types.ActionContinue, d.OnRequestBody(99, 1, false))
		require.Equal(t, types.ActionContinue, d.OnRequestTrailers(99, 1))
		require.Equal(t, types.ActionContinue, d.OnResponseHeaders(99, 1, false))
		require.Equal(t, types.ActionContinue, d.OnResponseBody(99, 1, false))
		require.Equal(t, types.ActionContinue, d.OnResponseTrailers(99, 1))
		d.OnLog(99)
		require.True(t, d.OnDone(99))
		d.OnDelete(99)
		d.OnContextCreate(100, 99) // unknown parent
	})
	require.Empty(t, rec.events)
	_, https := d.Contexts()
	require.Zero(t, https)
}

// TestDispatchLateOnLogAfterDelete pins Envoy's deferred access logging
// (HTTP/3): on_log can come after on_delete and must be ignored.
func TestDispatchLateOnLogAfterDelete(t *testing.T) {
	d, rec := newTestDispatcher()
	d.OnContextCreate(1, 0)
	d.OnContextCreate(2, 1)
	require.True(t, d.OnDone(2))
	d.OnDelete(2)
	require.NotPanics(t, func() { d.OnLog(2) })
	require.Equal(t, []string{"new_root", "new_http", "done", "delete"}, rec.events)
}

func TestDispatchDoubleDelete(t *testing.T) {
	d, rec := newTestDispatcher()
	d.OnContextCreate(1, 0)
	d.OnContextCreate(2, 1)
	d.OnDelete(2)
	require.NotPanics(t, func() { d.OnDelete(2) })
	d.OnDelete(1)
	require.NotPanics(t, func() { d.OnDelete(1) })
	require.Equal(t, []string{"new_root", "new_http", "delete", "root_delete"}, rec.events)
}

func TestDispatchOnLogSkipped(t *testing.T) {
	d, rec := newTestDispatcher()
	d.OnContextCreate(1, 0)
	d.OnContextCreate(2, 1)
	require.True(t, d.OnDone(2))
	d.OnDelete(2)
	require.Equal(t, []string{"new_root", "new_http", "done", "delete"}, rec.events)
}

func TestDispatchNilContextsNotRegistered(t *testing.T) {
	rec := &recorder{}
	d := &Dispatcher{}
	d.SetVMContext(&fakeVM{rec: rec, nilRoots: true})
	d.OnContextCreate(1, 0)
	roots, _ := d.Contexts()
	require.Zero(t, roots)
	require.False(t, d.OnConfigure(1, 0))

	d2, _ := newTestDispatcher()
	d2.OnContextCreate(1, 0)
	d2.roots[1].(*fakeRoot).nilHTTP = true
	d2.OnContextCreate(2, 1)
	_, https := d2.Contexts()
	require.Zero(t, https)
	require.Equal(t, types.ActionContinue, d2.OnRequestHeaders(2, 0, false))
}

func TestDispatchWithoutVMContext(t *testing.T) {
	var d Dispatcher
	require.NotPanics(t, func() {
		require.False(t, d.OnVMStart(1, 0), "no plugin registered: the VM must not start")
		d.OnContextCreate(1, 0)
		require.Equal(t, types.ActionContinue, d.OnRequestHeaders(2, 0, false))
		require.NotNil(t, d.Alloc(16))
	})
}

// TestDispatchArenaResetOnlyAtTopLevel pins that memory the host wrote
// during a callback stays valid through a re-entrant callback and is
// recycled at the next top-level one.
func TestDispatchArenaResetOnlyAtTopLevel(t *testing.T) {
	d, _ := newTestDispatcher()
	d.OnContextCreate(1, 0)
	d.OnContextCreate(2, 1)
	d.OnContextCreate(3, 1)
	var blk []byte
	d.roots[1].(*fakeRoot).onStream = func(*fakeStream) {
		blk = d.Alloc(32) // as if the host had returned data
		copy(blk, "host data")
		d.OnLog(3) // re-entrant callback
		_, ok := d.arena.Lookup(addr(blk), 32)
		require.True(t, ok, "a nested callback must not reset the arena")
	}
	d.OnRequestHeaders(2, 0, false)
	d.roots[1].(*fakeRoot).onStream = nil
	_, ok := d.arena.Lookup(addr(blk), 32)
	require.True(t, ok, "valid until the next callback")
	d.OnResponseHeaders(2, 0, false)
	_, ok = d.arena.Lookup(addr(blk), 32)
	require.False(t, ok, "recycled by the next top-level callback")
}

func TestDispatchZeroAllocs(t *testing.T) {
	d := &Dispatcher{}
	d.SetVMContext(&quietVM{})
	d.OnContextCreate(1, 0)
	d.OnContextCreate(2, 1)
	allocs := testing.AllocsPerRun(1000, func() {
		d.Alloc(256)
		d.OnRequestHeaders(2, 5, false)
		d.OnResponseBody(2, 100, false)
		d.OnLog(77)
	})
	require.Zero(t, allocs)
}

type quietVM struct{ types.DefaultVMContext }

func (*quietVM) NewPluginContext(uint32) types.PluginContext { return &quietRoot{} }

type quietRoot struct{ types.DefaultPluginContext }

func (*quietRoot) NewHttpContext(uint32) types.HttpContext { return &types.DefaultHttpContext{} }
