package wasmhost_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// lifecycleGuest logs the name of every callback; on_log also logs the
// stream's source.address property and :path header as it sees them (empty
// when the host refuses), as an access-logging filter would.
func lifecycleGuest() []byte {
	m := newMod()
	log := m.Import("env", "proxy_log", p(3), p(1))
	prop := m.Import("env", "proxy_get_property", p(4), p(1))
	hdr := m.Import("env", "proxy_get_header_map_value", p(5), p(1))
	m.proxyBasics()
	str := m.strings()
	logStr := func(s string) []byte {
		a, n := str.put(s)
		return ops(i32c(int32(wasmhost.LogInfo)), i32c(a), i32c(n), call(log), drop)
	}
	logAt := func(ptrPtr uint32) []byte {
		return ops(i32c(int32(wasmhost.LogInfo)), load(ptrPtr), load(ptrPtr+4), call(log), drop)
	}
	pa, pn := str.put("source\x00address")
	ha, hn := str.put(":path")
	m.Func("proxy_on_context_create", p(2), nil, nil, logStr("create"))
	m.Func("proxy_on_request_headers", p(3), p(1), nil, logStr("request_headers"), i32c(0))
	m.Func("proxy_on_log", p(1), nil, nil,
		logStr("log"),
		store(0x300, i32c(0)), store(0x304, i32c(0)), store(0x308, i32c(0)), store(0x30c, i32c(0)),
		i32c(pa), i32c(pn), i32c(0x300), i32c(0x304), call(prop), drop, logAt(0x300),
		i32c(0), i32c(ha), i32c(hn), i32c(0x308), i32c(0x30c), call(hdr), drop, logAt(0x308))
	m.Func("proxy_on_done", p(1), p(1), nil, logStr("done"), i32c(1))
	m.Func("proxy_on_delete", p(1), nil, nil, logStr("delete"))
	return m.Bytes()
}

var peerProps = wasmhost.Properties{wasmhost.Path("source", "address"): "10.0.0.1:5000"}

func TestStreamEndOrders(t *testing.T) {
	wasm := lifecycleGuest()
	logged := []string{"log", "10.0.0.1:5000", "/x"}
	for _, c := range []struct {
		name string
		end  func(*wasmhost.Stream) error
		want []string
	}{
		{"End", (*wasmhost.Stream).End, slices.Concat(logged, []string{"done", "delete"})},
		{"Reset", (*wasmhost.Stream).Reset, slices.Concat(logged, []string{"done", "delete"})},
		{"EndSkipLog", func(s *wasmhost.Stream) error { return s.EndWith(wasmhost.EndSkipLog) },
			[]string{"done", "delete"}},
		{"EndLogAfterDelete", func(s *wasmhost.Stream) error { return s.EndWith(wasmhost.EndLogAfterDelete) },
			slices.Concat([]string{"done", "delete"}, logged)},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHost(t, wasm, wasmhost.Config{})
			vm := newVM(t, h)
			s, err := vm.NewStream(peerProps)
			must(t, err)
			_, err = s.RequestHeaders([]wasmhost.Header{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/x"}}, true)
			must(t, err)
			if vm.LiveStreams() != 1 {
				t.Fatalf("LiveStreams = %d", vm.LiveStreams())
			}
			h.ClearLogs()
			must(t, c.end(s))
			if got := h.LogMessages(wasmhost.LogInfo); !slices.Equal(got, c.want) {
				t.Fatalf("callbacks %q, want %q", got, c.want)
			}
			for _, e := range h.Logs() {
				if e.Context != s.ID() {
					t.Fatalf("%q logged in context %d, want %d", e.Message, e.Context, s.ID())
				}
			}
			// Idempotent; the stream is gone.
			callbacks := vm.Stats().Callbacks
			must(t, s.End())
			if vm.Stats().Callbacks != callbacks || !s.Ended() || vm.LiveStreams() != 0 {
				t.Fatalf("second End: callbacks %d→%d, ended %v, live %d", callbacks, vm.Stats().Callbacks, s.Ended(), vm.LiveStreams())
			}
			if _, err := s.RequestHeaders(nil, true); !errors.Is(err, wasmhost.ErrStreamDone) {
				t.Fatalf("event after End: %v", err)
			}
		})
	}
}

func TestStreamAfterVMFailGetsNoCallbacks(t *testing.T) {
	h := newHost(t, lifecycleGuest(), wasmhost.Config{})
	vm := newVM(t, h)
	s, err := vm.NewStream(peerProps)
	must(t, err)
	_, err = s.RequestHeaders([]wasmhost.Header{{Name: ":path", Value: "/x"}}, false)
	must(t, err)
	h.ClearLogs()
	callbacks := vm.Stats().Callbacks

	vm.Fail("injected fault")
	trapErr(t, vm.Err())
	if _, err := s.RequestBody([]byte("x"), true); !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("RequestBody after Fail: %v", err)
	}
	if _, err := s.ResponseHeaders([]wasmhost.Header{{Name: ":status", Value: "200"}}, true); !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("ResponseHeaders after Fail: %v", err)
	}
	if _, err := vm.NewStream(nil); !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("NewStream after Fail: %v", err)
	}
	if _, err := vm.RunTimers(); !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("RunTimers after Fail: %v", err)
	}
	if err := s.End(); !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("End after Fail: %v", err)
	}
	if vm.Stats().Callbacks != callbacks {
		t.Fatalf("%d callbacks reached a failed VM", vm.Stats().Callbacks-callbacks)
	}
	if got := h.LogMessages(wasmhost.LogInfo); len(got) != 0 {
		t.Fatalf("failed VM logged %q", got)
	}
	if crit := h.LogMessages(wasmhost.LogCritical); !slices.Equal(crit, []string{"Function: VM.Fail failed: injected fault"}) {
		t.Fatalf("critical %q", crit)
	}
	if vm.LiveStreams() != 0 {
		t.Fatalf("LiveStreams = %d", vm.LiveStreams())
	}
}

// A trap mid-stream fails the VM; the stream then ends with no callback.
func TestStreamTrapMidStream(t *testing.T) {
	m := newMod()
	m.proxyBasics()
	m.Func("proxy_on_request_headers", p(3), p(1), nil, i32c(0))
	m.Func("proxy_on_request_body", p(3), p(1), nil, unreachable)
	m.Func("proxy_on_done", p(1), p(1), nil, unreachable)
	h := newHost(t, m.Bytes(), wasmhost.Config{})
	vm := newVM(t, h)
	s, err := vm.NewStream(nil)
	must(t, err)
	_, err = s.RequestHeaders(nil, false)
	must(t, err)
	_, err = s.RequestBody([]byte("x"), true)
	if te := trapErr(t, err); te.Callback != "proxy_on_request_body" {
		t.Fatalf("trap %+v", te)
	}
	n := vm.Stats().Callbacks
	if err := s.End(); !errors.Is(err, wasmhost.ErrVMFailed) || vm.Stats().Callbacks != n {
		t.Fatalf("End after the trap: %v, %d callbacks", err, vm.Stats().Callbacks-n)
	}
}
