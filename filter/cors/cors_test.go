package cors

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var defaultOrigins = []string{
	"https://console.stoa.dev", "https://portal.stoa.dev",
	"https://console.gostoa.dev", "https://portal.gostoa.dev",
}

func defaultConfig() PolicyConfig {
	return PolicyConfig{
		Origins:       defaultOrigins,
		AllowMethods:  []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"},
		AllowHeaders:  []string{"Authorization", "Content-Type", "X-Request-ID", "X-Tenant-ID"},
		ExposeHeaders: []string{"X-Request-ID", "X-Trace-ID"},
		MaxAge:        600,
	}
}

func mustPolicy(t testing.TB, c PolicyConfig) *Policy {
	t.Helper()
	p, err := NewPolicy(c)
	require.NoError(t, err)
	return p
}

func policyWith(t testing.TB, origins ...string) *Policy {
	c := defaultConfig()
	c.Origins = origins
	return mustPolicy(t, c)
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://console.stoa.dev", "https://console.stoa.dev", true},
		{"HTTPS://Console.STOA.dev", "https://console.stoa.dev", true},
		{"https://console.stoa.dev:443", "https://console.stoa.dev", true},
		{"http://console.stoa.dev:80", "http://console.stoa.dev", true},
		{"http://console.stoa.dev:443", "http://console.stoa.dev:443", true},
		{"https://console.stoa.dev:80", "https://console.stoa.dev:80", true},
		{"https://console.stoa.dev:0443", "https://console.stoa.dev", true},
		{"http://localhost:3000", "http://localhost:3000", true},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"http://[::1]:8080", "http://[::1]:8080", true},
		{"http://[2001:DB8:0:0::1]", "http://[2001:db8::1]", true},
		{"https://[2001:db8::1]:443", "https://[2001:db8::1]", true},
		{"chrome-extension://abcdef", "chrome-extension://abcdef", true},
		{"null", "null", true},
		{"https://xn--bcher-kva.example", "https://xn--bcher-kva.example", true},
		// invalid
		{"", "", false},
		{"NULL", "", false},
		{"https://console.stoa.dev/", "", false},
		{"https://console.stoa.dev/path", "", false},
		{"https://console.stoa.dev?q", "", false},
		{"https://console.stoa.dev#f", "", false},
		{"https://user@console.stoa.dev", "", false},
		{"https://console.stoa.dev.", "", false},
		{"https://.stoa.dev", "", false},
		{"https://a..stoa.dev", "", false},
		{"https://", "", false},
		{"https://:443", "", false},
		{"https://console.stoa.dev:", "", false},
		{"https://console.stoa.dev:0", "", false},
		{"https://console.stoa.dev:65536", "", false},
		{"https://console.stoa.dev:123456", "", false},
		{"https://console.stoa.dev:-1", "", false},
		{"console.stoa.dev", "", false},
		{"//console.stoa.dev", "", false},
		{"1https://console.stoa.dev", "", false},
		{"https:/console.stoa.dev", "", false},
		{"https://[fe80::1%25eth0]", "", false},
		{"https://[::1", "", false},
		{"https://[1.2.3.4]", "", false},
		{"https://[]", "", false},
		{"https://127.1", "", false},
		{"https://0x7f.1", "", false},
		{"https://1.2.3.256", "", false},
		{"https://bücher.example", "", false},
		{"https://console.stoa.dev\x00", "", false},
		{" https://console.stoa.dev", "", false},
		{"https://console.stoa.dev ", "", false},
		{"https://*.stoa.dev", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := Normalize(tt.in, make([]byte, 0, 64))
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
			got2, ok2 := Normalize(tt.in, nil) // nil buf works too
			assert.Equal(t, tt.ok, ok2)
			assert.Equal(t, tt.want, got2)
		})
	}
}

func TestNormalizeAliasesBuffer(t *testing.T) {
	buf := make([]byte, 0, 64)
	got, ok := Normalize("HTTPS://A.example", buf)
	require.True(t, ok)
	assert.Equal(t, "https://a.example", got)
	assert.Equal(t, "https://a.example", string(buf[:len(got)]))
}

func TestParsePatternErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"*", `"*": "*" is not an origin pattern; use it as the only entry of the origin list (wildcard mode)`},
		{"https://*foo.com", `"https://*foo.com": a wildcard must be a whole leading label, like https://*.example.com`},
		{"https://foo.*.com", `"https://foo.*.com": a wildcard must be a whole leading label, like https://*.example.com`},
		{"https://*.*.example.com", `"https://*.*.example.com": a wildcard must be a whole leading label, like https://*.example.com`},
		{"https://*", `"https://*": a wildcard must be a whole leading label, like https://*.example.com`},
		{"https://*.com", `"https://*.com": a wildcard must cover at least two labels (no *.com or *.localhost); expected like https://*.example.com`},
		{"https://*.0.0.1", `"https://*.0.0.1": a wildcard cannot cover an IP address; expected scheme://*.domain[:port], like https://*.example.com`},
		{"https://*.example.com.", `"https://*.example.com.": invalid wildcard origin; expected scheme://*.domain[:port], like https://*.example.com`},
		{"https://console.stoa.dev/", `"https://console.stoa.dev/": an origin has no path, query, fragment or trailing slash; expected scheme://host[:port], like https://console.stoa.dev`},
		{"https://u:p@console.stoa.dev", `"https://u:p@console.stoa.dev": an origin has no user info; expected scheme://host[:port], like https://console.stoa.dev`},
		{"console.stoa.dev", `"console.stoa.dev": missing scheme; expected scheme://host[:port], like https://console.stoa.dev`},
		{"", `"": empty origin; expected scheme://host[:port], like https://console.stoa.dev`},
		{"NULL", `"NULL": the opaque origin is spelled "null", in lower case`},
		{"https://bücher.example", `"https://bücher.example": non-ASCII origin; write internationalised hosts in punycode (xn--...), like https://xn--bcher-kva.example`},
		{"https://a.com:99999", `"https://a.com:99999": invalid origin; expected scheme://host[:port] with an ASCII host and a port 1..65535, like https://console.stoa.dev or http://localhost:3000`},
		{"https://" + strings.Repeat("a", 100) + ".com", `"https://` + strings.Repeat("a", 56) + `"...: invalid origin; expected scheme://host[:port] with an ASCII host and a port 1..65535, like https://console.stoa.dev or http://localhost:3000`},
		{"https://a\x01.com", `"https://a\x01.com": invalid origin; expected scheme://host[:port] with an ASCII host and a port 1..65535, like https://console.stoa.dev or http://localhost:3000`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParsePattern(tt.in)
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestParsePatternNormalises(t *testing.T) {
	tests := []struct{ in, want string }{
		{"HTTPS://Console.Stoa.dev:443", "https://console.stoa.dev"},
		{"https://*.Example.COM", "https://*.example.com"},
		{"https://*.example.com:443", "https://*.example.com"},
		{"https://*.example.com:8443", "https://*.example.com:8443"},
		{"http://[2001:DB8::0:1]:80", "http://[2001:db8::1]"},
		{"null", "null"},
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, p.String())
	}
	var zero Pattern
	assert.False(t, zero.Match("https://a.com"))
	assert.False(t, zero.Match("null"))
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern, origin string
		want            bool
	}{
		{"https://console.stoa.dev", "https://console.stoa.dev", true},
		{"https://console.stoa.dev", "https://CONSOLE.stoa.dev:443", true},
		{"https://console.stoa.dev", "https://console.stoa.dev:8443", false},
		{"https://console.stoa.dev:8443", "https://console.stoa.dev:8443", true},
		{"https://console.stoa.dev:8443", "https://console.stoa.dev", false},
		{"https://*.example.com", "https://a.example.com", true},
		{"https://*.example.com", "https://a.b.example.com", true},
		{"https://*.example.com", "https://A.EXAMPLE.COM", true},
		{"https://*.example.com", "https://a.example.com:443", true},
		{"https://*.example.com", "https://a.example.com:8443", false},
		{"https://*.example.com:8443", "https://a.example.com:8443", true},
		{"https://*.example.com:8443", "https://a.example.com", false},
		{"https://*.example.com", "https://example.com", false},
		{"https://*.example.com", "https://evilexample.com", false},
		{"https://*.example.com", "https://example.com.evil.com", false},
		{"https://*.example.com", "https://a.example.com.evil.com", false},
		{"https://*.example.com", "https://.example.com", false},
		{"https://*.example.com", "http://a.example.com", false},
		{"https://*.example.com", "https://a.example.com.", false},
		{"http://[::1]:8080", "http://[0:0::1]:8080", true},
		{"http://[::1]:8080", "http://[::2]:8080", false},
		{"http://[::1]", "http://localhost", false},
		{"null", "null", true},
		{"null", "https://null", false},
		{"https://null", "null", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.origin, func(t *testing.T) {
			p, err := ParsePattern(tt.pattern)
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.Match(tt.origin))
		})
	}
}

// --- attacks, named after what they pin ---

func TestOriginSuffixAttack(t *testing.T) {
	p := policyWith(t, defaultOrigins...)
	for _, o := range []string{
		"https://console.stoa.dev.evil.com",
		"https://console.stoa.dev.evil.com:443",
		"https://evilconsole.stoa.dev",
		"https://xconsole.stoa.dev",
		"https://console.stoa.devx",
		"https://console.stoa.dev@evil.com",
		"https://evil.com#https://console.stoa.dev",
		"https://evil.com/https://console.stoa.dev",
		"https://evil.com?https://console.stoa.dev",
	} {
		assert.False(t, p.AllowOrigin(o), o)
		assert.Equal(t, ReasonOrigin, p.Preflight(o, "GET", ""), o)
	}
	assert.True(t, p.AllowOrigin("https://console.stoa.dev"))
}

func TestNullOriginNotListed(t *testing.T) {
	p := policyWith(t, defaultOrigins...)
	assert.False(t, p.AllowOrigin("null"))
	assert.Equal(t, ReasonOrigin, p.Preflight("null", "GET", ""))
	listed := policyWith(t, "https://console.stoa.dev", "null")
	assert.True(t, listed.AllowOrigin("null"))
	assert.False(t, listed.AllowOrigin("Null"))
	assert.False(t, listed.AllowOrigin("NULL"))
	assert.False(t, listed.AllowOrigin("null "))
}

func TestUpperCaseOrigin(t *testing.T) {
	p := policyWith(t, defaultOrigins...)
	assert.True(t, p.AllowOrigin("HTTPS://CONSOLE.STOA.DEV"))
	assert.True(t, p.AllowOrigin("https://Console.Stoa.Dev"))
	// Unicode case folding must not apply: U+212A KELVIN SIGN folds to "k".
	q := policyWith(t, "https://k.example.com")
	assert.False(t, q.AllowOrigin("https://\u212a.example.com"))
}

func TestDefaultPortOrigin(t *testing.T) {
	p := policyWith(t, defaultOrigins...)
	assert.True(t, p.AllowOrigin("https://console.stoa.dev:443"))
	assert.Equal(t, ReasonNone, p.Preflight("https://console.stoa.dev:443", "GET", ""))
	h := policyWith(t, "http://localhost")
	assert.True(t, h.AllowOrigin("http://localhost:80"))
	assert.False(t, h.AllowOrigin("http://localhost:443"))
}

func TestNonDefaultPortOrigin(t *testing.T) {
	p := policyWith(t, defaultOrigins...)
	assert.False(t, p.AllowOrigin("https://console.stoa.dev:8443"))
	assert.False(t, p.AllowOrigin("https://console.stoa.dev:80"))
	q := policyWith(t, "http://localhost:3000")
	assert.True(t, q.AllowOrigin("http://localhost:3000"))
	assert.False(t, q.AllowOrigin("http://localhost:3001"))
	assert.False(t, q.AllowOrigin("http://localhost"))
}

func TestWildcardLabelAnchoring(t *testing.T) {
	p := policyWith(t, "https://*.example.com")
	for o, want := range map[string]bool{
		"https://a.example.com":          true,
		"https://a.b.c.example.com":      true,
		"https://example.com":            false, // documented: the bare suffix is not covered
		"https://example.com.evil.com":   false,
		"https://evilexample.com":        false,
		"https://a.evilexample.com":      false,
		"https://a.example.com.evil":     false,
		"https://a.example.comx":         false,
		"https://a-example.com":          false,
		"https://a.example.com:444":      false,
		"http://a.example.com":           false,
		"https://a..example.com":         false,
		"https://%61.example.com":        false,
		"https://a.example.com/x":        false,
		"https://a.example.com\x00.evil": false,
	} {
		assert.Equal(t, want, p.AllowOrigin(o), o)
	}
}

func TestOriginWithPathRefused(t *testing.T) {
	p := policyWith(t, defaultOrigins...)
	for _, o := range []string{
		"https://console.stoa.dev/",
		"https://console.stoa.dev/mcp",
		"https://console.stoa.dev?x=1",
		"https://console.stoa.dev#x",
		"https://console.stoa.dev:443/",
	} {
		assert.False(t, p.AllowOrigin(o), o)
	}
	_, err := ParsePattern("https://console.stoa.dev/")
	assert.Error(t, err)
}

func TestSchemeMismatch(t *testing.T) {
	p := policyWith(t, defaultOrigins...)
	assert.False(t, p.AllowOrigin("http://console.stoa.dev"))
	assert.False(t, p.AllowOrigin("http://console.stoa.dev:443"))
	assert.False(t, p.AllowOrigin("wss://console.stoa.dev"))
	assert.False(t, p.AllowOrigin("httpss://console.stoa.dev"))
	q := policyWith(t, "http://localhost:3000")
	assert.False(t, q.AllowOrigin("https://localhost:3000"))
}

func TestUnicodeIDNOriginAttack(t *testing.T) {
	p := policyWith(t, defaultOrigins...)
	for _, o := range []string{
		"https://cönsole.stoa.dev",
		"https://console.stoa.dev\u200b",
		"https://console\u3002stoa\u3002dev", // ideographic full stop
		"https://сonsole.stoa.dev",           // Cyrillic "с"
		"https://console.stoa.dev\xff",
		"https://\xc0\xae.stoa.dev",
		"https://ＣＯＮＳＯＬＥ.stoa.dev", // fullwidth
	} {
		assert.False(t, p.AllowOrigin(o), o)
		_, ok := Normalize(o, nil)
		assert.False(t, ok, o)
	}
}

func TestExtremelyLongOrigin(t *testing.T) {
	p := policyWith(t, "https://*.example.com")
	long := "https://" + strings.Repeat("a.", 200000) + "example.com"
	assert.False(t, p.AllowOrigin(long))
	label := "https://" + strings.Repeat("a", 64) + ".example.com"
	assert.False(t, p.AllowOrigin(label))
	ok63 := "https://" + strings.Repeat("a", 63) + ".example.com"
	assert.True(t, p.AllowOrigin(ok63))
	huge := strings.Repeat("h", 1<<20)
	assert.False(t, p.AllowOrigin(huge))
	assert.Equal(t, ReasonHeaders, p.Preflight("https://a.example.com", "GET", strings.Repeat("x-a, ", 100000)))
}

func TestControlCharacterOrigin(t *testing.T) {
	p := policyWith(t, defaultOrigins...)
	for _, o := range []string{
		"https://console.stoa.dev\r\nSet-Cookie: a=b",
		"https://console.stoa.dev\n",
		"https://console.stoa.dev\t",
		"\x00https://console.stoa.dev",
		"https://console.stoa.dev\x00",
		"https://console.stoa.dev\x7f",
		"https://console\x00.stoa.dev",
	} {
		assert.False(t, p.AllowOrigin(o), "%q", o)
	}
}

func TestEmptyOrigin(t *testing.T) {
	p := policyWith(t, defaultOrigins...)
	assert.False(t, p.AllowOrigin(""))
	assert.Equal(t, ReasonOrigin, p.Preflight("", "GET", ""))
	w := policyWith(t, "*")
	assert.False(t, w.AllowOrigin(""))
	var nilPolicy *Policy
	assert.False(t, nilPolicy.AllowOrigin("https://console.stoa.dev"))
	assert.Equal(t, ReasonOrigin, nilPolicy.Preflight("https://console.stoa.dev", "GET", ""))
}

func TestEmptyOriginListRefusesAll(t *testing.T) {
	p := policyWith(t)
	assert.False(t, p.Wildcard())
	assert.False(t, p.AllowOrigin("https://console.stoa.dev"))
}

func TestWildcardMode(t *testing.T) {
	p := policyWith(t, "*")
	assert.True(t, p.Wildcard())
	assert.False(t, p.AllowCredentials())
	assert.True(t, p.AllowOrigin("https://anything.example"))
	assert.True(t, p.AllowOrigin("null"))
	assert.False(t, p.AllowOrigin("https://bad/path"))
	assert.Equal(t, ReasonMethod, p.Preflight("https://x.example", "PATCH", ""))
	assert.Equal(t, ReasonHeaders, p.Preflight("https://x.example", "GET", "x-evil"))
	assert.Nil(t, p.Patterns())
	assert.True(t, policyWith(t, defaultOrigins...).AllowCredentials())
}

func TestWildcardMixedRefused(t *testing.T) {
	for _, origins := range [][]string{
		{"*", "https://console.stoa.dev"},
		{"https://console.stoa.dev", "*"},
		{"*", "*"},
	} {
		c := defaultConfig()
		c.Origins = origins
		_, err := NewPolicy(c)
		require.Error(t, err)
		var fe *FieldError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, "origins", fe.Field)
		assert.Equal(t, `origins: "*": wildcard mode must be the only entry (origins: ["*"]); remove "*" or the other 1 entries`, err.Error())
	}
}

func TestPreflight(t *testing.T) {
	p := mustPolicy(t, defaultConfig())
	const o = "https://console.stoa.dev"
	tests := []struct {
		name, origin, method, headers string
		want                          Reason
	}{
		{"simple", o, "GET", "", ReasonNone},
		{"post with headers", o, "POST", "authorization, content-type", ReasonNone},
		{"header case and spaces", o, "PUT", "  AUTHORIZATION ,\tX-Request-Id,x-tenant-id  ", ReasonNone},
		{"empty items ignored", o, "DELETE", ",, ,authorization,,", ReasonNone},
		{"only commas", o, "GET", " , , ", ReasonNone},
		{"unknown header", o, "GET", "authorization, x-evil", ReasonHeaders},
		{"header prefix", o, "GET", "authorizationx", ReasonHeaders},
		{"header with inner space", o, "GET", "x-request id", ReasonHeaders},
		{"method not allowed", o, "PATCH", "", ReasonMethod},
		{"method lower normalised", o, "get", "", ReasonNone},
		{"method mixed case normalised", o, "Delete", "", ReasonNone},
		{"empty method", o, "", "", ReasonMethod},
		{"method with space", o, "GET ", "", ReasonMethod},
		{"method checked before headers", o, "TRACE", "x-evil", ReasonMethod},
		{"origin checked first", "https://evil.com", "TRACE", "x-evil", ReasonOrigin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, p.Preflight(tt.origin, tt.method, tt.headers))
		})
	}
}

func TestMethodCaseSensitivity(t *testing.T) {
	c := defaultConfig()
	c.AllowMethods = []string{"get", "PATCH", "purge"}
	p := mustPolicy(t, c)
	const o = "https://console.stoa.dev"
	assert.Equal(t, "GET, PATCH, purge", p.AllowMethodsValue())
	assert.Equal(t, ReasonNone, p.Preflight(o, "GET", ""))
	assert.Equal(t, ReasonNone, p.Preflight(o, "get", ""))
	assert.Equal(t, ReasonNone, p.Preflight(o, "PATCH", ""))
	assert.Equal(t, ReasonMethod, p.Preflight(o, "patch", "")) // not one of the six: case-sensitive
	assert.Equal(t, ReasonNone, p.Preflight(o, "purge", ""))
	assert.Equal(t, ReasonMethod, p.Preflight(o, "PURGE", ""))
}

func TestHeaderValuesPrecomputed(t *testing.T) {
	p := mustPolicy(t, defaultConfig())
	assert.Equal(t, "GET, POST, PUT, DELETE, OPTIONS", p.AllowMethodsValue())
	assert.Equal(t, "Authorization, Content-Type, X-Request-ID, X-Tenant-ID", p.AllowHeadersValue())
	assert.Equal(t, "X-Request-ID, X-Trace-ID", p.ExposeHeadersValue())
	assert.Equal(t, "600", p.MaxAgeValue())

	c := defaultConfig()
	c.AllowMethods = []string{"GET", "get", "GET"}
	c.AllowHeaders = []string{"X-A", "x-a"}
	c.ExposeHeaders = nil
	c.MaxAge = 0
	q := mustPolicy(t, c)
	assert.Equal(t, "GET", q.AllowMethodsValue())
	assert.Equal(t, "X-A", q.AllowHeadersValue())
	assert.Equal(t, "", q.ExposeHeadersValue())
	assert.Equal(t, "0", q.MaxAgeValue())
}

func TestNewPolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*PolicyConfig)
		want string
	}{
		{"bad origin", func(c *PolicyConfig) { c.Origins = []string{"https://ok.com", "https://*foo.com"} },
			`origins: "https://*foo.com": a wildcard must be a whole leading label, like https://*.example.com`},
		{"method wildcard", func(c *PolicyConfig) { c.AllowMethods = []string{"*"} },
			`allow_methods: "*": wildcards are not supported (credentials are allowed); list each method, like GET`},
		{"method token", func(c *PolicyConfig) { c.AllowMethods = []string{"GET POST"} },
			`allow_methods: "GET POST": expected an HTTP method token, like GET or POST`},
		{"empty method", func(c *PolicyConfig) { c.AllowMethods = []string{""} },
			`allow_methods: "": expected an HTTP method token, like GET or POST`},
		{"header wildcard", func(c *PolicyConfig) { c.AllowHeaders = []string{"*"} },
			`allow_headers: "*": wildcards are not supported (credentials are allowed); list each header, like Authorization`},
		{"header token", func(c *PolicyConfig) { c.AllowHeaders = []string{"X-A:"} },
			`allow_headers: "X-A:": expected a header name token, like Content-Type`},
		{"expose token", func(c *PolicyConfig) { c.ExposeHeaders = []string{"X\nA"} },
			`expose_headers: "X\nA": expected a header name token, like Content-Type`},
		{"negative max age", func(c *PolicyConfig) { c.MaxAge = -1 },
			`max_age: "-1": expected seconds between 0 and 86400`},
		{"huge max age", func(c *PolicyConfig) { c.MaxAge = 86401 },
			`max_age: "86401": expected seconds between 0 and 86400`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			tt.mod(&c)
			p, err := NewPolicy(c)
			assert.Nil(t, p)
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestReasonString(t *testing.T) {
	assert.Equal(t, "", ReasonNone.String())
	assert.Equal(t, "origin", ReasonOrigin.String())
	assert.Equal(t, "method", ReasonMethod.String())
	assert.Equal(t, "headers", ReasonHeaders.String())
	assert.Equal(t, "", Reason(200).String())
}

func TestQuoteTruncates(t *testing.T) {
	assert.Equal(t, `"abc"`, Quote("abc"))
	q := Quote(strings.Repeat("é", 40)) // 80 bytes: cut at a rune boundary
	assert.True(t, strings.HasSuffix(q, `"...`))
	assert.Equal(t, `"`+strings.Repeat("é", 32)+`"...`, q)
}

func TestZeroAllocs(t *testing.T) {
	p := mustPolicy(t, PolicyConfig{
		Origins:      append([]string{"https://*.example.com", "http://[::1]:8080", "null"}, defaultOrigins...),
		AllowMethods: []string{"GET", "POST"}, AllowHeaders: []string{"Authorization", "Content-Type"},
	})
	buf := make([]byte, 0, MaxOriginLen)
	cases := []func(){
		func() { p.AllowOrigin("https://portal.gostoa.dev") },
		func() { p.AllowOrigin("HTTPS://PORTAL.GOSTOA.DEV:443") },
		func() { p.AllowOrigin("https://a.b.example.com") },
		func() { p.AllowOrigin("http://[0:0::1]:8080") },
		func() { p.AllowOrigin("https://evil.com") },
		func() { p.Preflight("https://console.stoa.dev", "post", " authorization , Content-Type ") },
		func() { p.Preflight("https://console.stoa.dev", "GET", "x-evil") },
		func() { Normalize("https://console.stoa.dev", nil) },
		func() { Normalize("HTTPS://Console.stoa.dev:443", buf) },
		func() { Normalize("http://[2001:DB8::1]:80", buf) },
		func() { _ = p.AllowMethodsValue() + "" },
	}
	for i, f := range cases {
		assert.Zero(t, testing.AllocsPerRun(100, f), "case %d", i)
	}
}

func BenchmarkPreflight(b *testing.B) {
	p := mustPolicy(b, defaultConfig())
	b.ReportAllocs()
	for b.Loop() {
		p.Preflight("https://portal.gostoa.dev", "POST", "authorization, content-type, x-request-id")
	}
}

func FuzzOrigin(f *testing.F) {
	for _, s := range []string{"https://console.stoa.dev", "HTTPS://A.B:443", "null", "http://[::1]:80", "https://a.example.com", "https://*.x", ""} {
		f.Add(s)
	}
	p, err := NewPolicy(PolicyConfig{Origins: []string{"https://*.example.com", "https://console.stoa.dev", "http://[::1]:8080"}})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := Normalize(s, nil)
		if ok {
			// Normalisation is idempotent and preserves the decision.
			n2, ok2 := Normalize(n, nil)
			if !ok2 || n2 != n {
				t.Fatalf("Normalize(%q)=%q, again %q %v", s, n, n2, ok2)
			}
			if p.AllowOrigin(s) != p.AllowOrigin(n) {
				t.Fatalf("decision differs for %q and %q", s, n)
			}
		}
		_, _ = ParsePattern(s)
		p.Preflight(s, s, s)
	})
}
