package config

import (
	"net/netip"
	"strconv"
	"strings"
)

// parsePrefixes parses trusted proxy entries: CIDRs ("10.100.0.0/16",
// "2001:db8::/32") or bare IPs (a /32 or /128). Refused: zone ids, host bits
// set ("10.100.0.1/16": the intended network is ambiguous), and IPv4-mapped
// IPv6 ("::ffff:10.0.0.0/104": clients are compared as IPv4, it would never
// match).
func parsePrefixes(key string, items []string) ([]netip.Prefix, error) {
	if len(items) > maxTrustedPrefix {
		return nil, errK(key, strconv.Itoa(len(items))+" entries; expected at most "+strconv.Itoa(maxTrustedPrefix))
	}
	out := make([]netip.Prefix, 0, len(items))
	for _, s := range items {
		var p netip.Prefix
		if strings.IndexByte(s, '/') >= 0 {
			var err error
			p, err = netip.ParsePrefix(s)
			if err != nil {
				return nil, errKV(key, s, "expected a CIDR like 10.100.0.0/16 or 2001:db8::/32, or an IP address")
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return nil, errKV(key, s, "expected a CIDR like 10.100.0.0/16 or 2001:db8::/32, or an IP address")
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			return nil, errKV(key, s, "IPv4-mapped IPv6 never matches (clients are compared as IPv4); expected an IPv4 CIDR like 10.0.0.0/8")
		}
		if m := p.Masked(); m != p {
			return nil, errKV(key, s, "host bits set; expected the network address "+strconv.Quote(m.String()))
		}
		out = append(out, p)
	}
	return out, nil
}
