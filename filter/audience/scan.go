package audience

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// One strict pass over the payload: it validates the whole document as
// RFC 8259 JSON (what gjson.ValidBytes and utf8.Valid accepted together,
// which is what encoding/json accepts, up to its nesting limit, out of
// reach within MaxPayloadSize) and extracts the top-level `aud` and tenant
// claim on the way. Loops are flat and table driven: Go's wasm code is slow
// on calls and byte loops, and this runs on every request.

// b64val maps a base64url byte to its 6-bit value, anything else to 0xff.
var b64val = func() (t [256]uint8) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = uint8(i)
	}
	return t
}()

// decodeBase64URL decodes s (unpadded base64url, len(s)%4 != 1) into dst,
// which must be exactly its decoded length. It refuses any byte outside the
// alphabet and non-zero trailing bits (as base64.RawURLEncoding.Strict()).
func decodeBase64URL(dst []byte, s string) bool {
	j := 0
	full := len(s) / 4 * 4
	i := 0
	for ; i+8 <= full; i += 8 {
		q := s[i : i+8]
		a, b, c, e := b64val[q[0]], b64val[q[1]], b64val[q[2]], b64val[q[3]]
		f, g, h, k := b64val[q[4]], b64val[q[5]], b64val[q[6]], b64val[q[7]]
		if (a|b|c|e|f|g|h|k)&0xc0 != 0 {
			return false
		}
		v := uint64(a)<<42 | uint64(b)<<36 | uint64(c)<<30 | uint64(e)<<24 |
			uint64(f)<<18 | uint64(g)<<12 | uint64(h)<<6 | uint64(k)
		o := dst[j : j+6 : j+6]
		o[0], o[1], o[2], o[3], o[4], o[5] = byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		j += 6
	}
	for ; i < full; i += 4 {
		q := s[i : i+4]
		a, b, c, e := b64val[q[0]], b64val[q[1]], b64val[q[2]], b64val[q[3]]
		if (a|b|c|e)&0xc0 != 0 {
			return false
		}
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(e)
		o := dst[j : j+3 : j+3]
		o[0], o[1], o[2] = byte(v>>16), byte(v>>8), byte(v)
		j += 3
	}
	switch len(s) - full {
	case 0:
		return true
	case 2:
		a, b := b64val[s[full]], b64val[s[full+1]]
		if (a|b)&0xc0 != 0 || b&0x0f != 0 {
			return false
		}
		dst[j] = a<<2 | b>>4
		return true
	case 3:
		a, b, c := b64val[s[full]], b64val[s[full+1]], b64val[s[full+2]]
		if (a|b|c)&0xc0 != 0 || c&0x03 != 0 {
			return false
		}
		v := uint32(a)<<10 | uint32(b)<<4 | uint32(c)>>2
		o := dst[j : j+2 : j+2]
		o[0], o[1] = byte(v>>8), byte(v)
		return true
	}
	return false
}

// Byte classes inside a JSON string.
const (
	strPlain = iota // printable ASCII other than '"' and '\\'
	strQuote
	strEscape
	strControl
	strHigh // first byte of a multi-byte sequence (or an invalid byte)
)

var strClass = func() (t [256]uint8) {
	for i := range t {
		switch {
		case i < 0x20:
			t[i] = strControl
		case i == '"':
			t[i] = strQuote
		case i == '\\':
			t[i] = strEscape
		case i >= 0x80:
			t[i] = strHigh
		}
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ws skips JSON whitespace.
func ws(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t') {
		i++
	}
	return i
}

// scanString validates the JSON string whose opening quote is p[i-1]:
// escapes as RFC 8259, no control characters, valid UTF-8 (as utf8.Valid:
// no overlong forms, surrogates or code points past U+10FFFF). It returns
// the index after the closing quote and whether the string has escapes.
func scanString(p []byte, i int) (end int, esc, ok bool) {
	for {
		// Eight bytes at a time while none is '"', '\\', a control
		// character or non-ASCII (exact tests for presence: the lowest
		// flagged byte is a real one); byte by byte near the end.
		if i+8 <= len(p) {
			x := binary.LittleEndian.Uint64(p[i:])
			q, b := x^(lsb*'"'), x^(lsb*'\\')
			m := ((x-lsb*0x20)&^x | (q-lsb)&^q | (b-lsb)&^b | x) & msb
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else {
			for i < len(p) && strClass[p[i]] == strPlain {
				i++
			}
			if i >= len(p) {
				return i, false, false
			}
		}
		c := p[i]
		if c == '"' {
			return i + 1, esc, true
		}
		switch strClass[c] {
		case strEscape:
			esc = true
			if i+1 >= len(p) {
				return i, false, false
			}
			switch p[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(p) || !isHex(p[i+2]) || !isHex(p[i+3]) || !isHex(p[i+4]) || !isHex(p[i+5]) {
					return i, false, false
				}
				i += 6
			default:
				return i, false, false
			}
		case strControl:
			return i, false, false
		default: // strHigh
			n := utf8Seq(p, i)
			if n == 0 {
				return i, false, false
			}
			i += n
		}
	}
}

// utf8Seq returns the length of the valid UTF-8 sequence starting with the
// non-ASCII byte p[i], or 0 (the ranges are RFC 3629's, as utf8.Valid's).
func utf8Seq(p []byte, i int) int {
	c := p[i]
	lo, hi := byte(0x80), byte(0xbf)
	n := 0
	switch {
	case c >= 0xc2 && c <= 0xdf:
		n = 2
	case c >= 0xe0 && c <= 0xef:
		n = 3
		if c == 0xe0 {
			lo = 0xa0
		} else if c == 0xed {
			hi = 0x9f
		}
	case c >= 0xf0 && c <= 0xf4:
		n = 4
		if c == 0xf0 {
			lo = 0x90
		} else if c == 0xf4 {
			hi = 0x8f
		}
	default:
		return 0
	}
	if i+n > len(p) {
		return 0
	}
	if b := p[i+1]; b < lo || b > hi {
		return 0
	}
	for k := 2; k < n; k++ {
		if b := p[i+k]; b < 0x80 || b > 0xbf {
			return 0
		}
	}
	return n
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unescape unescapes, in place, the content of a JSON string validated by
// scanString, and returns its new length (never longer: an escape is at
// least as long as what it stands for). Decoding as encoding/json (and
// gjson) do: a surrogate pair is one code point, a lone surrogate U+FFFD.
func unescape(b []byte) int {
	w := 0
	for r := 0; r < len(b); {
		c := b[r]
		if c != '\\' {
			b[w] = c
			w++
			r++
			continue
		}
		switch b[r+1] {
		case 'u':
			x := hex4(b[r+2:])
			r += 6
			if x >= 0xd800 && x < 0xdc00 && r+6 <= len(b) && b[r] == '\\' && b[r+1] == 'u' {
				if y := hex4(b[r+2:]); y >= 0xdc00 && y < 0xe000 {
					x = utf16.DecodeRune(x, y)
					r += 6
				}
			}
			w += utf8.EncodeRune(b[w:r], x)
			continue
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		default: // '"', '\\', '/'
			c = b[r+1]
		}
		b[w] = c
		w++
		r += 2
	}
	return w
}

// str returns the (unescaped) content v of a string validated by
// scanString.
func str(v []byte, esc bool) string {
	if esc {
		v = v[:unescape(v)]
	}
	return unsafe.String(unsafe.SliceData(v), len(v))
}

// stringAt reads the JSON string whose opening quote is p[i] and returns
// its value (unescaped in place, aliasing p) and the index just past it.
func stringAt(p []byte, i int) (v string, end int, ok bool) {
	e, esc, ok := scanString(p, i+1)
	if !ok {
		return "", i, false
	}
	return str(p[i+1:e-1], esc), e, true
}

// scan decodes the payload p, a JSON object, into out (fresh). It reports
// false for anything Malformed. p is modified (strings unescaped in place).
func (d *Decoder) scan(p []byte, out *Claims) bool {
	tenantClaim := d.tenantClaim
	if tenantClaim == "" {
		tenantClaim = DefaultTenantClaim
	}
	i := ws(p, 0)
	if i >= len(p) || p[i] != '{' {
		return false
	}
	i = ws(p, i+1)
	if i >= len(p) {
		return false
	}
	if p[i] == '}' {
		return ws(p, i+1) == len(p)
	}
	var audSeen, tenantSeen, ok bool
	for {
		if p[i] != '"' {
			return false
		}
		var key string
		var e int
		if key, e, ok = stringAt(p, i); !ok {
			return false
		}
		i = ws(p, e)
		if i >= len(p) || p[i] != ':' {
			return false
		}
		if i = ws(p, i+1); i >= len(p) {
			return false
		}
		isTenant := key == tenantClaim
		switch {
		case key == "aud":
			if audSeen {
				return false
			}
			audSeen = true
			if i, ok = scanAud(p, i, out); !ok {
				return false
			}
			if isTenant { // the tenant claim is `aud` itself
				tenantSeen = true
				if out.NAud > 0 {
					out.SetTenant(out.Aud[0])
				}
			}
		case isTenant:
			if tenantSeen {
				return false
			}
			tenantSeen = true
			if i, ok = d.scanTenant(p, i, out); !ok {
				return false
			}
		default: // skipped; scalars without a call to skipValue
			switch c := p[i]; {
			case c == '"':
				i, _, ok = scanString(p, i+1)
			case c == '-' || isDigit(c):
				i, ok = skipNumber(p, i)
			default:
				i, ok = d.skipValue(p, i)
			}
			if !ok {
				return false
			}
		}
		if i = ws(p, i); i >= len(p) {
			return false
		}
		switch p[i] {
		case '}':
			return ws(p, i+1) == len(p)
		case ',':
			if i = ws(p, i+1); i >= len(p) {
				return false
			}
		default:
			return false
		}
	}
}

// scanAud reads the `aud` value starting at p[i] (i < len(p)): a string or
// an array of at most MaxAudValues strings; anything else is false.
func scanAud(p []byte, i int, out *Claims) (int, bool) {
	switch p[i] {
	case '"':
		v, e, ok := stringAt(p, i)
		if !ok {
			return i, false
		}
		out.AddAud(v)
		return e, true
	case '[':
		out.AudPresent = true
		if i = ws(p, i+1); i >= len(p) {
			return i, false
		}
		if p[i] == ']' {
			return i + 1, true
		}
		for n := 1; ; n++ {
			if p[i] != '"' || n > MaxAudValues {
				return i, false
			}
			v, e, ok := stringAt(p, i)
			if !ok {
				return i, false
			}
			if out.NAud < MaxAud {
				out.AddAud(v)
			}
			var done bool
			if i, done, ok = nextElem(p, e); !ok || done {
				return i, ok
			}
		}
	}
	return i, false
}

// scanTenant reads the tenant claim's value starting at p[i] (i < len(p)):
// a string, or an array's first string element, under the SetTenant rule;
// any other valid value leaves no tenant.
func (d *Decoder) scanTenant(p []byte, i int, out *Claims) (int, bool) {
	switch p[i] {
	case '"':
		v, e, ok := stringAt(p, i)
		if !ok {
			return i, false
		}
		out.SetTenant(v)
		return e, true
	case '[':
		if i = ws(p, i+1); i >= len(p) {
			return i, false
		}
		if p[i] == ']' {
			return i + 1, true
		}
		found := false
		for {
			var ok bool
			if !found && p[i] == '"' {
				var v string
				if v, i, ok = stringAt(p, i); !ok {
					return i, false
				}
				out.SetTenant(v)
				found = true
			} else if i, ok = d.skipValue(p, i); !ok {
				return i, false
			}
			var done bool
			if i, done, ok = nextElem(p, i); !ok || done {
				return i, ok
			}
		}
	}
	out.Tenant = ""
	return d.skipValue(p, i)
}

// skipKey validates an object key and its colon from p[i] (i < len(p)) and
// returns the index of the value that follows (< len(p)).
func skipKey(p []byte, i int) (int, bool) {
	if p[i] != '"' {
		return i, false
	}
	e, _, ok := scanString(p, i+1)
	if !ok {
		return i, false
	}
	if i = ws(p, e); i >= len(p) || p[i] != ':' {
		return i, false
	}
	if i = ws(p, i+1); i >= len(p) {
		return i, false
	}
	return i, true
}

// skipNumber validates the number starting at p[i] ('-' or a digit).
func skipNumber(p []byte, i int) (int, bool) {
	if p[i] == '-' {
		i++
	}
	if i >= len(p) {
		return i, false
	}
	switch c := p[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i++
		for i < len(p) && isDigit(p[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < len(p) && p[i] == '.' {
		i++
		if i >= len(p) || !isDigit(p[i]) {
			return i, false
		}
		for i < len(p) && isDigit(p[i]) {
			i++
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if i >= len(p) || !isDigit(p[i]) {
			return i, false
		}
		for i < len(p) && isDigit(p[i]) {
			i++
		}
	}
	return i, true
}

// skipValue validates the JSON value starting at p[i] (i < len(p), not
// whitespace) and returns the index after it. Nesting is tracked in
// d.stack, without recursion.
func (d *Decoder) skipValue(p []byte, i int) (int, bool) {
	depth := 0
	var ok bool
	for {
		// A value starts at p[i], i < len(p).
		switch c := p[i]; c {
		case '"':
			if i, _, ok = scanString(p, i+1); !ok {
				return i, false
			}
		case '{', '[':
			j := ws(p, i+1)
			if j >= len(p) {
				return j, false
			}
			if c == '{' && p[j] == '}' || c == '[' && p[j] == ']' {
				i = j + 1
				break
			}
			if depth>>6 >= len(d.stack) {
				return j, false // unreachable within MaxPayloadSize
			}
			if bit := uint64(1) << (depth & 63); c == '{' {
				d.stack[depth>>6] |= bit
				if j, ok = skipKey(p, j); !ok {
					return j, false
				}
			} else {
				d.stack[depth>>6] &^= bit
			}
			depth++
			i = j
			continue
		case 't':
			if i+4 > len(p) || p[i+1] != 'r' || p[i+2] != 'u' || p[i+3] != 'e' {
				return i, false
			}
			i += 4
		case 'f':
			if i+5 > len(p) || p[i+1] != 'a' || p[i+2] != 'l' || p[i+3] != 's' || p[i+4] != 'e' {
				return i, false
			}
			i += 5
		case 'n':
			if i+4 > len(p) || p[i+1] != 'u' || p[i+2] != 'l' || p[i+3] != 'l' {
				return i, false
			}
			i += 4
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if i, ok = skipNumber(p, i); !ok {
				return i, false
			}
		default:
			return i, false
		}
		// After a value: close containers until the next value.
		for {
			if depth == 0 {
				return i, true
			}
			if i = ws(p, i); i >= len(p) {
				return i, false
			}
			top := d.stack[(depth-1)>>6]>>((depth-1)&63)&1 == 1
			c := p[i]
			if c == ',' {
				if i = ws(p, i+1); i >= len(p) {
					return i, false
				}
				if top {
					if i, ok = skipKey(p, i); !ok {
						return i, false
					}
				}
				break
			}
			if top && c == '}' || !top && c == ']' {
				i++
				depth--
				continue
			}
			return i, false
		}
	}
}

// nextElem moves past the separator after an array element ending before i:
// done when the array closed (i then just past ']'), else i is the next
// element's first byte. ok is false on anything but ',' or ']'.
func nextElem(p []byte, i int) (next int, done, ok bool) {
	if i = ws(p, i); i >= len(p) {
		return i, false, false
	}
	switch p[i] {
	case ']':
		return i + 1, true, true
	case ',':
		if i = ws(p, i+1); i >= len(p) {
			return i, false, false
		}
		return i, false, true
	}
	return i, false, false
}
