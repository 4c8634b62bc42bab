package wasmhost_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stoa-platform/stoa-guard/wasmhost"
	"github.com/tetratelabs/wazero/api"
)

// minimal is the smallest module Envoy loads: marker, allocator, memory.
func minimal() *mod {
	m := newMod()
	m.proxyBasics()
	return m
}

func TestLoadAcceptsMinimalModule(t *testing.T) {
	for _, prof := range profiles {
		h := newHost(t, minimal().Bytes(), wasmhost.Config{Profile: prof})
		if h.ABI() != wasmhost.ABI021 {
			t.Fatalf("ABI = %v", h.ABI())
		}
		vm := newVM(t, h)
		if got := vm.MemoryBytes(); got != 2*65536 {
			t.Fatalf("MemoryBytes = %d, want %d", got, 2*65536)
		}
	}
}

func TestLoadRefusesModuleWithoutABIMarker(t *testing.T) {
	m := newMod()
	m.Func("proxy_on_memory_allocate", p(1), p(1), nil, i32c(0))
	if got := loadErr(t, m.Bytes(), wasmhost.Config{}); got != "Missing or unknown Proxy-Wasm ABI version" {
		t.Fatalf("msg = %q", got)
	}
	// An unknown future marker is no marker.
	m = newMod()
	m.Func("proxy_abi_version_0_3_0", nil, nil, nil)
	m.Func("malloc", p(1), p(1), nil, i32c(0))
	if got := loadErr(t, m.Bytes(), wasmhost.Config{}); got != "Missing or unknown Proxy-Wasm ABI version" {
		t.Fatalf("msg = %q", got)
	}
}

func TestLoadAcceptsOlderABIMarkers(t *testing.T) {
	for _, c := range []struct {
		marker string
		want   wasmhost.ABIVersion
	}{{"proxy_abi_version_0_2_0", wasmhost.ABI020}, {"proxy_abi_version_0_1_0", wasmhost.ABI010}} {
		m := newMod()
		m.Func(c.marker, nil, nil, nil)
		m.Func("malloc", p(1), p(1), nil, i32c(0))
		h := newHost(t, m.Bytes(), wasmhost.Config{})
		if h.ABI() != c.want {
			t.Fatalf("%s: ABI = %v", c.marker, h.ABI())
		}
	}
}

// fd_advise is not among the 18 WASI functions of Envoy 1.33–1.38; 1.39 has it.
func TestLoadWASIImportDependsOnProfile(t *testing.T) {
	m := newMod()
	adv := m.Import("wasi_snapshot_preview1", "fd_advise", vt(i32, i64, i64, i32), p(1))
	m.proxyBasics()
	m.Func("proxy_on_request_headers", p(3), p(1), nil,
		i32c(1), i64c(0), i64c(0), i32c(0), call(adv))
	wasm := m.Bytes()

	got := loadErr(t, wasm, wasmhost.Config{Profile: wasmhost.ProfileEnvoy133})
	if want := "Failed to load Wasm module due to a missing import: wasi_snapshot_preview1.fd_advise"; got != want {
		t.Fatalf("1.33: msg = %q, want %q", got, want)
	}
	h := newHost(t, wasm, wasmhost.Config{Profile: wasmhost.ProfileEnvoy139})
	s, err := newVM(t, h).NewStream(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Envoy >= 1.39 stubs the file-system calls: ENOSYS.
	if a, err := s.RequestHeaders(nil, true); err != nil || a != 52 {
		t.Fatalf("fd_advise = %d, %v; want ENOSYS (52)", a, err)
	}
}

func TestLoadRefusesUnknownImports(t *testing.T) {
	for _, c := range []struct {
		mod, name string
		params    []api.ValueType
		results   []api.ValueType
		abiMarker string
		only133   bool // Envoy >= 1.39 provides it
	}{
		{"env", "proxy_does_not_exist", nil, p(1), "proxy_abi_version_0_2_1", false},
		{"wasi_snapshot_preview1", "proc_raise", p(1), p(1), "proxy_abi_version_0_2_1", false},
		{"wasi_unstable", "fd_readdir", vt(i32, i32, i32, i64, i32), p(1), "proxy_abi_version_0_2_1", true},
		{"gojs", "runtime.wasmExit", p(1), nil, "proxy_abi_version_0_2_1", false},
		// ABI-specific host calls: close_stream is 0.2.x, continue_request 0.1.0.
		{"env", "proxy_continue_request", nil, p(1), "proxy_abi_version_0_2_1", false},
		{"env", "proxy_close_stream", p(1), p(1), "proxy_abi_version_0_1_0", false},
		{"env", "proxy_get_log_level", p(1), p(1), "proxy_abi_version_0_2_0", false},
	} {
		m := newMod()
		m.Import(c.mod, c.name, c.params, c.results)
		m.Func(c.abiMarker, nil, nil, nil)
		m.Func("malloc", p(1), p(1), nil, i32c(0))
		for _, prof := range profiles {
			if c.only133 && prof == wasmhost.ProfileEnvoy139 {
				newHost(t, m.Bytes(), wasmhost.Config{Profile: prof})
				continue
			}
			got := loadErr(t, m.Bytes(), wasmhost.Config{Profile: prof})
			if want := "Failed to load Wasm module due to a missing import: " + c.mod + "." + c.name; got != want {
				t.Errorf("%s: msg = %q, want %q", profileName(prof), got, want)
			}
		}
	}
}

func TestLoadRefusesImportWithWrongSignature(t *testing.T) {
	// proxy_increment_metric takes an i64 delta; an i32 one is a mismatch.
	m := newMod()
	m.Import("env", "proxy_increment_metric", p(2), p(1))
	m.proxyBasics()
	got := loadErr(t, m.Bytes(), wasmhost.Config{})
	want := "Failed to load Wasm module due to an import type mismatch: env.proxy_increment_metric, " +
		"want: i32 i32 -> i32, but host exports: i32 i64 -> i32"
	if got != want {
		t.Fatalf("msg = %q\nwant  %q", got, want)
	}

	// cpp-host declares path_symlink with 4 parameters, not preview1's 5.
	m = newMod()
	m.Import("wasi_snapshot_preview1", "path_symlink", p(5), p(1))
	m.proxyBasics()
	got = loadErr(t, m.Bytes(), wasmhost.Config{Profile: wasmhost.ProfileEnvoy139})
	if !strings.HasPrefix(got, "Failed to load Wasm module due to an import type mismatch: wasi_snapshot_preview1.path_symlink, ") {
		t.Fatalf("msg = %q", got)
	}
}

func TestLoadRefusesExportWithBadSignature(t *testing.T) {
	for _, c := range []struct {
		name     string
		params   []api.ValueType
		results  []api.ValueType
		wantTail string
	}{
		{"proxy_on_done", p(1), nil, "proxy_on_done, want: i32 -> i32, but the module exports: i32 -> void"},
		{"proxy_on_request_headers", p(2), p(1), "proxy_on_request_headers, want: i32 i32 i32 -> i32, but the module exports: i32 i32 -> i32"},
		{"proxy_on_tick", p(1), p(1), "proxy_on_tick, want: i32 -> void, but the module exports: i32 -> i32"},
		{"_initialize", nil, p(1), "_initialize, want: void -> void, but the module exports: void -> i32"},
		{"proxy_on_context_create", vt(i64, i32), nil, "proxy_on_context_create, want: i32 i32 -> void, but the module exports: i64 i32 -> void"},
	} {
		m := newMod()
		m.proxyBasics()
		var body []byte
		for range c.results {
			body = i32c(0)
		}
		m.Func(c.name, c.params, c.results, nil, body)
		got := loadErr(t, m.Bytes(), wasmhost.Config{})
		if want := "Bad function signature for: " + c.wantTail; got != want {
			t.Errorf("msg = %q\nwant  %q", got, want)
		}
	}
	// The allocator too.
	m := newMod()
	m.Func("proxy_abi_version_0_2_1", nil, nil, nil)
	m.Func("malloc", vt(i64), vt(i64), nil, i64c(0))
	got := loadErr(t, m.Bytes(), wasmhost.Config{})
	if want := "Bad function signature for: malloc, want: i32 -> i32, but the module exports: i64 -> i64"; got != want {
		t.Fatalf("msg = %q", got)
	}
}

func TestLoadRefusesModuleWithoutAllocator(t *testing.T) {
	m := newMod()
	m.Func("proxy_abi_version_0_2_1", nil, nil, nil)
	m.Func("proxy_on_vm_start", p(2), p(1), nil, i32c(1))
	if got := loadErr(t, m.Bytes(), wasmhost.Config{}); got != "Wasm module is missing malloc function." {
		t.Fatalf("msg = %q", got)
	}
}

func TestLoadRefusesGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("not wasm"), minimal().Bytes()[:20]} {
		if _, err := wasmhost.NewHost(context.Background(), b, wasmhost.Config{}); err == nil {
			t.Fatalf("%q accepted", b)
		}
	}
}

func TestLoadRefusesBadStatsTags(t *testing.T) {
	_, err := wasmhost.NewHost(context.Background(), minimal().Bytes(),
		wasmhost.Config{StatsTags: []wasmhost.TagRule{{Name: "reason", Regex: "(unclosed"}}})
	if err == nil || !strings.Contains(err.Error(), `"reason"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestMemoryLimitIsOneGiB(t *testing.T) {
	if wasmhost.MemoryLimitPages*65536 != 1<<30 {
		t.Fatalf("MemoryLimitPages = %d", wasmhost.MemoryLimitPages)
	}
	// memory.grow past 1 GiB fails (-1); a small grow returns the old size.
	m := newMod()
	m.proxyBasics()
	m.Func("proxy_on_request_headers", p(3), p(1), nil, i32c(wasmhost.MemoryLimitPages), memGrow)
	m.Func("proxy_on_request_body", p(3), p(1), nil, i32c(1), memGrow)
	h := newHost(t, m.Bytes(), wasmhost.Config{})
	vm := newVM(t, h)
	s, err := vm.NewStream(nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := s.RequestHeaders(nil, false); err != nil || int32(a) != -1 {
		t.Fatalf("grow past 1 GiB = %d, %v; want -1", int32(a), err)
	}
	if a, err := s.RequestBody(nil, false); err != nil || a != 2 {
		t.Fatalf("grow by one page = %d, %v; want 2 (old size)", a, err)
	}
	if vm.MemoryBytes() != 3*65536 {
		t.Fatalf("MemoryBytes = %d", vm.MemoryBytes())
	}

	// A module declaring a larger maximum (emscripten's 2 GiB) loads, as in
	// Envoy (V8 caps at run time), and is still capped at 1 GiB.
	m.MemMax = 32768
	h = newHost(t, m.Bytes(), wasmhost.Config{})
	if s, err = newVM(t, h).NewStream(nil); err != nil {
		t.Fatal(err)
	}
	if a, err := s.RequestHeaders(nil, false); err != nil || int32(a) != -1 {
		t.Fatalf("max 2 GiB: grow past 1 GiB = %d, %v; want -1", int32(a), err)
	}
}
