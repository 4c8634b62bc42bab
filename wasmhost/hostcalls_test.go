package wasmhost_test

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// propertyGuest: on_request_headers reads each path with
// proxy_get_property, stores the status at results+4*i and logs the value
// (empty when none), so the test sees the exact bytes.
func propertyGuest(paths []string) []byte {
	m := newMod()
	log := m.Import("env", "proxy_log", p(3), p(1))
	prop := m.Import("env", "proxy_get_property", p(4), p(1))
	m.proxyBasics()
	str := m.strings()
	var code []byte
	for i, path := range paths {
		a, n := str.put(path)
		code = append(code, ops(
			store(0x300, i32c(0)), store(0x304, i32c(0)),
			store(results+4*uint32(i), i32c(a), i32c(n), i32c(0x300), i32c(0x304), call(prop)),
			i32c(int32(wasmhost.LogInfo)), load(0x300), load(0x304), call(log), drop)...)
	}
	m.Func("proxy_on_request_headers", p(3), p(1), nil, code, i32c(0))
	m.peekBody()
	return m.Bytes()
}

func TestPropertiesAsEnvoySerialisesThem(t *testing.T) {
	jwt := wasmhost.Path("metadata", "filter_metadata", "envoy.filters.http.jwt_authn")
	le := func(v uint64) string {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		return string(b[:])
	}
	cases := []struct {
		path   string
		status wasmhost.Status
		value  string
	}{
		{wasmhost.Path("source", "address"), wasmhost.StatusOK, "10.0.0.1:5000"},
		{wasmhost.Path("node", "id"), wasmhost.StatusOK, "sidecar~1"},
		{wasmhost.Path("node", "cluster"), wasmhost.StatusOK, "stream wins"},
		{wasmhost.Path("request", "size"), wasmhost.StatusOK, le(42)},
		{wasmhost.Path("request", "duration"), wasmhost.StatusOK, le(uint64(1500 * time.Millisecond))},
		{wasmhost.Path("connection", "mtls"), wasmhost.StatusOK, "\x01"},
		{wasmhost.Path(jwt, "https://issuer.example"), wasmhost.StatusOK,
			string(wasmhost.EncodePairs([]wasmhost.Header{{Name: "aud", Value: "mcp"}, {Name: "sub", Value: "alice"}}))},
		{wasmhost.Path(jwt, "https://issuer.example", "sub"), wasmhost.StatusOK, "alice"},
		{wasmhost.Path(jwt, "https://issuer.example", "missing"), wasmhost.StatusNotFound, ""},
		{wasmhost.Path(jwt, "other-issuer"), wasmhost.StatusNotFound, ""},
		{wasmhost.Path("request", "headers"), wasmhost.StatusOK,
			string(wasmhost.EncodePairs([]wasmhost.Header{{Name: "x-b", Value: "2"}, {Name: "x-a", Value: "1"}}))},
		{wasmhost.Path("request", "headers", "x-a"), wasmhost.StatusOK, "1"},
		{"plugin_root_id", wasmhost.StatusOK, "stoa_root"},
		{"plugin_vm_id", wasmhost.StatusOK, "stoa_vm"},
		{wasmhost.Path("unsupported"), wasmhost.StatusSerializationFailed, ""},
		{wasmhost.Path("no", "such", "property"), wasmhost.StatusNotFound, ""},
		{"", wasmhost.StatusNotFound, ""},
	}
	paths := make([]string, len(cases))
	for i, c := range cases {
		paths[i] = c.path
	}
	h := newHost(t, propertyGuest(paths), wasmhost.Config{RootID: "stoa_root", VMID: "stoa_vm",
		Properties: wasmhost.Properties{
			wasmhost.Path("node", "id"):      "sidecar~1",
			wasmhost.Path("node", "cluster"): "host loses",
		}})
	s, err := newVM(t, h).NewStream(wasmhost.Properties{
		wasmhost.Path("source", "address"):           "10.0.0.1:5000",
		wasmhost.Path("node", "cluster"):             "stream wins",
		wasmhost.Path("request", "size"):             int64(42),
		wasmhost.Path("request", "duration"):         1500 * time.Millisecond,
		wasmhost.Path("connection", "mtls"):          true,
		wasmhost.Path(jwt, "https://issuer.example"): map[string]any{"sub": "alice", "aud": "mcp"},
		wasmhost.Path("request", "headers"):          []wasmhost.Header{{Name: "x-b", Value: "2"}, {Name: "x-a", Value: "1"}},
		wasmhost.Path("unsupported"):                 struct{}{},
	})
	must(t, err)
	_, err = s.RequestHeaders(nil, true)
	must(t, err)
	logs := h.LogMessages(wasmhost.LogInfo)
	if len(logs) != len(cases) {
		t.Fatalf("%d logs for %d paths", len(logs), len(cases))
	}
	for i, c := range cases {
		if st := wasmhost.Status(peek(t, s, results+4*uint32(i))); st != c.status || logs[i] != c.value {
			t.Errorf("%q: %v %q, want %v %q", c.path, st, logs[i], c.status, c.value)
		}
	}
}

// headerGuest: on_request_headers runs one header-map script and logs what
// it reads.
func TestHeaderMapCalls(t *testing.T) {
	m := newMod()
	log := m.Import("env", "proxy_log", p(3), p(1))
	getValue := m.Import("env", "proxy_get_header_map_value", p(5), p(1))
	getPairs := m.Import("env", "proxy_get_header_map_pairs", p(3), p(1))
	add := m.Import("env", "proxy_add_header_map_value", p(5), p(1))
	replace := m.Import("env", "proxy_replace_header_map_value", p(5), p(1))
	remove := m.Import("env", "proxy_remove_header_map_value", p(3), p(1))
	size := m.Import("env", "proxy_get_header_map_size", p(2), p(1))
	m.proxyBasics()
	str := m.strings()
	s := func(v string) []byte { a, n := str.put(v); return ops(i32c(a), i32c(n)) }
	logOut := ops(i32c(int32(wasmhost.LogInfo)), load(0x300), load(0x304), call(log), drop)
	r := func(i uint32) uint32 { return results + 4*i }
	m.Func("proxy_on_request_headers", p(3), p(1), nil,
		// First value only, name case-insensitive.
		store(r(0), i32c(0), s("X-Dup"), i32c(0x300), i32c(0x304), call(getValue)), logOut,
		store(r(1), i32c(0), s("absent"), i32c(0x300), i32c(0x304), call(getValue)),
		store(r(2), i32c(0), s("X-Added"), s("v"), call(add)),
		store(r(3), i32c(0), s("x-dup"), s("one"), call(replace)),
		store(r(4), i32c(0), s("X-Gone"), call(remove)),
		store(r(5), i32c(0), i32c(0x300), i32c(0x304), call(getPairs)), logOut,
		store(r(6), i32c(0), i32c(0x308), call(size)),
		// The response map does not exist yet; map type 9 never does.
		store(r(7), i32c(2), s("x"), i32c(0x300), i32c(0x304), call(getValue)),
		store(r(8), i32c(9), i32c(0x300), i32c(0x304), call(getPairs)),
		i32c(0))
	m.peekBody()
	h := newHost(t, m.Bytes(), wasmhost.Config{})
	st, err := newVM(t, h).NewStream(nil)
	must(t, err)
	_, err = st.RequestHeaders([]wasmhost.Header{{Name: ":path", Value: "/"}, {Name: "x-dup", Value: "a"},
		{Name: "x-gone", Value: "1"}, {Name: "x-dup", Value: "b"}, {Name: "x-gone", Value: "2"}}, true)
	must(t, err)
	want := []wasmhost.Header{{Name: ":path", Value: "/"}, {Name: "x-dup", Value: "one"}, {Name: "x-added", Value: "v"}}
	if got := st.RequestHeaderList(); !slices.Equal(got, want) {
		t.Fatalf("headers %v, want %v", got, want)
	}
	logs := h.LogMessages(wasmhost.LogInfo)
	if len(logs) != 2 || logs[0] != "a" {
		t.Fatalf("logs %q", logs)
	}
	if got := wasmhost.DecodePairs([]byte(logs[1])); !slices.Equal(got, want) {
		t.Fatalf("pairs %v, want %v", got, want)
	}
	if sz := peek(t, st, 0x308); sz != uint32(len(wasmhost.EncodePairs(want))) {
		t.Fatalf("header map size %d", sz)
	}
	ok, nf, bad := uint32(wasmhost.StatusOK), uint32(wasmhost.StatusNotFound), uint32(wasmhost.StatusBadArgument)
	for i, w := range []uint32{ok, nf, ok, ok, ok, ok, ok, bad, bad} {
		if got := peek(t, st, r(uint32(i))); got != w {
			t.Errorf("step %d: status %d, want %d", i, got, w)
		}
	}
}

// Calls that need a stream, made from the root context, get BadArgument.
func TestStreamCallsFromRootContext(t *testing.T) {
	m := newMod()
	closeStream := m.Import("env", "proxy_close_stream", p(1), p(1))
	local := m.Import("env", "proxy_send_local_response", p(8), p(1))
	setCtx := m.Import("env", "proxy_set_effective_context", p(1), p(1))
	m.proxyBasics()
	m.Func("proxy_on_vm_start", p(2), p(1), nil,
		store(results, i32c(0), call(closeStream)),
		store(results+4, i32c(403), i32c(0), i32c(0), i32c(0), i32c(0), i32c(0), i32c(0), i32c(-1), call(local)),
		store(results+8, i32c(77), call(setCtx)),
		i32c(1))
	m.peekBody()
	h := newHost(t, m.Bytes(), wasmhost.Config{})
	s, err := newVM(t, h).NewStream(nil)
	must(t, err)
	for i := range uint32(3) {
		if got := peek(t, s, results+4*i); got != uint32(wasmhost.StatusBadArgument) {
			t.Errorf("call %d: status %d, want BadArgument", i, got)
		}
	}
}

// Envoy's tick timer fires once however many periods passed; period 0 stops it.
func TestTicks(t *testing.T) {
	m := newMod()
	setTick := m.Import("env", "proxy_set_tick_period_milliseconds", p(1), p(1))
	m.proxyBasics()
	// word results: ticks so far; the 3rd tick sets the period to 0.
	m.Func("proxy_on_vm_start", p(2), p(1), nil, i32c(100), call(setTick), drop, i32c(1))
	m.Func("proxy_on_tick", p(1), nil, nil,
		store(results, load(results), i32c(1), i32add),
		load(results), i32c(3), i32sub, i32eqz,
		[]byte{0x04, 0x40}, i32c(0), call(setTick), drop, end) // if
	m.peekBody()
	clock := wasmhost.NewClock(start)
	h := newHost(t, m.Bytes(), wasmhost.Config{Clock: clock})
	vm := newVM(t, h)
	if vm.TickPeriod() != 100*time.Millisecond {
		t.Fatalf("TickPeriod = %v", vm.TickPeriod())
	}
	s, err := vm.NewStream(nil)
	must(t, err)
	for _, step := range []struct {
		advance time.Duration
		ran     bool
		ticks   uint32
	}{
		{99 * time.Millisecond, false, 0},
		{1 * time.Millisecond, true, 1},
		{time.Second, true, 2}, // ten periods: one tick
		{50 * time.Millisecond, false, 2},
		{50 * time.Millisecond, true, 3}, // sets the period to 0
		{time.Second, false, 3},
	} {
		clock.Advance(step.advance)
		ran, err := vm.RunTimers()
		must(t, err)
		if ran != step.ran || peek(t, s, results) != step.ticks {
			t.Fatalf("after +%v: ran %v, ticks %d; want %v, %d", step.advance, ran, peek(t, s, results), step.ran, step.ticks)
		}
	}
	if vm.TickPeriod() != 0 {
		t.Fatalf("TickPeriod = %v after setting 0", vm.TickPeriod())
	}
}
