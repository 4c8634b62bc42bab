package cors

import (
	"errors"
	"net/netip"
	"strconv"
	"unicode/utf8"
)

// Pattern is one allowed origin: an exact origin ("https://console.stoa.dev",
// "http://localhost:3000", "null") or a wildcard "scheme://*.suffix[:port]".
//
// A wildcard stands for ONE OR MORE whole leading labels and is anchored at
// the end of the host: "https://*.example.com" matches
// "https://a.example.com" and "https://a.b.example.com", but never
// "https://example.com" itself (list it separately if it is wanted),
// "https://example.com.evil.com" or "https://evilexample.com". Scheme and
// port are always part of the match: "https://*.example.com" only matches
// https on port 443, "https://*.example.com:8443" only port 8443.
//
// The zero Pattern matches nothing.
type Pattern struct {
	valid    bool
	null     bool
	wildcard bool
	scheme   string // lower-case
	host     string // lower-case; for a wildcard the suffix with its leading dot (".example.com")
	isIP6    bool
	ip6      netip.Addr
	port     int // 0: the scheme's default
	text     string
}

// ParsePattern parses an allowed-origin entry. Scheme and host are
// normalised like Normalize does, so "HTTPS://Console.Stoa.dev:443" is
// "https://console.stoa.dev". The error text quotes the value (truncated) and
// says what is expected. "*" is not a pattern: wildcard mode is a Policy
// setting (PolicyConfig.Origins == ["*"]).
func ParsePattern(s string) (Pattern, error) {
	if s == "*" {
		return Pattern{}, valueError(s, `"*" is not an origin pattern; use it as the only entry of the origin list (wildcard mode)`)
	}
	if s == "null" {
		return Pattern{valid: true, null: true, text: "null"}, nil
	}
	if asciiEqualFold(s, "null") {
		return Pattern{}, valueError(s, `the opaque origin is spelled "null", in lower case`)
	}
	if s == "" {
		return Pattern{}, valueError(s, "empty origin; expected scheme://host[:port], like https://console.stoa.dev")
	}
	if !utf8.ValidString(s) || hasNonASCII(s) {
		return Pattern{}, valueError(s, "non-ASCII origin; write internationalised hosts in punycode (xn--...), like https://xn--bcher-kva.example")
	}
	sep := index(s, "://")
	if sep <= 0 {
		return Pattern{}, valueError(s, "missing scheme; expected scheme://host[:port], like https://console.stoa.dev")
	}
	hostPort := s[sep+3:]
	if i := indexAny(hostPort, "/?#"); i >= 0 {
		return Pattern{}, valueError(s, "an origin has no path, query, fragment or trailing slash; expected scheme://host[:port], like https://console.stoa.dev")
	}
	if indexByte(hostPort, '@') >= 0 {
		return Pattern{}, valueError(s, "an origin has no user info; expected scheme://host[:port], like https://console.stoa.dev")
	}
	if indexByte(hostPort, '*') >= 0 {
		if len(hostPort) < 2 || hostPort[0] != '*' || hostPort[1] != '.' || indexByte(hostPort[1:], '*') >= 0 {
			return Pattern{}, valueError(s, "a wildcard must be a whole leading label, like https://*.example.com")
		}
		suffix := hostPort[2:]
		if c := indexByte(suffix, ':'); c >= 0 {
			suffix = suffix[:c]
		}
		if lastLabelNumeric(suffix) || (len(hostPort) > 2 && hostPort[2] == '[') {
			return Pattern{}, valueError(s, "a wildcard cannot cover an IP address; expected scheme://*.domain[:port], like https://*.example.com")
		}
		// Parse the suffix as an origin host: scheme://suffix[:port].
		s2 := s[:sep+3] + hostPort[2:]
		o, ok := parseOrigin(s2)
		if !ok || o.null {
			return Pattern{}, valueError(s, "invalid wildcard origin; expected scheme://*.domain[:port], like https://*.example.com")
		}
		if o.isIP6 || isIPv4(o.host) {
			return Pattern{}, valueError(s, "a wildcard cannot cover an IP address; expected scheme://*.domain[:port], like https://*.example.com")
		}
		if indexByte(o.host, '.') < 0 {
			return Pattern{}, valueError(s, "a wildcard must cover at least two labels (no *.com or *.localhost); expected like https://*.example.com")
		}
		p := Pattern{valid: true, wildcard: true, scheme: lower(o.scheme), host: "." + lower(o.host), port: o.port}
		p.text = p.scheme + "://*" + p.host + portSuffix(p.port)
		return p, nil
	}
	o, ok := parseOrigin(s)
	if !ok {
		return Pattern{}, valueError(s, "invalid origin; expected scheme://host[:port] with an ASCII host and a port 1..65535, like https://console.stoa.dev or http://localhost:3000")
	}
	p := Pattern{valid: true, scheme: lower(o.scheme), port: o.port}
	if o.isIP6 {
		p.isIP6, p.ip6 = true, o.ip6
		p.host = o.ip6.String()
		p.text = p.scheme + "://[" + p.host + "]" + portSuffix(p.port)
	} else {
		p.host = lower(o.host)
		p.text = p.scheme + "://" + p.host + portSuffix(p.port)
	}
	return p, nil
}

// String returns the pattern in normalised form ("" for the zero Pattern).
func (p Pattern) String() string { return p.text }

// Wildcard reports whether p is a "scheme://*.suffix" pattern.
func (p Pattern) Wildcard() bool { return p.wildcard }

// Match reports whether the raw origin header value matches p. It never
// allocates.
func (p Pattern) Match(origin string) bool {
	o, ok := parseOrigin(origin)
	return ok && p.match(&o)
}

func (p *Pattern) match(o *origin) bool {
	if !p.valid {
		return false
	}
	if p.null || o.null {
		return p.null && o.null
	}
	if o.port != p.port || !asciiEqualFold(o.scheme, p.scheme) {
		return false
	}
	if p.isIP6 || o.isIP6 {
		return p.isIP6 && o.isIP6 && p.ip6 == o.ip6
	}
	if p.wildcard {
		// One or more whole labels before the suffix: the host is longer
		// than the suffix (which starts with '.') and labels are non-empty.
		return len(o.host) > len(p.host) && hasSuffixFold(o.host, p.host)
	}
	return asciiEqualFold(o.host, p.host)
}

func portSuffix(port int) string {
	if port == 0 {
		return ""
	}
	return ":" + strconv.Itoa(port)
}

// lastLabelNumeric reports whether the last dot-separated label of host is
// non-empty and all digits (the URL standard then parses host as IPv4).
func lastLabelNumeric(host string) bool {
	i := len(host)
	for i > 0 && host[i-1] != '.' {
		i--
	}
	return i < len(host) && isIPv4(host[i:])
}

func isIPv4(host string) bool {
	for i := 0; i < len(host); i++ {
		if !isDigit(host[i]) && host[i] != '.' {
			return false
		}
	}
	return true
}

func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if isUpper(s[i]) {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = toLower(b[j])
			}
			return string(b)
		}
	}
	return s
}

func index(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func indexAny(s, chars string) int {
	for i := 0; i < len(s); i++ {
		if indexByte(chars, s[i]) >= 0 {
			return i
		}
	}
	return -1
}

// maxQuoted bounds how much of a bad value an error message repeats.
const maxQuoted = 64

// Quote returns s quoted for an error message, cut to about 64 bytes (at a
// rune boundary, "..." appended) with control and non-UTF-8 bytes escaped.
func Quote(s string) string {
	if len(s) > maxQuoted {
		cut := maxQuoted
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

// valueError is `"value": msg`; callers prefix the key.
func valueError(v, msg string) error { return errors.New(Quote(v) + ": " + msg) }
