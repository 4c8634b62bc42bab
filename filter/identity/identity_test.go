package identity

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustResolver(t testing.TB, cidrs ...string) *Resolver {
	t.Helper()
	ps := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		ps = append(ps, netip.MustParsePrefix(c))
	}
	r, err := NewResolver(ps, DefaultIPv6PrefixLen)
	require.NoError(t, err)
	return r
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestParsePeer(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = error
		err  error
	}{
		{"1.2.3.4:5678", "1.2.3.4", nil},
		{"[2001:db8::1]:443", "2001:db8::1", nil},
		{"[::ffff:10.0.0.1]:80", "10.0.0.1", nil},
		{"::ffff:10.0.0.1", "10.0.0.1", nil},
		{"10.0.0.1", "10.0.0.1", nil},
		{"2001:db8::1", "2001:db8::1", nil},
		{"[2001:db8::1]", "2001:db8::1", nil},
		{"1.2.3.4:0", "1.2.3.4", nil},
		{"1.2.3.4:65535", "1.2.3.4", nil},
		{"", "", ErrEmpty},
		{strings.Repeat("1", 65), "", ErrTooLong},
		{"[fe80::1%eth0]:80", "", ErrZone},
		{"fe80::1%eth0", "", ErrZone},
		{"fe80::1%25eth0", "", ErrZone},
		{"1.2.3.4:65536", "", ErrInvalidAddr},
		{"1.2.3.4:", "", ErrInvalidAddr},
		{"1.2.3.4:-1", "", ErrInvalidAddr},
		{"[1.2.3.4]:80", "", ErrInvalidAddr},
		{"[2001:db8::1]:", "", ErrInvalidAddr},
		{"[2001:db8::1]x", "", ErrInvalidAddr},
		{"[2001:db8::1", "", ErrInvalidAddr},
		{"01.2.3.4:80", "", ErrInvalidAddr},
		{"1.2.3:80", "", ErrInvalidAddr},
		{"256.1.1.1:80", "", ErrInvalidAddr},
		{"localhost:80", "", ErrInvalidAddr},
		{"/var/run/envoy.sock", "", ErrInvalidAddr},
		{"unknown", "", ErrInvalidAddr},
		{" 1.2.3.4:80", "", ErrInvalidAddr},
		{"1.2.3.4\x00:80", "", ErrInvalidAddr},
		{"envoy://internal_client_address/", "", ErrInvalidAddr},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			a, err := ParsePeer(tc.in)
			if tc.want == "" {
				assert.ErrorIs(t, err, tc.err)
				assert.False(t, a.IsValid())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, ip(tc.want), a)
		})
	}
}

func TestNewResolver(t *testing.T) {
	_, err := NewResolver(nil, 0)
	assert.ErrorIs(t, err, ErrPrefixLen)
	_, err = NewResolver(nil, 129)
	assert.ErrorIs(t, err, ErrPrefixLen)
	_, err = NewResolver([]netip.Prefix{{}}, 64)
	assert.ErrorIs(t, err, ErrBadPrefix)
	r, err := NewResolver(nil, 128)
	require.NoError(t, err)
	assert.Equal(t, 128, r.IPv6PrefixLen())

	// Unmasked and IPv4-mapped prefixes are normalised.
	r = mustResolver(t, "10.1.2.3/8", "::ffff:192.168.0.0/112")
	assert.True(t, r.Trusted(ip("10.9.9.9")))
	assert.True(t, r.Trusted(ip("192.168.7.7")))
	assert.True(t, r.Trusted(ip("::ffff:192.168.7.7")))
	assert.False(t, r.Trusted(ip("192.169.0.1")))
}

func TestClient(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8", "2001:db8:ffff::/48")
	tests := []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"untrusted peer, no xff", "203.0.113.1", nil, "203.0.113.1"},
		{"trusted peer, no xff", "10.0.0.1", nil, "10.0.0.1"},
		{"trusted peer, empty header", "10.0.0.1", []string{""}, "10.0.0.1"},
		{"one hop", "10.0.0.1", []string{"203.0.113.7"}, "203.0.113.7"},
		{"skip trusted hops", "10.0.0.1", []string{"198.51.100.1, 203.0.113.7, 10.0.0.2, 10.0.0.3"}, "203.0.113.7"},
		{"all trusted = leftmost read", "10.0.0.1", []string{"10.0.0.5, 10.0.0.4"}, "10.0.0.5"},
		{"whitespace and tabs", "10.0.0.1", []string{" \t203.0.113.7\t , 10.0.0.2 "}, "203.0.113.7"},
		{"empty elements ignored", "10.0.0.1", []string{"203.0.113.7,, ,10.0.0.2,"}, "203.0.113.7"},
		{"port accepted", "10.0.0.1", []string{"203.0.113.7:1234"}, "203.0.113.7"},
		{"v6 port accepted", "10.0.0.1", []string{"[2001:db8::7]:1234"}, "2001:db8::7"},
		{"v6 bracket no port", "10.0.0.1", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"v6 bare", "10.0.0.1", []string{"2001:db8::7"}, "2001:db8::7"},
		{"trusted v6 hop", "2001:db8:ffff::1", []string{"198.51.100.9, 2001:db8:ffff::2"}, "198.51.100.9"},
		{"mapped peer trusted", "::ffff:10.0.0.1", []string{"203.0.113.7"}, "203.0.113.7"},
		{"mapped entry unmapped", "10.0.0.1", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"mapped trusted entry skipped", "10.0.0.1", []string{"203.0.113.7, ::ffff:10.0.0.9"}, "203.0.113.7"},
		{"rightmost malformed = peer", "10.0.0.1", []string{"203.0.113.7, garbage"}, "10.0.0.1"},
		{"unknown is malformed", "10.0.0.1", []string{"203.0.113.7, unknown, 10.0.0.2"}, "10.0.0.2"},
		{"obfuscated is malformed", "10.0.0.1", []string{"203.0.113.7, _hidden, 10.0.0.2"}, "10.0.0.2"},
		{"quoted is malformed", "10.0.0.1", []string{"\"203.0.113.7\""}, "10.0.0.1"},
		{"bad port is malformed", "10.0.0.1", []string{"203.0.113.7:99999"}, "10.0.0.1"},
		{"v4 in brackets malformed", "10.0.0.1", []string{"[203.0.113.7]:80"}, "10.0.0.1"},
		{"leading zero malformed", "10.0.0.1", []string{"203.0.113.07"}, "10.0.0.1"},
		{"NUL malformed", "10.0.0.1", []string{"203.0.113.7\x00"}, "10.0.0.1"},
		{"NUL in separator position", "10.0.0.1", []string{"198.51.100.1\x00203.0.113.7"}, "10.0.0.1"},
		{"invalid peer", "", []string{"203.0.113.7"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var peer netip.Addr
			if tc.peer != "" {
				peer = ip(tc.peer)
			}
			got := r.Client(peer, tc.xff)
			if tc.want == "" {
				assert.False(t, got.IsValid())
				return
			}
			assert.Equal(t, ip(tc.want), got)
		})
	}
}

// Attacker sends "X-Forwarded-For: 1.1.1.1" (or many); the trusted proxy
// appends the real address. The attacker's entries must never be chosen.
func TestLeftmostXForwardedForSpoofing(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8")
	real := ip("203.0.113.66")
	for _, spoof := range []string{
		"1.1.1.1",
		"10.0.0.9", // a trusted address: the attacker pretends to be a proxy
		"1.1.1.1, 2.2.2.2, 10.0.0.7",
		"127.0.0.1",
		"::1",
		"unknown",
		strings.Repeat("9.9.9.9,", 100),
	} {
		t.Run(spoof, func(t *testing.T) {
			xff := []string{spoof + ", 203.0.113.66"}
			assert.Equal(t, real, r.Client(ip("10.0.0.1"), xff))
			// Same with the proxy's append on its own header line.
			assert.Equal(t, real, r.Client(ip("10.0.0.1"), []string{spoof, "203.0.113.66"}))
			// And behind a second trusted proxy.
			assert.Equal(t, real, r.Client(ip("10.0.0.1"), []string{spoof + ", 203.0.113.66, 10.0.0.2"}))
		})
	}
}

func TestXForwardedForFromUntrustedPeerIgnored(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8")
	peer := ip("198.51.100.23")
	for _, xff := range [][]string{
		{"203.0.113.7"},
		{"10.0.0.2"},
		{"203.0.113.7, 10.0.0.2"},
		{"1.1.1.1", "2.2.2.2"},
	} {
		assert.Equal(t, peer, r.Client(peer, xff))
	}
	// No trusted CIDRs at all: never read.
	none := mustResolver(t)
	assert.Equal(t, ip("10.0.0.1"), none.Client(ip("10.0.0.1"), []string{"203.0.113.7"}))
}

func TestRightmostUntrustedWins(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8", "192.168.0.0/16")
	got := r.Client(ip("10.0.0.1"), []string{"198.51.100.1, 198.51.100.2, 203.0.113.9, 192.168.1.1, 10.2.2.2"})
	assert.Equal(t, ip("203.0.113.9"), got)
}

func TestMalformedHopEndsWalk(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8")
	// The hop right of the malformed entry is used, even though it is trusted.
	assert.Equal(t, ip("10.0.0.3"), r.Client(ip("10.0.0.1"), []string{"203.0.113.9, bogus, 10.0.0.3, 10.0.0.2"}))
	// Rightmost malformed: the peer itself.
	assert.Equal(t, ip("10.0.0.1"), r.Client(ip("10.0.0.1"), []string{"203.0.113.9, 1.2.3.4.5"}))
	// Malformed on an earlier header line: the walk still ends there.
	assert.Equal(t, ip("10.0.0.4"), r.Client(ip("10.0.0.1"), []string{"203.0.113.9", "nope", "10.0.0.4"}))
}

func TestXFFEntryLimit(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8")
	hops := func(n int) []string { // n trusted hops 10.0.0.n .. 10.0.0.1 right to left
		s := make([]string, 0, n)
		for i := n; i >= 1; i-- {
			s = append(s, "10.0.1."+itoa(i))
		}
		return s
	}
	// 32 trusted entries, untrusted 33rd: not read; the 32nd from the right is used.
	xff := strings.Join(append([]string{"203.0.113.7"}, hops(32)...), ", ")
	assert.Equal(t, ip("10.0.1.32"), r.Client(ip("10.0.0.1"), []string{xff}))
	// 31 trusted + untrusted 32nd: read.
	xff = strings.Join(append([]string{"203.0.113.7"}, hops(31)...), ", ")
	assert.Equal(t, ip("203.0.113.7"), r.Client(ip("10.0.0.1"), []string{xff}))
	// Many entries across header lines.
	lines := append([]string{"203.0.113.7"}, hops(40)...)
	assert.Equal(t, ip("10.0.1.32"), r.Client(ip("10.0.0.1"), lines))
	// Empty elements count toward the budget: 10 000 commas cost 32 steps.
	assert.Equal(t, ip("10.0.0.1"), r.Client(ip("10.0.0.1"), []string{"203.0.113.7" + strings.Repeat(",", 10000)}))
	// 10 000 empty header lines likewise.
	many := make([]string, 10000)
	many[0] = "203.0.113.7"
	assert.Equal(t, ip("10.0.0.1"), r.Client(ip("10.0.0.1"), many))
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestIPv4MappedIPv6(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8")
	a, err := ParsePeer("[::ffff:203.0.113.7]:9")
	require.NoError(t, err)
	assert.True(t, a.Is4())
	assert.Equal(t, r.Key(ip("203.0.113.7")), r.Key(ip("::ffff:203.0.113.7")))
	assert.Equal(t, r.Key(ip("203.0.113.7")), r.Key(a))
	got := r.Client(ip("::ffff:10.0.0.1"), []string{"::ffff:203.0.113.7"})
	assert.True(t, got.Is4())
	assert.Equal(t, ip("203.0.113.7"), got)
	// The key of an IPv4 client is the IPv4-mapped form.
	k := r.Key(ip("203.0.113.7"))
	assert.Equal(t, ip("::ffff:203.0.113.7").As16(), [16]byte(k))
	assert.True(t, k.Is4())
	assert.Equal(t, "203.0.113.7", k.String())
	assert.Equal(t, "203.0.113.7", r.KeyString(k))
}

func TestIPv6Slash64Aggregation(t *testing.T) {
	r := mustResolver(t)
	base := r.Key(ip("2001:db8:1:2::1"))
	for _, s := range []string{"2001:db8:1:2::", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2:dead:beef:0:1", "2001:db8:1:2::1%eth0"} {
		assert.Equal(t, base, r.Key(ip(s)), s)
	}
	for _, s := range []string{"2001:db8:1:3::1", "2001:db8:1:1::1", "2001:db9:1:2::1", "::ffff:1.2.3.4"} {
		assert.NotEqual(t, base, r.Key(ip(s)), s)
	}
	assert.Equal(t, "2001:db8:1:2::", base.String())
	assert.Equal(t, "2001:db8:1:2::/64", r.KeyString(base))
	assert.False(t, base.Is4())

	// Other prefix lengths, including non-byte-aligned ones.
	for _, tc := range []struct {
		bits int
		in   string
		want string
	}{
		{128, "2001:db8::1", "2001:db8::1"},
		{56, "2001:db8:1:2ff::1", "2001:db8:1:200::"},
		{60, "2001:db8:1:2ff::1", "2001:db8:1:2f0::"},
		{1, "ffff::1", "8000::"},
		{48, "2001:db8:1:2::1", "2001:db8:1::"},
	} {
		rr, err := NewResolver(nil, tc.bits)
		require.NoError(t, err)
		assert.Equal(t, ip(tc.want).As16(), [16]byte(rr.Key(ip(tc.in))), "%d %s", tc.bits, tc.in)
	}
	// Invalid address: zero key; zero Resolver behaves as /64.
	assert.Equal(t, Key{}, r.Key(netip.Addr{}))
	var zero Resolver
	assert.Equal(t, base, zero.Key(ip("2001:db8:1:2::99")))
}

func TestMultipleXFFHeaders(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8")
	// Several header lines are one list in order: the last line is rightmost.
	assert.Equal(t, ip("203.0.113.2"), r.Client(ip("10.0.0.1"), []string{"203.0.113.1", "203.0.113.2"}))
	assert.Equal(t, ip("203.0.113.1"), r.Client(ip("10.0.0.1"), []string{"198.51.100.1, 203.0.113.1", "10.0.0.2", "10.0.0.3, 10.0.0.4"}))
	// A trailing empty header line is ignored.
	assert.Equal(t, ip("203.0.113.1"), r.Client(ip("10.0.0.1"), []string{"203.0.113.1", ""}))
}

func TestZoneIDRefused(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8", "fe80::/10")
	_, err := ParsePeer("[fe80::1%eth0]:443")
	assert.ErrorIs(t, err, ErrZone)
	// A zone in X-Forwarded-For is malformed: the walk ends there.
	assert.Equal(t, ip("10.0.0.2"), r.Client(ip("10.0.0.1"), []string{"203.0.113.1, fe80::1%eth0, 10.0.0.2"}))
	assert.Equal(t, ip("10.0.0.1"), r.Client(ip("10.0.0.1"), []string{"[fe80::1%25eth0]:80"}))
	// A zoned peer is never trusted.
	zoned := ip("fe80::1").WithZone("eth0")
	assert.Equal(t, zoned, r.Client(zoned, []string{"203.0.113.1"}))
}

func TestHugeAndGarbageHeaders(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8")
	peer := ip("10.0.0.1")
	for name, v := range map[string]string{
		"1MiB no comma":    strings.Repeat("A", 1<<20),
		"1MiB digits":      strings.Repeat("1", 1<<20),
		"1MiB spaces":      strings.Repeat(" ", 1<<20),
		"NULs":             strings.Repeat("\x00", 4096),
		"binary":           "\xff\xfe\x00\x01,\x80",
		"long v6":          "[" + strings.Repeat("1:", 60) + ":1]:80",
		"brackets":         "[[[[]]]]",
		"only colons":      ":::::",
		"ellipsis twice":   "1::2::3",
		"v4 too many":      "1.2.3.4.5",
		"trailing dot":     "1.2.3.4.",
		"huge port":        "1.2.3.4:0000000000080",
		"unicode digits":   "١.٢.٣.٤",
		"unicode spaces":   "\u00a0203.0.113.7",
		"CR LF":            "203.0.113.7\r\n",
		"percent encoding": "203.0.113.7%20",
	} {
		t.Run(name, func(t *testing.T) {
			assert.NotPanics(t, func() {
				assert.Equal(t, peer, r.Client(peer, []string{v}))
				_, err := ParsePeer(v)
				assert.Error(t, err)
			})
		})
	}
}

func TestParseAddrMatchesNetip(t *testing.T) {
	for _, s := range []string{
		"0.0.0.0", "255.255.255.255", "1.2.3.4", "::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::",
		"::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1::1.2.3.4", "::1.2.3.4", "fFfF::", "1:2:3:4:5:6:7:8:9",
		"1:2:3:4:5:6:7", "1::2::3", ":1::", "1:::2", "12345::", "::1.2.3", "1.2.3.4:", "1:2:3:4:5:6:7:1.2.3.4",
		"", ".", ":", "1.2.3.256", "01.2.3.4", "0.0.0.00", "::ffff:01.2.3.4", "1:2:3:4:5:6::1.2.3.4",
	} {
		want, werr := netip.ParseAddr(s)
		got, ok := parseAddr(s)
		assert.Equal(t, werr == nil, ok, s)
		assert.Equal(t, want, got, s)
	}
}

func TestAllocs(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8", "2001:db8:ffff::/48")
	peer := ip("10.0.0.1")
	cases := [][]string{
		{"198.51.100.1, 203.0.113.7, 10.0.0.2"},
		{"[2001:db8::1]:80, 10.0.0.2"},
		{"unknown, 10.0.0.2"},
		{"garbage"},
		{"fe80::1%eth0"},
		{"1.2.3", "1:2:3"},
		{strings.Repeat("10.0.0.9,", 50)},
		{strings.Repeat("x", 5000)},
	}
	for _, xff := range cases {
		n := testing.AllocsPerRun(200, func() { _ = r.Client(peer, xff) })
		assert.Zero(t, n, "Client %q", xff)
	}
	v6 := ip("2001:db8:1:2::1")
	v4 := ip("203.0.113.7")
	assert.Zero(t, testing.AllocsPerRun(200, func() { _ = r.Key(v6); _ = r.Key(v4) }), "Key")
	for _, s := range []string{"1.2.3.4:80", "[2001:db8::1]:443", "garbage", "fe80::1%eth0", ""} {
		assert.Zero(t, testing.AllocsPerRun(200, func() { _, _ = ParsePeer(s) }), "ParsePeer %q", s)
	}
}

func BenchmarkClient(b *testing.B) {
	r := mustResolver(b, "10.0.0.0/8")
	peer := ip("10.0.0.1")
	xff := []string{"198.51.100.1, 203.0.113.7, 10.0.0.2"}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Client(peer, xff)
	}
}

func BenchmarkKey(b *testing.B) {
	r := mustResolver(b)
	a := ip("2001:db8:1:2::1")
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Key(a)
	}
}
