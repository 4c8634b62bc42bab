package wasmhost_test

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// These tests drive abi/internal/testguest, a standard-Go c-shared module,
// through the host: the Go runtime's start-up under the restricted
// callbacks, the allocator, the stream lifecycle and ticks.

var start = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func guestHost(t *testing.T, prof wasmhost.Profile, cfg wasmhost.Config) *wasmhost.Host {
	t.Helper()
	cfg.Profile = prof
	if cfg.Clock == nil {
		cfg.Clock = wasmhost.NewClock(start)
	}
	cfg.WASIClock = wasmhost.WASIClockFollow
	if cfg.PluginConfig == nil {
		cfg.PluginConfig = []byte(`{"guest":"test"}`)
	}
	return newHost(t, testGuestWasm(t), cfg)
}

func get(path string, extra ...wasmhost.Header) []wasmhost.Header {
	return append([]wasmhost.Header{{Name: ":method", Value: "GET"}, {Name: ":path", Value: path},
		{Name: ":authority", Value: "mcp.example"}}, extra...)
}

func TestGuestStartsUnderEachProfile(t *testing.T) {
	for _, prof := range profiles {
		t.Run(profileName(prof), func(t *testing.T) {
			h := guestHost(t, prof, wasmhost.Config{})
			vm := newVM(t, h)
			if got := h.LogMessages(wasmhost.LogInfo); !slices.Equal(got, []string{"testguest: vm start", "testguest: configured"}) {
				t.Fatalf("info logs %q", got)
			}
			if vm.TickPeriod() != time.Second {
				t.Fatalf("TickPeriod = %v", vm.TickPeriod())
			}
			v, _, err := h.Shared().Get("", "testguest.config", nil)
			if err != nil || string(v) != `{"guest":"test"}` {
				t.Fatalf("shared config %q, %v", v, err)
			}
			mem := vm.MemoryBytes()
			if mem == 0 || mem > 64<<20 {
				t.Fatalf("MemoryBytes = %d", mem)
			}
			t.Logf("memory after start: %.1f MiB; host calls %v", float64(mem)/(1<<20), vm.HostCallCounts())
		})
	}
}

func TestGuestRefusingConfigurationIsErrConfigure(t *testing.T) {
	h := guestHost(t, wasmhost.ProfileEnvoy133, wasmhost.Config{PluginConfig: []byte("fail")})
	vm, err := h.NewVM(t.Context())
	if vm != nil || !errors.Is(err, wasmhost.ErrConfigure) {
		t.Fatalf("NewVM = %v, %v; want ErrConfigure", vm, err)
	}
	if crit := h.LogMessages(wasmhost.LogCritical); !slices.Equal(crit, []string{"testguest: bad configuration"}) {
		t.Fatalf("critical logs %q", crit)
	}
}

func TestGuestLocalResponse(t *testing.T) {
	h := guestHost(t, wasmhost.ProfileEnvoy133, wasmhost.Config{})
	vm := newVM(t, h)
	s, err := vm.NewStream(peerProps)
	must(t, err)
	a, err := s.RequestHeaders(get("/local", wasmhost.Header{Name: "x-echo", Value: "first"},
		wasmhost.Header{Name: "x-echo", Value: "second"}), true)
	must(t, err)
	if a != wasmhost.ActionStopAllIterationAndWatermark {
		t.Fatalf("action %d after a local response, want %d", a, wasmhost.ActionStopAllIterationAndWatermark)
	}
	lr := s.LocalResponse()
	if lr == nil || lr.Status != 418 || string(lr.Body) != "local" || lr.Details != "testguest_local" {
		t.Fatalf("local response %+v", lr)
	}
	for name, want := range map[string]string{"x-echo": "first", "x-count": "5", "x-peer": "10.0.0.1:5000"} {
		if got, _ := wasmhost.HeaderValue(lr.Headers, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, err := s.RequestBody([]byte("late"), true); !errors.Is(err, wasmhost.ErrStreamStopped) {
		t.Fatalf("RequestBody after a local response: %v", err)
	}
	if _, err := s.ResponseHeaders([]wasmhost.Header{{Name: ":status", Value: "200"}}, true); !errors.Is(err, wasmhost.ErrStreamStopped) {
		t.Fatalf("ResponseHeaders after a local response: %v", err)
	}
	must(t, s.End())
	if v, _ := h.Metrics().Value("testguest_requests_total"); v != 1 {
		t.Fatalf("requests counter %d", v)
	}
	if v := h.Metrics().Int("testguest_active"); v != 0 {
		t.Fatalf("active gauge %d after the stream ended", v)
	}
}

func TestGuestHeaderMutationsAndContinue(t *testing.T) {
	h := guestHost(t, wasmhost.ProfileEnvoy139, wasmhost.Config{})
	vm := newVM(t, h)
	s, err := vm.NewStream(nil)
	must(t, err)
	a, err := s.RequestHeaders(get("/other",
		wasmhost.Header{Name: "x-echo", Value: "hi"},
		wasmhost.Header{Name: "x-replaced", Value: "old1"},
		wasmhost.Header{Name: "x-remove-me", Value: "1"},
		wasmhost.Header{Name: "x-replaced", Value: "old2"},
		wasmhost.Header{Name: "x-remove-me", Value: "2"}), false)
	if err != nil || a != wasmhost.ActionContinue {
		t.Fatalf("RequestHeaders = %d, %v", a, err)
	}
	want := []wasmhost.Header{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/other"},
		{Name: ":authority", Value: "mcp.example"}, {Name: "x-echo", Value: "hi"}, {Name: "x-replaced", Value: "yes"}}
	if got := s.RequestHeaderList(); !slices.Equal(got, want) {
		t.Fatalf("request headers %v\nwant %v", got, want)
	}
	_, err = s.ResponseHeaders([]wasmhost.Header{{Name: ":status", Value: "200"}}, false)
	must(t, err)
	if got, _ := wasmhost.HeaderValue(s.ResponseHeaderList(), "x-echo"); got != "hi" {
		t.Fatalf("response x-echo %q", got)
	}
	_, err = s.ResponseBody([]byte("data: chunk\n\n"), false)
	must(t, err)
	if s.Continues() != 1 {
		t.Fatalf("Continues = %d", s.Continues())
	}
	must(t, s.End())
	if vm.LiveStreams() != 0 {
		t.Fatalf("LiveStreams = %d", vm.LiveStreams())
	}
}

// on_log → on_done → on_delete reach the Go guest in that order; a late
// on_log (after on_delete) is ignored by the guest's dispatcher.
func TestGuestEndOrder(t *testing.T) {
	h := guestHost(t, wasmhost.ProfileEnvoy133, wasmhost.Config{LogLevel: wasmhost.LogDebug})
	vm := newVM(t, h)
	for _, c := range []struct {
		mode wasmhost.EndMode
		want []string
	}{
		{wasmhost.EndNormal, []string{"testguest: stream done", "testguest: done", "testguest: delete"}},
		{wasmhost.EndSkipLog, []string{"testguest: done", "testguest: delete"}},
		{wasmhost.EndLogAfterDelete, []string{"testguest: done", "testguest: delete"}},
	} {
		s, err := vm.NewStream(nil)
		must(t, err)
		_, err = s.RequestHeaders(get("/continue"), true)
		must(t, err)
		h.ClearLogs()
		must(t, s.EndWith(c.mode))
		if got := h.LogMessages(wasmhost.LogDebug); !slices.Equal(got, c.want) {
			t.Errorf("mode %d: %q, want %q", c.mode, got, c.want)
		}
	}
	if vm.LiveStreams() != 0 {
		t.Fatalf("LiveStreams = %d", vm.LiveStreams())
	}
}

// The guest closes a stream from proxy_on_tick (set_effective_context +
// close_stream); the host signals Closed after the tick returns.
func TestGuestCloseStreamFromTick(t *testing.T) {
	h := guestHost(t, wasmhost.ProfileEnvoy133, wasmhost.Config{})
	vm := newVM(t, h)
	s, err := vm.NewStream(nil)
	must(t, err)
	other, err := vm.NewStream(nil)
	must(t, err)
	_, err = s.RequestHeaders(get("/close"), true)
	must(t, err)
	_, err = other.RequestHeaders(get("/continue"), true)
	must(t, err)

	must(t, h.Advance(500*time.Millisecond)) // before the tick is due
	select {
	case <-s.Closed():
		t.Fatal("closed before any tick")
	default:
	}
	ran, err := vm.RunTimers()
	if ran || err != nil {
		t.Fatalf("RunTimers before the period = %v, %v", ran, err)
	}
	must(t, h.Advance(500*time.Millisecond))
	select {
	case <-s.Closed():
	default:
		t.Fatal("not closed after the tick")
	}
	if !s.CloseRequested() || other.CloseRequested() {
		t.Fatalf("CloseRequested: closed stream %v, other %v", s.CloseRequested(), other.CloseRequested())
	}
	select {
	case <-other.Closed():
		t.Fatal("the other stream was closed")
	default:
	}
	if n := vm.HostCallCounts()["env.proxy_close_stream"]; n != 1 {
		t.Fatalf("close_stream calls %d", n)
	}
	must(t, s.Reset())
	must(t, other.End())
	if vm.LiveStreams() != 0 {
		t.Fatalf("LiveStreams = %d", vm.LiveStreams())
	}
}

func TestGuestVMFailMidStream(t *testing.T) {
	h := guestHost(t, wasmhost.ProfileEnvoy133, wasmhost.Config{})
	vm := newVM(t, h)
	s, err := vm.NewStream(nil)
	must(t, err)
	_, err = s.RequestHeaders(get("/continue"), false)
	must(t, err)
	n := vm.Stats().Callbacks
	vm.Fail("injected")
	if _, err := s.RequestBody([]byte("{}"), true); !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("RequestBody: %v", err)
	}
	if err := s.End(); !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("End: %v", err)
	}
	if err := h.Advance(2 * time.Second); !errors.Is(err, wasmhost.ErrVMFailed) {
		t.Fatalf("Advance on a failed VM: %v", err)
	}
	if vm.Stats().Callbacks != n {
		t.Fatalf("%d callbacks after Fail", vm.Stats().Callbacks-n)
	}
	// The gauge stays where the failed VM left it, as in Envoy.
	if v := h.Metrics().Int("testguest_active"); v != 1 {
		t.Fatalf("active gauge %d", v)
	}
}

// VMs on several goroutines increment one shared key with CAS
// (get, then set with the cas seen): every success is counted exactly once,
// a lost race answers cas_mismatch. Run under -race.
func TestGuestSharedDataAcrossVMs(t *testing.T) {
	h := guestHost(t, wasmhost.ProfileEnvoy133, wasmhost.Config{})
	const vms, each = 4, 25
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		successes  int
		mismatches int
		values     = map[int]bool{}
	)
	for range vms {
		vm := newVM(t, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				s, err := vm.NewStream(nil)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := s.RequestHeaders(get("/shared"), true); err != nil {
					t.Error(err)
					return
				}
				lr := s.LocalResponse()
				if lr == nil {
					t.Error("no local response")
					return
				}
				v, _ := wasmhost.HeaderValue(lr.Headers, "x-shared")
				mu.Lock()
				if v == "cas_mismatch" {
					mismatches++
				} else if n, err := strconv.Atoi(v); err == nil && !values[n] {
					successes++
					values[n] = true
				} else {
					t.Errorf("x-shared %q (duplicate or garbage)", v)
				}
				mu.Unlock()
				if err := s.End(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	v, _, err := h.Shared().Get("", "testguest.counter", nil)
	must(t, err)
	if string(v) != strconv.Itoa(successes) || successes+mismatches != vms*each {
		t.Fatalf("counter %q, successes %d, mismatches %d", v, successes, mismatches)
	}
	t.Logf("%d successes, %d CAS mismatches", successes, mismatches)
}
