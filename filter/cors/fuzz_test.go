package cors

import (
	"strings"
	"testing"
)

// asciiLowerOracle lower-cases ASCII letters only (strings.ToLower would
// also fold non-ASCII, e.g. the Kelvin sign, which must not match "k").
func asciiLowerOracle(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// matchOracle decides, on strings only, whether the normalised origin n
// matches the pattern whose normalised text is pat: an exact pattern
// matches its own text; "scheme://*.suffix[:port]" matches
// "scheme://<one or more labels>.suffix[:port]" and nothing else.
func matchOracle(pat, n string) bool {
	i := strings.Index(pat, "://*.")
	if i < 0 {
		return n == pat
	}
	prefix, rest := pat[:i+3], pat[i+4:] // "https://", ".example.com[:port]"
	if !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, rest) || len(n) <= len(prefix)+len(rest) {
		return false
	}
	labels := n[len(prefix) : len(n)-len(rest)]
	return !strings.ContainsAny(labels, ":[]/@") && labels[0] != '.'
}

// FuzzMatch: for any pattern text and any Origin value, Pattern.Match and a
// one-pattern Policy agree with matchOracle on the normalised origin; an
// invalid origin (or a refused pattern) never matches; a pattern re-parsed
// from its String is the same pattern; Match allocates nothing.
// Seeds (testdata/fuzz/FuzzMatch): suffix look-alikes such as
// https://console.stoa.dev.evil.com, the bare wildcard domain, "null",
// userinfo, ports, case, trailing dots, IPv6 forms.
func FuzzMatch(f *testing.F) {
	f.Add("https://*.stoa.dev", "https://console.stoa.dev.evil.com")
	f.Add("https://console.stoa.dev", "HTTPS://Console.Stoa.Dev:443")
	f.Fuzz(func(t *testing.T, pat, origin string) {
		p, err := ParsePattern(pat)
		if err != nil {
			if p.Match(origin) {
				t.Fatalf("refused pattern %q matches %q", pat, origin)
			}
			if pat != "*" {
				if _, err := NewPolicy(PolicyConfig{Origins: []string{pat}}); err == nil {
					t.Fatalf("NewPolicy accepts the refused pattern %q", pat)
				}
			}
			return
		}
		m := p.Match(origin)
		if a := testing.AllocsPerRun(1, func() { _ = p.Match(origin) }); a != 0 {
			t.Fatalf("Match(%q) allocates %v", origin, a)
		}
		q, err := ParsePattern(p.String())
		if err != nil || q.String() != p.String() || q.Wildcard() != p.Wildcard() || q.Match(origin) != m {
			t.Fatalf("pattern %q -> %q does not round-trip (%v)", pat, p.String(), err)
		}
		pol, err := NewPolicy(PolicyConfig{Origins: []string{pat}})
		if err != nil {
			t.Fatalf("NewPolicy refuses the pattern %q: %v", pat, err)
		}
		if pol.AllowOrigin(origin) != m {
			t.Fatalf("Policy.AllowOrigin(%q) != Pattern(%q).Match", origin, pat)
		}
		n, ok := Normalize(origin, nil)
		if !ok {
			if m {
				t.Fatalf("invalid origin %q matches %q", origin, pat)
			}
			return
		}
		if p.Match(n) != m {
			t.Fatalf("%q and its normal form %q decide differently for %q", origin, n, pat)
		}
		if want := matchOracle(p.String(), n); m != want {
			t.Fatalf("Pattern(%q = %q).Match(%q = %q) = %v, oracle %v", pat, p.String(), origin, n, m, want)
		}
	})
}

// FuzzPreflight: Policy.Preflight against an oracle written with strings
// and matchOracle, for a list policy and a wildcard policy: the origin is
// checked first (ReasonOrigin exactly when AllowOrigin is false, and an
// invalid origin is refused even in wildcard mode), then the method (the
// six Fetch methods case-insensitively, any other exactly), then every
// non-empty comma item of Access-Control-Request-Headers (trimmed of
// spaces and tabs, ASCII case-insensitive). Preflight and AllowOrigin
// allocate nothing.
func FuzzPreflight(f *testing.F) {
	origins := []string{"https://console.stoa.dev", "https://portal.stoa.dev", "https://*.gostoa.dev", "http://localhost:3000"}
	list, err := NewPolicy(PolicyConfig{Origins: origins, AllowMethods: []string{"GET", "post", "PATCH"},
		AllowHeaders: []string{"Authorization", "Content-Type", "X-Request-ID"}})
	if err != nil {
		f.Fatal(err)
	}
	wild, err := NewPolicy(PolicyConfig{Origins: []string{"*"}, AllowMethods: []string{"GET", "post", "PATCH"},
		AllowHeaders: []string{"Authorization", "Content-Type", "X-Request-ID"}})
	if err != nil {
		f.Fatal(err)
	}
	var pats []string
	for _, o := range origins {
		p, _ := ParsePattern(o)
		pats = append(pats, p.String())
	}
	allowedHeaders := []string{"authorization", "content-type", "x-request-id"}
	f.Add(false, "https://console.stoa.dev", "POST", "authorization, content-type")
	f.Add(true, "null", "patch", "")
	f.Fuzz(func(t *testing.T, wildcard bool, origin, method, reqHeaders string) {
		p := list
		if wildcard {
			p = wild
		}
		got := p.Preflight(origin, method, reqHeaders)
		if a := testing.AllocsPerRun(1, func() { _ = p.Preflight(origin, method, reqHeaders); _ = p.AllowOrigin(origin) }); a != 0 {
			t.Fatalf("Preflight allocates %v", a)
		}
		n, valid := Normalize(origin, nil)
		originOK := valid && wildcard
		if valid && !wildcard {
			for _, pt := range pats {
				originOK = originOK || matchOracle(pt, n)
			}
		}
		if p.AllowOrigin(origin) != originOK {
			t.Fatalf("AllowOrigin(%q) = %v, oracle %v (wildcard %v)", origin, !originOK, originOK, wildcard)
		}
		want := ReasonNone
		switch lm := asciiLowerOracle(method); {
		case !originOK:
			want = ReasonOrigin
		case !(lm == "get" || lm == "post" || method == "PATCH"):
			want = ReasonMethod
		default:
			for _, it := range strings.Split(reqHeaders, ",") {
				it = strings.Trim(it, " \t")
				found := it == ""
				for _, h := range allowedHeaders {
					found = found || asciiLowerOracle(it) == h
				}
				if !found {
					want = ReasonHeaders
					break
				}
			}
		}
		if got != want {
			t.Fatalf("Preflight(%q, %q, %q) = %v, oracle %v (wildcard %v)", origin, method, reqHeaders, got, want, wildcard)
		}
	})
}
