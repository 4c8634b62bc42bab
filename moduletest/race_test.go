package moduletest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/internal/spectable"
	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// TestConcurrentAdmissionNeverExceedsLimits: 8 VMs (Envoy workers) on one
// shared-data store, each driven by its own goroutine, open SSE streams at
// the same time — from one client, from one tenant, from everyone — while
// ending some. At no moment do more streams hold a slot than a limit allows,
// the store ends up counting exactly the streams still open, and once every
// stream has ended every count is zero and the full limit is admitted again.
func TestConcurrentAdmissionNeverExceedsLimits(t *testing.T) {
	const (
		workers  = 8
		attempts = 40 // per worker and scenario
		perIP    = 10
		perTen   = 100
		total    = 150 // small enough to bite before 8*40 streams
	)
	scenarios := []struct {
		name  string
		limit int
		// request for worker w's k-th attempt
		req func(w, k int) req
	}{
		{"one client, one tenant: ip_limit", perIP, func(w, k int) req {
			return sseReq(spectable.Good, "198.51.100.1:1000")
		}},
		{"one tenant, many clients: tenant_limit", perTen, func(w, k int) req {
			return sseReq(spectable.Good, fmt.Sprintf("10.1.%d.%d:1000", w, k))
		}},
		{"many tenants, many clients: global_limit", total, func(w, k int) req {
			p := spectable.Payload(map[string]any{"aud": "account", "tenant_id": fmt.Sprintf("t%d", (w*attempts+k)%40)})
			return sseReq(p, fmt.Sprintf("10.2.%d.%d:1000", w, k))
		}},
	}
	for _, p := range profiles {
		t.Run(p.String(), func(t *testing.T) {
			h := newHost(t, p, fmt.Sprintf(`{"sse":{"max_total":%d,"rate_limit_per_min":1000}}`, total), nil)
			vms := newVMs(t, h, workers)
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					var (
						held     atomic.Int64 // lower bound of the streams holding a slot
						maxHeld  atomic.Int64
						admitted atomic.Int64
						refused  atomic.Int64
						wg       sync.WaitGroup
						streams  = make([][]*wasmhost.Stream, workers)
						errs     = make(chan error, workers)
						start    = make(chan struct{})
					)
					for w := 0; w < workers; w++ {
						wg.Add(1)
						go func(w int) {
							defer wg.Done()
							rng := rand.New(rand.NewPCG(uint64(w), 7))
							<-start // every worker starts at once
							for k := 0; k < attempts; k++ {
								s, _, err := open(vms[w], sc.req(w, k))
								if err != nil {
									errs <- err
									return
								}
								if status(s) != 0 {
									refused.Add(1)
									_ = s.End()
									continue
								}
								admitted.Add(1)
								n := held.Add(1)
								for m := maxHeld.Load(); n > m && !maxHeld.CompareAndSwap(m, n); m = maxHeld.Load() {
								}
								streams[w] = append(streams[w], s)
								// End one of ours now and then, so releases race admissions.
								if len(streams[w]) > 0 && rng.IntN(4) == 0 {
									i := rng.IntN(len(streams[w]))
									victim := streams[w][i]
									streams[w] = append(streams[w][:i], streams[w][i+1:]...)
									held.Add(-1)
									if err := victim.End(); err != nil {
										errs <- err
										return
									}
								}
							}
						}(w)
					}
					close(start)
					wg.Wait()
					close(errs)
					for err := range errs {
						require.NoError(t, err)
					}
					stillOpen := 0
					for _, o := range streams {
						stillOpen += len(o)
					}
					t.Logf("admitted %d, refused %d, most held at once %d (limit %d), open at the end %d",
						admitted.Load(), refused.Load(), maxHeld.Load(), sc.limit, stillOpen)
					assert.LessOrEqual(t, maxHeld.Load(), int64(sc.limit), "more streams held a slot than the limit")
					assert.LessOrEqual(t, stillOpen, sc.limit)
					assert.Positive(t, refused.Load(), "the limit must bite")
					c := readStore(t, h)
					assert.EqualValues(t, stillOpen, c.global, "the global record counts exactly the open streams")
					assert.EqualValues(t, stillOpen, c.tenants)
					assert.EqualValues(t, stillOpen, c.clients)
					assert.EqualValues(t, stillOpen, gauges(h))

					// Every worker ends its streams concurrently.
					for w := range streams {
						wg.Add(1)
						go func(w int) {
							defer wg.Done()
							for _, s := range streams[w] {
								assert.NoError(t, s.End())
							}
						}(w)
					}
					wg.Wait()
					requireZero(t, h)
					assert.Zero(t, gauges(h))

					// The full limit is available again, and not one more.
					var again []*wasmhost.Stream
					for k := 0; ; k++ {
						s, _, err := open(vms[k%workers], sc.req(k%workers, k/workers))
						require.NoError(t, err)
						if status(s) != 0 {
							require.NoError(t, s.End())
							break
						}
						again = append(again, s)
						require.LessOrEqual(t, len(again), sc.limit)
					}
					assert.Len(t, again, sc.limit)
					for _, s := range again {
						require.NoError(t, s.End())
					}
					requireZero(t, h)
				})
			}
		})
	}
}
