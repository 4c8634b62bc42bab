package identity

import "testing"

// BenchmarkParsePeer parses Envoy's source.address ("ip:port").
func BenchmarkParsePeer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePeer("[2001:db8::7]:443"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientUntrustedPeer is the common case without trusted proxies
// in front: the peer is the client, X-Forwarded-For is not read.
func BenchmarkClientUntrustedPeer(b *testing.B) {
	r := mustResolver(b, "10.0.0.0/8")
	peer := ip("203.0.113.7")
	xff := []string{"198.51.100.1, 203.0.113.7, 10.0.0.2"}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Client(peer, xff)
	}
}
