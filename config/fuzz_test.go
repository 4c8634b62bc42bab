package config

import (
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; an accepted configuration is complete and
// consistent; an error is one line. Seeds (testdata/fuzz/FuzzParse and below)
// include the attack cases: duplicate and escaped keys, deep nesting, invalid
// UTF-8, lone surrogates, huge numbers, "*" mixed with origins, NULs.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "{}", fullJSON,
		`{"sse": {"max_per_ip": 10, "max_per_ip": 0}}`,
		`{"cors": {"origins": ["*", "https://a.com"]}}`,
		`{"cors": {"origins": "https://*.example.com:8443, null"}}`,
		`{"\u0073se": {"enabled": false}, "sse": {}}`,
		`{"audience": {"allowed": "\ud800"}}`,
		"{\"audience\": {\"allowed\": \"a\x00b\"}}",
		"{\"sse\": {\"scope\": \"\xff\"}}",
		`{"sse": {"max_total": 1e400}}`,
		`{"sse": {"idle_timeout": "9223372036854775807ns"}}`,
		`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
		`{"client_ip": {"trusted_proxies": ["0.0.0.0/0", "::/0", "fe80::1%eth0"]}}`,
	} {
		f.Add([]byte(s), "")
	}
	f.Add([]byte(""), "*")
	f.Add([]byte(""), "https://a.com,*")
	recoverPanics = false
	f.Cleanup(func() { recoverPanics = true })
	f.Fuzz(func(t *testing.T, js []byte, env string) {
		e := func(k string) (string, bool) {
			switch k {
			case EnvCORSOrigins, EnvTrustedProxies, EnvAllowedAudiences:
				return env, true
			}
			return "", false
		}
		c, err := Parse(js, e)
		if err != nil {
			if c != nil || strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("bad error %q (cfg %v)", err, c != nil)
			}
			return
		}
		s := c.SSE
		if c.CORS.Policy == nil || s.Tick < minTick || s.Tick > s.IdleTimeout || s.IdleTimeout > s.MaxDuration ||
			s.MaxPerIP < 1 || s.MaxTotal < 1 || s.RetryAfter < 1 || c.ClientIP.IPv6Prefix < 32 ||
			(c.Audience.PayloadHeader == "" && c.Audience.PayloadMetadataKey == "") {
			t.Fatalf("inconsistent config accepted: %+v", c)
		}
		for _, w := range c.Warnings() {
			if strings.ContainsAny(w, "\n\r") {
				t.Fatalf("multi-line warning %q", w)
			}
		}
	})
}
