package localproxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// TestWasmAllowedAudiencePasses: a token for the gateway's audience reaches
// the upstream under both Envoy profiles; the upstream gets the verified
// payload, never the token.
func TestWasmAllowedAudiencePasses(t *testing.T) {
	for _, profile := range []string{"1.33-1.38", ">=1.39"} {
		t.Run(profile, func(t *testing.T) {
			var seen http.Header
			h := newWasmHarness(t, wasmOpts{profile: profile, upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = r.Header.Clone()
				_, _ = io.WriteString(w, "upstream ok")
			})})
			resp, body := h.do(client(false), preq{path: "/mcp/tools", token: demoToken(t, "stoa-mcp-gateway", "acme")})
			assert.Equal(t, 200, resp.StatusCode, body)
			assert.Equal(t, "upstream ok", body)
			require.NotNil(t, seen)
			assert.Empty(t, seen.Get("Authorization"), "jwt_authn does not forward the token")
			pl, err := base64.RawURLEncoding.DecodeString(seen.Get("X-Jwt-Payload"))
			require.NoError(t, err)
			assert.Contains(t, string(pl), `"tenant_id":"acme"`)
			assert.Equal(t, "127.0.0.1", seen.Get("X-Forwarded-For"))

			// An array audience with one allowed entry passes too.
			resp, _ = h.do(client(false), preq{path: "/mcp/tools", token: demoTokenAud(t, []string{"other", "account"})})
			assert.Equal(t, 200, resp.StatusCode)
		})
	}
}

func demoTokenAud(t *testing.T, aud []string) string {
	loadDemo(t)
	tok, err := signDemo(map[string]any{"iss": demoIssuer, "aud": aud, "exp": time.Now().Add(time.Hour).Unix()})
	require.NoError(t, err)
	return tok
}

// TestWasmWrongAudienceRefused: a valid token minted for another client is
// refused by the filter with 401 invalid_audience and never reaches the
// upstream; no token at all is 401 missing_token. Both are counted.
func TestWasmWrongAudienceRefused(t *testing.T) {
	h := newWasmHarness(t, wasmOpts{})
	resp, body := h.do(client(false), preq{path: "/mcp/tools", token: demoToken(t, "other-client", "acme")})
	assert.Equal(t, 401, resp.StatusCode)
	assert.Equal(t, `Bearer error="invalid_token", error_description="Invalid audience"`, resp.Header.Get("WWW-Authenticate"))
	assert.Contains(t, body, "Invalid audience")
	assert.NotContains(t, body, "stoa-mcp-gateway", "the allow list is never echoed")

	resp, _ = h.do(client(false), preq{path: "/mcp/tools"})
	assert.Equal(t, 401, resp.StatusCode)

	// A forged payload header without a token is stripped by jwt_authn: still missing_token.
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"stoa-mcp-gateway","tenant_id":"victim"}`))
	resp, _ = h.do(client(false), preq{path: "/mcp/tools", hdr: map[string]string{"X-Jwt-Payload": forged}})
	assert.Equal(t, 401, resp.StatusCode)

	select {
	case p := <-h.reached:
		t.Fatalf("upstream reached (%s)", p)
	default:
	}
	assert.Equal(t, int64(1), h.metric(`stoa_jwt_validation_failures_total{reason="invalid_audience"}`))
	assert.Equal(t, int64(2), h.metric(`stoa_jwt_validation_failures_total{reason="missing_token"}`))
}

// TestWasmAudienceFromJWTMetadata: with audience.payload_metadata_key the
// filter reads the claims from jwt_authn's dynamic metadata (the engine's
// stream property), not from any header.
func TestWasmAudienceFromJWTMetadata(t *testing.T) {
	h := newWasmHarness(t, wasmOpts{
		plugin:   `{"audience":{"payload_header":"","payload_metadata_key":"jwt_payload"}}`,
		upstream: mcpUpstream(sseEvents(50*time.Millisecond, 1000)),
	})
	resp, body := h.do(client(false), preq{path: "/mcp/tools", token: demoToken(t, "stoa-mcp-gateway", "acme")})
	assert.Equal(t, 200, resp.StatusCode, body)
	resp, _ = h.do(client(false), preq{path: "/mcp/tools", token: demoToken(t, "other-client", "acme")})
	assert.Equal(t, 401, resp.StatusCode)
	// The tenant comes from the metadata too.
	s, err := h.openSSE(client(false), demoToken(t, "stoa-mcp-gateway", "globex"), nil)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, 200, s.resp.StatusCode)
	eventually(t, 5*time.Second, "tenant gauge", func() bool {
		return h.metric(`stoa_sse_connections_total{tenant="globex"}`) == 1
	})
}

// TestWasmPreflightFromEvilComRefused: the security guide's check — a
// preflight from https://evil.com gets 403 with no Access-Control-Allow-*
// header; one from the console is answered 204 by the filter. Neither
// reaches the upstream.
func TestWasmPreflightFromEvilComRefused(t *testing.T) {
	h := newWasmHarness(t, wasmOpts{})
	pre := func(origin string) *http.Response {
		resp, _ := h.do(client(false), preq{method: "OPTIONS", path: "/mcp", hdr: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization",
		}})
		return resp
	}
	resp := pre("https://evil.com")
	assert.Equal(t, 403, resp.StatusCode)
	for k := range resp.Header {
		assert.False(t, strings.HasPrefix(k, "Access-Control-Allow"), "refused preflight carries %s", k)
	}
	resp = pre("https://console.stoa.dev")
	assert.Equal(t, 204, resp.StatusCode)
	assert.Equal(t, "https://console.stoa.dev", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))

	// An actual request from evil.com with a valid token: 403 (CSRF).
	r, _ := h.do(client(false), preq{path: "/mcp/tools", token: demoToken(t, "stoa-mcp-gateway", "acme"), hdr: map[string]string{"Origin": "https://evil.com"}})
	assert.Equal(t, 403, r.StatusCode)
	select {
	case p := <-h.reached:
		t.Fatalf("upstream reached (%s)", p)
	default:
	}
	assert.Equal(t, int64(2), h.metric(`stoa_cors_rejected_total{reason="origin"}`))
}

// TestWasmSSEStreamedChunkByChunk: each upstream event reaches the client
// before the upstream writes the next one — nothing is buffered — and every
// chunk went through the filter (on_response_body).
func TestWasmSSEStreamedChunkByChunk(t *testing.T) {
	next := make(chan struct{})
	finished := make(chan struct{})
	h := newWasmHarness(t, wasmOpts{upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(finished)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for i := range 3 {
			_, _ = io.WriteString(w, "data: event-"+string(rune('0'+i))+"\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
				return
			}
		}
	})})
	s, err := h.openSSE(client(false), demoToken(t, "stoa-mcp-gateway", "acme"), nil)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, 200, s.resp.StatusCode)
	assert.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))
	for i := range 3 {
		line, err := s.readLine(5 * time.Second)
		require.NoError(t, err, "event %d: the proxy buffers", i)
		assert.Equal(t, "data: event-"+string(rune('0'+i)), line)
		_, _ = s.readLine(time.Second) // blank line
		select {
		case <-finished:
			t.Fatal("the upstream had already finished: the event was buffered")
		default:
		}
		if i < 2 {
			next <- struct{}{}
		}
	}
	next <- struct{}{}
	<-finished
	_, err = io.ReadAll(s.br)
	require.NoError(t, err, "clean end of a completed stream")
	eventually(t, 5*time.Second, "slot released", func() bool { return h.gaugeSum() == 0 })
}

// TestWasmIdleStreamClosedByTick: an SSE stream with no response byte for
// sse.idle_timeout is closed by the filter from its tick (close_stream): the
// client sees a reset, the upstream request is cancelled, the close is
// counted and the slot released.
func TestWasmIdleStreamClosedByTick(t *testing.T) {
	gone := make(chan struct{})
	h := newWasmHarness(t, wasmOpts{
		plugin:   `{"sse":{"idle_timeout":"1s","tick":"100ms"}}`,
		upstream: sseSilent(gone),
	})
	start := time.Now()
	s, err := h.openSSE(client(false), demoToken(t, "stoa-mcp-gateway", "acme"), nil)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, 200, s.resp.StatusCode)
	assert.Equal(t, int64(1), h.gaugeSum())

	_, err = s.readLine(5 * time.Second)
	require.Error(t, err)
	require.NotErrorIs(t, err, errTimeout, "not closed within 5s")
	assert.NotErrorIs(t, err, io.EOF, "a reset, not a clean end")
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, time.Second)
	assert.Less(t, took, 2500*time.Millisecond, "idle_timeout 1s + tick 100ms + the engine's 100ms ticker")
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request not cancelled")
	}
	eventually(t, 5*time.Second, "slot released", func() bool { return h.gaugeSum() == 0 })
	assert.Equal(t, int64(1), h.metric(`stoa_sse_closed_total{reason="idle_timeout"}`))
	eventually(t, 5*time.Second, "stream ended", func() bool { return h.proxy.ActiveStreams() == 0 })
	for _, vm := range h.eng.vms {
		assert.Zero(t, vm.LiveStreams())
	}
}

// TestWasmClientDisconnectReleasesSlot: with one stream allowed per client,
// a client that goes away frees its slot at once (on_log/on_done/on_delete
// ran), and its next stream is admitted.
func TestWasmClientDisconnectReleasesSlot(t *testing.T) {
	gone := make(chan struct{})
	h := newWasmHarness(t, wasmOpts{plugin: `{"sse":{"max_per_ip":1}}`, upstream: sseSilent(gone)})
	tok := demoToken(t, "stoa-mcp-gateway", "acme")
	s, err := h.openSSE(client(true), tok, nil)
	require.NoError(t, err)
	require.Equal(t, 200, s.resp.StatusCode)

	r, err := h.openSSE(client(true), tok, nil)
	require.NoError(t, err)
	assert.Equal(t, 429, r.resp.StatusCode)
	assert.Equal(t, "60", r.resp.Header.Get("Retry-After"))
	assert.Contains(t, r.body(), "ip_limit")
	r.Close()

	s.Close()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request not cancelled after the client left")
	}
	eventually(t, 5*time.Second, "slot released", func() bool { return h.gaugeSum() == 0 && h.proxy.ActiveStreams() == 0 })

	s2, err := h.openSSE(client(true), tok, nil)
	require.NoError(t, err)
	defer s2.Close()
	assert.Equal(t, 200, s2.resp.StatusCode, "the slot came back")
}

// TestWasmAdmin: /ready and /stats/prometheus with Envoy's names and labels.
func TestWasmAdmin(t *testing.T) {
	h := newWasmHarness(t, wasmOpts{})
	h.do(client(false), preq{path: "/mcp/x", token: demoToken(t, "other-client", "acme")})

	resp, err := http.Get(h.admin + "/ready")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "LIVE\n", string(b))

	m := h.metrics()
	for _, want := range []string{
		"# TYPE stoa_sse_rejected_total counter",
		`stoa_sse_rejected_total{reason="global_limit"} 0`,
		`stoa_sse_rejected_total{reason="ip_limit"} 0`,
		`stoa_sse_rejected_total{reason="tenant_limit"} 0`,
		`stoa_sse_rejected_total{reason="rate_limit"} 0`,
		`stoa_sse_closed_total{reason="idle_timeout"} 0`,
		`stoa_sse_closed_total{reason="max_duration"} 0`,
		`stoa_jwt_validation_failures_total{reason="invalid_audience"} 1`,
		`stoa_cors_rejected_total{reason="origin"} 0`,
	} {
		assert.Contains(t, m, want+"\n")
	}
	assert.NotContains(t, m, "wasmcustom", "tags extracted as Envoy does")
	assert.NotContains(t, m, "reason=.=")
}

// TestWasmStreamProperties: what the filter can read for a stream.
func TestWasmStreamProperties(t *testing.T) {
	e := &WasmEngine{metaKey: "jwt_payload"}
	p := e.properties(StreamInfo{
		Source:       netip.MustParseAddrPort("[2001:db8::7]:5000"),
		Destination:  netip.MustParseAddrPort("127.0.0.1:8080"),
		ConnectionID: 42, Protocol: "HTTP/1.1", RequestID: "rid",
		JWTPayload: []byte(`{"aud":["a","b"],"tenant_id":"acme","exp":1700000000}`),
	})
	assert.Equal(t, "[2001:db8::7]:5000", p[wasmhost.Path("source", "address")])
	assert.Equal(t, int64(5000), p[wasmhost.Path("source", "port")])
	assert.Equal(t, "127.0.0.1:8080", p[wasmhost.Path("destination", "address")])
	assert.Equal(t, uint64(42), p[wasmhost.Path("connection", "id")])
	assert.Equal(t, "HTTP/1.1", p[wasmhost.Path("request", "protocol")])
	assert.Equal(t, "rid", p[wasmhost.Path("request", "id")])
	md, ok := p[wasmhost.Path("metadata", "filter_metadata", "envoy.filters.http.jwt_authn", "jwt_payload")].(map[string]any)
	require.True(t, ok)
	assert.Equal(t, "acme", md["tenant_id"])
	assert.Equal(t, []any{"a", "b"}, md["aud"])

	// IPv4 peer, no payload, no metadata key: nothing invented.
	p = (&WasmEngine{}).properties(StreamInfo{Source: netip.MustParseAddrPort("10.0.0.1:1"), JWTPayload: []byte(`{"aud":"x"}`)})
	assert.Equal(t, "10.0.0.1:1", p[wasmhost.Path("source", "address")])
	for k := range p {
		assert.False(t, strings.HasPrefix(k, "metadata"), k)
	}
}

// TestNewWasmEngineErrors: each bad input is an error naming what to fix.
func TestNewWasmEngineErrors(t *testing.T) {
	mod := filterWasm(t)
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, tc := range map[string]struct {
		cfg  WasmConfig
		want string
	}{
		"profile":       {WasmConfig{Module: mod, Workers: 1, Profile: "1.20"}, "-profile"},
		"workers":       {WasmConfig{Module: mod, Workers: 0}, "-workers"},
		"module":        {WasmConfig{Module: []byte("not wasm"), Workers: 1}, "-module"},
		"plugin config": {WasmConfig{Module: mod, Workers: 1, PluginConfig: []byte(`{"sse":{"max_per_ip":-1}}`)}, "sse.max_per_ip"},
		"unknown key":   {WasmConfig{Module: mod, Workers: 1, PluginConfig: []byte(`{"sse":{"max_per_ipp":1}}`)}, "max_per_ipp"},
		"env":           {WasmConfig{Module: mod, Workers: 1, Env: map[string]string{"SSE_TRUSTED_PROXIES": "10.0.0.0/33"}}, "SSE_TRUSTED_PROXIES"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.cfg.Log = quiet
			e, err := NewWasmEngine(ctx, tc.cfg)
			if e != nil {
				_ = e.Close()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestWasmEngineCloseIdempotent: Close twice, streams after Close fail
// cleanly, End after Close does not panic.
func TestWasmEngineCloseIdempotent(t *testing.T) {
	e, err := NewWasmEngine(context.Background(), WasmConfig{Module: filterWasm(t), Workers: 1})
	require.NoError(t, err)
	s, err := e.NewStream(0, StreamInfo{Source: netip.MustParseAddrPort("127.0.0.1:1")})
	require.NoError(t, err)
	require.NoError(t, e.Close())
	require.NoError(t, e.Close())
	s.End()
	s.End()
	_, err = e.NewStream(0, StreamInfo{})
	require.Error(t, err)
	_, err = e.NewStream(5, StreamInfo{})
	require.Error(t, err)
}

// jsonBody decodes a local reply's JSON body.
func jsonBody(t *testing.T, s string) map[string]any {
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &m), s)
	return m
}
