package wasmhost_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stoa-platform/stoa-guard/internal/wasmbuild"
	"github.com/stoa-platform/stoa-guard/wasmhost"
	"github.com/tetratelabs/wazero/api"
)

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m)) }

// A small Wasm binary writer for hand-built guests: imports, functions with
// real bodies (the op helpers below), one memory, data segments. Imports must
// be declared before functions, so that function indices are stable: an
// import's index is what Import returns, and call takes it.

type sig struct{ params, results []api.ValueType }

type wimport struct {
	mod, name string
	typ       uint32
}

type wfunc struct {
	export string
	typ    uint32
	locals []api.ValueType
	body   []byte
}

type wdata struct {
	offset uint32
	b      []byte
}

type mod struct {
	types    []sig
	imports  []wimport
	funcs    []wfunc
	memMin   uint32
	memMax   int64 // < 0: no maximum
	noMemory bool
	data     []wdata
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// p returns n i32s.
func p(n int) []api.ValueType {
	out := make([]api.ValueType, n)
	for i := range out {
		out[i] = i32
	}
	return out
}

func vt(ts ...api.ValueType) []api.ValueType { return ts }

func newMod() *mod { return &mod{memMin: 2, memMax: -1} }

func (m *mod) typ(params, results []api.ValueType) uint32 {
	for i, t := range m.types {
		if string(t.params) == string(params) && string(t.results) == string(results) {
			return uint32(i)
		}
	}
	m.types = append(m.types, sig{params, results})
	return uint32(len(m.types) - 1)
}

// Import declares an imported function and returns its function index.
func (m *mod) Import(module, name string, params, results []api.ValueType) uint32 {
	if len(m.funcs) > 0 {
		panic("guest builder: declare imports before functions")
	}
	m.imports = append(m.imports, wimport{module, name, m.typ(params, results)})
	return uint32(len(m.imports) - 1)
}

// Func defines a function (exported as export unless empty) with the given
// extra locals; the body is the concatenation of code, an `end` is appended.
func (m *mod) Func(export string, params, results, locals []api.ValueType, code ...[]byte) uint32 {
	var body []byte
	for _, c := range code {
		body = append(body, c...)
	}
	m.funcs = append(m.funcs, wfunc{export, m.typ(params, results), locals, body})
	return uint32(len(m.imports) + len(m.funcs) - 1)
}

// Data places b at offset in memory.
func (m *mod) Data(offset uint32, b []byte) { m.data = append(m.data, wdata{offset, b}) }

func uleb(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func wname(b []byte, s string) []byte { return append(uleb(b, uint64(len(s))), s...) }

func section(out []byte, id byte, body []byte) []byte {
	return append(uleb(append(out, id), uint64(len(body))), body...)
}

func vtypes(b []byte, ts []api.ValueType) []byte {
	return append(uleb(b, uint64(len(ts))), ts...)
}

// Bytes encodes the module.
func (m *mod) Bytes() []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	types := uleb(nil, uint64(len(m.types)))
	for _, t := range m.types {
		types = vtypes(vtypes(append(types, 0x60), t.params), t.results)
	}
	out = section(out, 1, types)
	if len(m.imports) > 0 {
		imp := uleb(nil, uint64(len(m.imports)))
		for _, f := range m.imports {
			imp = uleb(append(wname(wname(imp, f.mod), f.name), 0), uint64(f.typ))
		}
		out = section(out, 2, imp)
	}
	funcs := uleb(nil, uint64(len(m.funcs)))
	for _, f := range m.funcs {
		funcs = uleb(funcs, uint64(f.typ))
	}
	out = section(out, 3, funcs)
	if !m.noMemory {
		mem := []byte{1}
		if m.memMax >= 0 {
			mem = uleb(uleb(append(mem, 1), uint64(m.memMin)), uint64(m.memMax))
		} else {
			mem = uleb(append(mem, 0), uint64(m.memMin))
		}
		out = section(out, 5, mem)
	}
	var exp []byte
	n := 0
	for i, f := range m.funcs {
		if f.export != "" {
			exp = uleb(append(wname(exp, f.export), 0), uint64(len(m.imports)+i))
			n++
		}
	}
	if !m.noMemory {
		exp = append(wname(exp, "memory"), 2, 0)
		n++
	}
	out = section(out, 7, append(uleb(nil, uint64(n)), exp...))
	code := uleb(nil, uint64(len(m.funcs)))
	for _, f := range m.funcs {
		body := uleb(nil, uint64(len(f.locals)))
		for _, l := range f.locals {
			body = append(append(body, 1), l)
		}
		body = append(append(body, f.body...), 0x0b)
		code = append(uleb(code, uint64(len(body))), body...)
	}
	out = section(out, 10, code)
	if len(m.data) > 0 && !m.noMemory {
		d := uleb(nil, uint64(len(m.data)))
		for _, s := range m.data {
			d = append(d, 0, 0x41)
			d = sleb(d, int64(int32(s.offset)))
			d = append(d, 0x0b)
			d = append(uleb(d, uint64(len(s.b))), s.b...)
		}
		out = section(out, 11, d)
	}
	return out
}

// --- instructions -------------------------------------------------------------

func ops(cs ...[]byte) []byte {
	var out []byte
	for _, c := range cs {
		out = append(out, c...)
	}
	return out
}

func i32c(v int32) []byte    { return sleb([]byte{0x41}, int64(v)) }
func i64c(v int64) []byte    { return sleb([]byte{0x42}, v) }
func call(f uint32) []byte   { return uleb([]byte{0x10}, uint64(f)) }
func lget(i uint32) []byte   { return uleb([]byte{0x20}, uint64(i)) }
func lset(i uint32) []byte   { return uleb([]byte{0x21}, uint64(i)) }
func ltee(i uint32) []byte   { return uleb([]byte{0x22}, uint64(i)) }
func br(depth uint32) []byte { return uleb([]byte{0x0c}, uint64(depth)) }
func brIf(d uint32) []byte   { return uleb([]byte{0x0d}, uint64(d)) }

var (
	drop        = []byte{0x1a}
	unreachable = []byte{0x00}
	block       = []byte{0x02, 0x40}
	loop        = []byte{0x03, 0x40}
	end         = []byte{0x0b}
	i32add      = []byte{0x6a}
	i32sub      = []byte{0x6b}
	i32mul      = []byte{0x6c}
	i32eqz      = []byte{0x45}
	load32      = []byte{0x28, 2, 0} // i32.load align=4 offset=0
	store32     = []byte{0x36, 2, 0} // i32.store
	memGrow     = []byte{0x40, 0}
)

// store writes the i32 value computed by code at addr.
func store(addr uint32, code ...[]byte) []byte {
	return ops(i32c(int32(addr)), ops(code...), store32)
}

// load reads the i32 at addr.
func load(addr uint32) []byte { return ops(i32c(int32(addr)), load32) }

// --- proxy-wasm guests ----------------------------------------------------------

// Memory layout of the hand-built guests: word 0 is the allocator's bump
// pointer, 0x100.. results, 0x1000.. constant strings, heap from 0x8000.
const (
	heapStart = 0x8000
	results   = 0x100
)

// proxyBasics adds the ABI marker and a bump allocator exported as
// proxy_on_memory_allocate whose body starts with pre (e.g. a host call the
// test wants made during allocation).
func (m *mod) proxyBasics(pre ...[]byte) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], heapStart)
	m.Data(0, b[:])
	m.Func("proxy_abi_version_0_2_1", nil, nil, nil)
	m.Func("proxy_on_memory_allocate", p(1), p(1), vt(i32),
		ops(pre...),
		i32c(0),
		load(0), ltee(1), lget(0), i32add, // new bump pointer = old + size
		store32,
		lget(1))
}

// str places s in the data segment area and returns its address and length.
type strs struct {
	m    *mod
	next uint32
}

func (m *mod) strings() *strs { return &strs{m: m, next: 0x1000} }

func (s *strs) put(v string) (int32, int32) {
	addr := s.next
	s.m.Data(addr, []byte(v))
	s.next += uint32(len(v)+15) &^ 15
	return int32(addr), int32(len(v))
}

// peekBody makes proxy_on_request_body return the i32 at address = body size:
// the tests read guest memory through the Stream API.
func (m *mod) peekBody() {
	m.Func("proxy_on_request_body", p(3), p(1), nil, lget(1), load32)
}

func peek(t *testing.T, s *wasmhost.Stream, addr uint32) uint32 {
	t.Helper()
	a, err := s.RequestBody(make([]byte, addr), false)
	if err != nil {
		t.Fatalf("peek %#x: %v", addr, err)
	}
	return uint32(a)
}

// --- hosts ------------------------------------------------------------------------

func newHost(t testing.TB, wasm []byte, cfg wasmhost.Config) *wasmhost.Host {
	t.Helper()
	h, err := wasmhost.NewHost(context.Background(), wasm, cfg)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func newVM(t testing.TB, h *wasmhost.Host) *wasmhost.VM {
	t.Helper()
	vm, err := h.NewVM(context.Background())
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	return vm
}

func loadErr(t *testing.T, wasm []byte, cfg wasmhost.Config) string {
	t.Helper()
	h, err := wasmhost.NewHost(context.Background(), wasm, cfg)
	if err == nil {
		_ = h.Close(context.Background())
		t.Fatal("NewHost accepted the module")
	}
	var le *wasmhost.LoadError
	if !errors.As(err, &le) {
		t.Fatalf("NewHost: %T %v, want *LoadError", err, err)
	}
	return le.Msg
}

func trapErr(t *testing.T, err error) *wasmhost.TrapError {
	t.Helper()
	var te *wasmhost.TrapError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v (%T), want *TrapError", err, err)
	}
	if !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("errors.Is(%v, ErrVMFailed) = false", err)
	}
	return te
}

var profiles = []wasmhost.Profile{wasmhost.ProfileEnvoy133, wasmhost.ProfileEnvoy139}

func profileName(p wasmhost.Profile) string {
	return strings.NewReplacer("–", "-", ">=", "ge").Replace(p.String())
}

// testGuestWasm builds abi/internal/testguest (a Go c-shared proxy-wasm
// module over package abi) once per test binary.
func testGuestWasm(t testing.TB) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Go wasm module")
	}
	b, err := os.ReadFile(wasmbuild.Build(t, "github.com/stoa-platform/stoa-guard/abi/internal/testguest"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func itoa(v int) string { return strconv.Itoa(v) }
