package abitest

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero/api"

	"github.com/stoa-platform/stoa-guard/internal/wasmbin"
)

// fn is a function a test module imports or exports; exported functions
// return zeros.
type fn struct {
	mod, name string
	sig       Signature
}

// module writes a module with imports and exports, and a 1-page memory
// exported as "memory" when memory is true.
func module(imports, exports []fn, memory bool) []byte {
	m := wasmbin.New()
	m.MemMin, m.NoMemory = 1, !memory
	for _, f := range imports {
		m.Import(f.mod, f.name, f.sig.Params, f.sig.Results)
	}
	for _, f := range exports {
		m.Func(f.name, f.sig.Params, f.sig.Results, nil, wasmbin.Zero(f.sig.Results))
	}
	return m.Bytes()
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
