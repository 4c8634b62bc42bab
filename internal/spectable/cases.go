package spectable

import (
	"encoding/base64"
	"strings"
	"time"
)

// Values the cases share.
const (
	console    = "https://console.stoa.dev"
	wwwAuth    = `Bearer error="invalid_token", error_description="`
	allowMeth  = "GET, POST, PUT, DELETE, OPTIONS"
	allowHdrs  = "Authorization, Content-Type, X-Request-ID, X-Tenant-ID"
	exposeHdrs = "X-Request-ID, X-Trace-ID"
	varyPre    = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
	sseFast    = `{"sse":{"rate_limit_per_min":1000}}`
)

func auth(p string) [2]string   { return [2]string{"x-jwt-payload", p} }
func origin(o string) [2]string { return [2]string{"origin", o} }

func payloadOf(aud any, tenantID string) string {
	c := map[string]any{"sub": "alice"}
	if aud != nil {
		c["aud"] = aud
	}
	if tenantID != "" {
		c["tenant_id"] = tenantID
	}
	return Payload(c)
}

func unauthorized(reason, desc string) Want {
	return Want{
		Status:  401,
		Headers: map[string]string{"www-authenticate": wwwAuth + desc + `"`, "content-type": "application/json"},
		Body:    []string{`"error_description":"` + desc + `"`},
		Metrics: map[string]uint64{jwt(reason): 1},
	}
}

func preflight(o, method, headers string, extra ...[2]string) Request {
	hs := [][2]string{origin(o), {"access-control-request-method", method}}
	if headers != "" {
		hs = append(hs, [2]string{"access-control-request-headers", headers})
	}
	return Request{Method: "OPTIONS", Headers: append(hs, extra...)}
}

func corsRefused(reason string) Want {
	return Want{Status: 403, Reason: reason, NoHeaderPrefix: "access-control-allow", Metrics: map[string]uint64{corsR(reason): 1}}
}

func preflightOK(o string) Want {
	return Want{Status: 204, Headers: map[string]string{
		"access-control-allow-origin":      o,
		"access-control-allow-methods":     allowMeth,
		"access-control-allow-headers":     allowHdrs,
		"access-control-max-age":           "600",
		"access-control-allow-credentials": "true",
		"vary":                             varyPre,
	}}
}

// sse is an SSE request (Accept: text/event-stream on the SSE path) from peer.
func sse(p, peer string, extra ...[2]string) Request {
	return Request{Path: "/mcp/sse", Peer: peer,
		Headers: append([][2]string{{"accept", "text/event-stream"}, auth(p)}, extra...)}
}

func tooMany(reason string, n uint64) Want {
	return Want{
		Status:  429,
		Reason:  reason,
		Headers: map[string]string{"retry-after": "60", "content-type": "application/json"},
		Body:    []string{`"retry_after":60`},
		Metrics: map[string]uint64{sseR(reason): n},
	}
}

var ok = Want{}

// Cases returns SPEC.md's behaviour table. Every call returns fresh values.
func Cases() []Case {
	var cs []Case
	cs = append(cs, audienceCases()...)
	cs = append(cs, corsCases()...)
	cs = append(cs, sseCases()...)
	cs = append(cs, rollbackCases()...)
	cs = append(cs, configCases()...)
	return cs
}

func audienceCases() []Case {
	one := func(name string, r Request, w Want) Case {
		return Case{Name: "audience/" + name, Steps: []Step{{Do: r, Want: w}}}
	}
	hdr := func(hs ...[2]string) Request { return Request{Headers: hs} }
	secretPayload := payloadOf("secret-other-aud", "")
	invalid := unauthorized("invalid_audience", "Invalid audience")
	invalid.NeverShown = []string{secretPayload, "secret-other-aud", "alice", "stoa-mcp-gateway", "console.stoa.dev"}
	meta := `{"audience":{"payload_metadata_key":"` + MetadataKey + `"}}`
	return []Case{
		one("allowed audience passes", hdr(auth(Good)), Want{Metrics: map[string]uint64{
			jwt("missing_token"): 0, jwt("malformed"): 0, jwt("missing_audience"): 0, jwt("invalid_audience"): 0}}),
		one("allowed audience in an array passes", hdr(auth(payloadOf([]string{"x", "account"}, ""))), ok),
		one("padded base64url payload passes", hdr(auth(PaddedPayload(map[string]any{"aud": []string{"account"}, "x": "y"}))), ok),
		one("missing payload header is missing_token", hdr(), unauthorized("missing_token", "Missing token")),
		one("bad base64 is malformed", hdr(auth("%%%not-base64%%%")), unauthorized("malformed", "Malformed token payload")),
		one("JSON array payload is malformed",
			hdr(auth(base64.RawURLEncoding.EncodeToString([]byte(`["aud"]`)))), unauthorized("malformed", "Malformed token payload")),
		one("numeric aud is malformed", hdr(auth(payloadOf(42, ""))), unauthorized("malformed", "Malformed token payload")),
		one("DuplicatePayloadHeaderAttack is malformed", hdr(auth(Good), auth(Good)), unauthorized("malformed", "Malformed token payload")),
		one("no aud claim is missing_audience", hdr(auth(payloadOf(nil, "acme"))), unauthorized("missing_audience", "Token has no audience")),
		one("other audience is invalid_audience, never echoed", hdr(auth(secretPayload)), invalid),
		one("array without ours is invalid_audience", hdr(auth(payloadOf([]string{"a", "b"}, ""))), unauthorized("invalid_audience", "Invalid audience")),
		one("audience of another client differing in case is invalid", hdr(auth(payloadOf("STOA-MCP-GATEWAY", ""))), unauthorized("invalid_audience", "Invalid audience")),
		one("OversizedPayloadAttack is malformed", hdr(auth(Payload(map[string]any{"aud": "account", "pad": strings.Repeat("x", 20<<10)}))),
			unauthorized("malformed", "Malformed token payload")),
		{Name: "audience/exempt paths skip the check", Steps: []Step{
			{Do: Request{Path: "/health"}, Want: ok},
			{Do: Request{Path: "/.well-known/oauth-protected-resource"}, Want: ok},
			{Do: Request{Path: "/health?probe=1"}, Want: ok},
			{Name: "DotSegmentExemptPathAttack", Do: Request{Path: "/.well-known/../mcp"}, Want: Want{Status: 401}},
			{Name: "a longer path is not /health", Do: Request{Path: "/healthz"}, Want: Want{Status: 401}},
			{Name: "encoded path is not exempt", Do: Request{Path: "/.well-known/%2e%2e/mcp"}, Want: Want{Status: 401}},
		}},
		{Name: "audience/metadata mode", Plugin: meta, Steps: []Step{
			{Name: "allowed aud in metadata", Do: Request{Metadata: map[string]any{"aud": "stoa-mcp-gateway", "tenant_id": "acme"}}, Want: ok},
			{Name: "aud list in metadata", Do: Request{Metadata: map[string]any{"aud": []string{"x", "account"}}}, Want: ok},
			{Name: "wrong aud", Do: Request{Metadata: map[string]any{"aud": "other"}}, Want: Want{Status: 401, Metrics: map[string]uint64{jwt("invalid_audience"): 1}}},
			{Name: "no aud", Do: Request{Metadata: map[string]any{"sub": "x"}}, Want: Want{Status: 401, Metrics: map[string]uint64{jwt("missing_audience"): 1}}},
			{Name: "no metadata", Do: Request{}, Want: Want{Status: 401, Metrics: map[string]uint64{jwt("missing_token"): 1}}},
			{Name: "ForgedPayloadHeaderIgnoredInMetadataMode", Do: Request{Headers: [][2]string{auth(Good)}},
				Want: Want{Status: 401, Metrics: map[string]uint64{jwt("missing_token"): 2}}},
			{Name: "SSE tenant from metadata", Do: Request{Path: "/mcp/sse", Peer: "198.51.100.1:1",
				Metadata: map[string]any{"aud": "account", "tenant_id": "meta-tenant"}}, Want: Want{Metrics: map[string]uint64{tenant("meta-tenant"): 1}}},
		}},
	}
}

func corsCases() []Case {
	refused := func(name string, r Request, reason string) Case {
		return Case{Name: "cors/" + name, Steps: []Step{{Do: r, Want: corsRefused(reason)}}}
	}
	actualOK := Want{
		ResponseHeaders: map[string]string{
			"access-control-allow-origin":      "https://console.gostoa.dev",
			"access-control-allow-credentials": "true",
			"access-control-expose-headers":    exposeHdrs,
			"vary":                             "Origin",
		},
	}
	resp := [][2]string{{":status", "200"}, {"content-type", "application/json"}}
	return []Case{
		{Name: "cors/preflight allowed is answered 204", Steps: []Step{
			{Do: preflight(console, "POST", "authorization, content-type"), Want: preflightOK(console)},
			{Name: "wildcard entry matches a subdomain", Do: preflight("https://portal.gostoa.dev", "GET", ""), Want: preflightOK("https://portal.gostoa.dev")},
			{Name: "no CORS refusal counted", Want: Want{Status: 401, Metrics: map[string]uint64{corsR("origin"): 0}}},
		}},
		{Name: "cors/PreflightNeverTrustsPayloadHeader", Steps: []Step{
			{Do: preflight("https://portal.stoa.dev", "GET", "", auth(payloadOf("nope", ""))),
				Want: Want{Status: 204, Metrics: map[string]uint64{jwt("invalid_audience"): 0}}},
		}},
		refused("preflight from an unlisted origin", preflight("https://evil.com", "GET", ""), "origin"),
		refused("SuffixOriginAttack console.stoa.dev.evil.com", preflight("https://console.stoa.dev.evil.com", "GET", ""), "origin"),
		refused("null origin refused unless listed", preflight("null", "GET", ""), "origin"),
		refused("http scheme is another origin", preflight("http://console.stoa.dev", "GET", ""), "origin"),
		refused("preflight method not allowed", preflight(console, "PATCH", ""), "method"),
		refused("preflight header not allowed", preflight(console, "GET", "authorization, x-evil"), "headers"),
		{Name: "cors/actual request from a listed origin gets CORS response headers", Steps: []Step{
			{Do: Request{Headers: [][2]string{origin("https://console.gostoa.dev"), auth(Good)}, Response: resp}, Want: actualOK},
		}},
		{Name: "cors/request without Origin is not a CORS request", Steps: []Step{
			{Do: Request{Headers: [][2]string{auth(Good)}, Response: resp}, Want: Want{NoResponseHeaderPrefix: "access-control-", ResponseHeaders: map[string]string{"content-type": "application/json"}}},
		}},
		{Name: "cors/CSRF actual request from an unlisted origin is refused", Steps: []Step{
			{Do: Request{Headers: [][2]string{origin("https://evil.com"), auth(Good)}}, Want: corsRefused("origin")},
		}},
		{Name: "cors/TwoOriginHeadersAttack", Steps: []Step{
			{Do: Request{Headers: [][2]string{origin(console), origin("https://evil.com"), auth(Good)}}, Want: corsRefused("origin")},
		}},
		{Name: "cors/configured patterns: null listed, wildcard subdomains anchored",
			Plugin: `{"cors":{"origins":["null","https://*.example.com"]}}`, Steps: []Step{
				{Do: preflight("null", "GET", ""), Want: Want{Status: 204, Headers: map[string]string{"access-control-allow-origin": "null"}}},
				{Do: preflight("https://a.b.example.com", "GET", ""), Want: Want{Status: 204, Headers: map[string]string{"access-control-allow-origin": "https://a.b.example.com"}}},
				{Name: "the bare domain is not a subdomain", Do: preflight("https://example.com", "GET", ""), Want: corsRefused("origin")},
				{Name: "SuffixOriginAttack", Do: preflight("https://example.com.evil.com", "GET", ""), Want: Want{Status: 403, Metrics: map[string]uint64{corsR("origin"): 2}}},
				{Name: "the defaults are replaced", Do: preflight(console, "GET", ""), Want: Want{Status: 403, Metrics: map[string]uint64{corsR("origin"): 3}}},
			}},
		{Name: "cors/origin compared after normalisation", Steps: []Step{
			{Do: preflight("HTTPS://Console.STOA.dev:443", "GET", ""), Want: Want{Status: 204}},
		}},
	}
}

func sseCases() []Case {
	peer := "198.51.100.1:1000"
	acme := tenant("acme")
	return []Case{
		{Name: "sse/per-IP limit 10, then release on end", Plugin: sseFast, Steps: []Step{
			{Name: "10 admitted", Do: sse(Good, peer), Times: 10, Want: Want{Metrics: map[string]uint64{acme: 10}}},
			{Name: "11th refused", Do: sse(Good, "198.51.100.1:1001"), Want: tooMany("ip_limit", 1)},
			{Name: "another client unaffected", Do: sse(Good, "198.51.100.2:1000"), Want: Want{Metrics: map[string]uint64{acme: 11}}},
			{Name: "an end frees one slot", EndOldest: 1, Do: sse(Good, peer), Want: Want{Metrics: map[string]uint64{acme: 11}}},
			{Name: "and only one", Do: sse(Good, peer), Want: tooMany("ip_limit", 2)},
		}},
		{Name: "sse/rate 5 per minute", Steps: []Step{
			{Name: "5 admitted and ended", Do: sse(Good, peer), Times: 5, End: true, Want: Want{Metrics: map[string]uint64{acme: 0}}},
			{Name: "6th refused", Do: sse(Good, peer), Want: tooMany("rate_limit", 1)},
			{Name: "only admitted streams count: still refused", Do: sse(Good, peer), Want: tooMany("rate_limit", 2)},
			{Name: "the window rolls", Advance: 61 * time.Second, Do: sse(Good, peer), Want: ok},
		}},
		{Name: "sse/per-tenant limit", Plugin: `{"sse":{"max_per_tenant":2,"rate_limit_per_min":100}}`, Steps: []Step{
			{Do: sse(Good, "192.0.2.1:1"), Want: ok},
			{Do: sse(Good, "192.0.2.2:1"), Want: ok},
			{Name: "third stream of acme from a third client", Do: sse(Good, "192.0.2.3:1"), Want: tooMany("tenant_limit", 1)},
			{Name: "another tenant unaffected", Do: sse(payloadOf("account", "other"), "192.0.2.3:1"), Want: ok},
		}},
		{Name: "sse/TenantHeaderSpoofing", Plugin: `{"sse":{"max_per_tenant":2,"rate_limit_per_min":100}}`, Steps: []Step{
			{Do: sse(payloadOf("account", "attacker"), "192.0.2.1:1", [2]string{"x-tenant-id", "victim"}), Times: 2, Want: ok},
			{Do: sse(payloadOf("account", "attacker"), "192.0.2.1:1", [2]string{"x-tenant-id", "victim"}), Want: tooMany("tenant_limit", 1)},
			{Name: "the victim's quota is untouched", Do: sse(payloadOf("account", "victim"), "192.0.2.2:1"), Want: ok},
		}},
		{Name: "sse/global limit checked first", Plugin: `{"sse":{"max_total":3,"rate_limit_per_min":100}}`, Steps: []Step{
			{Do: sse(payloadOf("account", "t1"), "192.0.2.1:1"), Want: ok},
			{Do: sse(payloadOf("account", "t2"), "192.0.2.2:1"), Want: ok},
			{Do: sse(payloadOf("account", "t3"), "192.0.2.3:1"), Want: ok},
			{Do: sse(payloadOf("account", "t4"), "192.0.2.4:1"), Want: tooMany("global_limit", 1)},
			{Name: "global_limit outranks ip_limit", Do: sse(payloadOf("account", "t1"), "192.0.2.1:1"), Want: tooMany("global_limit", 2)},
		}},
		{Name: "sse/XForwardedForFromUntrustedPeerIgnored", Plugin: sseFast, Steps: []Step{
			{Do: sse(Good, "198.51.100.50:1", [2]string{"x-forwarded-for", "10.9.0.1"}), Times: 10, Want: ok},
			{Do: sse(Good, "198.51.100.50:1", [2]string{"x-forwarded-for", "10.9.9.9"}), Want: tooMany("ip_limit", 1)},
		}},
		{Name: "sse/XForwardedForFromTrustedProxy rightmost untrusted, never leftmost",
			Plugin: `{"sse":{"rate_limit_per_min":100,"max_per_ip":1}}`, Env: map[string]string{"SSE_TRUSTED_PROXIES": "10.100.0.0/16, 2001:db8::/32"},
			Steps: []Step{
				{Do: sse(Good, "10.100.3.4:5555", [2]string{"x-forwarded-for", "1.1.1.1, 198.51.100.77"}), Want: ok},
				{Name: "LeftmostXForwardedForSpoofing", Do: sse(Good, "10.100.3.4:5555", [2]string{"x-forwarded-for", "2.2.2.2, 198.51.100.77"}), Want: tooMany("ip_limit", 1)},
				{Name: "trusted hops skipped", Do: sse(Good, "10.100.3.4:5555", [2]string{"x-forwarded-for", "198.51.100.77, 10.100.9.9"}), Want: tooMany("ip_limit", 2)},
				{Name: "another client behind the proxy", Do: sse(Good, "10.100.3.4:5555", [2]string{"x-forwarded-for", "198.51.100.78"}), Want: ok},
				{Name: "IPv6 clients keyed by /64", Do: sse(Good, "[2001:db8::1]:443", [2]string{"x-forwarded-for", "2001:db8:1:2::5"}), Want: ok},
				{Name: "same /64", Do: sse(Good, "[2001:db8::1]:443", [2]string{"x-forwarded-for", "2001:db8:1:2::6"}), Want: tooMany("ip_limit", 3)},
				{Name: "IPv4-mapped IPv6 is IPv4", Do: sse(Good, "[::ffff:198.51.100.78]:1"), Want: tooMany("ip_limit", 4)},
			}},
		{Name: "sse/SSE detection", Plugin: `{"sse":{"rate_limit_per_min":100,"max_per_ip":1}}`, Steps: []Step{
			{Name: "SSE path without Accept", Do: Request{Path: "/mcp/sse", Peer: "192.0.2.1:1", Headers: [][2]string{auth(Good)}}, Want: ok},
			{Name: "counted", Do: Request{Path: "/mcp/sse", Peer: "192.0.2.1:1", Headers: [][2]string{auth(Good)}}, Want: tooMany("ip_limit", 1)},
			{Name: "Accept on another path, POST", Do: Request{Method: "POST", Path: "/mcp", Peer: "192.0.2.2:1", Headers: [][2]string{{"accept", "application/json, text/event-stream"}, auth(Good)}}, Want: ok},
			{Name: "counted too", Do: Request{Path: "/mcp", Peer: "192.0.2.2:1", Headers: [][2]string{{"accept", "text/event-stream"}, auth(Good)}}, Want: tooMany("ip_limit", 2)},
			{Name: "plain request not limited", Do: Request{Peer: "192.0.2.1:1", Headers: [][2]string{auth(Good)}}, Times: 3, Want: ok},
			{Name: "PUT is not an SSE admission", Do: Request{Method: "PUT", Path: "/mcp/sse", Peer: "192.0.2.1:1", Headers: [][2]string{auth(Good)}}, Want: ok},
			{Name: "preflight on the SSE path is not admitted", Do: Request{Method: "OPTIONS", Path: "/mcp/sse", Peer: "192.0.2.1:1",
				Headers: [][2]string{origin(console), {"access-control-request-method", "GET"}}}, Want: Want{Status: 204}},
			{Name: "SSE without token is refused before admission", Do: Request{Path: "/mcp/sse", Peer: "192.0.2.9:1"}, Want: Want{Status: 401}},
		}},
		{Name: "sse/tenant gauge and label cap", Plugin: `{"metrics":{"max_tenant_labels":2},"sse":{"rate_limit_per_min":100}}`, Steps: []Step{
			{Do: sse(payloadOf("account", "a"), "198.51.100.1:1"), Want: ok},
			{Do: sse(payloadOf("account", "b"), "198.51.100.2:1"), Want: ok},
			{Do: sse(payloadOf("account", "c"), "198.51.100.3:1"), Want: ok},
			{Do: sse(payloadOf("account", ""), "198.51.100.4:1"), Want: Want{Metrics: map[string]uint64{
				tenant("a"): 1, tenant("b"): 1, tenant("_other"): 2, tenant("c"): 0, tenant("anonymous"): 0}}},
			{Name: "ends bring the gauges down", EndOldest: 4, Do: Request{Path: "/health"}, Want: Want{Metrics: map[string]uint64{
				tenant("a"): 0, tenant("b"): 0, tenant("_other"): 0}}},
		}},
		{Name: "sse/retry_after configured", Plugin: `{"sse":{"max_per_ip":1,"retry_after":120}}`, Steps: []Step{
			{Do: sse(Good, peer), Want: ok},
			{Do: sse(Good, peer), Want: Want{Status: 429, Reason: "ip_limit",
				Headers: map[string]string{"retry-after": "120"}, Body: []string{`"retry_after":120`}}},
		}},
		{Name: "sse/query string on the SSE path", Plugin: `{"sse":{"max_per_ip":1,"rate_limit_per_min":100}}`, Steps: []Step{
			{Do: Request{Path: "/mcp/sse?session=1", Peer: peer, Headers: [][2]string{auth(Good)}}, Want: ok},
			{Do: Request{Path: "/mcp/sse?session=2", Peer: peer, Headers: [][2]string{auth(Good)}}, Want: tooMany("ip_limit", 1)},
		}},
		{Name: "sse/tenant claim as an array takes its first string", Plugin: sseFast, Steps: []Step{
			{Do: sse(Payload(map[string]any{"aud": "account", "tenant_id": []any{"first", "second"}}), peer),
				Want: Want{Metrics: map[string]uint64{tenant("first"): 1, tenant("second"): 0}}},
		}},
		{Name: "sse/claim without tenant is anonymous", Plugin: sseFast, Steps: []Step{
			{Do: sse(payloadOf("account", ""), "198.51.100.1:1"), Want: Want{Metrics: map[string]uint64{tenant("anonymous"): 1}}},
		}},
	}
}

func rollbackCases() []Case {
	return []Case{
		{Name: "rollback/ALLOWED_AUDIENCES empty disables the audience check", Env: map[string]string{"ALLOWED_AUDIENCES": ""},
			StartLog: "audience check DISABLED", Steps: []Step{
				{Do: Request{Headers: [][2]string{auth(payloadOf("other", ""))}}, Want: ok},
				{Do: Request{}, Want: Want{Metrics: map[string]uint64{jwt("missing_token"): 0}}},
				{Name: "SSE still limited, tenant from the claim", Do: sse(payloadOf("other", "acme"), "198.51.100.1:1"), Times: 5, End: true, Want: ok},
				{Do: sse(payloadOf("other", "acme"), "198.51.100.1:1"), Want: tooMany("rate_limit", 1)},
			}},
		{Name: `rollback/CORS_ORIGINS="*" allows any origin without credentials`, Env: map[string]string{"CORS_ORIGINS": "*"},
			StartLog: "CORS wildcard mode", Steps: []Step{
				{Do: preflight("https://evil.com", "GET", ""), Want: Want{Status: 204, Headers: map[string]string{
					"access-control-allow-origin": "*", "access-control-allow-credentials": ""}}},
				{Do: Request{Headers: [][2]string{origin("https://evil.com"), auth(Good)}, Response: [][2]string{{":status", "200"}}},
					Want: Want{ResponseHeaders: map[string]string{"access-control-allow-origin": "*", "vary": "Origin"}}},
				{Name: "methods still checked", Do: preflight("https://evil.com", "PATCH", ""), Want: corsRefused("method")},
			}},
		{Name: "rollback/SSE_LIMITER_ENABLED=false", Env: map[string]string{"SSE_LIMITER_ENABLED": "false"}, StartLog: "SSE limiter DISABLED", Steps: []Step{
			{Do: sse(Good, "198.51.100.1:1"), Times: 20, Want: Want{Metrics: map[string]uint64{tenant("acme"): 0}}},
		}},
		{Name: "rollback/plugin JSON outranks the environment", Env: map[string]string{"ALLOWED_AUDIENCES": ""},
			Plugin: `{"audience":{"allowed":["only-this"]}}`, Steps: []Step{
				{Do: Request{Headers: [][2]string{auth(Good)}}, Want: Want{Status: 401, Metrics: map[string]uint64{jwt("invalid_audience"): 1}}},
				{Do: Request{Headers: [][2]string{auth(payloadOf("only-this", ""))}}, Want: ok},
			}},
		{Name: "dry run decides and counts but lets through",
			Plugin: `{"mode":{"audience":"dry_run","cors":"dry_run","sse":"dry_run"},"sse":{"max_per_ip":1}}`, Steps: []Step{
				{Do: Request{Headers: [][2]string{auth(payloadOf("x", ""))}}, Want: Want{Metrics: map[string]uint64{jwt("invalid_audience"): 1}}},
				{Do: preflight("https://evil.com", "GET", ""), Want: Want{Metrics: map[string]uint64{corsR("origin"): 1}}},
				{Do: Request{Headers: [][2]string{origin("https://evil.com"), auth(Good)}}, Want: Want{Metrics: map[string]uint64{corsR("origin"): 2}}},
				{Do: sse(Good, "198.51.100.1:1"), Want: ok},
				{Do: sse(Good, "198.51.100.1:1"), Times: 2, Want: ok},
				{Want: Want{Metrics: map[string]uint64{sseR("ip_limit"): 2}}, Do: Request{Path: "/health"}},
			}},
	}
}

func configCases() []Case {
	bad := func(name, plugin string, env map[string]string, errText string) Case {
		return Case{Name: "config/" + name, Plugin: plugin, Env: env, StartError: errText}
	}
	return []Case{
		bad("unknown key", `{"sse":{"max_per_ipp":3}}`, nil, "sse.max_per_ipp"),
		bad("negative limit", `{"sse":{"max_per_ip":-1}}`, nil, "sse.max_per_ip"),
		bad("wrong type", `{"sse":{"max_total":"many"}}`, nil, "sse.max_total"),
		bad("bad duration", `{"sse":{"idle_timeout":"soon"}}`, nil, "sse.idle_timeout"),
		bad("bad CIDR in the environment", "", map[string]string{"SSE_TRUSTED_PROXIES": "10.0.0.0/33"}, "SSE_TRUSTED_PROXIES"),
		bad("bad origin", `{"cors":{"origins":["https://*.evil.com/path"]}}`, nil, "cors.origins"),
		bad("wildcard with other origins", "", map[string]string{"CORS_ORIGINS": "*,https://a.example.com"}, "CORS_ORIGINS"),
		bad("not JSON", `{"sse":`, nil, "not valid JSON"),
		bad("bad boolean in the environment", "", map[string]string{"SSE_LIMITER_ENABLED": "maybe"}, "SSE_LIMITER_ENABLED"),
	}
}
