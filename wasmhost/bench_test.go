package wasmhost_test

import (
	"testing"

	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// The cost of the host's two primitives, per operation:
//
//	go test -run '^$' -bench CallCost -benchmem ./wasmhost
//
//   - native: a non-inlined Go function call (the baseline for a ratio);
//   - hostcall/<name>: one guest→host call. The guest's
//     proxy_on_request_body loops `body size` times over the call, and one
//     RequestBody carries up to 65536 iterations, so the figure is per call
//     (the callback around it is amortised away);
//   - callback/...: one host→guest callback that returns at once, through
//     the Stream API (locking, context bookkeeping, wazero's call).

//go:noinline
func nativeNop(x uint32) uint32 { return x + 1 }

var sink uint32

// loopGuest: proxy_on_request_body(ctx, n, eos) runs body n times;
// proxy_on_request_headers and proxy_on_request_trailers return 0 at once.
func loopGuest(c hostCall, args ...[]byte) []byte {
	m := newMod()
	f := m.Import(c.mod, c.name, c.params, c.results)
	m.proxyBasics()
	m.strings().put("hello")
	body := ops(ops(args...), call(f))
	if len(c.results) > 0 {
		body = append(body, drop...)
	}
	m.Func("proxy_on_request_body", p(3), p(1), nil,
		block, loop,
		lget(1), i32eqz, brIf(1),
		body,
		lget(1), i32c(1), i32sub, lset(1),
		br(0),
		end, end,
		i32c(0))
	m.Func("proxy_on_request_headers", p(3), p(1), nil, i32c(0))
	m.Func("proxy_on_request_trailers", p(2), p(1), nil, i32c(0))
	return m.Bytes()
}

func BenchmarkCallCost(b *testing.B) {
	b.Run("native", func(b *testing.B) {
		b.ReportAllocs()
		x := uint32(0)
		for b.Loop() {
			x = nativeNop(x)
		}
		sink = x
	})

	for _, c := range []struct {
		call hostCall
		args [][]byte
	}{
		{hostCall{"env", "proxy_get_log_level", p(1), p(1)}, [][]byte{i32c(0x300)}},
		{hostCall{"env", "proxy_get_current_time_nanoseconds", p(1), p(1)}, [][]byte{i32c(0x300)}},
		{callClock, [][]byte{i32c(1), i64c(0), i32c(0x300)}},
		// "hello" is the first string of the guest's data (0x1000).
		{callLog, [][]byte{i32c(int32(wasmhost.LogTrace)), i32c(0x1000), i32c(5)}},
	} {
		b.Run("hostcall/"+c.call.name, func(b *testing.B) {
			h := newHost(b, loopGuest(c.call, c.args...), wasmhost.Config{Clock: wasmhost.NewClock(start), MaxLogs: 1})
			vm := newVM(b, h)
			s, err := vm.NewStream(nil)
			if err != nil {
				b.Fatal(err)
			}
			chunk := make([]byte, 1<<16)
			before := vm.Stats().HostCalls
			b.ReportAllocs()
			b.ResetTimer()
			for n := b.N; n > 0; {
				k := min(n, len(chunk))
				if _, err := s.RequestBody(chunk[:k], false); err != nil {
					b.Fatal(err)
				}
				n -= k
			}
			b.StopTimer()
			if got := vm.Stats().HostCalls - before; got != uint64(b.N) {
				b.Fatalf("%d host calls for b.N = %d", got, b.N)
			}
		})
	}

	h := newHost(b, loopGuest(hostCall{"env", "proxy_get_log_level", p(1), p(1)}, i32c(0x300)), wasmhost.Config{})
	vm := newVM(b, h)
	s, err := vm.NewStream(nil)
	if err != nil {
		b.Fatal(err)
	}
	headers := []wasmhost.Header{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/mcp"},
		{Name: ":authority", Value: "mcp.example"}, {Name: "accept", Value: "text/event-stream"}}
	b.Run("callback/request_headers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.RequestHeaders(headers, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("callback/request_trailers_empty", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.RequestTrailers(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
