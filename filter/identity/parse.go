package identity

import "net/netip"

// maxAddrText is the longest textual form accepted for one address
// (with brackets and a port): "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535"
// is 53 bytes. Anything longer is refused before it is parsed.
const maxAddrText = 64

// ParseAddr parses a bare IPv4 address (strict dotted decimal: no leading
// zeros) or IPv6 address like netip.ParseAddr, except that zones are
// refused. Unlike netip.ParseAddr it never allocates, also on failure, so it
// can parse attacker-controlled text on a hot path (filter/cors uses it for
// origin hosts).
func ParseAddr(s string) (netip.Addr, bool) { return parseAddr(s) }

// parseAddr parses a bare IPv4 (dotted quad, no leading zeros) or IPv6
// address without a zone. It never allocates, on success or failure, which
// is why it does not call netip.ParseAddr (whose errors allocate). It agrees
// with netip.ParseAddr on every zone-free input (checked by FuzzParseAddr).
func parseAddr(s string) (netip.Addr, bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.':
			var b [4]byte
			if !parseIPv4Fields(s, b[:]) {
				return netip.Addr{}, false
			}
			return netip.AddrFrom4(b), true
		case ':':
			return parseIPv6(s)
		}
	}
	return netip.Addr{}, false
}

// parseIPv4Fields parses a dotted quad into fields (len 4).
func parseIPv4Fields(s string, fields []byte) bool {
	if len(s) == 0 || len(fields) != 4 {
		return false
	}
	val, pos, digits := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && val == 0 {
				return false // leading zero (octal ambiguity)
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return false
			}
		case c == '.':
			if digits == 0 || pos == 3 {
				return false
			}
			fields[pos] = byte(val)
			pos++
			val, digits = 0, 0
		default:
			return false
		}
	}
	if pos != 3 || digits == 0 {
		return false
	}
	fields[3] = byte(val)
	return true
}

// parseIPv6 follows net/netip's parseIPv6 (BSD-style licence, The Go
// Authors) minus zones, returning a bool instead of an allocating error.
func parseIPv6(s string) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		off := 0
		acc := uint32(0)
		for ; off < len(s); off++ {
			c := s[off]
			switch {
			case c >= '0' && c <= '9':
				acc = acc<<4 + uint32(c-'0')
			case c >= 'a' && c <= 'f':
				acc = acc<<4 + uint32(c-'a'+10)
			case c >= 'A' && c <= 'F':
				acc = acc<<4 + uint32(c-'A'+10)
			default:
				goto done
			}
			if off > 3 || acc > 0xffff {
				return netip.Addr{}, false
			}
		}
	done:
		if off == 0 {
			return netip.Addr{}, false
		}
		if off < len(s) && s[off] == '.' {
			if ellipsis < 0 && i != 12 {
				return netip.Addr{}, false
			}
			if i+4 > 16 {
				return netip.Addr{}, false
			}
			if !parseIPv4Fields(s, ip[i:i+4]) {
				return netip.Addr{}, false
			}
			s = ""
			i += 4
			break
		}
		ip[i] = byte(acc >> 8)
		ip[i+1] = byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(ip), true
}

// parsePort accepts 1-5 decimal digits with a value <= 65535.
func parsePort(s string) bool {
	if len(s) == 0 || len(s) > 5 {
		return false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		v = v*10 + int(c-'0')
	}
	return v <= 65535
}

// parseHost parses one address in any of the accepted textual forms:
// "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:80".
// Zones, IPv4 in brackets, empty ports and anything longer than maxAddrText
// are refused. The result is unmapped (::ffff:1.2.3.4 becomes 1.2.3.4).
func parseHost(s string) (netip.Addr, bool) {
	if len(s) == 0 || len(s) > maxAddrText {
		return netip.Addr{}, false
	}
	if s[0] == '[' {
		end := -1
		for i := 1; i < len(s); i++ {
			if s[i] == ']' {
				end = i
				break
			}
		}
		if end < 0 {
			return netip.Addr{}, false
		}
		rest := s[end+1:]
		if len(rest) != 0 && (rest[0] != ':' || !parsePort(rest[1:])) {
			return netip.Addr{}, false
		}
		a, ok := parseIPv6(s[1:end])
		if !ok {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	colons, last := 0, -1
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			colons++
			last = i
		}
	}
	if colons == 1 { // IPv4:port
		if !parsePort(s[last+1:]) {
			return netip.Addr{}, false
		}
		var b [4]byte
		if !parseIPv4Fields(s[:last], b[:]) {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4(b), true
	}
	a, ok := parseAddr(s)
	if !ok {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
