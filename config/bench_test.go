package config

import "testing"

// BenchmarkParse parses the full plugin configuration with an environment
// (once per VM start-up and configuration change: not a hot path, allocates).
func BenchmarkParse(b *testing.B) {
	env := func(k string) (string, bool) {
		switch k {
		case EnvAllowedAudiences:
			return "stoa-mcp-gateway,account", true
		case EnvTrustedProxies:
			return "10.0.0.0/8", true
		}
		return "", false
	}
	js := []byte(fullJSON)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(js, env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIsPath is the per-request SSE path test (0 allocs).
func BenchmarkIsPath(b *testing.B) {
	c := Default()
	b.ReportAllocs()
	for b.Loop() {
		c.SSE.IsPath("/mcp/sse?session=1")
	}
}
