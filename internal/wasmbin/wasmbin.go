// Package wasmbin writes small WebAssembly binaries for tests: imported
// functions, functions with real bodies (the instruction helpers below),
// one memory, data segments. The project's tests use it for hand-built
// guests (wasmhost's failure paths, abitest's module checks). Imports must
// be declared before functions, so that function indices are stable: an
// import's index is what Import returns, and Call takes it.
package wasmbin

import "github.com/tetratelabs/wazero/api"

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

// Module is a module being written.
type Module struct {
	types   []sig
	imports []wimport
	funcs   []wfunc
	data    []wdata
	// MemMin and MemMax are the memory's limits in pages (MemMax < 0: no
	// maximum); NoMemory leaves the memory out. The memory is exported as
	// "memory".
	MemMin   uint32
	MemMax   int64
	NoMemory bool
}

// New returns an empty module with a 2-page memory and no maximum.
func New() *Module { return &Module{MemMin: 2, MemMax: -1} }

func (m *Module) typ(params, results []api.ValueType) uint32 {
	for i, t := range m.types {
		if string(t.params) == string(params) && string(t.results) == string(results) {
			return uint32(i)
		}
	}
	m.types = append(m.types, sig{params, results})
	return uint32(len(m.types) - 1)
}

// Import declares an imported function and returns its function index.
func (m *Module) Import(module, name string, params, results []api.ValueType) uint32 {
	if len(m.funcs) > 0 {
		panic("wasmbin: declare imports before functions")
	}
	m.imports = append(m.imports, wimport{module, name, m.typ(params, results)})
	return uint32(len(m.imports) - 1)
}

// Func defines a function (exported as export unless empty) with the given
// extra locals; the body is the concatenation of code, an `end` is appended.
func (m *Module) Func(export string, params, results, locals []api.ValueType, code ...[]byte) uint32 {
	m.funcs = append(m.funcs, wfunc{export, m.typ(params, results), locals, Ops(code...)})
	return uint32(len(m.imports) + len(m.funcs) - 1)
}

// Data places b at offset in memory.
func (m *Module) Data(offset uint32, b []byte) { m.data = append(m.data, wdata{offset, b}) }

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
func (m *Module) Bytes() []byte {
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
	if !m.NoMemory {
		mem := []byte{1}
		if m.MemMax >= 0 {
			mem = uleb(uleb(append(mem, 1), uint64(m.MemMin)), uint64(m.MemMax))
		} else {
			mem = uleb(append(mem, 0), uint64(m.MemMin))
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
	if !m.NoMemory {
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
	if len(m.data) > 0 && !m.NoMemory {
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

// Ops concatenates instructions.
func Ops(cs ...[]byte) []byte {
	var out []byte
	for _, c := range cs {
		out = append(out, c...)
	}
	return out
}

// Instructions with an immediate.
func I32Const(v int32) []byte  { return sleb([]byte{0x41}, int64(v)) }
func I64Const(v int64) []byte  { return sleb([]byte{0x42}, v) }
func Call(f uint32) []byte     { return uleb([]byte{0x10}, uint64(f)) }
func LocalGet(i uint32) []byte { return uleb([]byte{0x20}, uint64(i)) }
func LocalSet(i uint32) []byte { return uleb([]byte{0x21}, uint64(i)) }
func LocalTee(i uint32) []byte { return uleb([]byte{0x22}, uint64(i)) }
func Br(depth uint32) []byte   { return uleb([]byte{0x0c}, uint64(depth)) }
func BrIf(d uint32) []byte     { return uleb([]byte{0x0d}, uint64(d)) }

// Zero returns the instructions pushing a zero of each type in ts (a
// function body that returns zeros).
func Zero(ts []api.ValueType) []byte {
	var out []byte
	for _, t := range ts {
		if t == api.ValueTypeI64 {
			out = append(out, I64Const(0)...)
		} else {
			out = append(out, I32Const(0)...)
		}
	}
	return out
}

// Instructions without an immediate.
var (
	Drop        = []byte{0x1a}
	Unreachable = []byte{0x00}
	Block       = []byte{0x02, 0x40}
	Loop        = []byte{0x03, 0x40}
	End         = []byte{0x0b}
	I32Add      = []byte{0x6a}
	I32Sub      = []byte{0x6b}
	I32Mul      = []byte{0x6c}
	I32Eqz      = []byte{0x45}
	I32Load     = []byte{0x28, 2, 0} // i32.load align=4 offset=0
	I32Store    = []byte{0x36, 2, 0} // i32.store align=4 offset=0
	MemoryGrow  = []byte{0x40, 0}
)
