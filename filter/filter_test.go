package filter

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/stoa-platform/stoa-guard/config"
	"github.com/stoa-platform/stoa-guard/filter/identity"
	"github.com/stoa-platform/stoa-guard/filter/limiter"
)

// fakeClock is the test's clock: it moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// harness runs the filter on the SDK's proxytest emulator.
type harness struct {
	t     *testing.T
	host  proxytest.HostEmulator
	sdk   *sdkHost
	clock *fakeClock
}

func newHarness(t *testing.T, pluginJSON string, env map[string]string) *harness {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	sdk := newSDKHost()
	opt := proxytest.NewEmulatorOption().
		WithVMContext(NewVMContext(sdk, clock.now, lookup)).
		WithPluginConfiguration([]byte(pluginJSON))
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	require.Equal(t, types.OnPluginStartStatusOK, host.StartPlugin(), "critical logs: %v", host.GetCriticalLogs())
	return &harness{t: t, host: host, sdk: sdk, clock: clock}
}

// payload returns the base64url (unpadded) payload jwt_authn would forward.
func payload(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(b)
}

var goodPayload = payload(map[string]any{"aud": "stoa-mcp-gateway", "tenant_id": "acme", "sub": "alice"})

type req struct {
	method, path string
	headers      [][2]string
	peer         string
}

type result struct {
	id      uint32
	action  types.Action
	local   *proxytest.LocalHttpResponse
	headers map[string]string // local response headers, lower-case names
}

// do sends request headers (not ending the stream) and returns the outcome.
func (h *harness) do(r req) result {
	h.t.Helper()
	if r.method == "" {
		r.method = "GET"
	}
	if r.path == "" {
		r.path = "/mcp"
	}
	peer := r.peer
	if peer == "" {
		peer = "203.0.113.7:40000"
	}
	require.NoError(h.t, h.host.SetProperty([]string{"source", "address"}, []byte(peer)))
	id := h.host.InitializeHttpContext()
	hs := append([][2]string{{":method", r.method}, {":path", r.path}, {":authority", "mcp.stoa.dev"}}, r.headers...)
	act := h.host.CallOnRequestHeaders(id, hs, false)
	res := result{id: id, action: act, local: h.host.GetSentLocalResponse(id), headers: map[string]string{}}
	if res.local != nil {
		for _, kv := range res.local.Headers {
			res.headers[strings.ToLower(kv[0])] = kv[1]
		}
	}
	return res
}

func (h *harness) counter(name string) uint64 {
	v, err := h.host.GetCounterMetric(name)
	if err != nil {
		return 0
	}
	return v
}

func (h *harness) gauge(name string) uint64 {
	v, err := h.host.GetGaugeMetric(name)
	if err != nil {
		return 0
	}
	return v
}

func TestPlainAuthenticatedRequestPasses(t *testing.T) {
	h := newHarness(t, "", nil)
	res := h.do(req{headers: [][2]string{{"x-jwt-payload", goodPayload}}})
	assert.Equal(t, types.ActionContinue, res.action)
	assert.Nil(t, res.local)
}

func TestAudienceRefusals(t *testing.T) {
	cases := []struct {
		name    string
		headers [][2]string
		reason  string
		desc    string
	}{
		{"missing token", nil, "missing_token", "Missing token"},
		{"wrong audience", [][2]string{{"x-jwt-payload", payload(map[string]any{"aud": "other-client"})}}, "invalid_audience", "Invalid audience"},
		{"audience array without ours", [][2]string{{"x-jwt-payload", payload(map[string]any{"aud": []string{"a", "b"}})}}, "invalid_audience", "Invalid audience"},
		{"no aud claim", [][2]string{{"x-jwt-payload", payload(map[string]any{"sub": "x"})}}, "missing_audience", ""},
		{"aud is a number", [][2]string{{"x-jwt-payload", payload(map[string]any{"aud": 42})}}, "malformed", ""},
		{"not base64url", [][2]string{{"x-jwt-payload", "%%%not-base64%%%"}}, "malformed", ""},
		{"not a JSON object", [][2]string{{"x-jwt-payload", base64.RawURLEncoding.EncodeToString([]byte(`["aud"]`))}}, "malformed", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, "", nil)
			res := h.do(req{headers: c.headers})
			require.NotNil(t, res.local)
			assert.Equal(t, types.ActionPause, res.action)
			assert.EqualValues(t, 401, res.local.StatusCode)
			assert.True(t, strings.HasPrefix(res.headers["www-authenticate"], `Bearer error="invalid_token", error_description="`))
			if c.desc != "" {
				assert.Contains(t, string(res.local.Data), c.desc)
			}
			assert.EqualValues(t, 1, h.counter(StatName(MetricJWTFailures, "reason", c.reason)))
		})
	}
}

func TestPaddedPayloadAccepted(t *testing.T) {
	h := newHarness(t, "", nil)
	b, _ := json.Marshal(map[string]any{"aud": []string{"account"}, "x": "y"})
	padded := base64.URLEncoding.EncodeToString(b)
	require.True(t, strings.HasSuffix(padded, "=") || len(b)%3 == 0)
	res := h.do(req{headers: [][2]string{{"x-jwt-payload", padded}}})
	assert.Nil(t, res.local)
}

// A client that smuggles a second payload header next to the one jwt_authn
// forwarded must not get either of them believed.
func TestDuplicatePayloadHeaderAttack(t *testing.T) {
	h := newHarness(t, "", nil)
	res := h.do(req{headers: [][2]string{{"x-jwt-payload", goodPayload}, {"x-jwt-payload", goodPayload}}})
	require.NotNil(t, res.local)
	assert.EqualValues(t, 401, res.local.StatusCode)
	assert.EqualValues(t, 1, h.counter(StatName(MetricJWTFailures, "reason", "malformed")))
}

func TestRefusalNeverEchoesTokenOrAllowList(t *testing.T) {
	h := newHarness(t, "", nil)
	p := payload(map[string]any{"aud": "secret-other-aud", "sub": "alice"})
	res := h.do(req{headers: [][2]string{{"x-jwt-payload", p}}})
	require.NotNil(t, res.local)
	all := string(res.local.Data) + res.headers["www-authenticate"]
	for _, logs := range [][]string{h.host.GetInfoLogs(), h.host.GetWarnLogs(), h.host.GetDebugLogs(), h.host.GetErrorLogs()} {
		all += strings.Join(logs, "\n")
	}
	for _, secret := range []string{p, "secret-other-aud", "alice", "stoa-mcp-gateway", "console.stoa.dev"} {
		assert.NotContains(t, all, secret)
	}
}

func TestExemptPathsSkipAudience(t *testing.T) {
	h := newHarness(t, "", nil)
	for _, path := range []string{"/health", "/.well-known/oauth-protected-resource"} {
		res := h.do(req{path: path})
		assert.Nil(t, res.local, path)
	}
	res := h.do(req{path: "/.well-known/../mcp"})
	require.NotNil(t, res.local, "dot segments must not make a protected path exempt")
	assert.EqualValues(t, 401, res.local.StatusCode)
}

func TestPreflight(t *testing.T) {
	h := newHarness(t, "", nil)
	pre := func(origin, method, hdrs string) result {
		hs := [][2]string{{"origin", origin}, {"access-control-request-method", method}}
		if hdrs != "" {
			hs = append(hs, [2]string{"access-control-request-headers", hdrs})
		}
		return h.do(req{method: "OPTIONS", headers: hs})
	}

	ok := pre("https://console.stoa.dev", "POST", "authorization, content-type")
	require.NotNil(t, ok.local)
	assert.EqualValues(t, 204, ok.local.StatusCode)
	assert.Equal(t, "https://console.stoa.dev", ok.headers["access-control-allow-origin"])
	assert.Equal(t, "true", ok.headers["access-control-allow-credentials"])
	assert.Equal(t, "600", ok.headers["access-control-max-age"])
	assert.Contains(t, ok.headers["access-control-allow-methods"], "POST")
	assert.Contains(t, ok.headers["access-control-allow-headers"], "Authorization")
	assert.Equal(t, varyPreflight, ok.headers["vary"])

	for _, c := range []struct{ origin, method, hdrs, reason string }{
		{"https://evil.com", "GET", "", "origin"},
		{"https://console.stoa.dev.evil.com", "GET", "", "origin"},
		{"null", "GET", "", "origin"},
		{"https://console.stoa.dev", "PATCH", "", "method"},
		{"https://console.stoa.dev", "GET", "x-evil", "headers"},
	} {
		res := pre(c.origin, c.method, c.hdrs)
		require.NotNil(t, res.local, c.origin)
		assert.EqualValues(t, 403, res.local.StatusCode, c.origin)
		for name := range res.headers {
			assert.False(t, strings.HasPrefix(name, "access-control-allow"), "refusal carries %s", name)
		}
		assert.Contains(t, string(res.local.Data), `"reason":"`+c.reason+`"`)
	}
	assert.EqualValues(t, 3, h.counter(StatName(MetricCORSRejected, "reason", "origin")))
	assert.EqualValues(t, 1, h.counter(StatName(MetricCORSRejected, "reason", "method")))
	assert.EqualValues(t, 1, h.counter(StatName(MetricCORSRejected, "reason", "headers")))
}

// jwt_authn's bypass_cors_preflight leaves a client-sent payload header in
// place on preflights: the filter never reads it there, so a preflight with
// a forged token is answered (or refused) on CORS grounds alone.
func TestPreflightNeverTrustsPayloadHeader(t *testing.T) {
	h := newHarness(t, "", nil)
	res := h.do(req{method: "OPTIONS", headers: [][2]string{
		{"origin", "https://portal.stoa.dev"}, {"access-control-request-method", "GET"},
		{"x-jwt-payload", payload(map[string]any{"aud": "nope"})},
	}})
	require.NotNil(t, res.local)
	assert.EqualValues(t, 204, res.local.StatusCode)
	assert.Zero(t, h.counter(StatName(MetricJWTFailures, "reason", "invalid_audience")))
}

func TestActualCORSRequest(t *testing.T) {
	h := newHarness(t, "", nil)
	res := h.do(req{headers: [][2]string{{"origin", "https://console.gostoa.dev"}, {"x-jwt-payload", goodPayload}}})
	require.Nil(t, res.local)
	h.host.CallOnResponseHeaders(res.id, [][2]string{{":status", "200"}}, false)
	got := map[string]string{}
	for _, kv := range h.host.GetCurrentResponseHeaders(res.id) {
		got[kv[0]] = kv[1]
	}
	assert.Equal(t, "https://console.gostoa.dev", got["access-control-allow-origin"])
	assert.Equal(t, "true", got["access-control-allow-credentials"])
	assert.Equal(t, "X-Request-ID, X-Trace-ID", got["access-control-expose-headers"])
	assert.Equal(t, "Origin", got["vary"])

	bad := h.do(req{headers: [][2]string{{"origin", "https://evil.com"}, {"x-jwt-payload", goodPayload}}})
	require.NotNil(t, bad.local, "CSRF: an unlisted origin's actual request is refused")
	assert.EqualValues(t, 403, bad.local.StatusCode)

	two := h.do(req{headers: [][2]string{{"origin", "https://console.stoa.dev"}, {"origin", "https://evil.com"}, {"x-jwt-payload", goodPayload}}})
	require.NotNil(t, two.local)
	assert.EqualValues(t, 403, two.local.StatusCode)
}

func sseReq(p, peer string, extra ...[2]string) req {
	return req{path: "/mcp/sse", peer: peer, headers: append([][2]string{{"accept", "text/event-stream"}, {"x-jwt-payload", p}}, extra...)}
}

func TestSSEPerIPLimitAndRelease(t *testing.T) {
	h := newHarness(t, `{"sse":{"rate_limit_per_min":100}}`, nil)
	var open []uint32
	for i := 0; i < 10; i++ {
		res := h.do(sseReq(goodPayload, "198.51.100.1:1000"))
		require.Nil(t, res.local, "stream %d", i+1)
		open = append(open, res.id)
	}
	assert.EqualValues(t, 10, h.gauge(StatName(MetricSSEConnections, "tenant", "acme")))
	res := h.do(sseReq(goodPayload, "198.51.100.1:1001"))
	require.NotNil(t, res.local)
	assert.EqualValues(t, 429, res.local.StatusCode)
	assert.Equal(t, "60", res.headers["retry-after"])
	assert.Contains(t, string(res.local.Data), `"reason":"ip_limit"`)
	assert.EqualValues(t, 1, h.counter(StatName(MetricSSERejected, "reason", "ip_limit")))

	// Another client is not affected.
	require.Nil(t, h.do(sseReq(goodPayload, "198.51.100.2:1000")).local)

	// Ending one stream frees its slot, exactly once.
	h.host.CompleteHttpContext(open[0])
	assert.EqualValues(t, 10, h.gauge(StatName(MetricSSEConnections, "tenant", "acme")))
	require.Nil(t, h.do(sseReq(goodPayload, "198.51.100.1:1002")).local)
	require.NotNil(t, h.do(sseReq(goodPayload, "198.51.100.1:1003")).local)
}

func TestSSERateLimit(t *testing.T) {
	h := newHarness(t, "", nil)
	for i := 0; i < 5; i++ {
		res := h.do(sseReq(goodPayload, "198.51.100.9:1000"))
		require.Nil(t, res.local)
		h.host.CompleteHttpContext(res.id)
	}
	res := h.do(sseReq(goodPayload, "198.51.100.9:1000"))
	require.NotNil(t, res.local)
	assert.Contains(t, string(res.local.Data), `"reason":"rate_limit"`)
	h.clock.advance(61 * time.Second)
	assert.Nil(t, h.do(sseReq(goodPayload, "198.51.100.9:1000")).local, "the window rolls")
}

// A client must not spend another tenant's quota by sending that tenant's
// header: the tenant comes from the verified claim only.
func TestTenantHeaderSpoofing(t *testing.T) {
	h := newHarness(t, `{"sse":{"max_per_tenant":2,"rate_limit_per_min":100}}`, nil)
	victim := payload(map[string]any{"aud": "account", "tenant_id": "victim"})
	attacker := payload(map[string]any{"aud": "account", "tenant_id": "attacker"})
	for i := 0; i < 2; i++ {
		require.Nil(t, h.do(sseReq(attacker, "192.0.2.1:1", [2]string{"x-tenant-id", "victim"})).local)
	}
	res := h.do(sseReq(attacker, "192.0.2.1:1", [2]string{"x-tenant-id", "victim"}))
	require.NotNil(t, res.local)
	assert.Contains(t, string(res.local.Data), "tenant_limit")
	assert.Nil(t, h.do(sseReq(victim, "192.0.2.2:1")).local, "the victim's quota is untouched")
}

// X-Forwarded-For from an untrusted peer is ignored: rotating the header
// does not give an attacker fresh per-IP quota.
func TestXForwardedForFromUntrustedPeerIgnored(t *testing.T) {
	h := newHarness(t, `{"sse":{"rate_limit_per_min":100}}`, nil)
	for i := 0; i < 10; i++ {
		xff := [2]string{"x-forwarded-for", "10.9.0." + string(rune('1'+i))}
		require.Nil(t, h.do(sseReq(goodPayload, "198.51.100.50:1", xff)).local)
	}
	res := h.do(sseReq(goodPayload, "198.51.100.50:1", [2]string{"x-forwarded-for", "10.9.9.9"}))
	require.NotNil(t, res.local)
	assert.Contains(t, string(res.local.Data), "ip_limit")
}

func TestXForwardedForFromTrustedProxy(t *testing.T) {
	h := newHarness(t, `{"sse":{"rate_limit_per_min":100,"max_per_ip":1}}`, map[string]string{"SSE_TRUSTED_PROXIES": "10.100.0.0/16"})
	lb := "10.100.3.4:5555"
	// Leftmost entries are the client's to forge; the rightmost untrusted is the client.
	require.Nil(t, h.do(sseReq(goodPayload, lb, [2]string{"x-forwarded-for", "1.1.1.1, 198.51.100.77"})).local)
	res := h.do(sseReq(goodPayload, lb, [2]string{"x-forwarded-for", "2.2.2.2, 198.51.100.77"}))
	require.NotNil(t, res.local, "a forged leftmost entry must not buy a new identity")
	assert.Nil(t, h.do(sseReq(goodPayload, lb, [2]string{"x-forwarded-for", "198.51.100.78"})).local)
}

func TestSSEIdleAndLifetimeClose(t *testing.T) {
	h := newHarness(t, `{"sse":{"rate_limit_per_min":100,"max_duration":"10m","idle_timeout":"30s"}}`, nil)
	idle := h.do(sseReq(goodPayload, "198.51.100.3:1"))
	busy := h.do(sseReq(goodPayload, "198.51.100.4:1"))
	require.Nil(t, idle.local)
	require.Nil(t, busy.local)
	for i := 0; i < 4; i++ {
		h.clock.advance(10 * time.Second)
		h.host.CallOnResponseBody(busy.id, []byte("data: x\n\n"), false)
		h.host.Tick()
	}
	assert.EqualValues(t, 1, h.counter(StatName(MetricSSEClosed, "reason", "idle_timeout")))
	for i := 0; i < 60; i++ {
		h.clock.advance(10 * time.Second)
		h.host.CallOnResponseBody(busy.id, []byte("data: x\n\n"), false)
		h.host.Tick()
	}
	assert.EqualValues(t, 1, h.counter(StatName(MetricSSEClosed, "reason", "max_duration")))
}

func TestRollbacks(t *testing.T) {
	t.Run("ALLOWED_AUDIENCES empty disables the audience check", func(t *testing.T) {
		h := newHarness(t, "", map[string]string{"ALLOWED_AUDIENCES": ""})
		assert.Nil(t, h.do(req{headers: [][2]string{{"x-jwt-payload", payload(map[string]any{"aud": "other"})}}}).local)
		assert.Nil(t, h.do(req{}).local)
		assert.NotEmpty(t, h.host.GetWarnLogs())
	})
	t.Run(`CORS_ORIGINS="*" allows any origin without credentials`, func(t *testing.T) {
		h := newHarness(t, "", map[string]string{"CORS_ORIGINS": "*"})
		res := h.do(req{method: "OPTIONS", headers: [][2]string{{"origin", "https://evil.com"}, {"access-control-request-method", "GET"}}})
		require.NotNil(t, res.local)
		assert.EqualValues(t, 204, res.local.StatusCode)
		assert.Equal(t, "*", res.headers["access-control-allow-origin"])
		assert.NotContains(t, res.headers, "access-control-allow-credentials")
	})
	t.Run("SSE_LIMITER_ENABLED=false", func(t *testing.T) {
		h := newHarness(t, "", map[string]string{"SSE_LIMITER_ENABLED": "false"})
		for i := 0; i < 20; i++ {
			require.Nil(t, h.do(sseReq(goodPayload, "198.51.100.1:1")).local)
		}
	})
}

func TestDryRunLetsThroughButCounts(t *testing.T) {
	h := newHarness(t, `{"mode":{"audience":"dry_run","cors":"dry_run","sse":"dry_run"},"sse":{"max_per_ip":1}}`, nil)
	assert.Nil(t, h.do(req{headers: [][2]string{{"x-jwt-payload", payload(map[string]any{"aud": "x"})}}}).local)
	assert.EqualValues(t, 1, h.counter(StatName(MetricJWTFailures, "reason", "invalid_audience")))
	assert.Nil(t, h.do(req{method: "OPTIONS", headers: [][2]string{{"origin", "https://evil.com"}, {"access-control-request-method", "GET"}}}).local)
	assert.EqualValues(t, 1, h.counter(StatName(MetricCORSRejected, "reason", "origin")))
	require.Nil(t, h.do(sseReq(goodPayload, "198.51.100.1:1")).local)
	assert.Nil(t, h.do(sseReq(goodPayload, "198.51.100.1:1")).local)
	assert.EqualValues(t, 1, h.counter(StatName(MetricSSERejected, "reason", "ip_limit")))
}

func TestBadConfigRefusesToStart(t *testing.T) {
	opt := proxytest.NewEmulatorOption().
		WithVMContext(NewVMContext(newSDKHost(), time.Now, func(string) (string, bool) { return "", false })).
		WithPluginConfiguration([]byte(`{"sse":{"max_per_ipp":3}}`))
	host, reset := proxytest.NewHostEmulator(opt)
	defer reset()
	assert.Equal(t, types.OnPluginStartStatusFailed, host.StartPlugin())
	crit := host.GetCriticalLogs()
	require.Len(t, crit, 1, "exactly one critical line")
	assert.Contains(t, crit[0], "sse.max_per_ipp")
}

func TestTenantLabelCardinalityCapped(t *testing.T) {
	h := newHarness(t, `{"metrics":{"max_tenant_labels":2},"sse":{"rate_limit_per_min":100}}`, nil)
	for i, tenant := range []string{"a", "b", "c", "d"} {
		p := payload(map[string]any{"aud": "account", "tenant_id": tenant})
		require.Nil(t, h.do(sseReq(p, "198.51.100."+string(rune('1'+i))+":1")).local)
	}
	assert.EqualValues(t, 1, h.gauge(StatName(MetricSSEConnections, "tenant", "a")))
	assert.EqualValues(t, 1, h.gauge(StatName(MetricSSEConnections, "tenant", "b")))
	assert.EqualValues(t, 2, h.gauge(StatName(MetricSSEConnections, "tenant", OtherTenant)))
}

// TestConfigExtremesStart: every value the config parser accepts at the edge
// of its ranges also starts the filter (the limiter and CORS policy accept
// what config validated), so no accepted configuration fails late.
func TestConfigExtremesStart(t *testing.T) {
	for name, js := range map[string]string{
		"minimum": `{"sse":{"max_per_ip":1,"max_per_tenant":1,"max_total":1,"rate_limit_per_min":1,
			"max_duration":"1s","idle_timeout":"100ms","tick":"100ms","retry_after":1,"ip_buckets":1,"tenant_buckets":1}}`,
		"maximum": `{"sse":{"max_per_ip":1000000,"max_per_tenant":1000000,"max_total":1000000,"rate_limit_per_min":1000,
			"max_duration":"24h","idle_timeout":"24h","tick":"1h","retry_after":86400,"ip_buckets":65536,"tenant_buckets":65536}}`,
	} {
		t.Run(name, func(t *testing.T) { newHarness(t, js, nil) })
	}
}

// TestAcceptCaseAttack: media types are case-insensitive, so an upper-case
// Accept still makes an SSE request that the limiter counts.
func TestAcceptCaseAttack(t *testing.T) {
	for v, want := range map[string]bool{
		"text/event-stream":                        true,
		"TEXT/Event-Stream":                        true,
		"application/json, text/event-stream":      true,
		"application/json,TEXT/EVENT-STREAM;q=0.9": true,
		"  text/event-stream ":                     true,
		"text/event-streamx":                       false,
		"xtext/event-stream":                       false,
		"application/json":                         false,
		"":                                         false,
		",,,":                                      false,
	} {
		assert.Equal(t, want, acceptsMedia(v, eventStream), "%q", v)
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { acceptsMedia("application/json, TEXT/event-stream", eventStream) }))
}

// TestStreamableHTTPMessagePosts: an MCP client's message POSTs (Accept:
// application/json, text/event-stream) hold a slot while open, so the
// per-IP limit still binds them, but they do not spend the new-stream rate;
// (proxytest allows one emulator per test: the rated variant is below).
func TestStreamableHTTPMessagePosts(t *testing.T) {
	post := func(peer string) req {
		return req{method: "POST", path: "/mcp", peer: peer, headers: [][2]string{
			{"accept", "application/json, text/event-stream"}, {"x-jwt-payload", goodPayload}}}
	}
	h := newHarness(t, "", nil)
	for i := 0; i < 20; i++ { // 20 calls in a second, each ended: no 429
		res := h.do(post("198.51.100.20:1"))
		require.Nil(t, res.local, "call %d", i+1)
		h.host.CompleteHttpContext(res.id)
	}
	var open []uint32
	for i := 0; i < 10; i++ { // concurrency still binds
		res := h.do(post("198.51.100.20:1"))
		require.Nil(t, res.local, "open call %d", i+1)
		open = append(open, res.id)
	}
	res := h.do(post("198.51.100.20:1"))
	require.NotNil(t, res.local)
	assert.Contains(t, string(res.local.Data), `"reason":"ip_limit"`)
	for _, id := range open {
		h.host.CompleteHttpContext(id)
	}
	for i := 0; i < 5; i++ { // the stream rate is untouched: 5 real streams
		r := h.do(sseReq(goodPayload, "198.51.100.20:1"))
		require.Nil(t, r.local, "stream %d", i+1)
		h.host.CompleteHttpContext(r.id)
	}
}

// TestMessagePostsRatedWhenConfigured: sse.rate_limit_message_posts counts
// message POSTs toward the new-stream rate.
func TestMessagePostsRatedWhenConfigured(t *testing.T) {
	post := func(peer string) req {
		return req{method: "POST", path: "/mcp", peer: peer, headers: [][2]string{
			{"accept", "application/json, text/event-stream"}, {"x-jwt-payload", goodPayload}}}
	}
	rated := newHarness(t, `{"sse":{"rate_limit_message_posts":true}}`, nil)
	for i := 0; i < 5; i++ {
		r := rated.do(post("198.51.100.21:1"))
		require.Nil(t, r.local)
		rated.host.CompleteHttpContext(r.id)
	}
	r := rated.do(post("198.51.100.21:1"))
	require.NotNil(t, r.local)
	assert.Contains(t, string(r.local.Data), `"reason":"rate_limit"`)
}

// TestTenantGaugeHealsFromSharedData: on each tick a VM sets its tenant
// gauges from shared data, so streams held by a VM that died count until
// their leases expire and then stop counting, instead of staying in the
// gauge for ever.
func TestTenantGaugeHealsFromSharedData(t *testing.T) {
	js := `{"sse":{"max_duration":"1m","idle_timeout":"30s"}}`
	h := newHarness(t, js, nil)
	gauge := StatName(MetricSSEConnections, "tenant", "acme")
	res := h.do(sseReq(goodPayload, "198.51.100.30:1"))
	require.Nil(t, res.local)
	require.EqualValues(t, 1, h.gauge(gauge))

	// Another VM on the same shared data admits three acme streams and dies.
	cfg, err := config.Parse([]byte(js), nil)
	require.NoError(t, err)
	dead, err := limiter.New(limiterConfig(cfg), h.sdk.shared)
	require.NoError(t, err)
	for i := range 3 {
		var lease limiter.Lease
		r, err := dead.Admit(h.clock.now(), identity.Key{15: byte(i + 1)}, "acme", &lease)
		require.NoError(t, err)
		require.Equal(t, limiter.None, r)
	}
	h.host.CompleteHttpContext(res.id)
	h.host.Tick()
	assert.EqualValues(t, 3, h.gauge(gauge), "the dead VM's streams still hold slots")
	h.clock.advance(time.Minute + 3*time.Second)
	h.host.Tick()
	assert.EqualValues(t, 0, h.gauge(gauge), "expired with their leases")
}

// TestTenantGaugeNotNegativeAfterLateEnd: a stream whose lease expired (and
// was dropped from the gauge by the tick) ends late: the gauge stays at 0.
func TestTenantGaugeNotNegativeAfterLateEnd(t *testing.T) {
	h := newHarness(t, `{"sse":{"max_duration":"1m","idle_timeout":"1m"}}`, nil)
	gauge := StatName(MetricSSEConnections, "tenant", "acme")
	res := h.do(sseReq(goodPayload, "198.51.100.31:1"))
	require.Nil(t, res.local)
	h.clock.advance(time.Minute + 3*time.Second) // past the lease's expiry
	h.host.Tick()
	require.EqualValues(t, 0, h.gauge(gauge))
	h.host.CompleteHttpContext(res.id)
	assert.EqualValues(t, 0, h.gauge(gauge))
}

// TestTenantGaugeResyncIsBatched: one tick sets at most resyncPerTick
// tenant gauges from shared data, in turn, so every gauge is set within a
// few ticks while a tick's host calls stay bounded.
func TestTenantGaugeResyncIsBatched(t *testing.T) {
	js := `{"sse":{"max_duration":"10m"}}`
	h := newHarness(t, js, nil)
	cfg, err := config.Parse([]byte(js), nil)
	require.NoError(t, err)
	dead, err := limiter.New(limiterConfig(cfg), h.sdk.shared)
	require.NoError(t, err)
	const tenants = resyncPerTick + 4
	for i := range tenants {
		name := fmt.Sprintf("t%02d", i)
		p := payload(map[string]any{"aud": "account", "tenant_id": name})
		require.Nil(t, h.do(sseReq(p, fmt.Sprintf("198.51.100.%d:1", i+1))).local)
		var lease limiter.Lease // a dead VM's stream of the same tenant
		r, err := dead.Admit(h.clock.now(), identity.Key{14: 1, 15: byte(i)}, name, &lease)
		require.NoError(t, err)
		require.Equal(t, limiter.None, r)
	}
	healed := func() (n int) {
		for i := range tenants {
			if h.gauge(StatName(MetricSSEConnections, "tenant", fmt.Sprintf("t%02d", i))) == 2 {
				n++
			}
		}
		return n
	}
	require.Zero(t, healed())
	h.host.Tick()
	assert.Equal(t, resyncPerTick, healed(), "one tick sets resyncPerTick gauges")
	h.host.Tick()
	assert.Equal(t, tenants, healed(), "the next tick sets the rest")
}
