// Package abitest checks that a compiled module speaks proxy-wasm 0.2.1 the
// way Envoy loads it: its imports are only vetted env.proxy_* host calls
// and WASI functions Envoy 1.33+ provides, and it exports the ABI version
// marker, the allocator, _initialize and every callback with Envoy's exact
// signatures. Use it on the test guest and on the real filter module.
package abitest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Signature is a Wasm function type.
type Signature struct {
	Params, Results []api.ValueType
}

func (s Signature) String() string {
	return "(" + types(s.Params) + ") -> (" + types(s.Results) + ")"
}

func types(v []api.ValueType) string {
	n := make([]string, len(v))
	for i, t := range v {
		n[i] = api.ValueTypeName(t)
	}
	return strings.Join(n, ",")
}

func sig(params, results int, wide ...int) Signature {
	s := Signature{Params: make([]api.ValueType, params), Results: make([]api.ValueType, results)}
	for i := range s.Params {
		s.Params[i] = api.ValueTypeI32
	}
	for i := range s.Results {
		s.Results[i] = api.ValueTypeI32
	}
	for _, i := range wide {
		s.Params[i] = api.ValueTypeI64
	}
	return s
}

// WASIModule is the module name Go's wasip1 port imports WASI from.
const WASIModule = "wasi_snapshot_preview1"

// EnvoyWASI lists the 18 WASI functions Envoy 1.33–1.38 provides; a module
// importing any other one fails to load there.
var EnvoyWASI = []string{
	"fd_write", "fd_read", "fd_seek", "fd_close", "fd_fdstat_get", "fd_fdstat_set_flags",
	"fd_prestat_get", "fd_prestat_dir_name", "environ_get", "environ_sizes_get",
	"args_get", "args_sizes_get", "clock_time_get", "random_get", "proc_exit",
	"path_open", "sched_yield", "poll_oneoff",
}

// HostCalls maps every env host call a stoa-guard module may import to its
// 0.2.1 signature: i32 words, except increment_metric's i64 delta and
// record_metric's u64 value; each returns an i32 status.
var HostCalls = map[string]Signature{
	"proxy_log":                          sig(3, 1),
	"proxy_get_log_level":                sig(1, 1),
	"proxy_get_property":                 sig(4, 1),
	"proxy_get_header_map_value":         sig(5, 1),
	"proxy_get_header_map_pairs":         sig(3, 1),
	"proxy_add_header_map_value":         sig(5, 1),
	"proxy_replace_header_map_value":     sig(5, 1),
	"proxy_remove_header_map_value":      sig(3, 1),
	"proxy_send_local_response":          sig(8, 1),
	"proxy_get_shared_data":              sig(5, 1),
	"proxy_set_shared_data":              sig(5, 1),
	"proxy_set_tick_period_milliseconds": sig(1, 1),
	"proxy_get_current_time_nanoseconds": sig(1, 1),
	"proxy_set_effective_context":        sig(1, 1),
	"proxy_close_stream":                 sig(1, 1),
	"proxy_continue_stream":              sig(1, 1),
	"proxy_define_metric":                sig(4, 1),
	"proxy_increment_metric":             sig(2, 1, 1),
	"proxy_record_metric":                sig(2, 1, 1),
	"proxy_get_metric":                   sig(2, 1),
	"proxy_get_buffer_bytes":             sig(5, 1),
}

// Exports maps every function a module must export to its signature.
var Exports = map[string]Signature{
	"_initialize":                 sig(0, 0),
	"proxy_abi_version_0_2_1":     sig(0, 0),
	"proxy_on_memory_allocate":    sig(1, 1),
	"proxy_on_context_create":     sig(2, 0),
	"proxy_on_vm_start":           sig(2, 1),
	"proxy_on_configure":          sig(2, 1),
	"proxy_on_tick":               sig(1, 0),
	"proxy_on_request_headers":    sig(3, 1),
	"proxy_on_request_body":       sig(3, 1),
	"proxy_on_request_trailers":   sig(2, 1),
	"proxy_on_response_headers":   sig(3, 1),
	"proxy_on_response_body":      sig(3, 1),
	"proxy_on_response_trailers":  sig(2, 1),
	"proxy_on_http_call_response": sig(5, 0),
	"proxy_on_queue_ready":        sig(2, 0),
	"proxy_on_log":                sig(1, 0),
	"proxy_on_done":               sig(1, 1),
	"proxy_on_delete":             sig(1, 0),
}

// forbiddenExports would change how the host drives the module: an
// exported malloc replaces proxy_on_memory_allocate (and its arena), _start
// or main would run instead of / after _initialize.
var forbiddenExports = []string{"malloc", "_start", "main", "__main_void"}

// Inventory is what a module imports and exports.
type Inventory struct {
	Imports []string // "module.name", in module order
	Exports []string // function names, sorted
	// Sigs holds the signature of every import ("module.name") and export.
	Sigs map[string]Signature
}

// Inspect compiles wasm (without instantiating it) and lists its function
// imports and exports.
func Inspect(ctx context.Context, wasm []byte) (*Inventory, error) {
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("abitest: compile: %w", err)
	}
	defer cm.Close(ctx)
	inv := &Inventory{Sigs: map[string]Signature{}}
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		k := mod + "." + name
		inv.Imports = append(inv.Imports, k)
		inv.Sigs[k] = Signature{Params: f.ParamTypes(), Results: f.ResultTypes()}
	}
	for name, f := range cm.ExportedFunctions() {
		inv.Exports = append(inv.Exports, name)
		inv.Sigs[name] = Signature{Params: f.ParamTypes(), Results: f.ResultTypes()}
	}
	slices.Sort(inv.Exports)
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		return inv, errors.New("abitest: no exported memory \"memory\"")
	}
	return inv, nil
}

// Check returns nil when wasm loads on Envoy 1.33+ as a proxy-wasm 0.2.1
// module, else every problem found (errors.Join): an import outside
// env.proxy_* (HostCalls) and wasi_snapshot_preview1 (EnvoyWASI), a host
// call with the wrong signature, a missing or mistyped export (Exports), or
// an export that changes how the host drives the module (malloc, _start).
func Check(ctx context.Context, wasm []byte) error {
	inv, err := Inspect(ctx, wasm)
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range inv.Imports {
		mod, name, _ := strings.Cut(k, ".")
		switch mod {
		case "env":
			want, ok := HostCalls[name]
			if !ok {
				errs = append(errs, fmt.Errorf("import %s: not a vetted proxy-wasm host call", k))
				continue
			}
			if got := inv.Sigs[k]; !sameSig(got, want) {
				errs = append(errs, fmt.Errorf("import %s: signature %v, want %v", k, got, want))
			}
		case WASIModule:
			if !slices.Contains(EnvoyWASI, name) {
				errs = append(errs, fmt.Errorf("import %s: not provided by Envoy 1.33-1.38", k))
			}
		default:
			errs = append(errs, fmt.Errorf("import %s: unknown module %q", k, mod))
		}
	}
	names := make([]string, 0, len(Exports))
	for name := range Exports {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		want := Exports[name]
		got, ok := inv.Sigs[name]
		if !ok || !slices.Contains(inv.Exports, name) {
			errs = append(errs, fmt.Errorf("export %s: missing", name))
			continue
		}
		if !sameSig(got, want) {
			errs = append(errs, fmt.Errorf("export %s: signature %v, want %v", name, got, want))
		}
	}
	for _, name := range forbiddenExports {
		if slices.Contains(inv.Exports, name) {
			errs = append(errs, fmt.Errorf("export %s: must not be exported", name))
		}
	}
	return errors.Join(errs...)
}

func sameSig(a, b Signature) bool {
	return slices.Equal(a.Params, b.Params) && slices.Equal(a.Results, b.Results)
}
