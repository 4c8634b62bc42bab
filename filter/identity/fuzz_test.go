package identity

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseAddr checks the allocation-free parser against net/netip.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "::1", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "01.2.3.4", "1::2::3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, '%') >= 0 {
			return // zones: netip accepts them, we refuse them
		}
		want, err := netip.ParseAddr(s)
		got, ok := parseAddr(s)
		if ok != (err == nil) || got != want {
			t.Fatalf("parseAddr(%q) = %v, %v; netip: %v, %v", s, got, ok, want, err)
		}
	})
}

// FuzzParsePeer: never panics; a nil error means a valid, unmapped,
// zone-free address; the result agrees with netip.ParseAddrPort where that
// applies.
func FuzzParsePeer(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParsePeer(s)
		if err != nil {
			if a.IsValid() {
				t.Fatalf("ParsePeer(%q) returned %v with error %v", s, a, err)
			}
			return
		}
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("ParsePeer(%q) = %v", s, a)
		}
		if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Unmap() != a {
			t.Fatalf("ParsePeer(%q) = %v, netip %v", s, a, ap)
		}
	})
}

// FuzzClient: never panics, never allocates; from an untrusted peer the
// result is the peer; from a trusted peer the result is the peer or an
// address that occurs in the header text, never IPv4-mapped, and exactly
// what walkOracle (the documented rule, written with strings.Split) picks:
// the rightmost untrusted entry, so an entry left of it (the attacker's
// leftmost X-Forwarded-For) is never the client. Two header lines are one
// list (duplicate headers).
func FuzzClient(f *testing.F) {
	r, err := NewResolver([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
	}, 64)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, trustedPeer bool, h1, h2 string) {
		peer := netip.MustParseAddr("198.51.100.1")
		if trustedPeer {
			peer = netip.MustParseAddr("10.0.0.1")
		}
		got := r.Client(peer, []string{h1, h2})
		if !trustedPeer {
			if got != peer {
				t.Fatalf("untrusted peer: got %v", got)
			}
			return
		}
		if !got.IsValid() || got.Is4In6() {
			t.Fatalf("got %v", got)
		}
		if got != peer && !occurs(got, h1+","+h2) {
			t.Fatalf("got %v, not an entry of %q %q", got, h1, h2)
		}
		if want := walkOracle(r, peer, h1+","+h2); got != want {
			t.Fatalf("Client(%v, %q, %q) = %v, oracle %v", peer, h1, h2, got, want)
		}
		if testing.AllocsPerRun(1, func() { _ = r.Client(peer, []string{h1, h2}) }) != 0 {
			t.Fatalf("Client allocated on %q %q", h1, h2)
		}
	})
}

// occurs is an independent oracle (net/netip) for "a is one of the entries".
func occurs(a netip.Addr, list string) bool {
	for _, e := range strings.Split(list, ",") {
		e = strings.Trim(e, " \t")
		if x, err := netip.ParseAddr(e); err == nil && x.Unmap() == a {
			return true
		}
		if x, err := netip.ParseAddrPort(e); err == nil && x.Addr().Unmap() == a {
			return true
		}
		if len(e) > 2 && e[0] == '[' && e[len(e)-1] == ']' {
			if x, err := netip.ParseAddr(e[1 : len(e)-1]); err == nil && x.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// walkOracle is Client's documented rule restated over the joined header
// text: entries right to left, at most MaxXFFEntries read (empty ones
// count), empty ones skipped, a malformed one ends the walk at the last good
// address, trusted ones skipped, the first untrusted one is the client.
// Entry syntax is ParsePeer's (checked against net/netip by FuzzParsePeer).
func walkOracle(r *Resolver, peer netip.Addr, joined string) netip.Addr {
	entries := strings.Split(joined, ",")
	last := peer
	for i, read := len(entries)-1, 0; i >= 0; i, read = i-1, read+1 {
		if read == MaxXFFEntries {
			return last
		}
		e := strings.Trim(entries[i], " \t")
		if e == "" {
			continue
		}
		a, err := ParsePeer(e)
		if err != nil {
			return last
		}
		if !r.Trusted(a) {
			return a
		}
		last = a
	}
	return last
}
