// Package cors holds stoa-guard's CORS decisions: origin normalisation,
// origin patterns and the preflight / actual-request checks of SPEC.md.
//
// It is pure Go (no Wasm imports, no regexp, no fmt on the hot path). Every
// request-time function — Normalize with a large enough buffer,
// Policy.AllowOrigin, Policy.Preflight and the precomputed header values —
// allocates nothing and never panics, whatever the input.
//
// Origins follow the serialisation of the Fetch/URL standards:
//
//	scheme "://" host [ ":" port ]
//
// with no userinfo, path, query, fragment or trailing slash, or the opaque
// origin "null". Comparison is done after normalisation: scheme and host are
// ASCII lower-cased, the default port is dropped (http:80, https:443) and
// IPv6 hosts (always in brackets) compare as addresses. Hosts must be ASCII
// (browsers send IDNs in punycode, "xn--..."); non-ASCII bytes, control
// characters, whitespace, empty labels (so a trailing dot) and zone ids make
// an origin invalid, and an invalid origin is never allowed.
package cors

import (
	"net/netip"
	"unsafe"

	"github.com/stoa-platform/stoa-guard/filter/identity"
)

// Limits of a serialized origin; longer parts make it invalid.
const (
	maxSchemeLen = 32
	maxHostLen   = 253 // DNS name limit
	maxLabelLen  = 63
	// MaxOriginLen bounds a valid serialized origin:
	// scheme "://" "[" host "]" ":" 5-digit port.
	MaxOriginLen = maxSchemeLen + 3 + maxHostLen + 2 + 6
)

// origin is a parsed serialized origin; strings alias the input.
type origin struct {
	null   bool
	scheme string // as written (compare case-insensitively)
	host   string // as written, without brackets for IPv6
	ip6    netip.Addr
	isIP6  bool
	port   int // 0: none or the scheme's default
	// canonical is true when the input is already in normalised form.
	canonical bool
}

// defaultPort is the port dropped for scheme (lower-case), or 0.
func defaultPort(lowerScheme string) int {
	switch lowerScheme {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}

// schemeDefaultPort is defaultPort for a scheme in any case.
func schemeDefaultPort(scheme string) int {
	switch {
	case asciiEqualFold(scheme, "http"):
		return 80
	case asciiEqualFold(scheme, "https"):
		return 443
	}
	return 0
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return isLower(c) || isUpper(c) }

func toLower(c byte) byte {
	if isUpper(c) {
		return c + 'a' - 'A'
	}
	return c
}

// asciiEqualFold reports whether a and b are equal under ASCII case folding
// only (strings.EqualFold also folds Unicode: "\u212a" == "k").
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if toLower(a[i]) != toLower(b[i]) {
			return false
		}
	}
	return true
}

// hasSuffixFold reports whether s ends with suffix under ASCII case folding.
func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && asciiEqualFold(s[len(s)-len(suffix):], suffix)
}

// parseOrigin parses a serialized origin. It never allocates.
func parseOrigin(s string) (origin, bool) {
	var o origin
	if s == "null" {
		o.null, o.canonical = true, true
		return o, true
	}
	if len(s) == 0 || len(s) > MaxOriginLen {
		return o, false
	}
	// scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
	i := 0
	canonical := true
	for ; i < len(s) && s[i] != ':'; i++ {
		c := s[i]
		switch {
		case isLower(c):
		case isUpper(c):
			canonical = false
		case i > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.'):
		default:
			return o, false
		}
	}
	if i == 0 || i > maxSchemeLen || len(s) < i+3 || s[i:i+3] != "://" {
		return o, false
	}
	o.scheme = s[:i]
	rest := s[i+3:]

	// host
	var hostEnd int
	if len(rest) > 0 && rest[0] == '[' {
		end := indexByte(rest, ']')
		if end < 0 {
			return o, false
		}
		inner := rest[1:end]
		if len(inner) == 0 || len(inner) > 45 { // longest IPv6 text form
			return o, false
		}
		for j := 0; j < len(inner); j++ {
			c := inner[j]
			if !(isDigit(c) || isAlpha(c) || c == ':' || c == '.') {
				return o, false // includes '%' (zone ids)
			}
		}
		// identity.ParseAddr, not netip.ParseAddr: netip's errors allocate,
		// and this text is the attacker's.
		a, ok := identity.ParseAddr(inner)
		if !ok || !a.Is6() || a.Zone() != "" {
			return o, false
		}
		o.ip6, o.isIP6, o.host = a, true, inner
		if canonical {
			var tmp [64]byte
			canonical = string(a.AppendTo(tmp[:0])) == inner
		}
		hostEnd = end + 1
	} else {
		labelStart, lastLabelNumeric := 0, true
		j := 0
		for ; j < len(rest) && rest[j] != ':'; j++ {
			c := rest[j]
			switch {
			case c == '.':
				if j == labelStart || j-labelStart > maxLabelLen {
					return o, false // empty or too long label
				}
				labelStart, lastLabelNumeric = j+1, true
			case isDigit(c):
			case isLower(c) || c == '-' || c == '_':
				lastLabelNumeric = false
			case isUpper(c):
				lastLabelNumeric, canonical = false, false
			default:
				return o, false // '/', '?', '#', '@', non-ASCII, controls, spaces...
			}
		}
		if j == 0 || j == labelStart || j-labelStart > maxLabelLen || j > maxHostLen {
			return o, false // empty host, trailing dot, too long
		}
		o.host = rest[:j]
		// URL standard: a host whose last label is numeric is an IPv4
		// address; anything but strict dotted decimal is not a serialized one.
		if lastLabelNumeric {
			a, ok := identity.ParseAddr(o.host)
			if !ok || !a.Is4() {
				return o, false
			}
		}
		hostEnd = j
	}
	rest = rest[hostEnd:]

	// port
	if len(rest) > 0 {
		if rest[0] != ':' || len(rest) < 2 || len(rest) > 6 {
			return o, false
		}
		p := 0
		for j := 1; j < len(rest); j++ {
			if !isDigit(rest[j]) {
				return o, false
			}
			p = p*10 + int(rest[j]-'0')
		}
		if p == 0 || p > 65535 {
			return o, false
		}
		if rest[1] == '0' {
			canonical = false // leading zero
		}
		if p == schemeDefaultPort(o.scheme) {
			p, canonical = 0, false
		}
		o.port = p
	}
	o.canonical = canonical
	return o, true
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// appendOrigin appends the normalised serialisation of o to b.
func appendOrigin(b []byte, o origin) []byte {
	if o.null {
		return append(b, "null"...)
	}
	for i := 0; i < len(o.scheme); i++ {
		b = append(b, toLower(o.scheme[i]))
	}
	b = append(b, "://"...)
	if o.isIP6 {
		b = append(b, '[')
		b = o.ip6.AppendTo(b)
		b = append(b, ']')
	} else {
		for i := 0; i < len(o.host); i++ {
			b = append(b, toLower(o.host[i]))
		}
	}
	if o.port != 0 {
		b = append(b, ':')
		b = appendInt(b, o.port)
	}
	return b
}

func appendInt(b []byte, n int) []byte {
	var tmp [20]byte
	i := len(tmp)
	if n == 0 {
		return append(b, '0')
	}
	for n > 0 {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, tmp[i:]...)
}

// Normalize returns the normalised serialisation of origin: scheme and host
// lower-cased, the default port dropped (http:80, https:443), IPv6 hosts in
// their canonical bracketed form; "null" stays "null". ok is false when
// origin is not a valid serialized origin (see the package doc).
//
// When origin is already normalised (what browsers send) it is returned as
// is. Otherwise the result is written to buf[:0] and the returned string
// aliases buf: it is valid until buf is next modified. Normalize allocates
// nothing when origin is normalised or cap(buf) >= len(origin).
func Normalize(origin string, buf []byte) (string, bool) {
	o, ok := parseOrigin(origin)
	if !ok {
		return "", false
	}
	if o.canonical {
		return origin, true
	}
	b := appendOrigin(buf[:0], o)
	if len(b) == 0 {
		return "", false
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), true
}
