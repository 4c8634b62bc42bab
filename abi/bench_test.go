package abi

import (
	"strings"
	"testing"
)

// BenchmarkDecodePairs decodes a typical request header map (the guest's
// side of proxy_get_header_map_pairs) into a reused slice.
func BenchmarkDecodePairs(b *testing.B) {
	in := rawPairs(
		Header{":method", "GET"}, Header{":path", "/mcp/sse"}, Header{":authority", "gw.stoa.dev"},
		Header{"origin", "https://console.stoa.dev"}, Header{"x-forwarded-for", "203.0.113.7, 10.0.0.1"},
		Header{"x-jwt-payload", strings.Repeat("e", 300)}, Header{"accept", "text/event-stream"})
	dst := make([]Header, 0, 16)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = DecodePairs(in, dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendPairs encodes a refusal's headers into a reused buffer.
func BenchmarkAppendPairs(b *testing.B) {
	h := []Header{{":status", "429"}, {"retry-after", "60"}, {"content-type", "application/json"}}
	buf := make([]byte, 0, PairsLen(h))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendPairs(buf[:0], h)
	}
}
