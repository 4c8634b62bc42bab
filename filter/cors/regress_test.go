package cors

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestInvalidIPHostOriginDoesNotAllocate pins a FuzzMatch finding: an Origin
// whose host looked like an IP address but was not one ("A://0000000000",
// "https://256.1.1.1", "http://[1::2::3]") went through netip.ParseAddr,
// whose error allocates, so any client could make AllowOrigin and Preflight
// allocate on every request. They are refused without allocating now.
func TestInvalidIPHostOriginDoesNotAllocate(t *testing.T) {
	p := policyWith(t, "https://console.stoa.dev", "https://*.example.com", "http://[::1]:8080")
	for _, o := range []string{
		"A://0000000000:000", "https://0000000000", "https://1.2.3.04", "https://256.1.1.1",
		"https://a.b.1.2.3", "https://1.2.3", "http://[1::2::3]", "http://[::1::]", "http://[12345::]",
		"http://[1.2.3.4]", "http://[::ffff:1.2.3.256]",
	} {
		assert.False(t, p.AllowOrigin(o), o)
		_, ok := Normalize(o, nil)
		assert.False(t, ok, o)
		assert.Zero(t, testing.AllocsPerRun(100, func() { p.AllowOrigin(o) }), "AllowOrigin(%q)", o)
		assert.Zero(t, testing.AllocsPerRun(100, func() { p.Preflight(o, "GET", "") }), "Preflight(%q)", o)
	}
	// Valid IP hosts are still accepted and normalised.
	for o, want := range map[string]string{
		"http://[0:0::1]:8080": "http://[::1]:8080", "https://1.2.3.4:443": "https://1.2.3.4",
		"http://[::FFFF:1.2.3.4]": "http://[::ffff:1.2.3.4]",
	} {
		n, ok := Normalize(o, nil)
		assert.True(t, ok, o)
		assert.Equal(t, want, n)
	}
	assert.True(t, p.AllowOrigin("http://[0:0::1]:8080"))
}
