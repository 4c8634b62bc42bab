package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/filter/cors"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustParse(t *testing.T, js string, env map[string]string) *Config {
	t.Helper()
	c, err := Parse([]byte(js), envMap(env))
	require.NoError(t, err)
	require.NotNil(t, c)
	return c
}

func TestDefaultsEqualSpec(t *testing.T) {
	for _, in := range []string{"", "   \n\t ", "{}", `{"sse": {}}`} {
		c := mustParse(t, in, nil)
		assert.Equal(t, []string{"stoa-mcp-gateway", "account"}, c.Audience.Allowed)
		assert.False(t, c.Audience.AllowMissing)
		assert.Equal(t, "x-jwt-payload", c.Audience.PayloadHeader)
		assert.Equal(t, "", c.Audience.PayloadMetadataKey)
		assert.Equal(t, "tenant_id", c.Audience.TenantClaim)
		assert.Equal(t, []string{"/.well-known/", "/health"}, c.Audience.ExemptPaths)
		assert.True(t, c.Audience.Enabled())
		assert.Equal(t, cors.PolicyConfig{
			Origins:       []string{"https://console.stoa.dev", "https://portal.stoa.dev", "https://console.gostoa.dev", "https://portal.gostoa.dev"},
			AllowMethods:  []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"},
			AllowHeaders:  []string{"Authorization", "Content-Type", "X-Request-ID", "X-Tenant-ID"},
			ExposeHeaders: []string{"X-Request-ID", "X-Trace-ID"},
			MaxAge:        600,
		}, c.CORS.Config)
		require.NotNil(t, c.CORS.Policy)
		assert.True(t, c.CORS.Policy.AllowOrigin("https://portal.gostoa.dev"))
		assert.Equal(t, "600", c.CORS.Policy.MaxAgeValue())
		assert.Equal(t, SSE{
			Enabled: true, MaxPerIP: 10, MaxPerTenant: 100, MaxTotal: 5000, RateLimitPerMin: 5,
			IdleTimeout: 30 * time.Second, MaxDuration: time.Hour, Tick: time.Second, RetryAfter: 60,
			Paths: []string{"/mcp/sse"}, Scope: "default", IPBuckets: 4096, TenantBuckets: 256,
		}, c.SSE)
		assert.Empty(t, c.ClientIP.TrustedProxies)
		assert.Equal(t, 64, c.ClientIP.IPv6Prefix)
		assert.Equal(t, 100, c.Metrics.MaxTenantLabels)
		assert.Equal(t, Mode{}, c.Mode)
		assert.Empty(t, c.Warnings(), "secure defaults warn about nothing")
	}
	d := Default()
	require.NotNil(t, d)
	assert.Equal(t, 5000, d.SSE.MaxTotal)
	var nilCfg *Config
	assert.Nil(t, nilCfg.Warnings())
}

const fullJSON = `{
 "audience": {"allowed": ["stoa-mcp-gateway","account"], "allow_missing": false,
              "payload_header": "X-JWT-Payload", "payload_metadata_key": "jwt_payload",
              "tenant_claim": "org", "exempt_paths": ["/.well-known/", "/health", "/ready"]},
 "cors": {"origins": ["https://console.stoa.dev","https://*.example.com:8443"],
          "allow_methods": ["GET","POST"],
          "allow_headers": ["Authorization"],
          "expose_headers": [], "max_age": 60},
 "sse": {"enabled": true, "max_per_ip": 3, "max_per_tenant": 30, "max_total": 300,
         "idle_timeout": "10s", "max_duration": "30m", "rate_limit_per_min": 7, "retry_after": 30,
         "paths": ["/mcp/sse", "/events"], "scope": "prod-eu.1", "ip_buckets": 1024, "tenant_buckets": 64, "tick": "500ms"},
 "client_ip": {"trusted_proxies": ["10.100.0.0/16", "2001:db8::/32", "192.0.2.1", "2001:db8:1::1"], "ipv6_prefix": 56},
 "metrics": {"max_tenant_labels": 0},
 "mode": {"audience": "enforce", "cors": "enforce", "sse": "enforce"}
}`

func TestJSONOnly(t *testing.T) {
	c := mustParse(t, fullJSON, nil)
	assert.Equal(t, "x-jwt-payload", c.Audience.PayloadHeader, "lower-cased")
	assert.Equal(t, "jwt_payload", c.Audience.PayloadMetadataKey)
	assert.Equal(t, "org", c.Audience.TenantClaim)
	assert.Equal(t, []string{"/.well-known/", "/health", "/ready"}, c.Audience.ExemptPaths)
	assert.Equal(t, []string{"https://console.stoa.dev", "https://*.example.com:8443"}, c.CORS.Config.Origins)
	assert.True(t, c.CORS.Policy.AllowOrigin("https://a.example.com:8443"))
	assert.Equal(t, "GET, POST", c.CORS.Policy.AllowMethodsValue())
	assert.Equal(t, []string{}, c.CORS.Config.ExposeHeaders)
	assert.Equal(t, 60, c.CORS.Config.MaxAge)
	assert.Equal(t, SSE{
		Enabled: true, MaxPerIP: 3, MaxPerTenant: 30, MaxTotal: 300, RateLimitPerMin: 7,
		IdleTimeout: 10 * time.Second, MaxDuration: 30 * time.Minute, Tick: 500 * time.Millisecond, RetryAfter: 30,
		Paths: []string{"/mcp/sse", "/events"}, Scope: "prod-eu.1", IPBuckets: 1024, TenantBuckets: 64,
	}, c.SSE)
	assert.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.100.0.0/16"), netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8:1::1/128"),
	}, c.ClientIP.TrustedProxies)
	assert.Equal(t, 56, c.ClientIP.IPv6Prefix)
	assert.Equal(t, 0, c.Metrics.MaxTenantLabels)
	assert.Empty(t, c.Warnings())
}

func TestEnvOnly(t *testing.T) {
	c := mustParse(t, "", map[string]string{
		"ALLOWED_AUDIENCES":   " stoa-mcp-gateway , ,other ",
		"CORS_ORIGINS":        "https://console.stoa.dev,http://localhost:3000, http://localhost:5173,",
		"CORS_ALLOW_METHODS":  "GET,POST",
		"CORS_ALLOW_HEADERS":  "Authorization",
		"CORS_EXPOSE_HEADERS": "",
		"CORS_MAX_AGE":        " 120 ",
		"SSE_LIMITER_ENABLED": "TRUE",
		"SSE_TRUSTED_PROXIES": "10.100.0.0/16, 172.16.0.0/12",
		"UNRELATED":           "ignored",
	})
	assert.Equal(t, []string{"stoa-mcp-gateway", "other"}, c.Audience.Allowed)
	assert.Equal(t, []string{"https://console.stoa.dev", "http://localhost:3000", "http://localhost:5173"}, c.CORS.Config.Origins)
	assert.True(t, c.CORS.Policy.AllowOrigin("http://localhost:5173"))
	assert.Equal(t, []string{"GET", "POST"}, c.CORS.Config.AllowMethods)
	assert.Equal(t, []string{"Authorization"}, c.CORS.Config.AllowHeaders)
	assert.Equal(t, []string{}, c.CORS.Config.ExposeHeaders)
	assert.Equal(t, 120, c.CORS.Config.MaxAge)
	assert.True(t, c.SSE.Enabled)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.100.0.0/16"), netip.MustParsePrefix("172.16.0.0/12")}, c.ClientIP.TrustedProxies)
	assert.Empty(t, c.Warnings())
}

func TestEnvBools(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "TRUE": true, "True": true, "1": true, " true ": true,
		"false": false, "FALSE": false, "0": false, "fAlSe": false} {
		c := mustParse(t, "", map[string]string{"SSE_LIMITER_ENABLED": v})
		assert.Equal(t, want, c.SSE.Enabled, v)
	}
	for _, v := range []string{"", "yes", "no", "on", "2", "t", "truee"} {
		_, err := Parse(nil, envMap(map[string]string{"SSE_LIMITER_ENABLED": v}))
		require.Error(t, err, v)
		assert.Equal(t, `SSE_LIMITER_ENABLED: `+quote(v)+`: expected true, false, 1 or 0`, err.Error())
	}
}

func TestPrecedencePerKey(t *testing.T) {
	env := map[string]string{
		"ALLOWED_AUDIENCES":   "from-env",
		"CORS_ORIGINS":        "https://env.example",
		"CORS_MAX_AGE":        "100",
		"SSE_LIMITER_ENABLED": "false",
		"SSE_TRUSTED_PROXIES": "10.0.0.0/8",
	}
	c := mustParse(t, `{"audience": {"allowed": ["from-json"]}, "cors": {"max_age": 200}}`, env)
	assert.Equal(t, []string{"from-json"}, c.Audience.Allowed, "JSON beats env")
	assert.Equal(t, 200, c.CORS.Config.MaxAge, "JSON beats env")
	assert.Equal(t, []string{"https://env.example"}, c.CORS.Config.Origins, "env beats default")
	assert.False(t, c.SSE.Enabled, "env beats default")
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, c.ClientIP.TrustedProxies)
	assert.Equal(t, []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"}, c.CORS.Config.AllowMethods, "default kept")
	assert.Equal(t, 10, c.SSE.MaxPerIP, "default kept")
	assert.Contains(t, c.Warnings(), "ALLOWED_AUDIENCES is ignored: the plugin configuration sets audience.allowed")
	assert.Contains(t, c.Warnings(), "CORS_MAX_AGE is ignored: the plugin configuration sets cors.max_age")

	// JSON sets a key: a bad env value for that key is not read at all.
	c = mustParse(t, `{"cors": {"max_age": 5}}`, map[string]string{"CORS_MAX_AGE": "garbage"})
	assert.Equal(t, 5, c.CORS.Config.MaxAge)
	// JSON empty list beats env.
	c = mustParse(t, `{"audience": {"allowed": []}}`, map[string]string{"ALLOWED_AUDIENCES": "a"})
	assert.False(t, c.Audience.Enabled())
}

func TestMixedListForms(t *testing.T) {
	c := mustParse(t, `{"audience": {"allowed": " a, b ,,c "}, "cors": {"allow_methods": [" GET ", "", "post"]},
		"client_ip": {"trusted_proxies": "10.0.0.0/8,  ::1"}}`, nil)
	assert.Equal(t, []string{"a", "b", "c"}, c.Audience.Allowed)
	assert.Equal(t, []string{"GET", "post"}, c.CORS.Config.AllowMethods)
	assert.Equal(t, "GET, POST", c.CORS.Policy.AllowMethodsValue())
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}, c.ClientIP.TrustedProxies)
}

func TestDryRunModes(t *testing.T) {
	c := mustParse(t, `{"mode": {"audience": "dry_run", "cors": "dry_run", "sse": "dry_run"}}`, nil)
	assert.Equal(t, Mode{AudienceDryRun: true, CORSDryRun: true, SSEDryRun: true}, c.Mode)
	assert.Equal(t, []string{
		"mode.audience is dry_run: audience refusals are counted but not enforced",
		"mode.cors is dry_run: cors refusals are counted but not enforced",
		"mode.sse is dry_run: sse refusals are counted but not enforced",
	}, c.Warnings())
	c = mustParse(t, `{"mode": {"cors": "dry_run"}}`, nil)
	assert.Equal(t, Mode{CORSDryRun: true}, c.Mode)
	assert.Equal(t, []string{"mode.cors is dry_run: cors refusals are counted but not enforced"}, c.Warnings())
}

func TestRollbackWarnings(t *testing.T) {
	secret := []string{"stoa-mcp-gateway", "account", "console.stoa.dev", "10.100", "secret-aud"}
	tests := []struct {
		name string
		js   string
		env  map[string]string
		want []string
	}{
		{"audience disabled by env", "", map[string]string{"ALLOWED_AUDIENCES": ""},
			[]string{`audience check DISABLED: the audience allow list is empty (ALLOWED_AUDIENCES="" or audience.allowed); tokens for any audience are accepted`}},
		{"audience disabled by env spaces", "", map[string]string{"ALLOWED_AUDIENCES": " , "},
			[]string{`audience check DISABLED: the audience allow list is empty (ALLOWED_AUDIENCES="" or audience.allowed); tokens for any audience are accepted`}},
		{"audience disabled by json", `{"audience": {"allowed": ""}}`, nil,
			[]string{`audience check DISABLED: the audience allow list is empty (ALLOWED_AUDIENCES="" or audience.allowed); tokens for any audience are accepted`}},
		{"allow missing aud", `{"audience": {"allowed": "secret-aud", "allow_missing": true}}`, nil,
			[]string{"audience.allow_missing is true: tokens without an aud claim are accepted"}},
		{"cors wildcard by env", "", map[string]string{"CORS_ORIGINS": "*"},
			[]string{`CORS wildcard mode: cors.origins is "*"; any origin is allowed (never with credentials); do not use in production`}},
		{"cors wildcard by json", `{"cors": {"origins": ["*"]}}`, nil,
			[]string{`CORS wildcard mode: cors.origins is "*"; any origin is allowed (never with credentials); do not use in production`}},
		{"cors empty", "", map[string]string{"CORS_ORIGINS": ""},
			[]string{"cors.origins is empty: every cross-origin request is refused"}},
		{"sse disabled by env", "", map[string]string{"SSE_LIMITER_ENABLED": "false"},
			[]string{"SSE limiter DISABLED (SSE_LIMITER_ENABLED=false or sse.enabled false): SSE connections are not limited"}},
		{"sse disabled by json", `{"sse": {"enabled": false}}`, nil,
			[]string{"SSE limiter DISABLED (SSE_LIMITER_ENABLED=false or sse.enabled false): SSE connections are not limited"}},
		{"trust everyone", "", map[string]string{"SSE_TRUSTED_PROXIES": "10.100.0.0/16,0.0.0.0/0"},
			[]string{"client_ip.trusted_proxies contains a /0 prefix: every peer may set X-Forwarded-For (client IPs can be spoofed)"}},
		{"all at once", `{"mode": {"sse": "dry_run"}}`, map[string]string{"ALLOWED_AUDIENCES": "", "CORS_ORIGINS": "*", "SSE_LIMITER_ENABLED": "0"},
			[]string{
				`audience check DISABLED: the audience allow list is empty (ALLOWED_AUDIENCES="" or audience.allowed); tokens for any audience are accepted`,
				`CORS wildcard mode: cors.origins is "*"; any origin is allowed (never with credentials); do not use in production`,
				"SSE limiter DISABLED (SSE_LIMITER_ENABLED=false or sse.enabled false): SSE connections are not limited",
				"mode.sse is dry_run: sse refusals are counted but not enforced",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.js, tt.env)
			assert.Equal(t, tt.want, c.Warnings())
			for _, w := range c.Warnings() {
				for _, s := range secret {
					assert.NotContains(t, w, s, "warnings never echo allow lists")
				}
			}
		})
	}
	c := mustParse(t, "", map[string]string{"CORS_ORIGINS": "*"})
	assert.True(t, c.CORS.Policy.Wildcard())
	c = mustParse(t, "", map[string]string{"ALLOWED_AUDIENCES": ""})
	assert.False(t, c.Audience.Enabled())
	assert.Empty(t, c.Audience.Allowed)
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name string
		js   string
		env  map[string]string
		want string
	}{
		// document
		{"not json", `{"sse":`, nil, `plugin configuration: not valid JSON; expected a JSON object like {"sse": {"max_per_ip": 10}}`},
		{"trailing garbage", `{} {}`, nil, `plugin configuration: not valid JSON; expected a JSON object like {"sse": {"max_per_ip": 10}}`},
		{"array", `[]`, nil, `plugin configuration: got an array, expected a JSON object like {"sse": {"max_per_ip": 10}}`},
		{"string", `"x"`, nil, `plugin configuration: got a string "x", expected a JSON object like {"sse": {"max_per_ip": 10}}`},
		{"null", `null`, nil, `plugin configuration: got null, expected a JSON object like {"sse": {"max_per_ip": 10}}`},
		{"invalid utf8", "{\"sse\": {\"scope\": \"a\xffb\"}}", nil, `plugin configuration: invalid UTF-8 at byte 20; expected a UTF-8 JSON object`},
		{"deep", `{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, nil,
			`plugin configuration: nested 41 levels deep; expected a JSON object of sections (at most 16 levels)`},
		{"bom", "\xef\xbb\xbf{}", nil, `plugin configuration: not valid JSON; expected a JSON object like {"sse": {"max_per_ip": 10}}`},
		// keys
		{"unknown section", `{"ssee": {}}`, nil, `unknown key "ssee"; expected one of audience, cors, sse, client_ip, metrics, mode`},
		{"unknown key", `{"sse": {"max_per_ipp": 1}}`, nil,
			`unknown key "sse.max_per_ipp"; expected one of enabled, max_per_ip, max_per_tenant, max_total, idle_timeout, max_duration, rate_limit_per_min, rate_limit_message_posts, retry_after, paths, scope, ip_buckets, tenant_buckets, tick`},
		{"unknown key case", `{"cors": {"Origins": []}}`, nil,
			`unknown key "cors.Origins"; expected one of origins, allow_methods, allow_headers, expose_headers, max_age`},
		{"unknown key quoted", "{\"mode\": {\"a\\nb\": 1}}", nil, `unknown key "mode.a\nb"; expected one of audience, cors, sse`},
		{"duplicate section", `{"sse": {}, "sse": {"enabled": false}}`, nil, `duplicate key "sse": each key may appear once`},
		{"duplicate key", `{"audience": {"allowed": ["a"], "allowed": []}}`, nil, `duplicate key "audience.allowed": each key may appear once`},
		{"duplicate key escaped", `{"sse": {"enabled": true, "\u0065nabled": false}}`, nil, `duplicate key "sse.enabled": each key may appear once`},
		{"first error wins", `{"sse": {"max_per_ip": -1, "bogus": 1}}`, nil, `sse.max_per_ip: "-1": expected an integer between 1 and 1000000 (connections)`},
		// section types
		{"section not object", `{"sse": []}`, nil, `sse: got an array, expected an object`},
		{"section null", `{"cors": null}`, nil, `cors: got null, expected an object`},
		// ints
		{"negative limit", `{"sse": {"max_per_ip": -1}}`, nil, `sse.max_per_ip: "-1": expected an integer between 1 and 1000000 (connections)`},
		{"zero limit", `{"sse": {"max_total": 0}}`, nil, `sse.max_total: "0": expected an integer between 1 and 1000000 (connections)`},
		{"float for int", `{"sse": {"max_per_tenant": 10.5}}`, nil, `sse.max_per_tenant: "10.5": expected an integer between 1 and 1000000 (connections)`},
		{"float zero fraction", `{"sse": {"max_per_tenant": 10.0}}`, nil, `sse.max_per_tenant: "10.0": expected an integer between 1 and 1000000 (connections)`},
		{"exponent", `{"sse": {"max_per_tenant": 1e3}}`, nil, `sse.max_per_tenant: "1e3": expected an integer between 1 and 1000000 (connections)`},
		{"huge", `{"sse": {"max_total": 99999999999999999999999}}`, nil, `sse.max_total: "99999999999999999999999": expected an integer between 1 and 1000000 (connections)`},
		{"string for number", `{"sse": {"max_per_ip": "10"}}`, nil, `sse.max_per_ip: got a string "10", expected an integer between 1 and 1000000 (connections)`},
		{"bool for number", `{"sse": {"rate_limit_per_min": true}}`, nil, `sse.rate_limit_per_min: got a boolean true, expected an integer between 1 and 1000 (new streams per minute)`},
		{"null for number", `{"sse": {"max_per_ip": null}}`, nil, `sse.max_per_ip: got null, expected an integer between 1 and 1000000 (connections)`},
		{"rate zero", `{"sse": {"rate_limit_per_min": 0}}`, nil, `sse.rate_limit_per_min: "0": expected an integer between 1 and 1000 (new streams per minute)`},
		{"retry_after zero", `{"sse": {"retry_after": 0}}`, nil, `sse.retry_after: "0": expected an integer between 1 and 86400 (seconds)`},
		{"buckets zero", `{"sse": {"ip_buckets": 0}}`, nil, `sse.ip_buckets: "0": expected an integer between 1 and 65536 (buckets)`},
		{"buckets huge", `{"sse": {"tenant_buckets": 65537}}`, nil, `sse.tenant_buckets: "65537": expected an integer between 1 and 65536 (buckets)`},
		{"ipv6 prefix small", `{"client_ip": {"ipv6_prefix": 16}}`, nil, `client_ip.ipv6_prefix: "16": expected an integer between 32 and 128 (bits)`},
		{"ipv6 prefix big", `{"client_ip": {"ipv6_prefix": 129}}`, nil, `client_ip.ipv6_prefix: "129": expected an integer between 32 and 128 (bits)`},
		{"tenant labels negative", `{"metrics": {"max_tenant_labels": -5}}`, nil, `metrics.max_tenant_labels: "-5": expected an integer between 0 and 10000 (labels)`},
		{"max_age negative", `{"cors": {"max_age": -1}}`, nil, `cors.max_age: "-1": expected an integer between 0 and 86400 (seconds)`},
		{"max_age env", "", map[string]string{"CORS_MAX_AGE": "10m"}, `CORS_MAX_AGE: "10m": expected an integer between 0 and 86400 (seconds)`},
		{"max_age env empty", "", map[string]string{"CORS_MAX_AGE": ""}, `CORS_MAX_AGE: "": expected an integer between 0 and 86400 (seconds)`},
		// bools
		{"string for bool", `{"sse": {"enabled": "false"}}`, nil, `sse.enabled: got a string "false", expected true or false`},
		{"number for bool", `{"audience": {"allow_missing": 0}}`, nil, `audience.allow_missing: got a number 0, expected true or false`},
		// durations
		{"bad duration", `{"sse": {"idle_timeout": "30"}}`, nil, `sse.idle_timeout: "30": expected a positive duration like "30s" or "1h"`},
		{"zero duration", `{"sse": {"max_duration": "0s"}}`, nil, `sse.max_duration: "0s": expected a positive duration like "30s" or "1h"`},
		{"negative duration", `{"sse": {"tick": "-1s"}}`, nil, `sse.tick: "-1s": expected a positive duration like "30s" or "1h"`},
		{"number duration", `{"sse": {"idle_timeout": 30}}`, nil, `sse.idle_timeout: got a number 30, expected a duration string like "30s" or "1h"`},
		{"idle above max", `{"sse": {"idle_timeout": "2h"}}`, nil, `sse.idle_timeout: "2h0m0s": must not exceed sse.max_duration (1h0m0s)`},
		{"max duration cap", `{"sse": {"max_duration": "25h"}}`, nil, `sse.max_duration: "25h0m0s": expected between 1s and 24h`},
		{"max duration under 1s", `{"sse": {"max_duration": "500ms", "idle_timeout": "200ms", "tick": "100ms"}}`, nil, `sse.max_duration: "500ms": expected between 1s and 24h`},
		{"tick over 1h", `{"sse": {"max_duration": "24h", "idle_timeout": "3h", "tick": "2h"}}`, nil, `sse.tick: "2h0m0s": expected a duration between 100ms and sse.idle_timeout (3h0m0s), at most 1h`},
		{"message posts not a bool", `{"sse": {"rate_limit_message_posts": "yes"}}`, nil, `sse.rate_limit_message_posts: got a string "yes", expected true or false`},
		{"rate over what the limiter keeps", `{"sse": {"rate_limit_per_min": 1001}}`, nil, `sse.rate_limit_per_min: "1001": expected an integer between 1 and 1000 (new streams per minute)`},
		{"tick too small", `{"sse": {"tick": "10ms"}}`, nil, `sse.tick: "10ms": expected a duration between 100ms and sse.idle_timeout (30s), at most 1h`},
		{"tick above idle", `{"sse": {"tick": "1m"}}`, nil, `sse.tick: "1m0s": expected a duration between 100ms and sse.idle_timeout (30s), at most 1h`},
		// strings and modes
		{"bad mode", `{"mode": {"sse": "off"}}`, nil, `mode.sse: "off": expected "enforce" or "dry_run"`},
		{"mode case", `{"mode": {"cors": "DRY_RUN"}}`, nil, `mode.cors: "DRY_RUN": expected "enforce" or "dry_run"`},
		{"mode bool", `{"mode": {"audience": true}}`, nil, `mode.audience: got a boolean true, expected a string`},
		{"bad scope", `{"sse": {"scope": "a/b"}}`, nil, `sse.scope: "a/b": expected 1 to 64 characters from A-Z a-z 0-9 _ . -, like default`},
		{"empty scope", `{"sse": {"scope": ""}}`, nil, `sse.scope: "": expected 1 to 64 characters from A-Z a-z 0-9 _ . -, like default`},
		{"bad payload header", `{"audience": {"payload_header": "x jwt"}}`, nil,
			`audience.payload_header: "x jwt": expected an HTTP header name, like x-jwt-payload (or "" with audience.payload_metadata_key set)`},
		{"pseudo header", `{"audience": {"payload_header": ":authority"}}`, nil,
			`audience.payload_header: ":authority": expected an HTTP header name, like x-jwt-payload (or "" with audience.payload_metadata_key set)`},
		{"no payload source", `{"audience": {"payload_header": ""}}`, nil,
			`audience.payload_header: "" with audience.payload_metadata_key "": expected at least one payload source, like x-jwt-payload`},
		{"empty tenant claim", `{"audience": {"tenant_claim": ""}}`, nil, `audience.tenant_claim: "": expected a claim name, like tenant_id`},
		{"control in metadata key", `{"audience": {"payload_metadata_key": "a\u0000b"}}`, nil,
			`audience.payload_metadata_key: "a\x00b": expected the jwt_authn payload_in_metadata name, printable, at most 256 bytes, or ""`},
		// lists
		{"list wrong type", `{"audience": {"allowed": 5}}`, nil, `audience.allowed: got a number 5, expected an array of strings or a comma-separated string`},
		{"list item wrong type", `{"cors": {"origins": ["https://a.com", 5]}}`, nil, `cors.origins[1]: got a number 5, expected a string`},
		{"list item object", `{"sse": {"paths": [{}]}}`, nil, `sse.paths[0]: got an object, expected a string`},
		{"bad path", `{"sse": {"paths": ["mcp/sse"]}}`, nil,
			`sse.paths: "mcp/sse": expected a path starting with "/", without spaces, query or fragment, like /health or /.well-known/`},
		{"path with query", `{"audience": {"exempt_paths": "/health?x"}}`, nil,
			`audience.exempt_paths: "/health?x": expected a path starting with "/", without spaces, query or fragment, like /health or /.well-known/`},
		{"audience control char", `{"audience": {"allowed": ["a\tb"]}}`, nil,
			`audience.allowed: "a\tb": expected an audience without control characters, at most 1024 bytes`},
		// CORS
		{"bad origin pattern", `{"cors": {"origins": ["https://*foo.com"]}}`, nil,
			`cors.origins: "https://*foo.com": a wildcard must be a whole leading label, like https://*.example.com`},
		{"bad origin env", "", map[string]string{"CORS_ORIGINS": "https://console.stoa.dev/"},
			`CORS_ORIGINS: "https://console.stoa.dev/": an origin has no path, query, fragment or trailing slash; expected scheme://host[:port], like https://console.stoa.dev`},
		{"star mixed json", `{"cors": {"origins": ["*", "https://console.stoa.dev"]}}`, nil,
			`cors.origins: "*": wildcard mode must be the only entry (origins: ["*"]); remove "*" or the other 1 entries`},
		{"star mixed env", "", map[string]string{"CORS_ORIGINS": "https://a.com,*"},
			`CORS_ORIGINS: "*": wildcard mode must be the only entry (origins: ["*"]); remove "*" or the other 1 entries`},
		{"long origin truncated", `{"cors": {"origins": ["https://` + long + `/"]}}`, nil,
			`cors.origins: "https://` + long[:56] + `"...: an origin has no path, query, fragment or trailing slash; expected scheme://host[:port], like https://console.stoa.dev`},
		{"method wildcard", `{"cors": {"allow_methods": "*"}}`, nil,
			`cors.allow_methods: "*": wildcards are not supported (credentials are allowed); list each method, like GET`},
		{"no methods", `{"cors": {"allow_methods": []}}`, nil, `cors.allow_methods: "[]": empty; expected at least one method, like GET,POST`},
		{"no methods env", "", map[string]string{"CORS_ALLOW_METHODS": " , "}, `CORS_ALLOW_METHODS: " , ": empty; expected at least one method, like GET,POST`},
		{"bad header", `{"cors": {"allow_headers": ["X-Ok", "X Bad"]}}`, nil,
			`cors.allow_headers: "X Bad": expected a header name token, like Content-Type`},
		{"bad expose env", "", map[string]string{"CORS_EXPOSE_HEADERS": "X-A;X-B"},
			`CORS_EXPOSE_HEADERS: "X-A;X-B": expected a header name token, like Content-Type`},
		// CIDRs
		{"bad cidr", `{"client_ip": {"trusted_proxies": ["10.100.0.0/33"]}}`, nil,
			`client_ip.trusted_proxies: "10.100.0.0/33": expected a CIDR like 10.100.0.0/16 or 2001:db8::/32, or an IP address`},
		{"bad cidr env", "", map[string]string{"SSE_TRUSTED_PROXIES": "10.100.0.0/16,eks-cluster"},
			`SSE_TRUSTED_PROXIES: "eks-cluster": expected a CIDR like 10.100.0.0/16 or 2001:db8::/32, or an IP address`},
		{"cidr host bits", "", map[string]string{"SSE_TRUSTED_PROXIES": "10.100.0.1/16"},
			`SSE_TRUSTED_PROXIES: "10.100.0.1/16": host bits set; expected the network address "10.100.0.0/16"`},
		{"cidr zone", `{"client_ip": {"trusted_proxies": "fe80::1%eth0"}}`, nil,
			`client_ip.trusted_proxies: "fe80::1%eth0": expected a CIDR like 10.100.0.0/16 or 2001:db8::/32, or an IP address`},
		{"cidr 4in6", `{"client_ip": {"trusted_proxies": ["::ffff:10.0.0.0/104"]}}`, nil,
			`client_ip.trusted_proxies: "::ffff:10.0.0.0/104": IPv4-mapped IPv6 never matches (clients are compared as IPv4); expected an IPv4 CIDR like 10.0.0.0/8`},
		{"cidr leading zeros", `{"client_ip": {"trusted_proxies": ["010.0.0.0/8"]}}`, nil,
			`client_ip.trusted_proxies: "010.0.0.0/8": expected a CIDR like 10.100.0.0/16 or 2001:db8::/32, or an IP address`},
		// env order: the first variable in SPEC.md's table wins
		{"env order", "", map[string]string{"SSE_TRUSTED_PROXIES": "x", "ALLOWED_AUDIENCES": "a\x01"},
			`ALLOWED_AUDIENCES: "a\x01": expected an audience without control characters, at most 1024 bytes`},
		// JSON before env
		{"json before env", `{"sse": {"tick": "x"}}`, map[string]string{"CORS_MAX_AGE": "x"}, `sse.tick: "x": expected a positive duration like "30s" or "1h"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.js), envMap(tt.env))
			assert.Nil(t, c)
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.NotEmpty(t, ce.Key)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestErrorKey(t *testing.T) {
	_, err := Parse([]byte(`{"sse": {"max_per_ip": 0}}`), nil)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "sse.max_per_ip", ce.Key)
	_, err = Parse(nil, envMap(map[string]string{"CORS_MAX_AGE": "x"}))
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "CORS_MAX_AGE", ce.Key)
}

// TestDuplicateKeyAttack pins that gjson's "first wins" cannot be used to
// smuggle a weaker value past a reviewer reading the last occurrence.
func TestDuplicateKeyAttack(t *testing.T) {
	for _, js := range []string{
		`{"audience": {"allowed": ["stoa-mcp-gateway"], "allowed": []}}`,
		`{"cors": {"origins": ["https://console.stoa.dev"]}, "cors": {"origins": ["*"]}}`,
		`{"mode": {"sse": "enforce", "s\u0073e": "dry_run"}}`,
	} {
		_, err := Parse([]byte(js), nil)
		require.Error(t, err, js)
		assert.Contains(t, err.Error(), "duplicate key")
	}
}

func TestHugeConfigRefused(t *testing.T) {
	big := `{"audience": {"allowed": "` + strings.Repeat("a,", MaxConfigBytes/2) + `"}}`
	_, err := Parse([]byte(big), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plugin configuration: ")
	assert.Contains(t, err.Error(), "bytes; expected at most 1048576")

	many := `{"audience": {"allowed": "` + strings.Repeat("a,", maxListItems+1) + `"}}`
	_, err = Parse([]byte(many), nil)
	require.Error(t, err)
	assert.Equal(t, "audience.allowed: 1025 items; expected at most 1024", err.Error())
}

func TestEnvNilAndWhitespaceJSON(t *testing.T) {
	c, err := Parse([]byte(" \r\n"), nil)
	require.NoError(t, err)
	assert.Equal(t, 10, c.SSE.MaxPerIP)
}

func TestSSEIsPath(t *testing.T) {
	c := mustParse(t, `{"sse": {"paths": ["/mcp/sse", "/events/"]}}`, nil)
	for p, want := range map[string]bool{
		"/mcp/sse": true, "/mcp/sse?session=1": true, "/mcp/sse#x": true,
		"/mcp/sse/": true, "/mcp/sse/x": true, "/mcp/sseX": false, "/MCP/SSE": false, "/mcp": false, "": false,
		"/events/": true, "/events/a/b": true, "/events": false,
	} {
		assert.Equal(t, want, c.SSE.IsPath(p), p)
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { c.SSE.IsPath("/events/x?y") }))
	empty := mustParse(t, `{"sse": {"paths": []}}`, nil)
	assert.False(t, empty.SSE.IsPath("/mcp/sse"))
}

// TestSSEPathTrailingSlashAttack: a client cannot dodge the limiter by
// adding a slash or a segment to an SSE path the upstream still serves
// (Envoy's path_separated_prefix route sends them there).
func TestSSEPathTrailingSlashAttack(t *testing.T) {
	c := mustParse(t, "", nil)
	for _, p := range []string{"/mcp/sse/", "/mcp/sse/?x=1", "/mcp/sse/session/1"} {
		assert.True(t, c.SSE.IsPath(p), p)
	}
	assert.False(t, c.SSE.IsPath("/mcp/ssex"))
}
