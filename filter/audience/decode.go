package audience

import (
	"encoding/base64"
	"encoding/binary"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// b64 is base64url without padding, refusing non-zero trailing bits.
var b64 = base64.RawURLEncoding.Strict()

// Decoder decodes jwt_authn payloads. It owns a scratch buffer, grown on
// demand up to MaxPayloadSize and reused by every call, so Claims strings
// alias it until the next call. Not safe for concurrent use: keep one per
// VM (proxy-wasm VMs are single-threaded).
type Decoder struct {
	tenantClaim string
	buf         []byte
}

// NewDecoder returns a Decoder reading the tenant from the top-level claim
// tenantClaim ("" means DefaultTenantClaim). The name is compared with the
// JSON key after unescaping, byte for byte (no path syntax).
func NewDecoder(tenantClaim string) *Decoder {
	if tenantClaim == "" {
		tenantClaim = DefaultTenantClaim
	}
	return &Decoder{tenantClaim: tenantClaim}
}

// DecodeHeader decodes the base64url payload forwarded by jwt_authn
// (forward_payload_header), padded or not, into out (reset first).
//
//   - "" → MissingToken.
//   - Any byte outside the base64url alphabet (including '+', '/', spaces,
//     CR/LF), bad padding, non-zero trailing bits, a decoded size over
//     MaxPayloadSize → Malformed.
//   - Then as DecodeJSON.
//
// It does not allocate once the buffer has grown, except inside gjson for
// JSON strings or keys written with escapes (\uXXXX, \", ...).
func (d *Decoder) DecodeHeader(b64url string, out *Claims) Reason {
	if out == nil {
		return Malformed
	}
	out.Reset()
	if len(b64url) == 0 {
		return MissingToken
	}
	s := b64url
	// Padding: at most two '=', only at the end, and then the total
	// length must be a multiple of 4.
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
	n := b64.DecodedLen(len(s))
	if n > MaxPayloadSize {
		return Malformed
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, max(n, 2048))
	}
	buf := d.buf[:cap(d.buf)]
	src := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	m, err := b64.Decode(buf, src)
	if err != nil {
		return Malformed
	}
	return d.decodeJSON(buf[:m], out)
}

// DecodeJSON decodes a payload that is already JSON, into out (reset
// first). Strings alias payload. The payload must be at most MaxPayloadSize
// bytes of valid UTF-8 and valid JSON whose first non-space byte is '{'.
// `aud`: absent → AudPresent false; a string → one value; an array of at
// most MaxAudValues strings → its first MaxAud values; anything else (null,
// number, bool, object, an array holding a non-string) → Malformed. A claim
// name appearing twice at the top level (`aud` or the tenant claim, also
// when spelled with escapes) → Malformed (RFC 7519 §4 lets parsers reject
// duplicates; taking one of them could disagree with jwt_authn or the
// upstream). Tenant: a string, or an array's first string element,
// accepted under the SetTenant rule; anything else → no tenant.
func (d *Decoder) DecodeJSON(payload []byte, out *Claims) Reason {
	if out == nil {
		return Malformed
	}
	out.Reset()
	return d.decodeJSON(payload, out)
}

func (d *Decoder) decodeJSON(p []byte, out *Claims) Reason {
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
	tenantClaim := d.tenantClaim
	if tenantClaim == "" {
		tenantClaim = DefaultTenantClaim
	}
	var audSeen, tenantSeen, bad bool
	root.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "aud" {
			if audSeen || !setAud(v, out) {
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
			setTenant(v, out)
		}
		return true
	})
	if bad {
		out.Reset()
		return Malformed
	}
	return None
}

// setAud applies the `aud` rules; false means Malformed.
func setAud(v gjson.Result, out *Claims) bool {
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

// setTenant applies the tenant rules; an unusable value leaves no tenant.
func setTenant(v gjson.Result, out *Claims) {
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

// The jwt_authn metadata route (payload_in_metadata). The glue reads claims
// as properties under metadata / filter_metadata / envoy.filters.http.jwt_authn
// / <key> [/ claim]. Envoy serialises a string as its raw bytes and a list as
// proxy-wasm Pairs whose keys are the serialised elements (values empty); a
// map (the whole payload) as Pairs of claim name → serialised value; numbers
// as 8 binary bytes. The helpers below tell a list from a string by its
// exact Pairs structure (a printable claim string is never a valid Pairs
// blob: its first four bytes would have to encode a count that fits).

// SetAudFromProperty fills the audience of c from the raw property value of
// the `aud` claim: a Pairs list (keys only) → every key is one value, as for
// a JSON array (at most MaxAudValues, each valid UTF-8 without control
// characters, else Malformed); otherwise b must be a string (valid UTF-8,
// no control characters) → one value; anything else (e.g. a number's 8
// binary bytes) → Malformed. Strings alias b. It does not allocate.
// (Call it only when the property exists; a missing `aud` is simply not
// set, leaving AudPresent false.)
func (c *Claims) SetAudFromProperty(b []byte) Reason {
	c.Aud, c.NAud, c.AudPresent = [MaxAud]string{}, 0, false
	if isList(b) {
		c.AudPresent = true
		n, ok := 0, true
		walkPairs(b, func(k, _ []byte) bool {
			n++
			if n > MaxAudValues || !printable(k) {
				ok = false
				return false
			}
			c.AddAud(alias(k))
			return true
		})
		if !ok {
			c.Aud, c.NAud = [MaxAud]string{}, 0
			return Malformed
		}
		return None
	}
	if !printable(b) {
		return Malformed
	}
	c.AddAud(alias(b))
	return None
}

// SetTenantFromProperty sets the tenant of c from the raw property value of
// the tenant claim: a string, or a Pairs list → its first printable key,
// under the SetTenant rule; anything else → no tenant. Strings alias b.
func (c *Claims) SetTenantFromProperty(b []byte) {
	c.Tenant = ""
	if isList(b) {
		walkPairs(b, func(k, _ []byte) bool {
			if printable(k) {
				c.SetTenant(alias(k))
				return false
			}
			return true
		})
		return
	}
	if printable(b) {
		c.SetTenant(alias(b))
	}
}

// DecodeMetadata decodes the whole jwt_authn payload read as one property
// (a map → Pairs of claim name → serialised value) into out (reset first).
// Empty → MissingToken; not a Pairs map → Malformed; `aud` and the tenant
// claim as in SetAudFromProperty / SetTenantFromProperty; a duplicated
// claim name → Malformed. Strings alias b.
func (d *Decoder) DecodeMetadata(b []byte, out *Claims) Reason {
	if out == nil {
		return Malformed
	}
	out.Reset()
	if len(b) == 0 {
		return MissingToken
	}
	if len(b) > 4*MaxPayloadSize || !validPairs(b) {
		return Malformed
	}
	tenantClaim := d.tenantClaim
	if tenantClaim == "" {
		tenantClaim = DefaultTenantClaim
	}
	var audSeen, tenantSeen bool
	r := None
	walkPairs(b, func(k, v []byte) bool {
		key := alias(k)
		if key == "aud" {
			if audSeen {
				r = Malformed
				return false
			}
			audSeen = true
			if r = out.SetAudFromProperty(v); r != None {
				return false
			}
		}
		if key == tenantClaim {
			if tenantSeen {
				r = Malformed
				return false
			}
			tenantSeen = true
			out.SetTenantFromProperty(v)
		}
		return true
	})
	if r != None {
		out.Reset()
	}
	return r
}

// isList reports whether b is a Pairs blob whose values are all empty.
func isList(b []byte) bool {
	if !validPairs(b) {
		return false
	}
	list := true
	walkPairs(b, func(_, v []byte) bool {
		list = len(v) == 0
		return list
	})
	return list
}

// validPairs reports whether b is exactly one well-formed Pairs encoding
// (u32 count, count × (u32 key_len, u32 value_len), then key NUL value NUL
// for each pair, nothing after).
func validPairs(b []byte) bool {
	return walkPairs(b, nil)
}

// walkPairs validates b as Pairs and, if fn is non-nil, calls it for each
// pair in order until it returns false. It reports whether b is valid
// (checked in full before fn is called). Slices alias b.
func walkPairs(b []byte, fn func(k, v []byte) bool) bool {
	if len(b) < 4 {
		return false
	}
	total := uint64(len(b))
	n := uint64(binary.LittleEndian.Uint32(b))
	if n > (total-4)/10 {
		return false
	}
	for pass := 0; pass < 2; pass++ {
		data := 4 + n*8
		for i := uint64(0); i < n; i++ {
			e := 4 + i*8
			kl := uint64(binary.LittleEndian.Uint32(b[e:]))
			vl := uint64(binary.LittleEndian.Uint32(b[e+4:]))
			kEnd := data + kl
			if kEnd >= total || b[kEnd] != 0 {
				return false
			}
			vEnd := kEnd + 1 + vl
			if vEnd >= total || b[vEnd] != 0 {
				return false
			}
			if pass == 1 && !fn(b[data:kEnd], b[kEnd+1:vEnd]) {
				return true
			}
			data = vEnd + 1
		}
		if data != total {
			return false
		}
		if fn == nil {
			return true
		}
	}
	return true
}

// printable: valid UTF-8 without ASCII control characters.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(b)
}

func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
