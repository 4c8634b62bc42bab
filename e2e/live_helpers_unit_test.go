package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stoa-platform/stoa-guard/jwtauthn"
	"github.com/stretchr/testify/require"
)

// fakeT records what findEnvoy asks of the test; Skip and Fatalf stop it like the real ones.
type fakeT struct{ skipped, fatal string }

type stop struct{}

func (f *fakeT) Helper()                        {}
func (f *fakeT) Skip(args ...any)               { f.skipped = fmt.Sprint(args...); panic(stop{}) }
func (f *fakeT) Fatalf(format string, a ...any) { f.fatal = fmt.Sprintf(format, a...); panic(stop{}) }

func runFind(getenv func(string) string, defURL, defAdmin string) (tg liveTarget, f *fakeT) {
	f = &fakeT{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stop); !ok {
				panic(r)
			}
		}
	}()
	return findEnvoyAt(f, getenv, defURL, defAdmin), f
}

func envoyLike(server string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if server != "" {
			w.Header().Set("Server", server)
		}
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
}

func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	return u
}

func TestFindEnvoy(t *testing.T) {
	envoy := envoyLike("envoy")
	defer envoy.Close()
	other := envoyLike("") // answers /health, but is not an Envoy (e.g. `make run`'s local proxy)
	defer other.Close()
	none := func(string) string { return "" }

	tg, f := runFind(none, envoy.URL, "http://127.0.0.1:9902")
	require.Empty(t, f.skipped+f.fatal)
	require.Equal(t, liveTarget{url: envoy.URL, admin: "http://127.0.0.1:9902"}, tg)

	for name, u := range map[string]string{"nothing listening": closedURL(t), "not an Envoy": other.URL} {
		_, f = runFind(none, u, "")
		require.Equal(t, noEnvoy, f.skipped, name)
		require.NotContains(t, f.skipped, "\n", "one line")
	}

	// ENVOY_URL is trusted as given (any proxy under test), and an unreachable one fails.
	env := map[string]string{"ENVOY_URL": other.URL + "/", "ENVOY_ADMIN_URL": "http://127.0.0.1:19902/"}
	tg, f = runFind(func(k string) string { return env[k] }, closedURL(t), "")
	require.Empty(t, f.skipped+f.fatal)
	require.Equal(t, liveTarget{url: other.URL, admin: "http://127.0.0.1:19902", explicit: true}, tg)
	env = map[string]string{"ENVOY_URL": closedURL(t)}
	_, f = runFind(func(k string) string { return env[k] }, envoy.URL, "")
	require.Empty(t, f.skipped)
	require.Contains(t, f.fatal, "does not answer")
}

func TestLiveExpectFromEnvoyYAML(t *testing.T) {
	src := readRepoFile(t, "envoy.yaml")
	e, err := loadLiveExpect(src)
	require.NoError(t, err)
	require.Equal(t, "https://console.stoa.dev", e.origin)
	require.Equal(t, "https://auth.stoa.local/realms/demo", e.issuer)
	require.Equal(t, "stoa-mcp-gateway", e.allowedAud)
	require.Equal(t, 35*time.Second, e.routeIdle)
	require.Equal(t, "60", e.retryAfter)
	require.Equal(t, 6, e.maxAttempts, "min(max_per_ip 10, rate_limit_per_min 5) + 1")
	require.Equal(t, 31*time.Second, e.idleDeadline, "idle_timeout 30s + tick 1s")
	require.Less(t, e.idleDeadline, e.routeIdle, "the filter closes before Envoy's backstop")

	_, err = loadLiveExpect(mutate(t, src, "ALLOWED_AUDIENCES: stoa-mcp-gateway,account", `ALLOWED_AUDIENCES: ""`, 1))
	require.ErrorContains(t, err, "audience check is off")
	_, err = loadLiveExpect(mutate(t, src, "CORS_ORIGINS: https://console.stoa.dev,", `CORS_ORIGINS: "*",`, 1))
	require.Error(t, err)
}

// envoyJWKS is the inline JWKS of envoy.yaml's jwt_authn provider.
func envoyJWKS(t *testing.T) *jwtauthn.KeySet {
	bs, err := loadBootstrap(readRepoFile(t, "envoy.yaml"))
	require.NoError(t, err)
	p, err := extractEnvoyParts(bs)
	require.NoError(t, err)
	for _, pr := range p.jwt.GetProviders() {
		ks, err := jwtauthn.ParseJWKS([]byte(pr.GetLocalJwks().GetInlineString()))
		require.NoError(t, err)
		return ks
	}
	t.Fatal("no provider")
	return nil
}

// TestMintedTokensPassEnvoyJWTAuthn: the suite's tokens are signed with the key envoy.yaml
// trusts, so a wrong audience reaches the filter (401 invalid_audience) instead of failing
// signature checks in jwt_authn.
func TestMintedTokensPassEnvoyJWTAuthn(t *testing.T) {
	key := readRepoFile(t, "demo/demo-signing-key.pem")
	e, err := loadLiveExpect(readRepoFile(t, "envoy.yaml"))
	require.NoError(t, err)
	now := time.Now()
	demoKeys, err := jwtauthn.ParseJWKS(readRepoFile(t, "demo/jwks.json"))
	require.NoError(t, err)
	for _, ks := range []*jwtauthn.KeySet{envoyJWKS(t), demoKeys} {
		v, err := jwtauthn.NewVerifier(jwtauthn.Config{Issuer: e.issuer, Keys: ks})
		require.NoError(t, err)
		for _, aud := range []any{e.allowedAud, e.wrongAud, []string{"a", e.allowedAud}, nil} {
			tok, err := mintToken(key, e.issuer, aud, "acme", now)
			require.NoError(t, err)
			payload, err := v.Verify(tok, now)
			require.NoError(t, err, "aud %v", aud)
			var claims map[string]any
			require.NoError(t, json.Unmarshal(payload, &claims))
			require.Equal(t, "acme", claims["tenant_id"])
			if aud == nil {
				require.NotContains(t, claims, "aud")
			} else {
				j, _ := json.Marshal(aud)
				got, _ := json.Marshal(claims["aud"])
				require.JSONEq(t, string(j), string(got))
			}
			var hdr map[string]string
			h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
			require.NoError(t, json.Unmarshal(h, &hdr))
			require.Equal(t, demoKid, hdr["kid"])
		}
	}
	// Broken twins: another issuer, an expired clock, not a key.
	tok, err := mintToken(key, "https://evil.example", e.allowedAud, "acme", now)
	require.NoError(t, err)
	v, err := jwtauthn.NewVerifier(jwtauthn.Config{Issuer: e.issuer, Keys: envoyJWKS(t)})
	require.NoError(t, err)
	_, err = v.Verify(tok, now)
	require.Error(t, err)
	tok, err = mintToken(key, e.issuer, e.allowedAud, "acme", now.Add(-time.Hour))
	require.NoError(t, err)
	_, err = v.Verify(tok, now)
	require.Error(t, err)
	_, err = mintToken([]byte("not a key"), e.issuer, e.allowedAud, "acme", now)
	require.Error(t, err)
}

func TestReadSSEEvent(t *testing.T) {
	stream := ": comment, ignored\n\n" +
		"event: endpoint\r\ndata: /mcp/messages?sessionid=abc\r\n\r\n" +
		"id: 7\ndata: line one\ndata:line two\nretry: 1000\nunknown: x\n\n" +
		"data: {\"jsonrpc\":\"2.0\"}\n\n" +
		"data: cut"
	r := bufio.NewReader(strings.NewReader(stream))
	ev, err := readSSEEvent(r)
	require.NoError(t, err)
	require.Equal(t, sseEvent{Event: "endpoint", Data: "/mcp/messages?sessionid=abc"}, ev)
	ev, err = readSSEEvent(r)
	require.NoError(t, err)
	require.Equal(t, sseEvent{ID: "7", Data: "line one\nline two"}, ev)
	ev, err = readSSEEvent(r)
	require.NoError(t, err)
	require.Equal(t, `{"jsonrpc":"2.0"}`, ev.Data)
	_, err = readSSEEvent(r)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a stream cut mid-event (a reset) is not a clean end")

	_, err = readSSEEvent(bufio.NewReader(strings.NewReader("data: x\n\n")))
	require.NoError(t, err)
	r = bufio.NewReader(strings.NewReader("data: x\n\n\n"))
	_, err = readSSEEvent(r)
	require.NoError(t, err)
	_, err = readSSEEvent(r)
	require.ErrorIs(t, err, io.EOF)
	_, err = readSSEEvent(bufio.NewReader(strings.NewReader("")))
	require.ErrorIs(t, err, io.EOF)
}

// The SSE reader over a real HTTP stream that stops: the end is reported, bounded.
func TestOpenSSEAgainstAStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer ok":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: endpoint\ndata: /mcp/messages?sessionid=1\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
			// Cut the connection mid-stream, as a filter close (reset) would.
			conn, buf, _ := w.(http.Hijacker).Hijack()
			_ = buf.Flush()
			_ = conn.Close()
		case "Bearer hang":
			w.Header().Set("Content-Type", "text/event-stream")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":"too_many_requests","reason":"rate_limit","retry_after":60}`)
		}
	}))
	defer srv.Close()
	lc := newLiveClient(liveTarget{url: srv.URL})

	s, _ := lc.openSSE(t, "ok", 10*time.Second)
	require.NotNil(t, s)
	defer s.close()
	ev := <-s.events
	require.Equal(t, "endpoint", ev.Event)
	start := time.Now()
	err := <-s.end
	require.Error(t, err)
	require.NotErrorIs(t, err, io.EOF)
	require.Less(t, time.Since(start), 5*time.Second)

	h, _ := lc.openSSE(t, "hang", 500*time.Millisecond)
	require.NotNil(t, h)
	defer h.close()
	select {
	case err := <-h.end:
		require.ErrorIs(t, err, context.DeadlineExceeded, "a silent stream ends at its lifetime, reported as such")
	case <-time.After(5 * time.Second):
		t.Fatal("lifetime not enforced")
	}

	none, r := lc.openSSE(t, "other", 5*time.Second)
	require.Nil(t, none)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	ref := decodeRefusal(t, r.body)
	require.Equal(t, refusal{Error: "too_many_requests", Reason: "rate_limit", RetryAfter: 60}, ref)
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"60":                             time.Minute,
		" 60 ":                           time.Minute,
		"0":                              0,
		"Fri, 04 Dec 2026 12:01:00 GMT":  time.Minute,
		"Fri, 04 Dec 2026 11:00:00 GMT":  0, // in the past: retry now
		"Friday, 04-Dec-26 12:00:30 GMT": 30 * time.Second,
	} {
		got, err := parseRetryAfter(in, now)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-1", "1.5", "60s", "soon", "99999999999", "4 Dec 2026"} {
		_, err := parseRetryAfter(in, now)
		require.Error(t, err, in)
	}
}

func TestPromSamples(t *testing.T) {
	body := `# TYPE envoy_cluster_upstream_rq counter
envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="mcp_demo"} 12
# TYPE stoa_sse_rejected_total counter
stoa_sse_rejected_total{reason="rate_limit"} 3
stoa_sse_rejected_total{reason="ip_limit"} 0
stoa_sse_connections_total{tenant="acme"} 2 1733313600000
stoa_weird{a="x\"y",b="c,d"} NaN
server_live 1
`
	s, err := promSamples(body)
	require.NoError(t, err)
	require.Equal(t, 12.0, s[metric("envoy_cluster_upstream_rq", "envoy_cluster_name", "mcp_demo", "envoy_response_code", "200")], "label order does not matter")
	require.Equal(t, 3.0, s[metric("stoa_sse_rejected_total", "reason", "rate_limit")])
	v, ok := s[metric("stoa_sse_rejected_total", "reason", "ip_limit")]
	require.True(t, ok)
	require.Zero(t, v)
	require.Equal(t, 2.0, s[metric("stoa_sse_connections_total", "tenant", "acme")])
	require.True(t, math.IsNaN(s[metric("stoa_weird", "a", `x"y`, "b", "c,d")]))
	require.Equal(t, 1.0, s["server_live"])
	require.Equal(t, 2.0, delta(map[string]float64{"x": 1}, map[string]float64{"x": 3}, "x"))
	require.Equal(t, 3.0, delta(nil, map[string]float64{"x": 3}, "x"), "a series that appears counts from 0")

	for _, bad := range []string{"x{a=\"b\" 1", "x{a=b} 1", "x{a=\"b} 1", "x", "x{a=\"b\"} one"} {
		_, err := promSamples(bad + "\n")
		require.Error(t, err, bad)
	}
}
