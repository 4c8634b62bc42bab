package audience

import (
	"encoding/binary"
	"unicode/utf8"
	"unsafe"
)

// Decoder decodes jwt_authn payloads. It owns a scratch buffer, grown on
// demand up to MaxPayloadSize and reused by every call, so Claims strings
// alias it until the next call. Not safe for concurrent use: keep one per
// VM (proxy-wasm VMs are single-threaded).
type Decoder struct {
	tenantClaim string
	buf         []byte
	// stack holds the open containers below the top-level member being
	// skipped (bit set: object). Every container takes a byte of a payload
	// of at most MaxPayloadSize bytes, so it cannot overflow.
	stack [MaxPayloadSize/64 + 1]uint64
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
// It does not allocate once the buffer has grown (escaped strings are
// unescaped in place, in the buffer).
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
	if len(s) == 0 || len(s)%4 == 1 {
		return Malformed
	}
	n := len(s) / 4 * 3
	switch len(s) % 4 {
	case 2:
		n++
	case 3:
		n += 2
	}
	if n > MaxPayloadSize {
		return Malformed
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, max(n, 2048))
	}
	buf := d.buf[:n]
	if !decodeBase64URL(buf, s) {
		return Malformed
	}
	return d.decodeJSON(buf, out)
}

// DecodeJSON decodes a payload that is already JSON, into out (reset
// first). The payload is copied into the Decoder's buffer (it is not
// modified) and Claims strings alias that buffer, as for DecodeHeader. The
// payload must be at most MaxPayloadSize bytes of valid UTF-8 and valid
// JSON (RFC 8259) whose first non-space byte is '{'.
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
	if len(payload) == 0 || len(payload) > MaxPayloadSize {
		return Malformed
	}
	if cap(d.buf) < len(payload) {
		d.buf = make([]byte, max(len(payload), 2048))
	}
	buf := d.buf[:len(payload)]
	copy(buf, payload)
	return d.decodeJSON(buf, out)
}

// decodeJSON decodes p, which it may modify (escaped strings are unescaped
// in place).
func (d *Decoder) decodeJSON(p []byte, out *Claims) Reason {
	if len(p) == 0 || len(p) > MaxPayloadSize || !d.scan(p, out) {
		out.Reset()
		return Malformed
	}
	return None
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
