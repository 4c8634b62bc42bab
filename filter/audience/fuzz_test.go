package audience

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeHeader: never panics; None only for a base64url JSON object
// (checked with encoding/json); the audience values agree with
// encoding/json (which takes the last duplicate: we refuse duplicates);
// the tenant obeys its rule; Check never panics, and on a decoded payload
// its decision is the oracle's: allowed only when one of the first MaxAud
// audiences (per encoding/json) is exactly an allowed one (so an allowed
// audience hidden after MaxAud others, or differing in case or escapes
// only after decoding, is judged on the decoded value).
func FuzzDecodeHeader(f *testing.F) {
	d := NewDecoder("tenant_id")
	chk := NewChecker([]string{"stoa-mcp-gateway", "account"}, false)
	f.Fuzz(func(t *testing.T, s string) {
		var c Claims
		r := d.DecodeHeader(s, &c)
		_ = chk.Check(&c)
		_ = r.String() + r.Description()
		if r != None {
			if r != Malformed && r != MissingToken {
				t.Fatalf("DecodeHeader returned %v", r)
			}
			if c.AudPresent || c.NAud != 0 || c.Tenant != "" {
				t.Fatalf("claims left on failure: %+v", c)
			}
			return
		}
		raw, err := base64.RawURLEncoding.DecodeString(trimPad(s))
		if err != nil {
			t.Fatalf("accepted invalid base64url %q: %v", s, err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			t.Fatalf("accepted a payload encoding/json refuses: %q: %v", raw, err)
		}
		aud, present := m["aud"]
		if present != c.AudPresent {
			t.Fatalf("aud presence %v, encoding/json %v (%q)", c.AudPresent, present, raw)
		}
		switch a := aud.(type) {
		case nil:
		case string:
			if c.NAud != 1 || c.Aud[0] != a {
				t.Fatalf("aud %q vs %+v", a, c)
			}
		case []any:
			if c.NAud != min(len(a), MaxAud) {
				t.Fatalf("aud %v vs %+v", a, c)
			}
			for i := 0; i < c.NAud; i++ {
				if a[i] != c.Aud[i] {
					t.Fatalf("aud %v vs %+v", a, c)
				}
			}
		default:
			t.Fatalf("aud of type %T accepted", a)
		}
		if c.Tenant != "" && (!validTenant(c.Tenant) || !utf8.ValidString(c.Tenant)) {
			t.Fatalf("tenant %q", c.Tenant)
		}
		var auds []any
		switch a := aud.(type) {
		case string:
			auds = []any{a}
		case []any:
			auds = a[:min(len(a), MaxAud)]
		}
		want := InvalidAudience
		if !present {
			want = MissingAudience
		}
		for _, a := range auds {
			if a == "stoa-mcp-gateway" || a == "account" {
				want = None
			}
		}
		if got := chk.Check(&c); got != want {
			t.Fatalf("Check = %v, oracle %v (payload %q)", got, want, raw)
		}
	})
}

func trimPad(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}

// FuzzExemptMatch: never panics; an exempt path never contains a traversal
// or encoding a normaliser could act on.
func FuzzExemptMatch(f *testing.F) {
	e := NewExempt([]string{"/.well-known/", "/health"})
	f.Fuzz(func(t *testing.T, p string) {
		if !e.Match(p) {
			return
		}
		path := p
		for i := 0; i < len(path); i++ {
			if path[i] == '?' || path[i] == '#' {
				path = path[:i]
				break
			}
		}
		if !safePath(path) {
			t.Fatalf("unsafe path %q exempt", p)
		}
		for _, bad := range []string{"/../", "/./"} {
			if contains(path+"/", bad) {
				t.Fatalf("%q exempt despite %q", p, bad)
			}
		}
		for _, bad := range []string{"%", "\\", "//", ";"} {
			if contains(path, bad) {
				t.Fatalf("%q exempt despite %q", p, bad)
			}
		}
	})
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// FuzzSetAudFromProperty: never panics, whatever the property bytes.
func FuzzSetAudFromProperty(f *testing.F) {
	d := NewDecoder("")
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Claims
		_ = c.SetAudFromProperty(b)
		c.SetTenantFromProperty(b)
		_ = d.DecodeMetadata(b, &c)
		if c.NAud < 0 || c.NAud > MaxAud {
			t.Fatalf("NAud %d", c.NAud)
		}
	})
}
