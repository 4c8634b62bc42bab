package localproxy

import (
	"bufio"
	"context"
	"crypto/rsa"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/internal/wasmbuild"
	"github.com/stoa-platform/stoa-guard/jwtauthn"
)

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m)) }

// The demo identity (demo/README.md): what `make run` and stoa-token use.
const (
	demoIssuer = "https://auth.stoa.local/realms/demo"
	demoKid    = "stoa-demo-1"
)

var (
	wasmOnce  sync.Once
	wasmBytes []byte
	wasmErr   error

	demoOnce sync.Once
	demoKey  *rsa.PrivateKey
	demoKS   *jwtauthn.KeySet
	demoErr  error
)

// filterWasm builds the real filter module once per test binary.
func filterWasm(t testing.TB) []byte {
	t.Helper()
	path := wasmbuild.Build(t, "github.com/stoa-platform/stoa-guard", "-trimpath", "-ldflags=-s -w")
	wasmOnce.Do(func() { wasmBytes, wasmErr = os.ReadFile(path) })
	require.NoError(t, wasmErr)
	return wasmBytes
}

func loadDemo(t testing.TB) {
	t.Helper()
	demoOnce.Do(func() {
		var pemb, doc []byte
		if pemb, demoErr = os.ReadFile("../demo/demo-signing-key.pem"); demoErr != nil {
			return
		}
		if demoKey, demoErr = jwtauthn.ParseRSAPrivateKeyPEM(pemb); demoErr != nil {
			return
		}
		if doc, demoErr = os.ReadFile("../demo/jwks.json"); demoErr != nil {
			return
		}
		demoKS, demoErr = jwtauthn.ParseJWKS(doc)
	})
	require.NoError(t, demoErr)
}

// demoJWT is the jwt_authn stand-in configured as `make run` does.
func demoJWT(t testing.TB) *jwtauthn.Filter {
	loadDemo(t)
	v, err := jwtauthn.NewVerifier(jwtauthn.Config{Issuer: demoIssuer, Keys: demoKS})
	require.NoError(t, err)
	return &jwtauthn.Filter{Verifier: v}
}

// demoToken mints a token with the demo key, as stoa-token does.
func demoToken(t testing.TB, aud, tenant string) string {
	loadDemo(t)
	now := time.Now()
	c := map[string]any{"iss": demoIssuer, "sub": "demo-user", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "aud": aud}
	if tenant != "" {
		c["tenant_id"] = tenant
	}
	tok, err := signDemo(c)
	require.NoError(t, err)
	return tok
}

// signDemo signs claims with the demo key (loadDemo first).
func signDemo(claims map[string]any) (string, error) {
	return jwtauthn.SignRS256(demoKey, demoKid, claims)
}

// wasmOpts configures a wasmHarness.
type wasmOpts struct {
	plugin   string // plugin JSON; "" for none
	env      map[string]string
	workers  int    // default 2
	profile  string // default ">=1.39"
	metaKey  string // JWTMetadataKey; default "jwt_payload" as the command's flag
	noMeta   bool   // JWTMetadataKey ""
	upstream http.Handler
	// upstreamH2C serves the upstream over cleartext HTTP/2 and makes the
	// proxy use it: one TCP connection carries many streams (load tests,
	// where one connection per stream on both legs would double the
	// descriptors needed).
	upstreamH2C bool
	mod         func(*Config)
	log         *slog.Logger
}

// wasmHarness is the local proxy with the real filter, the jwt_authn
// stand-in on the demo key, an upstream and the admin endpoints, all on
// loopback.
type wasmHarness struct {
	t        testing.TB
	eng      *WasmEngine
	proxy    *Proxy
	srv      *http.Server
	url      string
	admin    string
	upstream *httptest.Server
	reached  chan string // upstream request paths (non-blocking)
}

func newWasmHarness(t testing.TB, o wasmOpts) *wasmHarness {
	t.Helper()
	if o.workers == 0 {
		o.workers = 2
	}
	if o.metaKey == "" && !o.noMeta {
		o.metaKey = "jwt_payload"
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &wasmHarness{t: t, reached: make(chan string, 64)}
	up := o.upstream
	if up == nil {
		up = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "upstream ok")
		})
	}
	us := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.reached <- r.URL.Path:
		default:
		}
		up.ServeHTTP(w, r)
	}))
	var tr http.RoundTripper
	if o.upstreamH2C {
		us.Config.Protocols = new(http.Protocols)
		us.Config.Protocols.SetUnencryptedHTTP2(true)
		us.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 1000}
		t2 := &http.Transport{DisableCompression: true, ResponseHeaderTimeout: 30 * time.Second}
		t2.Protocols = new(http.Protocols)
		t2.Protocols.SetUnencryptedHTTP2(true)
		t2.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 1000}
		tr = t2
	}
	us.Start()
	h.upstream = us
	t.Cleanup(us.Close)

	eng, err := NewWasmEngine(context.Background(), WasmConfig{
		Module: filterWasm(t), PluginConfig: []byte(o.plugin), Env: o.env, Workers: o.workers,
		Profile: o.profile, StatsTags: StatsTags, JWTMetadataKey: o.metaKey, Log: o.log,
	})
	require.NoError(t, err)
	h.eng = eng
	t.Cleanup(func() { _ = eng.Close() })

	u, _ := url.Parse(us.URL)
	cfg := Config{Upstream: u, Engine: eng, JWT: demoJWT(t), BypassCORSPreflight: true, Log: o.log, Transport: tr}
	if o.mod != nil {
		o.mod(&cfg)
	}
	p, err := New(cfg)
	require.NoError(t, err)
	h.proxy = p
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h.srv = p.Server()
	go func() { _ = h.srv.Serve(ln) }()
	t.Cleanup(func() { _ = h.srv.Close(); p.Wait() })
	h.url = "http://" + ln.Addr().String()

	as := httptest.NewServer(&Admin{Engine: eng})
	t.Cleanup(as.Close)
	h.admin = as.URL
	return h
}

// preq is one request through the proxy.
type preq struct {
	method, path string
	token        string // "" for none
	hdr          map[string]string
}

// client is a new HTTP client with its own connections (each request on a
// new connection when noKeepAlive), bounded.
func client(noKeepAlive bool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DisableKeepAlives: noKeepAlive, DisableCompression: true, Proxy: nil},
		Timeout:   15 * time.Second,
	}
}

func (h *wasmHarness) newRequest(ctx context.Context, r preq) *http.Request {
	h.t.Helper()
	if r.method == "" {
		r.method = "GET"
	}
	hr, err := http.NewRequestWithContext(ctx, r.method, h.url+r.path, nil)
	require.NoError(h.t, err)
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.hdr {
		hr.Header.Set(k, v)
	}
	return hr
}

// do sends r and returns the response with its whole body.
func (h *wasmHarness) do(c *http.Client, r preq) (*http.Response, string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := c.Do(h.newRequest(ctx, r))
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return resp, string(b)
}

// sse is one SSE stream opened through the proxy.
type sse struct {
	resp   *http.Response
	br     *bufio.Reader
	cancel context.CancelFunc
}

// openSSE opens GET /mcp/sse; the response is returned whatever its status
// (a refusal's body is read whole).
func (h *wasmHarness) openSSE(c *http.Client, token string, hdr map[string]string) (*sse, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := preq{path: "/mcp/sse", token: token, hdr: map[string]string{"Accept": "text/event-stream"}}
	for k, v := range hdr {
		r.hdr[k] = v
	}
	hr := h.newRequest(ctx, r)
	resp, err := c.Do(hr)
	if err != nil {
		cancel()
		return nil, err
	}
	return &sse{resp: resp, br: bufio.NewReader(resp.Body), cancel: cancel}, nil
}

func (s *sse) Close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// body reads a refused stream's (short) body.
func (s *sse) body() string {
	b, _ := io.ReadAll(io.LimitReader(s.resp.Body, 4096))
	return string(b)
}

// readLine reads one line within d.
func (s *sse) readLine(d time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	c := make(chan res, 1)
	go func() {
		l, err := s.br.ReadString('\n')
		c <- res{strings.TrimRight(l, "\r\n"), err}
	}()
	select {
	case r := <-c:
		return r.s, r.err
	case <-time.After(d):
		return "", errTimeout
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "timed out" }

var errTimeout error = timeoutErr{}

// metrics scrapes /stats/prometheus.
func (h *wasmHarness) metrics() string {
	h.t.Helper()
	resp, err := http.Get(h.admin + "/stats/prometheus")
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return string(b)
}

// metric returns one sample's value from the scrape (-1 when absent), e.g.
// metric(`stoa_sse_rejected_total{reason="ip_limit"}`).
func (h *wasmHarness) metric(sample string) int64 {
	h.t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\d+)$`)
	m := re.FindStringSubmatch(h.metrics())
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// gaugeSum sums stoa_sse_connections_total over tenants.
func (h *wasmHarness) gaugeSum() int64 {
	h.t.Helper()
	re := regexp.MustCompile(`(?m)^stoa_sse_connections_total\{[^}]*\} (\d+)$`)
	var sum int64
	for _, m := range re.FindAllStringSubmatch(h.metrics(), -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		sum += n
	}
	return sum
}

// eventually polls f every 20ms for at most d.
func eventually(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sseEvents is an upstream that sends "data: <n>" every period until the
// client goes away (or forever, up to limit events).
func sseEvents(period time.Duration, limit int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		t := time.NewTicker(period)
		defer t.Stop()
		for i := 0; i < limit; i++ {
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
				if _, err := io.WriteString(w, "data: "+strconv.Itoa(i)+"\n\n"); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	})
}

// sseSilent is an upstream that answers an SSE stream's headers, then holds
// it without a byte until the client goes away; gone is closed then.
func sseSilent(gone chan<- struct{}) http.Handler {
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		if gone != nil {
			once.Do(func() { close(gone) })
		}
	})
}

// mcpUpstream serves sse on /mcp/sse and a short text answer elsewhere.
func mcpUpstream(sse http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/mcp/sse" {
			sse.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "upstream ok")
	})
}
