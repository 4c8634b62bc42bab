package moduletest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/internal/spectable"
	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// closed reports whether the filter asked the host to close s.
func closed(s *wasmhost.Stream) bool {
	select {
	case <-s.Closed():
		return true
	default:
		return false
	}
}

// tickFor advances the clock second by second for d, running every VM's due
// ticks each second, and calls each (if not nil) before every tick.
func tickFor(t *testing.T, h *wasmhost.Host, d time.Duration, each func()) {
	t.Helper()
	for step := time.Duration(0); step < d; step += time.Second {
		if each != nil {
			each()
		}
		require.NoError(t, h.Advance(time.Second))
	}
}

// TestSSEIdleAndLifetimeClose: a stream with no response bytes for
// idle_timeout, and one older than max_duration, are closed by the filter
// from proxy_on_tick (set_effective_context + close_stream), counted, and
// release their slots when the host resets them.
func TestSSEIdleAndLifetimeClose(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.String(), func(t *testing.T) {
			h := newHost(t, p, `{"sse":{"rate_limit_per_min":100,"max_duration":"10m","idle_timeout":"30s"}}`, nil)
			vm := newVMs(t, h, 1)[0]
			require.Equal(t, time.Second, vm.TickPeriod())
			gauge := spectable.Stat(spectable.SSEConnections, "tenant", "acme")
			idleStat := spectable.Stat(spectable.SSEClosed, "reason", "idle_timeout")
			lifeStat := spectable.Stat(spectable.SSEClosed, "reason", "max_duration")

			var streams [2]*wasmhost.Stream
			for i := range streams {
				s, _, err := open(vm, sseReq(spectable.Good, "198.51.100.1:1"))
				require.NoError(t, err)
				require.Zero(t, status(s))
				_, err = s.ResponseHeaders(hdrs([][2]string{{":status", "200"}, {"content-type", "text/event-stream"}}), false)
				require.NoError(t, err)
				streams[i] = s
			}
			idle, busy := streams[0], streams[1]
			assert.EqualValues(t, 2, metric(h, gauge))
			chunk := func() {
				if !closed(busy) {
					_, err := busy.ResponseBody([]byte("data: x\n\n"), false)
					require.NoError(t, err)
				}
			}

			tickFor(t, h, 28*time.Second, chunk)
			assert.False(t, closed(idle), "idle for less than idle_timeout")
			tickFor(t, h, 3*time.Second, chunk)
			assert.True(t, closed(idle), "idle for idle_timeout (+ at most one tick)")
			assert.False(t, closed(busy), "a stream sending bytes is active")
			assert.EqualValues(t, 1, metric(h, idleStat))
			assert.EqualValues(t, 2, metric(h, gauge), "slots are held until the host resets the stream")
			require.NoError(t, idle.Reset())
			assert.EqualValues(t, 1, metric(h, gauge))

			// The busy stream lives at most max_duration, more than max_duration minus
			// the cohort grain (10 s for 10 m).
			tickFor(t, h, 10*time.Minute-31*time.Second-10*time.Second, chunk)
			assert.False(t, closed(busy), "closed before max_duration minus the grain")
			tickFor(t, h, 11*time.Second, chunk)
			assert.True(t, closed(busy), "closed by max_duration + one tick")
			assert.EqualValues(t, 1, metric(h, lifeStat))
			assert.EqualValues(t, 1, metric(h, idleStat), "a closed stream is counted once")
			require.NoError(t, busy.Reset())
			assert.EqualValues(t, 0, metric(h, gauge))
			tickFor(t, h, 5*time.Second, nil)
			assert.EqualValues(t, 1, metric(h, lifeStat), "a reset stream is not closed again")

			// Both slots are free again.
			for i := 0; i < 2; i++ {
				s, _, err := open(vm, sseReq(spectable.Good, "198.51.100.1:1"))
				require.NoError(t, err)
				require.Zero(t, status(s))
			}
		})
	}
}

// TestSSEIdleDryRunCountsWithoutClosing: in sse dry_run the tick counts the
// close it would make, once, and leaves the stream alone.
func TestSSEIdleDryRunCountsWithoutClosing(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.String(), func(t *testing.T) {
			h := newHost(t, p, `{"mode":{"sse":"dry_run"},"sse":{"idle_timeout":"30s"}}`, nil)
			vm := newVMs(t, h, 1)[0]
			s, _, err := open(vm, sseReq(spectable.Good, "198.51.100.1:1"))
			require.NoError(t, err)
			tickFor(t, h, 40*time.Second, nil)
			assert.False(t, closed(s))
			assert.EqualValues(t, 1, metric(h, spectable.Stat(spectable.SSEClosed, "reason", "idle_timeout")))
			require.NoError(t, s.End())
			assert.EqualValues(t, 0, metric(h, spectable.Stat(spectable.SSEConnections, "tenant", "acme")))
		})
	}
}

// TestPrometheusNames: with the stats tag rules the project ships
// (envoy.yaml), every metric scrapes under exactly SPEC.md's name and label.
func TestPrometheusNames(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.String(), func(t *testing.T) {
			h := newHost(t, p, `{"sse":{"max_per_ip":1,"idle_timeout":"30s"}}`, nil)
			vm := newVMs(t, h, 1)[0]
			do := func(r req) *wasmhost.Stream {
				s, _, err := open(vm, r)
				require.NoError(t, err)
				return s
			}
			require.Equal(t, 401, status(do(req{})))
			require.Equal(t, 403, status(do(req{headers: [][2]string{{"origin", "https://evil.com"}, {"x-jwt-payload", spectable.Good}}})))
			held := do(sseReq(spectable.Good, "198.51.100.1:1"))
			require.Zero(t, status(held))
			require.Equal(t, 429, status(do(sseReq(spectable.Good, "198.51.100.1:1"))))
			prom := h.Metrics().Prometheus()
			for _, line := range []string{
				"# TYPE stoa_sse_connections_total gauge",
				`stoa_sse_connections_total{tenant="acme"} 1`,
				"# TYPE stoa_sse_rejected_total counter",
				`stoa_sse_rejected_total{reason="ip_limit"} 1`,
				`stoa_sse_rejected_total{reason="tenant_limit"} 0`,
				`stoa_sse_rejected_total{reason="global_limit"} 0`,
				`stoa_sse_rejected_total{reason="rate_limit"} 0`,
				`stoa_jwt_validation_failures_total{reason="missing_token"} 1`,
				`stoa_jwt_validation_failures_total{reason="invalid_audience"} 0`,
				`stoa_jwt_validation_failures_total{reason="missing_audience"} 0`,
				`stoa_jwt_validation_failures_total{reason="malformed"} 0`,
				`stoa_cors_rejected_total{reason="origin"} 1`,
				`stoa_cors_rejected_total{reason="method"} 0`,
				`stoa_cors_rejected_total{reason="headers"} 0`,
				`stoa_sse_closed_total{reason="idle_timeout"} 0`,
				`stoa_sse_closed_total{reason="max_duration"} 0`,
			} {
				assert.Contains(t, strings.Split(prom, "\n"), line)
			}
			tickFor(t, h, 31*time.Second, nil)
			require.True(t, closed(held))
			require.NoError(t, held.Reset())
			prom = h.Metrics().Prometheus()
			assert.Contains(t, prom, "\n"+`stoa_sse_closed_total{reason="idle_timeout"} 1`+"\n")
			assert.Contains(t, prom, "\n"+`stoa_sse_connections_total{tenant="acme"} 0`+"\n")
			assert.NotContains(t, prom, "wasmcustom")
			assert.NotContains(t, prom, "=.=")
			t.Logf("scrape:\n%s", prom)
		})
	}
}
