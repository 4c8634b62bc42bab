package moduletest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/internal/spectable"
	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// TestNoLeakAfterAbnormalEnds: 100,000 SSE streams over 4 VMs, from client
// addresses that never repeat, end in every way Envoy can end them — on_log,
// on_done, on_delete in order; a reset; on_log never coming; on_log after
// on_delete; no end at all — and halfway one VM traps with its streams open
// and is replaced by a new one. Once the leases have expired (max_duration +
// one tick, ticks running on every VM) no record in shared data counts a
// slot, the whole of every limit is admitted again, and the shared-data keys
// stayed within the configured layout all along.
func TestNoLeakAfterAbnormalEnds(t *testing.T) {
	const (
		n           = 100_000
		nVMs        = 4
		window      = 300 // streams kept open at once
		maxTotal    = 1000
		maxDuration = 2 * time.Minute
		tick        = time.Second
		step        = 10 * time.Millisecond // clock per new stream
		tenants     = 50
	)
	plugin := fmt.Sprintf(`{"sse":{"max_total":%d,"rate_limit_per_min":20,"max_duration":"%s","idle_timeout":"30s"}}`, maxTotal, maxDuration)
	h := newHost(t, wasmhost.ProfileEnvoy133, plugin, nil)
	vms := newVMs(t, h, nVMs)
	maxKeys := 2 + 4096 + 256
	payloads := make([]string, tenants)
	for i := range payloads {
		payloads[i] = spectable.Payload(map[string]any{"aud": "stoa-mcp-gateway", "tenant_id": fmt.Sprintf("tenant-%d", i)})
	}
	addr := func(i int) string {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		return netip.AddrPortFrom(a, 50000).String()
	}
	sseHeaders := hdrs([][2]string{{":status", "200"}, {"content-type", "text/event-stream"}})

	type held struct {
		s  *wasmhost.Stream
		vm int
	}
	var (
		streams   []held
		rng       = rand.New(rand.NewPCG(2026, 12))
		ends      = map[string]int{}
		refused   = map[int]int{}
		abandoned = make([]int, nVMs) // per VM slot, since its last replacement
		failed    struct{ window, abandoned int }
		keysMax   int
	)
	endOne := func(k int) {
		e := streams[k]
		streams[k] = streams[len(streams)-1]
		streams = streams[:len(streams)-1]
		var err error
		switch r := rng.IntN(100); {
		case r < 40:
			err, ends["end"] = e.s.End(), ends["end"]+1
		case r < 60:
			err, ends["reset"] = e.s.Reset(), ends["reset"]+1
		case r < 78:
			err, ends["skip_log"] = e.s.EndWith(wasmhost.EndSkipLog), ends["skip_log"]+1
		case r < 96:
			err, ends["log_after_delete"] = e.s.EndWith(wasmhost.EndLogAfterDelete), ends["log_after_delete"]+1
		default:
			ends["never"]++ // the end is never reported
			abandoned[e.vm]++
		}
		require.NoError(t, err)
	}

	t0 := time.Now()
	for i := 0; i < n; i++ {
		if i == n/2 {
			// A VM traps mid-stream: its streams get no callback any more, its
			// slots are released by nobody. Envoy replaces it with a new VM.
			const victim = 1
			vm := vms[victim]
			kept := streams[:0]
			for _, e := range streams {
				if e.vm == victim {
					failed.window++
				} else {
					kept = append(kept, e)
				}
			}
			streams = kept
			failed.abandoned = abandoned[victim]
			abandoned[victim] = 0
			vm.Fail("injected trap")
			require.ErrorIs(t, vm.Err(), wasmhost.ErrVMFailed)
			require.NoError(t, vm.Close(context.Background()))
			nv, err := h.NewVM(context.Background())
			require.NoError(t, err)
			vms[victim] = nv
		}
		w := i % nVMs
		s, _, err := open(vms[w], sseReq(payloads[i%tenants], addr(i)))
		require.NoError(t, err)
		if st := status(s); st != 0 {
			refused[st]++
			require.NoError(t, s.End())
		} else {
			_, err = s.ResponseHeaders(sseHeaders, false)
			require.NoError(t, err)
			if rng.IntN(2) == 0 {
				_, err = s.ResponseBody([]byte("data: x\n\n"), false)
				require.NoError(t, err)
			}
			streams = append(streams, held{s, w})
		}
		for len(streams) > window {
			endOne(rng.IntN(len(streams)))
		}
		require.NoError(t, h.Advance(step))
		if i%10_000 == 0 {
			keysMax = max(keysMax, h.Shared().Len(h.Config().VMID))
		}
	}
	for len(streams) > 0 {
		endOne(rng.IntN(len(streams)))
	}
	mid := readStore(t, h)
	// The leases of streams whose end never came expire by themselves.
	tickFor(t, h, maxDuration+tick, nil)
	elapsed := time.Since(t0)

	c := requireZero(t, h)
	keysMax = max(keysMax, c.keys)
	var live int
	for _, vm := range vms {
		live += vm.LiveStreams()
	}
	t.Logf("%d streams over %d VMs in %v (%.1f µs/stream): ends %v, refused %v, VM trapped with %d open streams (+%d never ended)",
		n, nVMs, elapsed.Round(time.Millisecond), float64(elapsed.Microseconds())/n, ends, refused, failed.window, failed.abandoned)
	t.Logf("after the last end: %d global leases still counted (never-ended and trapped streams); after max_duration + one tick: 0; "+
		"shared data %d keys (at most %d seen, layout %d), %d bytes; streams never ended still known to the host: %d",
		mid.global, c.keys, keysMax, maxKeys, c.bytes, live)
	assert.Zero(t, refused[429]+refused[503], "no refusal expected below the limits")
	assert.LessOrEqual(t, keysMax, maxKeys)
	assert.Positive(t, mid.global, "the never-ended streams held slots before expiry")
	// Never-ended streams send nothing: the filter closes them (idle first).
	closes := metric(h, spectable.Stat(spectable.SSEClosed, "reason", "idle_timeout")) +
		metric(h, spectable.Stat(spectable.SSEClosed, "reason", "max_duration"))
	assert.GreaterOrEqual(t, closes, int64(ends["never"]-failed.abandoned), "never-ended streams are closed by the filter")

	// Gauges: every release brought its tenant gauge down, and each tick sets
	// the labelled tenant gauges from shared data, so the streams the trapped
	// VM held (whose increments a dead VM can never undo, and which Envoy's
	// process-wide stats keep) stop counting when their leases expire.
	g := gauges(h)
	t.Logf("tenant gauges sum to %d after expiry (the trapped VM held %d open streams, +%d never ended)", g, failed.window, failed.abandoned)
	assert.Zero(t, g, "tenant gauges heal from shared data")

	// The whole of every limit is admitted again: global (1000 from new
	// clients and tenants), then per client (10), then per tenant (100).
	fill := func(name string, limit int, r func(k int) req, reason string) {
		t.Helper()
		var got []*wasmhost.Stream
		for k := 0; ; k++ {
			s, _, err := open(vms[k%nVMs], r(k))
			require.NoError(t, err)
			if status(s) != 0 {
				assert.Contains(t, bodyOf(s), `"reason":"`+reason+`"`, name)
				require.NoError(t, s.End())
				break
			}
			got = append(got, s)
			require.LessOrEqual(t, len(got), limit, name)
		}
		assert.Len(t, got, limit, name)
		for _, s := range got {
			require.NoError(t, s.End())
		}
	}
	fill("global", maxTotal, func(k int) req { return sseReq(payloads[k%tenants], addr(n+k)) }, "global_limit")
	fill("per client", 10, func(int) req { return sseReq(payloads[0], addr(n+5000)) }, "ip_limit")
	fill("per tenant", 100, func(k int) req { return sseReq(payloads[1], addr(n+6000+k)) }, "tenant_limit")
	requireZero(t, h)
}
