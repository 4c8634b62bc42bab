package moduletest

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/internal/spectable"
	"github.com/stoa-platform/stoa-guard/internal/wasmbuild"
	"github.com/stoa-platform/stoa-guard/localproxy"
	"github.com/stoa-platform/stoa-guard/wasmhost"
)

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m)) }

// profiles are the Envoy releases every module test runs under.
var profiles = []wasmhost.Profile{wasmhost.ProfileEnvoy133, wasmhost.ProfileEnvoy139}

// epoch is where every test's clock starts.
var epoch = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

var (
	wasmOnce  sync.Once
	wasmBytes []byte
	wasmErr   error
)

// filterWasm builds filter.wasm once per test binary, as `make build` does,
// or reads the module named by STOA_WASM (to prove another build of it,
// e.g. wasm-opt's output, with this suite).
func filterWasm(t testing.TB) []byte {
	t.Helper()
	path := os.Getenv("STOA_WASM")
	if path == "" {
		path = wasmbuild.Build(t, "github.com/stoa-platform/stoa-guard", "-trimpath", "-ldflags=-s -w")
	}
	wasmOnce.Do(func() { wasmBytes, wasmErr = os.ReadFile(path) })
	require.NoError(t, wasmErr)
	return wasmBytes
}

// statsTags are the tag rules the project ships (envoy.yaml), as the host takes them.
func statsTags() []wasmhost.TagRule {
	out := make([]wasmhost.TagRule, len(localproxy.StatsTags))
	for i, r := range localproxy.StatsTags {
		out[i] = wasmhost.TagRule{Name: r.Name, Regex: r.Regex}
	}
	return out
}

// newHost prepares filter.wasm as one plugin with a manual clock the guest's
// WASI clock follows. Closed at the end of the test.
func newHost(t testing.TB, profile wasmhost.Profile, plugin string, env map[string]string) *wasmhost.Host {
	t.Helper()
	cfg := wasmhost.Config{
		Profile:      profile,
		VMID:         "stoa",
		PluginConfig: []byte(plugin),
		Env:          env,
		LogLevel:     wasmhost.LogInfo,
		Clock:        wasmhost.NewClock(epoch),
		WASIClock:    wasmhost.WASIClockFollow,
		StatsTags:    statsTags(),
	}
	h, err := wasmhost.NewHost(context.Background(), filterWasm(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

// newVMs starts n VMs (workers) of h.
func newVMs(t testing.TB, h *wasmhost.Host, n int) []*wasmhost.VM {
	t.Helper()
	vms := make([]*wasmhost.VM, n)
	for i := range vms {
		vm, err := h.NewVM(context.Background())
		require.NoError(t, err, "critical logs: %v", h.LogMessages(wasmhost.LogCritical))
		vms[i] = vm
	}
	return vms
}

// req is one request. Zero fields take spectable's defaults.
type req struct {
	method, path, peer string
	headers            [][2]string
	meta               map[string]any // jwt_authn payload_in_metadata under spectable.MetadataKey
}

func hdrs(pairs [][2]string) []wasmhost.Header {
	out := make([]wasmhost.Header, len(pairs))
	for i, p := range pairs {
		out[i] = wasmhost.Header{Name: p[0], Value: p[1]}
	}
	return out
}

// open creates a stream on vm and runs its request headers.
func open(vm *wasmhost.VM, r req) (*wasmhost.Stream, wasmhost.Action, error) {
	method, path, peer := r.method, r.path, r.peer
	if method == "" {
		method = spectable.DefaultMethod
	}
	if path == "" {
		path = spectable.DefaultPath
	}
	if peer == "" {
		peer = spectable.DefaultPeer
	}
	props := wasmhost.Properties{wasmhost.Path("source", "address"): peer}
	if r.meta != nil {
		props[wasmhost.Path("metadata", "filter_metadata", "envoy.filters.http.jwt_authn", spectable.MetadataKey)] = r.meta
	}
	s, err := vm.NewStream(props)
	if err != nil {
		return nil, 0, err
	}
	hs := make([]wasmhost.Header, 0, 3+len(r.headers))
	hs = append(hs, wasmhost.Header{Name: ":method", Value: method}, wasmhost.Header{Name: ":path", Value: path},
		wasmhost.Header{Name: ":authority", Value: spectable.DefaultAuthority})
	for _, p := range r.headers {
		hs = append(hs, wasmhost.Header{Name: p[0], Value: p[1]})
	}
	act, err := s.RequestHeaders(hs, false)
	return s, act, err
}

// sseReq is an SSE request with payload p from peer.
func sseReq(p, peer string) req {
	return req{path: "/mcp/sse", peer: peer, headers: [][2]string{{"accept", "text/event-stream"}, {"x-jwt-payload", p}}}
}

// status is the local response status of s, 0 when none.
func status(s *wasmhost.Stream) int {
	if lr := s.LocalResponse(); lr != nil {
		return lr.Status
	}
	return 0
}

// metric reads a counter or gauge by stat name (wasmcustom. omitted) as a signed value.
func metric(h *wasmhost.Host, name string) int64 { return h.Metrics().Int(name) }

// --- spectable.Target over one VM -------------------------------------------

type moduleTarget struct {
	t    *testing.T
	h    *wasmhost.Host
	vm   *wasmhost.VM
	open []*wasmhost.Stream
}

// startModule returns a spectable.Start running the table on filter.wasm
// under profile, one VM per case.
func startModule(profile wasmhost.Profile) spectable.Start {
	return func(t *testing.T, plugin string, env map[string]string) (spectable.Target, []string) {
		h := newHost(t, profile, plugin, env)
		vm, err := h.NewVM(context.Background())
		critical := h.LogMessages(wasmhost.LogCritical)
		if err != nil {
			require.True(t, errors.Is(err, wasmhost.ErrConfigure), "a refused configuration is ErrConfigure, not %v", err)
			return nil, critical
		}
		return &moduleTarget{t: t, h: h, vm: vm}, critical
	}
}

func (m *moduleTarget) Do(r spectable.Request) spectable.Result {
	m.t.Helper()
	s, _, err := open(m.vm, req{method: r.Method, path: r.Path, peer: r.Peer, headers: r.Headers, meta: r.Metadata})
	require.NoError(m.t, err)
	m.open = append(m.open, s)
	var res spectable.Result
	if lr := s.LocalResponse(); lr != nil {
		res.Status, res.Body, res.Headers = lr.Status, string(lr.Body), map[string]string{}
		for _, h := range lr.Headers {
			res.Headers[h.Name] = h.Value
		}
		return res
	}
	if r.Response != nil {
		_, err := s.ResponseHeaders(hdrs(r.Response), false)
		require.NoError(m.t, err)
		res.ResponseHeaders = map[string]string{}
		for _, h := range s.ResponseHeaderList() {
			res.ResponseHeaders[h.Name] = h.Value
		}
	}
	return res
}

func (m *moduleTarget) EndOldest() {
	m.t.Helper()
	require.NotEmpty(m.t, m.open, "no open stream to end")
	require.NoError(m.t, m.open[0].End())
	m.open = m.open[1:]
}

func (m *moduleTarget) Advance(d time.Duration) { require.NoError(m.t, m.h.Advance(d)) }

func (m *moduleTarget) Metric(name string) uint64 {
	v, _ := m.h.Metrics().Value(name)
	return v
}

func (m *moduleTarget) Logs() string {
	var b strings.Builder
	for _, e := range m.h.Logs() {
		b.WriteString(e.Message)
		b.WriteByte('\n')
	}
	return b.String()
}
