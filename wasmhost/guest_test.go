package wasmhost_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stoa-platform/stoa-guard/internal/wasmbin"
	"github.com/stoa-platform/stoa-guard/internal/wasmbuild"
	"github.com/stoa-platform/stoa-guard/wasmhost"
	"github.com/tetratelabs/wazero/api"
)

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m)) }

// Hand-built guests are written with internal/wasmbin; mod adds the
// proxy-wasm helpers below, and the short names keep the guests readable.

type mod struct{ *wasmbin.Module }

func newMod() *mod { return &mod{wasmbin.New()} }

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

var (
	ops         = wasmbin.Ops
	i32c        = wasmbin.I32Const
	i64c        = wasmbin.I64Const
	call        = wasmbin.Call
	lget        = wasmbin.LocalGet
	lset        = wasmbin.LocalSet
	ltee        = wasmbin.LocalTee
	br          = wasmbin.Br
	brIf        = wasmbin.BrIf
	drop        = wasmbin.Drop
	unreachable = wasmbin.Unreachable
	block       = wasmbin.Block
	loop        = wasmbin.Loop
	end         = wasmbin.End
	i32add      = wasmbin.I32Add
	i32sub      = wasmbin.I32Sub
	i32mul      = wasmbin.I32Mul
	i32eqz      = wasmbin.I32Eqz
	load32      = wasmbin.I32Load
	store32     = wasmbin.I32Store
	memGrow     = wasmbin.MemoryGrow
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
