package audience

import (
	"encoding/base64"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// refDecodeHeader is the former DecodeHeader: an alphabet check, then
// base64.RawURLEncoding.Strict(), then refDecodeJSON.
func refDecodeHeader(tenantClaim, s string, out *Claims) Reason {
	out.Reset()
	if len(s) == 0 {
		return MissingToken
	}
	if s[len(s)-1] == '=' {
		if len(s)%4 != 0 {
			return Malformed
		}
		s = s[:len(s)-1]
		if len(s) > 0 && s[len(s)-1] == '=' {
			s = s[:len(s)-1]
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return Malformed
		}
	}
	if len(s) == 0 {
		return Malformed
	}
	b64 := base64.RawURLEncoding.Strict()
	if b64.DecodedLen(len(s)) > MaxPayloadSize {
		return Malformed
	}
	p, err := b64.DecodeString(s)
	if err != nil {
		return Malformed
	}
	return refDecodeJSON(tenantClaim, p, out)
}

// FuzzScanMatchesGJSON: the one-pass scanner takes exactly the decisions of
// the gjson-based decoder it replaced, on raw JSON and on base64url, for
// the default tenant claim and for a tenant claim named `aud`.
func FuzzScanMatchesGJSON(f *testing.F) {
	for _, s := range []string{
		`{"aud":["a","b"],"tenant_id":"t"}`, `{"aud":"\ud800x","tenant_id":["\u00e9",1]}`,
		`{"a":[{"b":[1,-2.5e+3,true,false,null,{}]},[]],"aud":[]}`, `{"tenant_id":[[],{"x":"y"},"z"]}`,
		`{"aud":"a","\u0061ud":"b"}`, `{"\ud83d\ude00":"\ud83d\ude00\udc00\ud800\ud800"}`,
		" {\"x\":01}", `{"x":1.}`, `{"x":-}`, `{"x":"\u12"}`, "{\"x\":\"\xed\xa0\x80\"}", `{"aud":1}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	d, da := NewDecoder(""), NewDecoder("aud")
	f.Fuzz(func(t *testing.T, p []byte, audClaim bool) {
		dec, claim := d, ""
		if audClaim {
			dec, claim = da, "aud"
		}
		var got, want Claims
		orig := string(p)
		r, wr := dec.DecodeJSON(p, &got), refDecodeJSON(claim, p, &want)
		if string(p) != orig {
			t.Fatal("DecodeJSON modified its input")
		}
		if r != wr || got != want {
			t.Fatalf("JSON %q: scanner %v %+v, gjson %v %+v", p, r, got, wr, want)
		}
		for _, s := range []string{string(p), base64.RawURLEncoding.EncodeToString(p), base64.URLEncoding.EncodeToString(p)} {
			r, wr = dec.DecodeHeader(s, &got), refDecodeHeader(claim, s, &want)
			if r != wr || got != want {
				t.Fatalf("header %q: scanner %v %+v, gjson %v %+v", s, r, got, wr, want)
			}
		}
	})
}

// refDecodeJSON is the decoder the scanner replaced (utf8.Valid,
// gjson.ValidBytes, then gjson.ForEach over the top level), kept as the
// oracle of FuzzScanMatchesGJSON: the scanner must take the same decisions
// and extract the same values.
func refDecodeJSON(tenantClaim string, p []byte, out *Claims) Reason {
	out.Reset()
	if len(p) == 0 || len(p) > MaxPayloadSize {
		return Malformed
	}
	i := 0
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	if i == len(p) || p[i] != '{' {
		return Malformed
	}
	if !utf8.Valid(p) || !gjson.ValidBytes(p) {
		return Malformed
	}
	root := gjson.Parse(unsafe.String(unsafe.SliceData(p), len(p)))
	if tenantClaim == "" {
		tenantClaim = DefaultTenantClaim
	}
	var audSeen, tenantSeen, bad bool
	root.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "aud" {
			if audSeen || !refSetAud(v, out) {
				bad = true
				return false
			}
			audSeen = true
		}
		if k.Str == tenantClaim {
			if tenantSeen {
				bad = true
				return false
			}
			tenantSeen = true
			refSetTenant(v, out)
		}
		return true
	})
	if bad {
		out.Reset()
		return Malformed
	}
	return None
}

func refSetAud(v gjson.Result, out *Claims) bool {
	switch {
	case v.Type == gjson.String:
		out.AddAud(v.Str)
		return true
	case v.IsArray():
		out.AudPresent = true
		ok, n := true, 0
		v.ForEach(func(_, e gjson.Result) bool {
			n++
			if e.Type != gjson.String || n > MaxAudValues {
				ok = false
				return false
			}
			out.AddAud(e.Str)
			return true
		})
		return ok
	}
	return false
}

func refSetTenant(v gjson.Result, out *Claims) {
	switch {
	case v.Type == gjson.String:
		out.SetTenant(v.Str)
	case v.IsArray():
		v.ForEach(func(_, e gjson.Result) bool {
			if e.Type == gjson.String {
				out.SetTenant(e.Str)
				return false
			}
			return true
		})
	default:
		out.Tenant = ""
	}
}
