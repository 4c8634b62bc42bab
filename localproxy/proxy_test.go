package localproxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/jwtauthn"
)

type harness struct {
	t        *testing.T
	eng      *fakeEngine
	proxy    *Proxy
	url      string
	upstream *httptest.Server
	seen     chan *http.Request
}

func newHarness(t *testing.T, eng *fakeEngine, up http.Handler, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, eng: eng, seen: make(chan *http.Request, 16)}
	if up == nil {
		up = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Upstream", "yes")
			_, _ = io.WriteString(w, "hello")
		})
	}
	h.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.seen <- r.Clone(context.Background()):
		default:
		}
		up.ServeHTTP(w, r)
	}))
	t.Cleanup(h.upstream.Close)
	u, _ := url.Parse(h.upstream.URL)
	cfg := Config{Upstream: u, Engine: eng}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	require.NoError(t, err)
	h.proxy = p
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := p.Server()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	h.url = "http://" + ln.Addr().String()
	return h
}

func (h *harness) do(req *http.Request) *http.Response {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	h.t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	require.NoError(h.t, err)
	return resp
}

func (h *harness) get(path string, hdr map[string][]string) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.url+path, nil)
	require.NoError(h.t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp := h.do(req)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestForwardsAsEnvoyWould(t *testing.T) {
	eng := &fakeEngine{}
	h := newHarness(t, eng, nil, nil)
	resp, body := h.get("/mcp/x?a=1&b=%2F", map[string][]string{
		"X-Forwarded-For":  {"203.0.113.7", "198.51.100.1, 10.0.0.1"},
		"X-Envoy-Internal": {"true"},
		"X-Jwt-Payload":    {"Zm9yZ2Vk"},
		"Connection":       {"X-Drop-Me"},
		"X-Drop-Me":        {"1"},
		"Accept":           {"text/event-stream"},
	})
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "hello", body)
	assert.Equal(t, "yes", resp.Header.Get("X-Upstream"))

	up := <-h.seen
	assert.Equal(t, "/mcp/x", up.URL.Path)
	assert.Equal(t, "a=1&b=%2F", up.URL.RawQuery)
	assert.Equal(t, []string{"203.0.113.7,198.51.100.1, 10.0.0.1,127.0.0.1"}, up.Header.Values("X-Forwarded-For"))
	assert.Empty(t, up.Header.Get("X-Envoy-Internal"))
	assert.Empty(t, up.Header.Get("X-Jwt-Payload"), "client-sent payload header must never reach the filter or upstream")
	assert.Empty(t, up.Header.Get("X-Drop-Me"))
	assert.Equal(t, "http", up.Header.Get("X-Forwarded-Proto"))
	assert.Len(t, up.Header.Get("X-Request-Id"), 36)
	assert.Equal(t, strings.TrimPrefix(h.url, "http://"), up.Host, ":authority kept")

	ss := eng.all()
	require.Len(t, ss, 1)
	s := ss[0]
	assert.Equal(t, []Header{
		{":authority", strings.TrimPrefix(h.url, "http://")},
		{":path", "/mcp/x?a=1&b=%2F"},
		{":method", "GET"},
		{":scheme", "http"},
	}, s.reqH[:4])
	assert.Equal(t, []string{"text/event-stream"}, header(s.reqH, "accept"))
	assert.Empty(t, header(s.reqH, "x-jwt-payload"))
	assert.Equal(t, "127.0.0.1", s.info.Source.Addr().String())
	assert.NotZero(t, s.info.Source.Port())
	assert.Equal(t, "HTTP/1.1", s.info.Protocol)
	assert.Equal(t, "200", header(s.respH, ":status")[0])
	waitFor(t, "stream end", func() bool { return s.Ended() == 1 })
	assert.Equal(t, []string{"request_headers", "response_headers", "response_body", "response_body_eos", "log", "done", "delete"}, s.Events())
}

func TestFilterMutationsApplied(t *testing.T) {
	eng := &fakeEngine{
		onRequest: func(s *fakeStream, h []Header) ([]Header, *LocalReply) {
			return append(h, Header{"x-added", "1"}), nil
		},
		onResponse: func(s *fakeStream, h []Header) ([]Header, *LocalReply) {
			return append(h, Header{"access-control-allow-origin", "https://console.stoa.dev"}, Header{"vary", "Origin"}), nil
		},
	}
	h := newHarness(t, eng, nil, nil)
	resp, _ := h.get("/", nil)
	assert.Equal(t, "https://console.stoa.dev", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "Origin", resp.Header.Get("Vary"))
	assert.Equal(t, "1", (<-h.seen).Header.Get("X-Added"))
}

func TestLocalReplyNeverReachesUpstream(t *testing.T) {
	eng := &fakeEngine{onRequest: func(s *fakeStream, h []Header) ([]Header, *LocalReply) {
		return nil, &LocalReply{Status: 429, Headers: []Header{{"retry-after", "60"}, {"content-type", "application/json"}}, Body: []byte(`{"reason":"rate_limit"}`)}
	}}
	h := newHarness(t, eng, nil, nil)
	resp, body := h.get("/mcp/sse", nil)
	assert.Equal(t, 429, resp.StatusCode)
	assert.Equal(t, "60", resp.Header.Get("Retry-After"))
	assert.Equal(t, `{"reason":"rate_limit"}`, body)
	select {
	case <-h.seen:
		t.Fatal("upstream reached")
	default:
	}
	s := eng.all()[0]
	waitFor(t, "end", func() bool { return s.Ended() == 1 })
	assert.Equal(t, []string{"request_headers", "log", "done", "delete"}, s.Events())
}

// sseUpstream writes one event per value received on next, flushing each,
// and ends when next is closed or the client goes away.
func sseUpstream(next <-chan string, gone chan<- struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for {
			select {
			case ev, ok := <-next:
				if !ok {
					return
				}
				_, _ = io.WriteString(w, "data: "+ev+"\n\n")
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				if gone != nil {
					close(gone)
				}
				return
			}
		}
	})
}

func openSSE(t *testing.T, h *harness) (*http.Response, *bufio.Reader, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", h.url+"/mcp/sse", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewReader(resp.Body), cancel
}

func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	c := make(chan res, 1)
	go func() {
		line, err := br.ReadString('\n')
		if err == nil {
			_, err = br.ReadString('\n') // blank line
		}
		c <- res{strings.TrimSpace(line), err}
	}()
	select {
	case r := <-c:
		require.NoError(t, r.err)
		return r.s
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s: the proxy buffers")
		return ""
	}
}

func TestSSEStreamedChunkByChunk(t *testing.T) {
	next := make(chan string)
	eng := &fakeEngine{}
	h := newHarness(t, eng, sseUpstream(next, nil), nil)
	resp, br, _ := openSSE(t, h)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	for _, ev := range []string{"one", "two", "three"} {
		next <- ev
		assert.Equal(t, "data: "+ev, readEvent(t, br))
	}
	s := eng.all()[0]
	s.mu.Lock()
	assert.Equal(t, []string{"data: one\n\n", "data: two\n\n", "data: three\n\n"}, s.body)
	s.mu.Unlock()
	close(next)
	waitFor(t, "end", func() bool { return s.Ended() == 1 })
}

func TestFilterCloseResetsClientAndUpstream(t *testing.T) {
	next := make(chan string)
	gone := make(chan struct{})
	eng := &fakeEngine{}
	h := newHarness(t, eng, sseUpstream(next, gone), nil)
	_, br, _ := openSSE(t, h)
	next <- "hi"
	assert.Equal(t, "data: hi", readEvent(t, br))

	s := eng.all()[0]
	s.Close() // close_stream from the filter's tick
	_, err := io.ReadAll(br)
	require.Error(t, err, "the client must see a reset, not a clean end")
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request not cancelled")
	}
	waitFor(t, "end", func() bool { return s.Ended() == 1 })
	assert.Equal(t, int64(0), h.proxy.ActiveStreams())
}

func TestFilterCloseBeforeResponseHeaders(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	eng := &fakeEngine{onRequest: func(s *fakeStream, h []Header) ([]Header, *LocalReply) {
		go func() { time.Sleep(50 * time.Millisecond); s.Close() }()
		return nil, nil
	}}
	h := newHarness(t, eng, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}), nil)
	req, _ := http.NewRequest("GET", h.url+"/slow", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := http.DefaultClient.Do(req.WithContext(ctx))
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "reset by the proxy, not by the client's timeout")
	waitFor(t, "end", func() bool { return eng.all()[0].Ended() == 1 })
}

func TestClientDisconnectEndsStream(t *testing.T) {
	next := make(chan string)
	gone := make(chan struct{})
	eng := &fakeEngine{}
	h := newHarness(t, eng, sseUpstream(next, gone), nil)
	_, br, cancel := openSSE(t, h)
	next <- "x"
	readEvent(t, br)
	cancel()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request not cancelled after the client left")
	}
	s := eng.all()[0]
	waitFor(t, "end", func() bool { return s.Ended() == 1 })
	ev := s.Events()
	assert.Equal(t, []string{"log", "done", "delete"}, ev[len(ev)-3:])
}

func TestUpstreamDownGoesThroughFilter(t *testing.T) {
	eng := &fakeEngine{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead, _ := url.Parse("http://" + ln.Addr().String())
	ln.Close()
	h := newHarness(t, eng, nil, func(c *Config) { c.Upstream = dead; c.DialTimeout = time.Second })
	resp, _ := h.get("/", nil)
	assert.Equal(t, 503, resp.StatusCode)
	s := eng.all()[0]
	waitFor(t, "end", func() bool { return s.Ended() == 1 })
	assert.Contains(t, s.Events(), "response_headers")
}

func TestWorkerPickedPerConnection(t *testing.T) {
	eng := &fakeEngine{workers: 3}
	h := newHarness(t, eng, nil, nil)
	// Keep-alive: same connection, same worker.
	for range 3 {
		h.get("/", nil)
	}
	ss := eng.all()
	assert.Equal(t, ss[0].worker, ss[1].worker)
	assert.Equal(t, ss[0].worker, ss[2].worker)
	assert.Equal(t, ss[0].info.ConnectionID, ss[2].info.ConnectionID)
	// New connections: round-robin.
	seen := map[int]bool{}
	for range 3 {
		tr := &http.Transport{}
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, err := c.Get(h.url + "/")
		require.NoError(t, err)
		resp.Body.Close()
		tr.CloseIdleConnections()
		all := eng.all()
		seen[all[len(all)-1].worker] = true
	}
	assert.Len(t, seen, 3)
}

func TestMaxHeaderBytes(t *testing.T) {
	eng := &fakeEngine{}
	h := newHarness(t, eng, nil, func(c *Config) { c.MaxHeaderBytes = 4096 })
	resp, _ := h.get("/", map[string][]string{"X-Big": {strings.Repeat("a", 64<<10)}})
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	assert.Empty(t, eng.all())
}

func TestNewRefusesBadConfig(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:1")
	_, err := New(Config{Upstream: u})
	require.Error(t, err)
	_, err = New(Config{Engine: &fakeEngine{}, Upstream: &url.URL{Scheme: "ftp", Host: "x"}})
	require.Error(t, err)
}

// --- jwt_authn stand-in in front of the filter ---

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

func jwtFilter(t *testing.T) *jwtauthn.Filter {
	keyOnce.Do(func() {
		var err error
		testKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
	})
	k, err := jwtauthn.JWK(&testKey.PublicKey, "k1", "RS256")
	require.NoError(t, err)
	doc, _ := json.Marshal(map[string]any{"keys": []any{k}})
	ks, err := jwtauthn.ParseJWKS(doc)
	require.NoError(t, err)
	v, err := jwtauthn.NewVerifier(jwtauthn.Config{Issuer: "https://issuer.test", Keys: ks})
	require.NoError(t, err)
	return &jwtauthn.Filter{Verifier: v}
}

func token(t *testing.T, aud string, exp time.Duration) string {
	tok, err := jwtauthn.SignRS256(testKey, "k1", map[string]any{"iss": "https://issuer.test", "aud": aud, "exp": time.Now().Add(exp).Unix()})
	require.NoError(t, err)
	return tok
}

func TestJWTStandIn(t *testing.T) {
	eng := &fakeEngine{}
	jf := jwtFilter(t)
	h := newHarness(t, eng, nil, func(c *Config) { c.JWT = jf; c.BypassCORSPreflight = true })

	// Valid token: verified payload forwarded, token removed.
	resp, _ := h.get("/mcp", map[string][]string{"Authorization": {"Bearer " + token(t, "stoa-mcp-gateway", time.Hour)}})
	assert.Equal(t, 200, resp.StatusCode)
	s := eng.all()[0]
	pl := header(s.reqH, "x-jwt-payload")
	require.Len(t, pl, 1)
	b, err := base64.RawURLEncoding.DecodeString(pl[0])
	require.NoError(t, err)
	assert.Contains(t, string(b), `"aud":"stoa-mcp-gateway"`)
	assert.Empty(t, header(s.reqH, "authorization"))
	assert.NotEmpty(t, s.info.JWTPayload)

	// Expired token: 401 from jwt_authn; the filter never sees it.
	resp, body := h.get("/mcp", map[string][]string{"Authorization": {"Bearer " + token(t, "stoa-mcp-gateway", -time.Hour)}})
	assert.Equal(t, 401, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	assert.Equal(t, "Jwt verification fails", body)
	assert.Len(t, eng.all(), 1)

	// No token: passes without payload.
	resp, _ = h.get("/mcp", nil)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, header(eng.all()[1].reqH, "x-jwt-payload"))
}

// TestClientPayloadHeaderStripped: a forged payload header never reaches the
// filter, with no token, with a valid token, and on a bypassed preflight.
func TestClientPayloadHeaderStripped(t *testing.T) {
	eng := &fakeEngine{}
	h := newHarness(t, eng, nil, func(c *Config) { c.JWT = jwtFilter(t); c.BypassCORSPreflight = true })
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"stoa-mcp-gateway","tenant_id":"victim"}`))

	h.get("/mcp", map[string][]string{"X-Jwt-Payload": {forged, forged}})
	h.get("/mcp", map[string][]string{"X-Jwt-Payload": {forged}, "Authorization": {"Bearer " + token(t, "other", time.Hour)}})
	req, _ := http.NewRequest("OPTIONS", h.url+"/mcp", nil)
	req.Header.Set("Origin", "https://console.stoa.dev")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("X-Jwt-Payload", forged)
	req.Header.Set("Authorization", "Bearer not-even-a-jwt")
	resp := h.do(req)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode, "preflight bypasses verification")

	ss := eng.all()
	require.Len(t, ss, 3)
	assert.Empty(t, header(ss[0].reqH, "x-jwt-payload"))
	require.Len(t, header(ss[1].reqH, "x-jwt-payload"), 1)
	assert.NotEqual(t, forged, header(ss[1].reqH, "x-jwt-payload")[0])
	assert.Empty(t, header(ss[2].reqH, "x-jwt-payload"))
}

func TestAdmin(t *testing.T) {
	a := &Admin{Engine: &fakeEngine{}}
	srv := httptest.NewServer(a)
	defer srv.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/ready")
	assert.Equal(t, 200, code)
	assert.Equal(t, "LIVE\n", body)
	code, body = get("/stats/prometheus")
	assert.Equal(t, 200, code)
	assert.Contains(t, body, `stoa_sse_connections_total{tenant="acme"} 1`)
	code, _ = get("/nope")
	assert.Equal(t, 404, code)
	a.SetDraining()
	code, _ = get("/ready")
	assert.Equal(t, 503, code)
	resp, err := http.Post(srv.URL+"/ready", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 405, resp.StatusCode)
}
