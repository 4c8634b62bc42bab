package cors

import "testing"

// BenchmarkAllowOrigin is the actual-request check (every request with an
// Origin header): an allowed origin (the last of the list, the worst case
// for an allowed one), a refused look-alike, and a non-canonical spelling.
func BenchmarkAllowOrigin(b *testing.B) {
	p := mustPolicy(b, defaultConfig())
	for _, bc := range []struct{ name, origin string }{
		{"allowed", "https://portal.gostoa.dev"},
		{"refused-lookalike", "https://portal.gostoa.dev.evil.com"},
		{"non-canonical", "HTTPS://Portal.GoStoa.Dev:443"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.AllowOrigin(bc.origin)
			}
		})
	}
}

// BenchmarkNormalize measures Normalize with a reused buffer (0 allocs).
func BenchmarkNormalize(b *testing.B) {
	buf := make([]byte, 0, MaxOriginLen)
	b.ReportAllocs()
	for b.Loop() {
		Normalize("HTTPS://Console.Stoa.Dev:443", buf)
	}
}
