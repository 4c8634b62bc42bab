package audience

import "testing"

// BenchmarkCheck is the audience decision alone, on decoded claims whose
// allowed audience is the last of three.
func BenchmarkCheck(b *testing.B) {
	c := Claims{AudPresent: true, NAud: 3, Aud: [MaxAud]string{"x", "y", "account"}}
	b.ReportAllocs()
	for b.Loop() {
		if defaultChecker.Check(&c) != None {
			b.Fatal("refused")
		}
	}
}

// BenchmarkDecodeMetadata decodes the jwt_authn payload_in_metadata route
// (proxy-wasm pairs of the verified claims).
func BenchmarkDecodeMetadata(b *testing.B) {
	d := NewDecoder("tenant_id")
	var c Claims
	meta := pairs("aud", string(list("x", "stoa-mcp-gateway")), "tenant_id", "acme")
	b.ReportAllocs()
	for b.Loop() {
		d.DecodeMetadata(meta, &c)
	}
}

// BenchmarkExemptMatch is the exempt-path decision for a non-exempt path.
func BenchmarkExemptMatch(b *testing.B) {
	e := NewExempt([]string{"/.well-known/", "/health"})
	b.ReportAllocs()
	for b.Loop() {
		e.Match("/mcp/sse?session=1")
	}
}
