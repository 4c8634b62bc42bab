// Package identity decides who the client of a request is: the TCP peer, or,
// only when the peer is a trusted proxy, the rightmost untrusted address of
// X-Forwarded-For. It also turns an address into the fixed-size Key the SSE
// limiter counts by (IPv6 aggregated to a prefix, /64 by default).
//
// The package is pure (no host calls), never panics, and Client and Key do
// not allocate.
//
// Accepted address forms, in source.address and in X-Forwarded-For entries:
// "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:80".
// Envoy writes bare addresses into X-Forwarded-For; a port is accepted (and
// dropped) because some load balancers append one; it never changes which
// hop is chosen. An unbracketed IPv6 address is always read as a bare
// address ("2001:db8::1:80" is the address 2001:db8::1:80). Refused (the
// entry is malformed): zones ("fe80::1%eth0"), IPv4 in brackets, leading
// zeros in IPv4 octets, empty or out-of-range ports, RFC 7239 obfuscated
// identifiers ("unknown", "_hidden"), quotes, NUL or other bytes, and
// anything longer than 64 bytes after trimming spaces and tabs.
package identity

import (
	"errors"
	"net/netip"
	"strconv"
)

// MaxXFFEntries is the maximum number of X-Forwarded-For entries read, from
// the right. Empty list elements count toward it.
const MaxXFFEntries = 32

// DefaultIPv6PrefixLen is the IPv6 aggregation prefix used by the defaults.
const DefaultIPv6PrefixLen = 64

// Errors returned by ParsePeer and NewResolver. Compare with errors.Is / ==.
var (
	ErrEmpty       = errors.New("identity: empty address")
	ErrTooLong     = errors.New("identity: address too long")
	ErrZone        = errors.New("identity: IPv6 zone not allowed")
	ErrInvalidAddr = errors.New("identity: not an IP address (want ip:port, [ipv6]:port or a bare IP)")
	ErrPrefixLen   = errors.New("identity: ipv6 prefix length must be between 1 and 128")
	ErrBadPrefix   = errors.New("identity: invalid trusted CIDR")
)

// Key identifies one client for the limiter: 16 bytes, an IPv4 address as
// IPv4-mapped IPv6 (::ffff:a.b.c.d), an IPv6 address masked to the
// resolver's prefix. IPv4 and IPv6 keys never collide: an IPv6 address in
// ::ffff:0:0/96 is unmapped to IPv4 first. The zero Key stands for an
// invalid address.
type Key [16]byte

// Is4 reports whether k holds an IPv4 client.
func (k Key) Is4() bool {
	return netip.AddrFrom16(k).Is4In6()
}

// String returns "203.0.113.7" for an IPv4 key and the masked IPv6 network
// address ("2001:db8:1:2::") for an IPv6 key; the prefix length is not in
// the key (Resolver.KeyString adds it). For logs and debugging only; it
// allocates.
func (k Key) String() string {
	return netip.AddrFrom16(k).Unmap().String()
}

// Resolver decides the client address from the peer and X-Forwarded-For.
// It is immutable after NewResolver and safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix // masked, IPv4-mapped prefixes converted to IPv4
	v6bits  int
}

// NewResolver returns a Resolver trusting the given CIDRs (IPv4 and IPv6;
// an IPv4-mapped IPv6 prefix such as ::ffff:10.0.0.0/104 is treated as the
// IPv4 prefix 10.0.0.0/8). ipv6PrefixLen (1..128) is the IPv6 aggregation
// prefix for Key. An invalid prefix or length is an error; no trusted
// prefixes means X-Forwarded-For is never read.
func NewResolver(trusted []netip.Prefix, ipv6PrefixLen int) (*Resolver, error) {
	if ipv6PrefixLen < 1 || ipv6PrefixLen > 128 {
		return nil, ErrPrefixLen
	}
	r := &Resolver{v6bits: ipv6PrefixLen, trusted: make([]netip.Prefix, 0, len(trusted))}
	for _, p := range trusted {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return nil, ErrBadPrefix
		}
		p = p.Masked()
		if p.Addr().Is4In6() { // bits >= 96 here, else the mask would clear ::ffff
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		r.trusted = append(r.trusted, p)
	}
	return r, nil
}

// IPv6PrefixLen returns the IPv6 aggregation prefix length.
func (r *Resolver) IPv6PrefixLen() int { return r.v6bits }

// Trusted reports whether a (unmapped first) is inside a trusted CIDR.
func (r *Resolver) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParsePeer parses Envoy's source.address property: "1.2.3.4:5678",
// "[2001:db8::1]:443", or a bare IP. IPv4-mapped IPv6 is unmapped. Zones,
// empty input, input over 64 bytes and anything else (unix socket paths,
// hostnames) are errors. A valid address is returned only with a nil error.
// It does not allocate.
func ParsePeer(s string) (netip.Addr, error) {
	switch {
	case len(s) == 0:
		return netip.Addr{}, ErrEmpty
	case len(s) > maxAddrText:
		return netip.Addr{}, ErrTooLong
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			return netip.Addr{}, ErrZone
		}
	}
	a, ok := parseHost(s)
	if !ok {
		return netip.Addr{}, ErrInvalidAddr
	}
	return a, nil
}

// Client returns the client address of a request whose TCP peer is peer and
// whose X-Forwarded-For header values, in order, are xff (several header
// lines are one list, as if joined by commas).
//
// X-Forwarded-For is read only when peer is inside a trusted CIDR. Then the
// entries are walked right to left: trusted hops are skipped and the first
// untrusted address is the client. A malformed entry ends the walk and the
// last good address walked (the hop to its right, possibly the peer) is the
// client. Empty list elements are ignored (RFC 9110 §5.6.1) but count toward
// the MaxXFFEntries budget; after that many entries the last good address
// walked is the client, as it is when every entry is trusted (the leftmost
// read). Attacker-supplied entries left of the first untrusted hop are never
// used. The result is unmapped. An invalid peer is returned unchanged.
// It does not allocate.
func (r *Resolver) Client(peer netip.Addr, xff []string) netip.Addr {
	peer = peer.Unmap()
	if !peer.IsValid() || peer.Zone() != "" || !r.Trusted(peer) {
		return peer
	}
	last := peer
	read := 0
	for h := len(xff) - 1; h >= 0; h-- {
		v := xff[h]
		end := len(v)
		for end >= 0 {
			start := end - 1
			for start >= 0 && v[start] != ',' {
				start--
			}
			// entry is v[start+1:end]
			if read == MaxXFFEntries {
				return last
			}
			read++
			e := trimOWS(v[start+1 : end])
			end = start
			if len(e) == 0 {
				continue
			}
			a, ok := parseEntry(e)
			if !ok {
				return last
			}
			if !r.Trusted(a) {
				return a
			}
			last = a
		}
	}
	return last
}

// parseEntry parses one trimmed X-Forwarded-For entry.
func parseEntry(e string) (netip.Addr, bool) {
	if len(e) > maxAddrText {
		return netip.Addr{}, false
	}
	return parseHost(e)
}

// trimOWS trims spaces and horizontal tabs.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// Key returns the limiter key of a: IPv4 (also IPv4-mapped IPv6) as
// ::ffff:a.b.c.d, IPv6 with every bit past the prefix length cleared, so
// every address of one /64 (by default) is one client. The zone, if any, is
// ignored. An invalid address gives the zero Key. It does not allocate.
func (r *Resolver) Key(a netip.Addr) Key {
	if !a.IsValid() {
		return Key{}
	}
	a = a.Unmap()
	k := Key(a.As16()) // IPv4 comes out IPv4-mapped
	if a.Is4() {
		return k
	}
	bits := r.v6bits
	if bits < 1 || bits > 128 { // zero Resolver: behave as the default
		bits = DefaultIPv6PrefixLen
	}
	full := bits / 8
	if rem := bits % 8; rem != 0 {
		k[full] &= byte(0xff << (8 - rem))
		full++
	}
	clear(k[full:])
	return k
}

// KeyString is Key.String with the prefix length for IPv6 keys:
// "203.0.113.7" or "2001:db8:1:2::/64". For logs and debugging; it allocates.
func (r *Resolver) KeyString(k Key) string {
	if k.Is4() {
		return k.String()
	}
	return k.String() + "/" + strconv.Itoa(r.v6bits)
}
