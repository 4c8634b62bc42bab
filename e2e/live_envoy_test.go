package e2e

// The real-Envoy suite: the wazero-host scenarios, over HTTP, against an Envoy running this
// repository's envoy.yaml with filter.wasm (docker compose up, or ENVOY_URL). Without one it
// skips with one line. Expectations come from envoy.yaml (origins, limits, timeouts).
//
//	docker compose up -d && (cd e2e && go test -run TestLiveEnvoy -v .)
//	ENVOY_URL=http://127.0.0.1:8080 ENVOY_ADMIN_URL=http://127.0.0.1:9902 go test -run TestLiveEnvoy -v .
//
// -short leaves out the idle-close scenario (it waits sse.idle_timeout, 30 s).

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type liveClient struct {
	tg     liveTarget
	plain  *http.Client // every ordinary request: bounded end to end
	stream *http.Client // SSE: bounded by each stream's context
}

func newLiveClient(tg liveTarget) *liveClient {
	tr := &http.Transport{ResponseHeaderTimeout: 10 * time.Second, MaxIdleConnsPerHost: 4}
	return &liveClient{
		tg:     tg,
		plain:  &http.Client{Timeout: 10 * time.Second, Transport: tr},
		stream: &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second}},
	}
}

// liveResponse is a response with its body read (at most 64 KiB).
type liveResponse struct {
	status int
	header http.Header
	body   string
}

func (lc *liveClient) do(t *testing.T, method, path string, header map[string]string, body string) liveResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, lc.tg.url+path, rd)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := lc.plain.Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	require.NoError(t, err)
	return liveResponse{resp.StatusCode, resp.Header, string(b)}
}

// scrape reads the admin /stats/prometheus; nil when no admin URL is known.
func (lc *liveClient) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	if lc.tg.admin == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, lc.tg.admin+"/stats/prometheus", nil)
	require.NoError(t, err)
	resp, err := lc.plain.Do(req)
	require.NoError(t, err, "GET %s/stats/prometheus", lc.tg.admin)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	require.NoError(t, err)
	require.NotContains(t, string(b), ";.;stoa_", "a filter stat kept its label in the name: the stats tag regexes did not apply")
	s, err := promSamples(string(b))
	require.NoError(t, err)
	return s
}

// sseStream is one open event stream.
type sseStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent
	end    chan error // the read error that ended the stream, once
}

func (s *sseStream) close() { s.cancel(); _ = s.resp.Body.Close() }

// openSSE opens GET /mcp/sse, bounded by lifetime. On 200 the stream is read in the
// background; otherwise the response (body read) is returned and no stream.
func (lc *liveClient) openSSE(t *testing.T, token string, lifetime time.Duration) (*sseStream, liveResponse) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), lifetime)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, lc.tg.url+"/mcp/sse", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := lc.stream.Do(req)
	if err != nil {
		cancel()
		require.NoError(t, err, "GET /mcp/sse")
	}
	lr := liveResponse{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		lr.body = string(b)
		return nil, lr
	}
	s := &sseStream{resp: resp, cancel: cancel, events: make(chan sseEvent, 16), end: make(chan error, 1)}
	go func() {
		r := bufio.NewReader(resp.Body)
		for {
			ev, err := readSSEEvent(r)
			if err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				s.end <- err
				return
			}
			select {
			case s.events <- ev:
			default: // nobody reads: drop
			}
		}
	}()
	return s, lr
}

// refusal is the filter's JSON body for 401/403/429.
type refusal struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Reason      string `json:"reason"`
	RetryAfter  int    `json:"retry_after"`
}

func decodeRefusal(t *testing.T, body string) refusal {
	t.Helper()
	var r refusal
	require.NoError(t, json.Unmarshal([]byte(body), &r), "body %q", body)
	return r
}

// delta is after-before for one sample, missing samples counting 0.
func delta(before, after map[string]float64, key string) float64 { return after[key] - before[key] }

func TestLiveEnvoy(t *testing.T) {
	tg := findEnvoy(t, os.Getenv)
	e, err := loadLiveExpect(readRepoFile(t, "envoy.yaml"))
	require.NoError(t, err)
	key := readRepoFile(t, "demo/demo-signing-key.pem")
	lc := newLiveClient(tg)
	if tg.admin == "" {
		t.Log("ENVOY_ADMIN_URL is not set: metric checks are skipped")
	}
	before := lc.scrape(t)
	now := time.Now()
	good, err := mintToken(key, e.issuer, e.allowedAud, "acme", now)
	require.NoError(t, err)
	wrongAud, err := mintToken(key, e.issuer, e.wrongAud, "acme", now)
	require.NoError(t, err)

	t.Run("health", func(t *testing.T) {
		r := lc.do(t, http.MethodGet, "/health", nil, "")
		require.Equal(t, http.StatusOK, r.status)
	})

	t.Run("preflight allowed", func(t *testing.T) {
		r := lc.do(t, http.MethodOptions, "/mcp", map[string]string{
			"Origin": e.origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type",
		}, "")
		require.Equal(t, http.StatusNoContent, r.status, r.body)
		require.Equal(t, e.origin, r.header.Get("Access-Control-Allow-Origin"))
		require.Equal(t, "true", r.header.Get("Access-Control-Allow-Credentials"))
		require.Contains(t, r.header.Get("Access-Control-Allow-Methods"), "POST")
		require.Contains(t, strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "authorization")
		require.Equal(t, e.cfg.CORS.Policy.MaxAgeValue(), r.header.Get("Access-Control-Max-Age"))
		require.Contains(t, r.header.Get("Vary"), "Origin")
		require.Empty(t, r.header.Get("X-Envoy-Upstream-Service-Time"), "answered by the filter, never by the upstream")
	})

	t.Run("preflight refused: evil.com", func(t *testing.T) {
		r := lc.do(t, http.MethodOptions, "/mcp", map[string]string{
			"Origin": "https://evil.com", "Access-Control-Request-Method": "POST",
		}, "")
		require.Equal(t, http.StatusForbidden, r.status, r.body)
		for k := range r.header {
			require.False(t, strings.HasPrefix(strings.ToLower(k), "access-control-allow-"), "refused preflight carries %s", k)
		}
		require.Equal(t, "origin", decodeRefusal(t, r.body).Reason)
	})

	t.Run("cross-site request refused: evil.com", func(t *testing.T) {
		r := lc.do(t, http.MethodGet, "/mcp", map[string]string{"Origin": "https://evil.com", "Authorization": "Bearer " + good}, "")
		require.Equal(t, http.StatusForbidden, r.status, r.body)
		require.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
	})

	t.Run("no token: refused by jwt_authn", func(t *testing.T) {
		r := lc.do(t, http.MethodGet, "/mcp", nil, "")
		require.Equal(t, http.StatusUnauthorized, r.status, r.body)
	})

	t.Run("audience refused: token for another client", func(t *testing.T) {
		for _, path := range []string{"/mcp", "/mcp/sse"} {
			r := lc.do(t, http.MethodGet, path, map[string]string{"Authorization": "Bearer " + wrongAud, "Accept": "text/event-stream"}, "")
			require.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", path, r.body)
			require.True(t, strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`), r.header.Get("WWW-Authenticate"))
			require.Equal(t, "Invalid audience", decodeRefusal(t, r.body).Description)
			require.NotContains(t, r.body, wrongAud, "the token is never echoed")
			require.NotContains(t, r.body, e.allowedAud, "the allow list is never echoed")
		}
	})

	t.Run("audience allowed: reaches the upstream", func(t *testing.T) {
		r := lc.do(t, http.MethodGet, "/mcp", map[string]string{"Authorization": "Bearer " + good, "Accept": "application/json"}, "")
		require.NotContains(t, []int{401, 403, 429}, r.status, r.body)
		if strings.EqualFold(r.header.Get("Server"), "envoy") {
			require.NotEmpty(t, r.header.Get("X-Envoy-Upstream-Service-Time"), "status %d did not come from the upstream", r.status)
		}
	})

	t.Run("SSE idle close", func(t *testing.T) {
		if testing.Short() {
			t.Skipf("-short: waits sse.idle_timeout (%v)", e.cfg.SSE.IdleTimeout)
		}
		require.Less(t, e.idleDeadline, e.routeIdle, "envoy.yaml: Envoy's idle backstop must come after the filter's close")
		s := openAdmittedSSE(t, lc, good, e)
		defer s.close()
		select {
		case <-s.events: // the demo server's first event (the message endpoint)
		case err := <-s.end:
			t.Fatalf("stream ended before its first event: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no first event within 10s")
		}
		quiet := time.Now()
		var err error
		select {
		case err = <-s.end:
		case <-time.After(e.routeIdle + 10*time.Second):
			t.Fatalf("stream still open after %v of silence", e.routeIdle+10*time.Second)
		}
		took := time.Since(quiet)
		require.NotErrorIs(t, err, context.DeadlineExceeded)
		require.GreaterOrEqual(t, took, e.cfg.SSE.IdleTimeout-time.Second, "closed before sse.idle_timeout (%v)", err)
		require.Less(t, took, e.routeIdle, "closed by Envoy's backstop (%v), not by the filter", e.routeIdle)
		require.LessOrEqual(t, took, e.idleDeadline+2*time.Second)
		t.Logf("closed after %v of silence (%v)", took.Round(100*time.Millisecond), err)
	})

	rejected := ""
	t.Run("SSE limits: 429 with Retry-After", func(t *testing.T) {
		var open []*sseStream
		defer func() {
			for _, s := range open {
				s.close()
			}
		}()
		for i := 0; i < e.maxAttempts; i++ {
			s, r := lc.openSSE(t, good, time.Minute)
			if s != nil {
				require.Contains(t, s.resp.Header.Get("Content-Type"), "text/event-stream")
				open = append(open, s)
				continue
			}
			require.Equal(t, http.StatusTooManyRequests, r.status, "stream %d: %s", i+1, r.body)
			require.Equal(t, e.retryAfter, r.header.Get("Retry-After"))
			d, err := parseRetryAfter(r.header.Get("Retry-After"), time.Now())
			require.NoError(t, err)
			require.Equal(t, time.Duration(e.cfg.SSE.RetryAfter)*time.Second, d)
			ref := decodeRefusal(t, r.body)
			require.Contains(t, []string{"rate_limit", "ip_limit"}, ref.Reason, "one client opening streams meets its own limits first")
			require.Equal(t, e.cfg.SSE.RetryAfter, ref.RetryAfter)
			rejected = ref.Reason
			t.Logf("stream %d refused: %s (%d admitted in this burst)", i+1, ref.Reason, len(open))
			return
		}
		t.Fatalf("%d streams from one client, none refused (sse.rate_limit_per_min %d, sse.max_per_ip %d)", e.maxAttempts, e.cfg.SSE.RateLimitPerMin, e.cfg.SSE.MaxPerIP)
	})

	t.Run("metrics on /stats/prometheus", func(t *testing.T) {
		if before == nil {
			t.Skip("ENVOY_ADMIN_URL is not set")
		}
		after := lc.scrape(t)
		for _, m := range []string{
			metric("stoa_cors_rejected_total", "reason", "origin"),
			metric("stoa_jwt_validation_failures_total", "reason", "invalid_audience"),
		} {
			require.GreaterOrEqual(t, delta(before, after, m), 1.0, m)
		}
		if rejected != "" {
			m := metric("stoa_sse_rejected_total", "reason", rejected)
			require.GreaterOrEqual(t, delta(before, after, m), 1.0, m)
		}
		if !testing.Short() {
			m := metric("stoa_sse_closed_total", "reason", "idle_timeout")
			require.GreaterOrEqual(t, delta(before, after, m), 1.0, m)
		}
		// Every series of SPEC.md is exposed, labelled.
		for _, fs := range filterStats {
			if fs.tag != "reason" {
				continue
			}
			for _, v := range fs.values {
				_, ok := after[metric(fs.name, fs.tag, v)]
				require.True(t, ok, "%s missing from /stats/prometheus", metric(fs.name, fs.tag, v))
			}
		}
	})
}

// openAdmittedSSE opens an SSE stream, waiting out a rate limit left by an earlier run
// (bounded: sse.retry_after + 15 s).
func openAdmittedSSE(t *testing.T, lc *liveClient, token string, e *liveExpect) *sseStream {
	t.Helper()
	give := time.Now().Add(time.Duration(e.cfg.SSE.RetryAfter)*time.Second + 15*time.Second)
	for {
		s, r := lc.openSSE(t, token, e.routeIdle+30*time.Second)
		if s != nil {
			return s
		}
		require.Equal(t, http.StatusTooManyRequests, r.status, r.body)
		if time.Now().After(give) {
			t.Fatalf("still refused (%s) after waiting: %s", r.header.Get("Retry-After"), r.body)
		}
		t.Logf("SSE refused (%s), an earlier run's streams still count: retrying in 5s", decodeRefusal(t, r.body).Reason)
		time.Sleep(5 * time.Second)
	}
}
