package abitest

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero/api"
)

// A tiny Wasm binary writer, enough for modules that import and export
// functions of given signatures (each defined function returns zeros).

type fn struct {
	mod, name string
	sig       Signature
}

func leb(b []byte, v uint32) []byte {
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

func name(b []byte, s string) []byte { return append(leb(b, uint32(len(s))), s...) }

func section(out []byte, id byte, body []byte) []byte {
	return append(leb(append(out, id), uint32(len(body))), body...)
}

func vtypes(b []byte, ts []api.ValueType) []byte {
	b = leb(b, uint32(len(ts)))
	return append(b, ts...)
}

func module(imports, exports []fn, memory bool) []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	all := append(slices.Clone(imports), exports...)
	types := leb(nil, uint32(len(all)))
	for _, f := range all {
		types = vtypes(vtypes(append(types, 0x60), f.sig.Params), f.sig.Results)
	}
	out = section(out, 1, types)
	imp := leb(nil, uint32(len(imports)))
	for i, f := range imports {
		imp = leb(append(name(name(imp, f.mod), f.name), 0), uint32(i))
	}
	out = section(out, 2, imp)
	funcs := leb(nil, uint32(len(exports)))
	for i := range exports {
		funcs = leb(funcs, uint32(len(imports)+i))
	}
	out = section(out, 3, funcs)
	if memory {
		out = section(out, 5, []byte{1, 0, 1})
	}
	exp := leb(nil, uint32(len(exports)+btoi(memory)))
	for i, f := range exports {
		exp = leb(append(name(exp, f.name), 0), uint32(len(imports)+i))
	}
	if memory {
		exp = append(name(exp, "memory"), 2, 0)
	}
	out = section(out, 7, exp)
	code := leb(nil, uint32(len(exports)))
	for _, f := range exports {
		body := []byte{0} // no locals
		for _, r := range f.sig.Results {
			if r == api.ValueTypeI64 {
				body = append(body, 0x42, 0)
			} else {
				body = append(body, 0x41, 0)
			}
		}
		body = append(body, 0x0b)
		code = append(leb(code, uint32(len(body))), body...)
	}
	return section(out, 10, code)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func goodExports() []fn {
	var out []fn
	for _, n := range slices.Sorted(maps.Keys(Exports)) {
		out = append(out, fn{name: n, sig: Exports[n]})
	}
	return out
}

func goodImports() []fn {
	return []fn{
		{mod: "env", name: "proxy_log", sig: HostCalls["proxy_log"]},
		{mod: "env", name: "proxy_increment_metric", sig: HostCalls["proxy_increment_metric"]},
		{mod: WASIModule, name: "fd_write", sig: sig(4, 1)},
		{mod: WASIModule, name: "poll_oneoff", sig: sig(4, 1)},
	}
}

func TestCheckAcceptsAWellFormedModule(t *testing.T) {
	require.NoError(t, Check(context.Background(), module(goodImports(), goodExports(), true)))
}

func TestCheckRejects(t *testing.T) {
	without := func(exports []fn, n string) []fn {
		return slices.DeleteFunc(exports, func(f fn) bool { return f.name == n })
	}
	retype := func(exports []fn, n string, s Signature) []fn {
		for i := range exports {
			if exports[i].name == n {
				exports[i].sig = s
			}
		}
		return exports
	}
	tests := []struct {
		name    string
		imports []fn
		exports []fn
		memory  bool
		want    string
	}{
		{"WASI function Envoy 1.33 lacks", append(goodImports(), fn{mod: WASIModule, name: "fd_readdir", sig: sig(5, 1)}),
			goodExports(), true, "fd_readdir: not provided by Envoy"},
		{"unvetted host call", append(goodImports(), fn{mod: "env", name: "proxy_http_call", sig: sig(10, 1)}),
			goodExports(), true, "proxy_http_call: not a vetted"},
		{"i32 metric delta", append(goodImports()[:1], fn{mod: "env", name: "proxy_increment_metric", sig: sig(2, 1)}),
			goodExports(), true, "proxy_increment_metric: signature"},
		{"unknown import module", append(goodImports(), fn{mod: "gojs", name: "x", sig: sig(0, 0)}),
			goodExports(), true, `unknown module "gojs"`},
		{"missing callback", goodImports(), without(goodExports(), "proxy_on_log"), true, "proxy_on_log: missing"},
		{"missing version marker", goodImports(), without(goodExports(), "proxy_abi_version_0_2_1"), true, "proxy_abi_version_0_2_1: missing"},
		{"on_done returns nothing", goodImports(), retype(goodExports(), "proxy_on_done", sig(1, 0)), true, "proxy_on_done: signature"},
		{"i64 allocator", goodImports(), retype(goodExports(), "proxy_on_memory_allocate", Signature{
			Params: []api.ValueType{api.ValueTypeI64}, Results: []api.ValueType{api.ValueTypeI64}}), true, "proxy_on_memory_allocate: signature"},
		{"exported malloc bypasses the arena", goodImports(), append(goodExports(), fn{name: "malloc", sig: sig(1, 1)}), true, "malloc: must not"},
		{"command module", goodImports(), append(goodExports(), fn{name: "_start", sig: sig(0, 0)}), true, "_start: must not"},
		{"no memory", goodImports(), goodExports(), false, "no exported memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(context.Background(), module(tt.imports, tt.exports, tt.memory))
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestCheckRejectsGarbage(t *testing.T) {
	require.Error(t, Check(context.Background(), []byte("not wasm")))
	require.Error(t, Check(context.Background(), nil))
}
