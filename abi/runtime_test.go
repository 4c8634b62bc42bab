package abi_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// miniHost is the smallest proxy-wasm host that can drive the test guest:
// one VM, one stream at a time, Envoy's shared-data rules. It exists only
// to prove the exports and imports work end to end; the project's real
// emulator is wasmhost/.
type miniHost struct {
	t       *testing.T
	ctx     context.Context
	mod     api.Module
	config  []byte
	maps    [4][]abi.Header
	shared  map[string]sharedEntry
	casSeq  uint32
	metrics []int64
	names   map[string]uint32

	logs      []string
	local     *localResponse
	tick      uint32
	effective []uint32
	closed    []uint32
	continued []uint32

	inAlloc    bool
	violations []string // host calls made inside proxy_on_memory_allocate
	allocs     int
	wasiCalls  map[string]int
}

type sharedEntry struct {
	value []byte
	cas   uint32
}

type localResponse struct {
	status  uint32
	headers []abi.Header
	body    string
	details string
}

func u32(v uint64) uint32 { return uint32(v) }

func (h *miniHost) read(ptr, n uint32) []byte {
	b, ok := h.mod.Memory().Read(ptr, n)
	require.True(h.t, ok, "guest passed an out-of-range pointer")
	return bytes.Clone(b)
}

func (h *miniHost) writeU32(ptr, v uint32) {
	require.True(h.t, h.mod.Memory().WriteUint32Le(ptr, v))
}

// alloc calls the guest allocator the way Envoy does.
func (h *miniHost) alloc(n uint32) uint32 {
	h.inAlloc = true
	res, err := h.mod.ExportedFunction("proxy_on_memory_allocate").Call(h.ctx, uint64(n))
	h.inAlloc = false
	require.NoError(h.t, err)
	h.allocs++
	return u32(res[0])
}

// copyOut writes data into guest memory obtained from the allocator and
// stores its address and size at retPtr / retLen.
func (h *miniHost) copyOut(data []byte, retPtr, retLen uint32) uint64 {
	p := h.alloc(uint32(len(data)))
	if p == 0 {
		return uint64(abi.StatusInternalFailure)
	}
	require.True(h.t, h.mod.Memory().Write(p, data))
	h.writeU32(retPtr, p)
	h.writeU32(retLen, uint32(len(data)))
	return 0
}

func (h *miniHost) first(m uint32, name string) (string, bool) {
	for _, p := range h.maps[m] {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

func (h *miniHost) remove(m uint32, name string) {
	out := h.maps[m][:0]
	for _, p := range h.maps[m] {
		if p.Name != name {
			out = append(out, p)
		}
	}
	h.maps[m] = out
}

type hostFn struct {
	params, results int
	wide            []int
	fn              func(s []uint64) uint64
}

func (h *miniHost) functions() map[string]hostFn {
	const ok, notFound = 0, uint64(abi.StatusNotFound)
	return map[string]hostFn{
		"proxy_log": {3, 1, nil, func(s []uint64) uint64 {
			h.logs = append(h.logs, string(h.read(u32(s[1]), u32(s[2]))))
			return ok
		}},
		"proxy_get_log_level": {1, 1, nil, func(s []uint64) uint64 {
			h.writeU32(u32(s[0]), uint32(abi.LogDebug))
			return ok
		}},
		"proxy_get_property": {4, 1, nil, func(s []uint64) uint64 {
			if string(h.read(u32(s[0]), u32(s[1]))) != "source\x00address" {
				return notFound
			}
			return h.copyOut([]byte("203.0.113.7:4242"), u32(s[2]), u32(s[3]))
		}},
		"proxy_get_header_map_value": {5, 1, nil, func(s []uint64) uint64 {
			v, found := h.first(u32(s[0]), string(h.read(u32(s[1]), u32(s[2]))))
			if !found {
				return notFound
			}
			return h.copyOut([]byte(v), u32(s[3]), u32(s[4]))
		}},
		"proxy_get_header_map_pairs": {3, 1, nil, func(s []uint64) uint64 {
			b, err := abi.AppendPairs(nil, h.maps[u32(s[0])])
			require.NoError(h.t, err)
			return h.copyOut(b, u32(s[1]), u32(s[2]))
		}},
		"proxy_add_header_map_value": {5, 1, nil, func(s []uint64) uint64 {
			m := u32(s[0])
			h.maps[m] = append(h.maps[m], abi.Header{
				Name: string(h.read(u32(s[1]), u32(s[2]))), Value: string(h.read(u32(s[3]), u32(s[4])))})
			return ok
		}},
		"proxy_replace_header_map_value": {5, 1, nil, func(s []uint64) uint64 {
			m, k := u32(s[0]), string(h.read(u32(s[1]), u32(s[2])))
			h.remove(m, k)
			h.maps[m] = append(h.maps[m], abi.Header{Name: k, Value: string(h.read(u32(s[3]), u32(s[4])))})
			return ok
		}},
		"proxy_remove_header_map_value": {3, 1, nil, func(s []uint64) uint64 {
			h.remove(u32(s[0]), string(h.read(u32(s[1]), u32(s[2]))))
			return ok
		}},
		"proxy_send_local_response": {8, 1, nil, func(s []uint64) uint64 {
			hdrs, err := abi.DecodePairs(h.read(u32(s[5]), u32(s[6])), nil)
			require.NoError(h.t, err)
			require.Equal(h.t, int32(-1), int32(u32(s[7])), "grpc_status")
			h.local = &localResponse{status: u32(s[0]), headers: hdrs,
				details: string(h.read(u32(s[1]), u32(s[2]))), body: string(h.read(u32(s[3]), u32(s[4])))}
			return ok
		}},
		"proxy_get_shared_data": {5, 1, nil, func(s []uint64) uint64 {
			e, found := h.shared[string(h.read(u32(s[0]), u32(s[1])))]
			if !found {
				return notFound
			}
			h.writeU32(u32(s[4]), e.cas)
			return h.copyOut(e.value, u32(s[2]), u32(s[3]))
		}},
		"proxy_set_shared_data": {5, 1, nil, func(s []uint64) uint64 {
			k := string(h.read(u32(s[0]), u32(s[1])))
			cas := u32(s[4])
			if e, found := h.shared[k]; found && cas != 0 && cas != e.cas {
				return uint64(abi.StatusCasMismatch)
			}
			h.casSeq++
			h.shared[k] = sharedEntry{value: h.read(u32(s[2]), u32(s[3])), cas: h.casSeq}
			return ok
		}},
		"proxy_set_tick_period_milliseconds": {1, 1, nil, func(s []uint64) uint64 { h.tick = u32(s[0]); return ok }},
		"proxy_set_effective_context": {1, 1, nil, func(s []uint64) uint64 {
			h.effective = append(h.effective, u32(s[0]))
			return ok
		}},
		"proxy_close_stream": {1, 1, nil, func(s []uint64) uint64 { h.closed = append(h.closed, u32(s[0])); return ok }},
		"proxy_continue_stream": {1, 1, nil, func(s []uint64) uint64 {
			h.continued = append(h.continued, u32(s[0]))
			return ok
		}},
		"proxy_define_metric": {4, 1, nil, func(s []uint64) uint64 {
			name := string(h.read(u32(s[1]), u32(s[2])))
			id, found := h.names[name]
			if !found {
				id = uint32(len(h.metrics))
				h.metrics = append(h.metrics, 0)
				h.names[name] = id
			}
			h.writeU32(u32(s[3]), id)
			return ok
		}},
		"proxy_increment_metric": {2, 1, []int{1}, func(s []uint64) uint64 {
			h.metrics[u32(s[0])] += int64(s[1])
			return ok
		}},
		"proxy_record_metric": {2, 1, []int{1}, func(s []uint64) uint64 {
			h.metrics[u32(s[0])] = int64(s[1])
			return ok
		}},
		"proxy_get_metric": {2, 1, nil, func(s []uint64) uint64 {
			require.True(h.t, h.mod.Memory().WriteUint64Le(u32(s[1]), uint64(h.metrics[u32(s[0])])))
			return ok
		}},
		"proxy_get_buffer_bytes": {5, 1, nil, func(s []uint64) uint64 {
			switch abi.BufferType(u32(s[0])) {
			case abi.BufferPluginConfiguration:
				if len(h.config) == 0 {
					return notFound
				}
				return h.copyOut(h.config, u32(s[3]), u32(s[4]))
			case abi.BufferResponseBody:
				return h.copyOut([]byte("body"), u32(s[3]), u32(s[4]))
			}
			return notFound
		}},
	}
}

func startMiniHost(t *testing.T, wasm, config []byte) *miniHost {
	h := &miniHost{t: t, config: config, shared: map[string]sharedEntry{},
		names: map[string]uint32{}, wasiCalls: map[string]int{}}
	ctx := context.Background()
	h.ctx = ctx
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { _ = r.Close(ctx) })

	// Observe every WASI call, to catch one inside the allocator.
	wctx := experimental.WithFunctionListenerFactory(ctx, experimental.FunctionListenerFactoryFunc(
		func(def api.FunctionDefinition) experimental.FunctionListener {
			return experimental.FunctionListenerFunc(func(_ context.Context, _ api.Module, def api.FunctionDefinition, _ []uint64, _ experimental.StackIterator) {
				h.wasiCalls[def.Name()]++
				if h.inAlloc {
					h.violations = append(h.violations, "wasi."+def.Name())
				}
			})
		}))
	_, err := wasi_snapshot_preview1.Instantiate(wctx, r)
	require.NoError(t, err)

	b := r.NewHostModuleBuilder("env")
	for name, f := range h.functions() {
		params := make([]api.ValueType, f.params)
		for i := range params {
			params[i] = api.ValueTypeI32
		}
		for _, i := range f.wide {
			params[i] = api.ValueTypeI64
		}
		fn := f.fn
		name := name
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
			if h.inAlloc {
				h.violations = append(h.violations, "env."+name)
			}
			s[0] = fn(s)
		}), params, []api.ValueType{api.ValueTypeI32}).Export(name)
	}
	_, err = b.Instantiate(ctx)
	require.NoError(t, err)

	var stdout, stderr bytes.Buffer
	h.mod, err = r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().
		WithStartFunctions("_initialize").WithStdout(&stdout).WithStderr(&stderr))
	require.NoError(t, err, "stderr: %s", stderr.String())
	t.Cleanup(func() {
		if stderr.Len() > 0 {
			t.Logf("guest stderr: %s", stderr.String())
		}
	})
	return h
}

// call invokes a callback and returns its i32 result (0 for void ones).
func (h *miniHost) call(name string, args ...uint64) uint32 {
	h.t.Helper()
	res, err := h.mod.ExportedFunction(name).Call(h.ctx, args...)
	require.NoError(h.t, err, name)
	if len(res) == 0 {
		return 0
	}
	return u32(res[0])
}

func (h *miniHost) request(id uint64, hdrs ...abi.Header) uint32 {
	h.maps = [4][]abi.Header{}
	h.maps[abi.MapRequestHeaders] = append([]abi.Header(nil), hdrs...)
	h.local = nil
	h.call("proxy_on_context_create", id, 1)
	return h.call("proxy_on_request_headers", id, uint64(len(hdrs)), 1)
}

func (h *miniHost) end(id uint64) {
	h.call("proxy_on_log", id)
	require.Equal(h.t, uint32(1), h.call("proxy_on_done", id))
	h.call("proxy_on_delete", id)
}

func (h *miniHost) memPages() uint32 { return h.mod.Memory().Size() / 65536 }

func header(hs []abi.Header, name string) string {
	for _, p := range hs {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// TestGuestEndToEnd drives the built test guest on raw wazero through every
// export and every import: allocator, context creation, configuration,
// request headers decoded from a Pairs map written via the allocator, local
// responses, shared data with CAS, metrics, tick closing a stream, stream
// end in Envoy's order and out of it.
func TestGuestEndToEnd(t *testing.T) {
	h := startMiniHost(t, guestWasm(t), []byte(`{"k":"v"}`))
	require.Empty(t, h.violations)

	h.call("proxy_on_context_create", 1, 0)
	require.Equal(t, uint32(1), h.call("proxy_on_vm_start", 1, 0))
	require.Equal(t, uint32(1), h.call("proxy_on_configure", 1, uint64(len(h.config))))
	require.Equal(t, uint32(1000), h.tick)
	require.Equal(t, `{"k":"v"}`, string(h.shared["testguest.config"].value))
	require.Contains(t, h.logs, "testguest: configured")

	t.Run("local response", func(t *testing.T) {
		action := h.request(2,
			abi.Header{Name: ":path", Value: "/local"}, abi.Header{Name: "x-echo", Value: "hello"},
			abi.Header{Name: "x-dup", Value: "1"}, abi.Header{Name: "x-dup", Value: "2"})
		require.Equal(t, uint32(1), action, "ActionPause after a local response")
		require.NotNil(t, h.local)
		require.Equal(t, uint32(418), h.local.status)
		require.Equal(t, "local", h.local.body)
		require.Equal(t, "testguest_local", h.local.details)
		require.Equal(t, []abi.Header{{Name: "x-echo", Value: "hello"}, {Name: "x-count", Value: "4"},
			{Name: "x-peer", Value: "203.0.113.7:4242"}}, h.local.headers)
		h.end(2)
		require.Equal(t, int64(1), h.metrics[h.names["testguest_requests_total"]])
	})

	t.Run("shared data with cas", func(t *testing.T) {
		for i, want := range []string{"1", "2", "3"} {
			id := uint64(10 + i)
			h.request(id, abi.Header{Name: ":path", Value: "/shared"})
			require.Equal(t, want, header(h.local.headers, "x-shared"))
			h.end(id)
		}
	})

	t.Run("header map calls and response phase", func(t *testing.T) {
		action := h.request(20, abi.Header{Name: ":path", Value: "/other"},
			abi.Header{Name: "x-echo", Value: "e1"}, abi.Header{Name: "x-echo", Value: "e2"},
			abi.Header{Name: "x-remove-me", Value: "1"})
		require.Equal(t, uint32(0), action)
		req := h.maps[abi.MapRequestHeaders]
		require.Equal(t, "yes", header(req, "x-replaced"))
		require.Empty(t, header(req, "x-remove-me"))
		require.Equal(t, uint32(0), h.call("proxy_on_response_headers", 20, 0, 0))
		require.Equal(t, []abi.Header{{Name: "x-echo", Value: "e1"}}, h.maps[abi.MapResponseHeaders])
		require.Equal(t, uint32(0), h.call("proxy_on_response_body", 20, 4, 1))
		require.Equal(t, []uint32{uint32(abi.StreamResponse)}, h.continued)
		h.end(20)
	})

	t.Run("tick closes a stream", func(t *testing.T) {
		require.Equal(t, uint32(0), h.request(30, abi.Header{Name: ":path", Value: "/close"}))
		h.call("proxy_on_tick", 1)
		require.Equal(t, []uint32{30}, h.effective)
		require.Equal(t, []uint32{uint32(abi.StreamRequest)}, h.closed)
		h.end(30)
	})

	t.Run("Host calls allocate nothing in the module", func(t *testing.T) {
		hdrs := []abi.Header{{Name: ":path", Value: "/measure"}}
		for i := 0; i < 20; i++ {
			hdrs = append(hdrs, abi.Header{Name: "x-h" + strings.Repeat("x", i), Value: strings.Repeat("v", 40)})
		}
		h.request(40, hdrs...)
		require.Equal(t, "0", header(h.local.headers, "x-mallocs"), "Go mallocs over 10 RequestHeaders calls of 21 headers")
		require.Equal(t, "0", header(h.local.headers, "x-mallocs-other"),
			"Go mallocs over 10 rounds of Property, SharedGet/Set, metrics, HeaderMapValue, AddResponseHeader, Log, SendLocalResponse")
		h.end(40)
	})

	t.Run("unknown ids, late on_log, double delete", func(t *testing.T) {
		require.Equal(t, uint32(0), h.call("proxy_on_request_headers", 999, 1, 0))
		require.Equal(t, uint32(0), h.call("proxy_on_response_body", 999, 1, 0))
		h.call("proxy_on_log", 999)
		require.Equal(t, uint32(1), h.call("proxy_on_done", 999))
		h.call("proxy_on_delete", 999)
		h.request(50, abi.Header{Name: ":path", Value: "/other"})
		require.Equal(t, uint32(1), h.call("proxy_on_done", 50))
		h.call("proxy_on_delete", 50)
		h.call("proxy_on_log", 50) // HTTP/3 deferred access log
		h.call("proxy_on_delete", 50)
		h.call("proxy_on_tick", 999)
		require.Equal(t, uint32(0), h.call("proxy_on_configure", 999, 0))
	})

	t.Run("allocator", func(t *testing.T) {
		for _, n := range []uint32{0, 1, 3, 100, 5000, 70000} {
			p := h.alloc(n)
			require.NotZero(t, p, "size %d", n)
			require.Zero(t, p%abi.ArenaAlign, "size %d", n)
		}
		require.Zero(t, h.alloc(abi.MaxAllocSize+1), "absurd sizes fail cleanly")
	})

	require.Empty(t, h.violations, "no host call may happen inside proxy_on_memory_allocate")
	t.Logf("allocator calls: %d, WASI calls: %v", h.allocs, h.wasiCalls)
}

// TestGuestConfigureFailure: a plugin refusing its configuration makes
// proxy_on_configure return 0.
func TestGuestConfigureFailure(t *testing.T) {
	h := startMiniHost(t, guestWasm(t), []byte("fail"))
	h.call("proxy_on_context_create", 1, 0)
	require.Equal(t, uint32(1), h.call("proxy_on_vm_start", 1, 0))
	require.Equal(t, uint32(0), h.call("proxy_on_configure", 1, 4))
	require.Contains(t, h.logs, "testguest: bad configuration")
}

// TestGuestMemoryStaysFlat runs many requests (headers fetched through the
// allocator, a local-response-free path) and checks linear memory does not
// grow: the reactor module's GC barely runs, so any per-request garbage
// would show here.
func TestGuestMemoryStaysFlat(t *testing.T) {
	h := startMiniHost(t, guestWasm(t), []byte("{}"))
	h.call("proxy_on_context_create", 1, 0)
	h.call("proxy_on_vm_start", 1, 0)
	require.Equal(t, uint32(1), h.call("proxy_on_configure", 1, 2))
	hdrs := []abi.Header{{Name: ":path", Value: "/continue"}, {Name: "x-echo", Value: strings.Repeat("a", 200)}}
	for i := 0; i < 20; i++ {
		hdrs = append(hdrs, abi.Header{Name: "x-pad", Value: strings.Repeat("b", 100)})
	}
	run := func(n int) {
		for i := 0; i < n; i++ {
			id := uint64(100 + i)
			h.request(id, hdrs...)
			h.end(id)
		}
	}
	run(2000)
	before := h.memPages()
	const n = 20000
	run(n)
	after := h.memPages()
	t.Logf("linear memory: %d pages after warm-up, %d pages after %d more requests", before, after, n)
	require.Empty(t, h.violations)
	t.Logf("WASI calls: %v", h.wasiCalls)
	require.Zero(t, h.wasiCalls["poll_oneoff"], "poll_oneoff returns ENOSYS on Envoy 1.33-1.38 and kills the runtime")
	// Host data goes through the arena and stream objects are pooled: no
	// growth at all beyond one page of slack.
	require.LessOrEqual(t, after-before, uint32(1))
}
