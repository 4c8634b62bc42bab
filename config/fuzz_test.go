package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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

// envVarsInOrder are the variables Parse reads, in SPEC.md's order (the
// order of their "is ignored" warnings).
var envVarsInOrder = []string{
	EnvAllowedAudiences, EnvCORSOrigins, EnvCORSAllowMethods, EnvCORSAllowHeaders,
	EnvCORSExposeHeaders, EnvCORSMaxAge, EnvSSEEnabled, EnvTrustedProxies,
}

// warningVocabulary is every warning text Parse can produce (computed from
// configurations whose allow lists are too short to be found in it: "",
// "*", "::/0"), joined. A fuzzed allow-list item found in a warning but not
// in this vocabulary was echoed.
func warningVocabulary(tb testing.TB) string {
	var all []string
	env := map[string]string{}
	for _, k := range envVarsInOrder {
		env[k] = ""
	}
	for _, tc := range []struct {
		js  string
		env map[string]string
	}{
		{`{"audience": {"allowed": [], "allow_missing": true}, "cors": {"origins": ["*"]}, "sse": {"enabled": false},
		   "client_ip": {"trusted_proxies": ["::/0"]}, "mode": {"audience": "dry_run", "cors": "dry_run", "sse": "dry_run"}}`, nil},
		{`{"audience": {"allow_missing": true}, "cors": {"origins": []}}`, nil},
		{fullJSON, env},
	} {
		c, err := Parse([]byte(tc.js), func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if err != nil {
			tb.Fatal(err)
		}
		all = append(all, c.Warnings()...)
	}
	return strings.Join(all, "\n")
}

// jsonOf renders the environment-backed part of c as plugin JSON.
func jsonOf(tb testing.TB, c *Config) []byte {
	proxies := make([]string, 0, len(c.ClientIP.TrustedProxies))
	for _, p := range c.ClientIP.TrustedProxies {
		proxies = append(proxies, p.String())
	}
	js, err := json.Marshal(map[string]any{
		"audience": map[string]any{"allowed": c.Audience.Allowed},
		"cors": map[string]any{
			"origins": c.CORS.Config.Origins, "allow_methods": c.CORS.Config.AllowMethods,
			"allow_headers": c.CORS.Config.AllowHeaders, "expose_headers": c.CORS.Config.ExposeHeaders,
			"max_age": c.CORS.Config.MaxAge,
		},
		"sse":       map[string]any{"enabled": c.SSE.Enabled},
		"client_ip": map[string]any{"trusted_proxies": proxies},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

// FuzzParseEnv fuzzes every environment variable at once (present is a bit
// set: bit i set = envVarsInOrder[i] is defined, possibly empty).
// Properties:
//   - no panic; an error is one short line naming a variable that is set;
//   - Parse is deterministic;
//   - round trip: an accepted environment, written back as plugin JSON,
//     parses to the identical configuration (warnings included);
//   - precedence: with a plugin JSON setting every key, the environment
//     changes nothing (even invalid values) but one "VAR is ignored" warning
//     per variable set;
//   - no warning echoes an allow-list item (audiences, origins, proxies).
//
// Seeds (testdata/fuzz/FuzzParseEnv) include the attack cases: "*" mixed
// with origins, look-alike origins, control characters and CRLF, huge and
// signed numbers, /0 and zoned proxies, invalid UTF-8, 1025 items.
func FuzzParseEnv(f *testing.F) {
	f.Add(uint8(0xff), "stoa-mcp-gateway,account", "https://console.stoa.dev", "GET,POST", "Authorization",
		"X-Request-ID", "600", "true", "10.0.0.0/8")
	f.Add(uint8(0), "", "", "", "", "", "", "", "")
	vocab := warningVocabulary(f)
	recoverPanics = false
	f.Cleanup(func() { recoverPanics = true })
	f.Fuzz(func(t *testing.T, present uint8, aud, origins, methods, headers, expose, maxAge, enabled, proxies string) {
		vals := []string{aud, origins, methods, headers, expose, maxAge, enabled, proxies}
		env := func(k string) (string, bool) {
			for i, name := range envVarsInOrder {
				if name == k && present&(1<<i) != 0 {
					return vals[i], true
				}
			}
			return "", false
		}
		c, err := Parse(nil, env)
		c2, err2 := Parse(nil, env)
		if !reflect.DeepEqual(c, c2) || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("Parse is not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			var e *Error
			if c != nil || !errors.As(err, &e) || strings.ContainsAny(err.Error(), "\n\r") || len(err.Error()) > 400 {
				t.Fatalf("bad error %q (cfg %v)", err, c != nil)
			}
			if _, ok := env(e.Key); !ok {
				t.Fatalf("error names %q, which is not set: %q", e.Key, err)
			}
		} else {
			// Round trip through plugin JSON.
			js := jsonOf(t, c)
			back, err := Parse(js, nil)
			if err != nil {
				t.Fatalf("accepted environment does not round-trip: %s: %v", js, err)
			}
			if !reflect.DeepEqual(c, back) {
				t.Fatalf("round trip differs:\n env  %+v\n json %+v", c, back)
			}
			// No warning repeats an allow-list item.
			for _, i := range []int{0, 1, 7} {
				if present&(1<<i) == 0 {
					continue
				}
				for _, it := range strings.Split(vals[i], ",") {
					it = strings.TrimSpace(it)
					if len(it) < 8 || strings.Contains(vocab, it) {
						continue
					}
					for _, w := range c.Warnings() {
						if strings.Contains(w, it) {
							t.Fatalf("warning %q echoes the %s item %q", w, envVarsInOrder[i], it)
						}
					}
				}
			}
		}
		// Precedence: plugin JSON setting every key wins over any environment.
		want, err := Parse([]byte(fullJSON), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse([]byte(fullJSON), env)
		if err != nil {
			t.Fatalf("environment overridden by the plugin JSON still fails: %v", err)
		}
		ww, gw := want.Warnings(), got.Warnings()
		got.warnings, want.warnings = nil, nil
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("environment changed a key the plugin JSON sets:\n want %+v\n got  %+v", want, got)
		}
		var ignored []string
		for i, name := range envVarsInOrder {
			if present&(1<<i) != 0 {
				ignored = append(ignored, name)
			}
		}
		if len(gw) != len(ww)+len(ignored) {
			t.Fatalf("warnings %q, want %q plus one per variable in %v", gw, ww, ignored)
		}
		for i, name := range ignored {
			if !strings.HasPrefix(gw[len(ww)+i], name+" is ignored") {
				t.Fatalf("warning %q, want %s is ignored", gw[len(ww)+i], name)
			}
		}
	})
}
