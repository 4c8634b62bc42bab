package localproxy

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkProxyVsDirect: the same GET, straight to the upstream and
// through the local proxy (connection manager, jwt_authn stand-in, the real
// filter in wazero, 2 workers), alternated request by request in one run so
// that both see the same machine. Reports each one's latency and their
// ratio; ns/op is the pair.
//
//	go test -run '^$' -bench ProxyVsDirect -benchtime 3000x ./localproxy
func BenchmarkProxyVsDirect(b *testing.B) {
	h := newWasmHarness(b, wasmOpts{})
	tok := demoToken(b, "stoa-mcp-gateway", "acme")
	for _, tc := range []struct {
		name, path string
		hdr        http.Header
	}{
		// A plain authenticated MCP request: RS256 verification in the
		// stand-in, the audience check in the filter.
		{"authenticated", "/mcp/tools", http.Header{"Authorization": {"Bearer " + tok}, "Accept": {"application/json"}}},
		// An exempt path without a token: the proxy and the filter alone.
		{"exempt-no-token", "/health", http.Header{"Accept": {"application/json"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			direct, proxied := client(false), client(false)
			send := func(c *http.Client, base string) time.Duration {
				req, _ := http.NewRequest("GET", base+tc.path, nil)
				req.Header = tc.hdr.Clone()
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d", base, resp.StatusCode)
				}
				return d
			}
			// Warm both connections and the VMs.
			for range 50 {
				send(direct, h.upstream.URL)
				send(proxied, h.url)
			}
			var dd, pd time.Duration
			n := 0
			for b.Loop() {
				dd += send(direct, h.upstream.URL)
				pd += send(proxied, h.url)
				n++
			}
			b.ReportMetric(float64(dd.Nanoseconds())/float64(n), "direct-ns/req")
			b.ReportMetric(float64(pd.Nanoseconds())/float64(n), "proxy-ns/req")
			b.ReportMetric(float64(pd)/float64(dd), "ratio")
		})
	}
}
