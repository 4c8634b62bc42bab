package wasmhost_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stoa-platform/stoa-guard/wasmhost"
	"github.com/tetratelabs/wazero/api"
)

// hostCall describes one import the tests call with harmless arguments.
type hostCall struct {
	mod, name string
	params    []api.ValueType
	results   []api.ValueType
}

func (c hostCall) key() string { return c.mod + "." + c.name }

// invoke calls the import with every i32 argument 0x200 and every i64 0,
// dropping the result.
func (c hostCall) invoke(idx uint32) []byte {
	var code []byte
	for _, t := range c.params {
		if t == i64 {
			code = append(code, i64c(0)...)
		} else {
			code = append(code, i32c(0x200)...)
		}
	}
	code = append(code, call(idx)...)
	if len(c.results) > 0 {
		code = append(code, drop...)
	}
	return code
}

var (
	callLog         = hostCall{"env", "proxy_log", p(3), p(1)}
	callGetShared   = hostCall{"env", "proxy_get_shared_data", p(5), p(1)}
	callGetProperty = hostCall{"env", "proxy_get_property", p(4), p(1)}
	callSetTick     = hostCall{"env", "proxy_set_tick_period_milliseconds", p(1), p(1)}
	callFdWrite     = hostCall{"wasi_snapshot_preview1", "fd_write", p(4), p(1)}
	callPoll        = hostCall{"wasi_snapshot_preview1", "poll_oneoff", p(4), p(1)}
	callEnvSizes    = hostCall{"wasi_snapshot_preview1", "environ_sizes_get", p(2), p(1)}
	callEnviron     = hostCall{"wasi_snapshot_preview1", "environ_get", p(2), p(1)}
	callClock       = hostCall{"wasi_snapshot_preview1", "clock_time_get", vt(i32, i64, i32), p(1)}
	callRandom      = hostCall{"wasi_snapshot_preview1", "random_get", p(2), p(1)}
	callSchedYield  = hostCall{"wasi_snapshot_preview1", "sched_yield", nil, p(1)}
	callUnstableFd  = hostCall{"wasi_unstable", "fd_write", p(4), p(1)}
)

// Envoy lets `_initialize` make only a few host calls; any other traps
// ("restricted_callback") and the VM fails.
func TestRestrictedCallbacksDuringInitialize(t *testing.T) {
	for _, c := range []struct {
		call    hostCall
		allowed [2]bool // 1.33, >=1.39
	}{
		{callLog, [2]bool{true, true}},
		{callFdWrite, [2]bool{true, true}},
		{callUnstableFd, [2]bool{true, true}},
		{callEnvSizes, [2]bool{true, true}},
		{callClock, [2]bool{true, true}},
		{callRandom, [2]bool{true, true}},
		{callPoll, [2]bool{false, true}},
		{callSchedYield, [2]bool{false, false}},
		{callGetShared, [2]bool{false, false}},
		{callGetProperty, [2]bool{false, false}},
		{callSetTick, [2]bool{false, false}},
	} {
		m := newMod()
		f := m.Import(c.call.mod, c.call.name, c.call.params, c.call.results)
		m.proxyBasics()
		m.Func("_initialize", nil, nil, nil, c.call.invoke(f))
		wasm := m.Bytes()
		for i, prof := range profiles {
			h := newHost(t, wasm, wasmhost.Config{Profile: prof})
			vm, err := h.NewVM(context.Background())
			if c.allowed[i] {
				if err != nil {
					t.Errorf("%s under %s: %v", c.call.key(), prof, err)
				} else if n := vm.HostCallCounts()[c.call.key()]; n != 1 {
					t.Errorf("%s under %s: called %d times", c.call.key(), prof, n)
				}
				continue
			}
			if vm != nil {
				t.Errorf("%s under %s: NewVM returned a VM with error %v", c.call.key(), prof, err)
			}
			te := trapErr(t, err)
			if te.Callback != "_initialize" || !strings.Contains(te.Msg, "restricted_callback") ||
				!strings.Contains(te.Msg, c.call.key()) {
				t.Errorf("%s under %s: trap %+v", c.call.key(), prof, te)
			}
		}
	}
}

// During the host's call of the guest allocator Envoy allows only proxy_log,
// fd_write and clock_time_get (>=1.39: poll_oneoff too).
func TestRestrictedCallbacksDuringAllocation(t *testing.T) {
	for _, c := range []struct {
		call    hostCall
		allowed [2]bool
	}{
		{callLog, [2]bool{true, true}},
		{callFdWrite, [2]bool{true, true}},
		{callClock, [2]bool{true, true}},
		{callPoll, [2]bool{false, true}},
		{callGetProperty, [2]bool{false, false}},
		{callRandom, [2]bool{false, false}},
		{callEnviron, [2]bool{false, false}},
	} {
		m := newMod()
		f := m.Import(c.call.mod, c.call.name, c.call.params, c.call.results)
		getBuf := m.Import("env", "proxy_get_buffer_bytes", p(5), p(1))
		m.proxyBasics(c.call.invoke(f))
		// on_vm_start reads the VM configuration: the host allocates for it.
		m.Func("proxy_on_vm_start", p(2), p(1), nil,
			i32c(6), i32c(0), lget(1), i32c(0x300), i32c(0x304), call(getBuf), i32eqz)
		// on_request_headers returns the configuration's first word.
		m.Func("proxy_on_request_headers", p(3), p(1), nil, load(0x300), load32)
		wasm := m.Bytes()
		for i, prof := range profiles {
			h := newHost(t, wasm, wasmhost.Config{Profile: prof, VMConfig: []byte("abcd")})
			vm, err := h.NewVM(context.Background())
			if c.allowed[i] {
				if err != nil {
					t.Errorf("%s under %s: %v", c.call.key(), prof, err)
					continue
				}
				st := vm.Stats()
				if st.Allocations != 1 || vm.HostCallCounts()[c.call.key()] != 1 {
					t.Errorf("%s under %s: stats %+v, calls %v", c.call.key(), prof, st, vm.HostCallCounts())
				}
				s, err := vm.NewStream(nil)
				if err != nil {
					t.Fatal(err)
				}
				if a, err := s.RequestHeaders(nil, false); err != nil || a != 'a'|'b'<<8|'c'<<16|'d'<<24 {
					t.Errorf("%s under %s: configuration word %#x, %v", c.call.key(), prof, uint32(a), err)
				}
				continue
			}
			te := trapErr(t, err)
			if te.Callback != "proxy_on_vm_start" || !strings.Contains(te.Msg, "allocation") ||
				!strings.Contains(te.Msg, "restricted_callback") || !strings.Contains(te.Msg, c.call.key()) {
				t.Errorf("%s under %s: trap %+v", c.call.key(), prof, te)
			}
		}
	}
}

func TestTrapInInitializeFailsNewVM(t *testing.T) {
	m := newMod()
	m.proxyBasics()
	m.Func("_initialize", nil, nil, nil, unreachable)
	h := newHost(t, m.Bytes(), wasmhost.Config{})
	vm, err := h.NewVM(context.Background())
	if vm != nil {
		t.Fatal("NewVM returned a VM")
	}
	te := trapErr(t, err)
	if te.Callback != "_initialize" || !strings.Contains(te.Msg, "unreachable") {
		t.Fatalf("trap %+v", te)
	}
	if crit := h.LogMessages(wasmhost.LogCritical); len(crit) != 1 || !strings.HasPrefix(crit[0], "Function: _initialize failed: ") {
		t.Fatalf("critical logs %q", crit)
	}
	// The host still makes VMs (each fails the same way); Close is clean.
	if _, err := h.NewVM(context.Background()); !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("second NewVM: %v", err)
	}
}

func TestStartFunctionsRunInEnvoysOrder(t *testing.T) {
	// _initialize then main(0, 0); _start only without _initialize.
	m := newMod()
	log := m.Import("env", "proxy_log", p(3), p(1))
	m.proxyBasics()
	str := m.strings()
	logStr := func(s string) []byte {
		a, n := str.put(s)
		return ops(i32c(2), i32c(a), i32c(n), call(log), drop)
	}
	m.Func("_initialize", nil, nil, nil, logStr("initialize"))
	m.Func("main", p(2), p(1), nil, logStr("main"), lget(0), lget(1), i32add)
	m.Func("_start", nil, nil, nil, logStr("start"))
	m.Func("proxy_on_context_create", p(2), nil, nil, logStr("context_create"))
	m.Func("proxy_on_vm_start", p(2), p(1), nil, logStr("vm_start"), i32c(1))
	m.Func("proxy_on_configure", p(2), p(1), nil, logStr("configure"), i32c(1))
	h := newHost(t, m.Bytes(), wasmhost.Config{})
	newVM(t, h)
	want := []string{"initialize", "main", "context_create", "vm_start", "configure"}
	if got := h.LogMessages(wasmhost.LogInfo); !slices.Equal(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
	for _, e := range h.Logs() {
		if e.Context != wasmhost.RootContextID && e.Message != "initialize" && e.Message != "main" {
			t.Errorf("%q logged in context %d", e.Message, e.Context)
		}
	}
}

func TestConfigureReturningFalseIsErrConfigure(t *testing.T) {
	getBuf := uint32(0)
	build := func(which string) []byte {
		m := newMod()
		getBuf = m.Import("env", "proxy_get_buffer_bytes", p(5), p(1))
		m.proxyBasics()
		vmStart, configure := i32c(1), i32c(1)
		if which == "vm_start" {
			vmStart = i32c(0)
		} else {
			// configure succeeds iff the plugin configuration is not empty,
			// and records get_buffer_bytes' status.
			configure = ops(
				store(results, i32c(7), i32c(0), lget(1), i32c(0x300), i32c(0x304), call(getBuf)),
				lget(1))
		}
		m.Func("proxy_on_vm_start", p(2), p(1), nil, vmStart)
		m.Func("proxy_on_configure", p(2), p(1), nil, configure)
		// After start-up the plugin configuration is no longer readable.
		m.Func("proxy_on_request_headers", p(3), p(1), nil,
			i32c(7), i32c(0), i32c(10), i32c(0x300), i32c(0x304), call(getBuf))
		m.peekBody()
		return m.Bytes()
	}
	for _, c := range []struct {
		wasm []byte
		cfg  string
	}{{build("vm_start"), "x"}, {build("configure"), ""}} {
		h := newHost(t, c.wasm, wasmhost.Config{PluginConfig: []byte(c.cfg)})
		vm, err := h.NewVM(context.Background())
		if vm != nil || !errors.Is(err, wasmhost.ErrConfigure) || errors.Is(err, wasmhost.ErrVMFailed) {
			t.Fatalf("NewVM = %v, %v; want ErrConfigure", vm, err)
		}
	}
	h := newHost(t, build("configure"), wasmhost.Config{PluginConfig: []byte(`{"k":1}`)})
	s, err := newVM(t, h).NewStream(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := peek(t, s, results); got != uint32(wasmhost.StatusOK) {
		t.Fatalf("get_buffer_bytes(PluginConfiguration) in on_configure = %d", got)
	}
	if got := peek(t, s, 0x304); got != 7 {
		t.Fatalf("plugin configuration size = %d", got)
	}
	if a, err := s.RequestHeaders(nil, false); err != nil || wasmhost.Status(a) != wasmhost.StatusNotFound {
		t.Fatalf("get_buffer_bytes(PluginConfiguration) later = %d, %v; want NotFound", a, err)
	}
}

// pollGuest's on_request_headers returns poll_oneoff's errno*1000 + nevents
// (nevents preset to 255).
func pollGuest() []byte {
	m := newMod()
	poll := m.Import("wasi_snapshot_preview1", "poll_oneoff", p(4), p(1))
	m.proxyBasics()
	m.Func("proxy_on_request_headers", p(3), p(1), nil,
		store(0x400, i32c(255)),
		i32c(0x200), i32c(0x300), i32c(1), i32c(0x400), call(poll), i32c(1000), i32mul,
		load(0x400), i32add)
	return m.Bytes()
}

func TestPollOneoffPerProfile(t *testing.T) {
	wasm := pollGuest()
	for _, c := range []struct {
		prof wasmhost.Profile
		want uint32
	}{
		{wasmhost.ProfileEnvoy133, 52*1000 + 255}, // ENOSYS, nevents untouched
		{wasmhost.ProfileEnvoy139, 0},             // success, no events
	} {
		h := newHost(t, wasm, wasmhost.Config{Profile: c.prof})
		s, err := newVM(t, h).NewStream(nil)
		if err != nil {
			t.Fatal(err)
		}
		if a, err := s.RequestHeaders(nil, false); err != nil || uint32(a) != c.want {
			t.Errorf("%s: poll_oneoff = %d, %v; want %d", c.prof, a, err, c.want)
		}
	}
}

func TestProcExitTrapsAndFailsTheVM(t *testing.T) {
	m := newMod()
	exit := m.Import("wasi_snapshot_preview1", "proc_exit", p(1), nil)
	m.proxyBasics()
	m.Func("proxy_on_request_headers", p(3), p(1), nil, i32c(3), call(exit), i32c(0))
	h := newHost(t, m.Bytes(), wasmhost.Config{})
	vm := newVM(t, h)
	s, err := vm.NewStream(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.RequestHeaders(nil, false)
	te := trapErr(t, err)
	if te.Callback != "proxy_on_request_headers" || te.Msg != "proc_exit(3)" {
		t.Fatalf("trap %+v", te)
	}
	if !errors.Is(vm.Err(), wasmhost.ErrVMFailed) {
		t.Fatalf("vm.Err() = %v", vm.Err())
	}
	if _, err := vm.NewStream(nil); !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("NewStream after the trap: %v", err)
	}
}

func TestEnvironmentReachesGuestDuringInitialize(t *testing.T) {
	m := newMod()
	sizes := m.Import("wasi_snapshot_preview1", "environ_sizes_get", p(2), p(1))
	environ := m.Import("wasi_snapshot_preview1", "environ_get", p(2), p(1))
	log := m.Import("env", "proxy_log", p(3), p(1))
	m.proxyBasics()
	m.Func("_initialize", nil, nil, nil,
		store(results+8, i32c(results), i32c(results+4), call(sizes)),
		store(results+12, i32c(0x200), i32c(0x400), call(environ)),
		i32c(int32(wasmhost.LogInfo)), i32c(0x400), load(results+4), call(log), drop)
	m.peekBody()
	h := newHost(t, m.Bytes(), wasmhost.Config{Env: map[string]string{"STOA_B": "two", "STOA_A": "1"}})
	s, err := newVM(t, h).NewStream(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.LogMessages(wasmhost.LogInfo); !slices.Equal(got, []string{"STOA_A=1\x00STOA_B=two\x00"}) {
		t.Fatalf("environ = %q", got)
	}
	if n, errno1, errno2 := peek(t, s, results), peek(t, s, results+8), peek(t, s, results+12); n != 2 || errno1 != 0 || errno2 != 0 {
		t.Fatalf("count %d, errnos %d %d", n, errno1, errno2)
	}
	// environ_get's pointer table points at each entry.
	if p0, p1 := peek(t, s, 0x200), peek(t, s, 0x204); p0 != 0x400 || p1 != 0x400+uint32(len("STOA_A=1\x00")) {
		t.Fatalf("pointers %#x %#x", p0, p1)
	}
}

func TestFdWriteGoesToTheLog(t *testing.T) {
	m := newMod()
	fdWrite := m.Import("wasi_snapshot_preview1", "fd_write", p(4), p(1))
	m.proxyBasics()
	str := m.strings()
	write := func(fd int32, s string, res uint32) []byte {
		a, n := str.put(s)
		iov := uint32(0x600 + 16*fd)
		return ops(store(iov, i32c(a)), store(iov+4, i32c(n)),
			store(res, i32c(fd), i32c(int32(iov)), i32c(1), i32c(int32(res+4)), call(fdWrite)))
	}
	// Allowed during _initialize: the Go runtime prints there.
	m.Func("_initialize", nil, nil, nil, write(1, "hello\n", results), write(2, "oops\n", results+8))
	m.Func("proxy_on_request_headers", p(3), p(1), nil, write(3, "nowhere\n", results+16), load(results+16))
	m.peekBody()
	h := newHost(t, m.Bytes(), wasmhost.Config{})
	s, err := newVM(t, h).NewStream(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.LogMessages(wasmhost.LogInfo); !slices.Equal(got, []string{"hello"}) {
		t.Fatalf("stdout → info: %q", got)
	}
	if got := h.LogMessages(wasmhost.LogError); !slices.Equal(got, []string{"oops"}) {
		t.Fatalf("stderr → error: %q", got)
	}
	if errno, n := peek(t, s, results), peek(t, s, results+4); errno != 0 || n != 6 {
		t.Fatalf("fd_write(1) = errno %d, nwritten %d", errno, n)
	}
	if a, err := s.RequestHeaders(nil, false); err != nil || a != 8 {
		t.Fatalf("fd_write(3) = %d, %v; want EBADF (8)", a, err)
	}
}

func TestLogsCapturedByLevel(t *testing.T) {
	m := newMod()
	log := m.Import("env", "proxy_log", p(3), p(1))
	level := m.Import("env", "proxy_get_log_level", p(1), p(1))
	m.proxyBasics()
	str := m.strings()
	var code []byte
	for l := range 6 {
		a, n := str.put("level " + itoa(l))
		code = append(code, ops(i32c(int32(l)), i32c(a), i32c(n), call(log), drop)...)
	}
	m.Func("proxy_on_vm_start", p(2), p(1), nil, code, i32c(1))
	m.Func("proxy_on_request_headers", p(3), p(1), nil, code,
		i32c(0x300), call(level), drop, load(0x300))
	h := newHost(t, m.Bytes(), wasmhost.Config{LogLevel: wasmhost.LogWarn, MaxLogs: 8})
	vm := newVM(t, h)
	s, err := vm.NewStream(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.RequestHeaders(nil, false)
	if err != nil || wasmhost.LogLevel(a) != wasmhost.LogWarn {
		t.Fatalf("proxy_get_log_level = %d, %v", a, err)
	}
	for l := wasmhost.LogTrace; l <= wasmhost.LogCritical; l++ {
		// Every level is captured whatever LogLevel says; MaxLogs bounds
		// what is stored, not what is counted.
		if n := h.LogCount(l); n != 2 {
			t.Errorf("LogCount(%s) = %d", l, n)
		}
	}
	logs := h.Logs()
	if len(logs) != 8 {
		t.Fatalf("%d entries stored, want MaxLogs = 8", len(logs))
	}
	if logs[0].Level != wasmhost.LogTrace || logs[0].Message != "level 0" || logs[0].Context != wasmhost.RootContextID {
		t.Fatalf("first entry %+v", logs[0])
	}
	if logs[6].Context != s.ID() || logs[6].Message != "level 0" {
		t.Fatalf("stream entry %+v (stream %d)", logs[6], s.ID())
	}
	if got := h.LogMessages(wasmhost.LogWarn); !slices.Equal(got, []string{"level 3"}) {
		t.Fatalf("LogMessages(warn) = %q", got)
	}
	h.ClearLogs()
	if len(h.Logs()) != 0 || h.LogCount(wasmhost.LogInfo) != 0 {
		t.Fatal("ClearLogs left entries")
	}
}
