package limiter

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/filter/identity"
	"github.com/stoa-platform/stoa-guard/filter/limiter/limitertest"
)

var t0 = time.Unix(1_780_000_020, 0) // 2026-05-28, on a minute boundary

func defaultConfig() Config {
	return Config{
		MaxPerIP: 10, MaxPerTenant: 100, MaxTotal: 5000, RatePerMin: 5,
		MaxDuration: time.Hour, Tick: time.Second,
	}
}

// ipKey returns the identity key of 10.x.y.z for i.
func ipKey(i int) identity.Key {
	a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	return identity.Key(a.As16())
}

func newLimiter(t testing.TB, c Config, s Store) *Limiter {
	t.Helper()
	l, err := New(c, s)
	require.NoError(t, err)
	return l
}

// counts is what the store holds at a second, decoded by a checker
// independent of the limiter's cache.
type counts struct {
	global  uint64
	tenants map[uint64]uint64
	clients map[identity.Key]uint64
	rates   map[identity.Key]int
	entries []int // live entries per client bucket key that exists
	bytes   int
}

// inspect decodes every record of l's layout in s and checks the per-record
// invariants (limits, entry caps, rate window).
func inspect(t testing.TB, l *Limiter, s *limitertest.MemStore, now time.Time) counts {
	t.Helper()
	return inspectOpt(t, l, s, now, true)
}

// inspectOpt: strict=false only decodes (records written by a foreign or
// hostile writer may hold anything valid).
func inspectOpt(t testing.TB, l *Limiter, s *limitertest.MemStore, now time.Time, strict bool) counts {
	t.Helper()
	sec := uint32(now.Unix())
	c := counts{tenants: map[uint64]uint64{}, clients: map[identity.Key]uint64{}, rates: map[identity.Key]int{}}
	var r record
	T := l.cfg.TenantBuckets
	for i, k := range l.keys[:len(l.keys)-1] {
		v, _, ok := s.Value(k)
		if !ok {
			continue
		}
		c.bytes += len(k) + len(v)
		kind := kindGlobal
		switch {
		case i >= 1 && i <= T:
			kind = kindTenant
		case i > T:
			kind = kindClient
		}
		require.NoError(t, decode(v, kind, &r), "record %s", k)
		live := 0
		lim := func(n, max uint64, msg string) {
			if strict {
				require.LessOrEqual(t, n, max, msg)
			}
		}
		for _, e := range r.ents {
			var n uint64
			for _, co := range r.cohorts[e.c0:e.c1] {
				if co.exp > sec {
					n += uint64(co.n)
				}
			}
			rate := 0
			for _, rt := range r.rates[e.r0:e.r1] {
				if inWindow(rt, sec) {
					rate++
				}
			}
			if n > 0 || rate > 0 {
				live++
			}
			switch kind {
			case kindGlobal:
				c.global += n
				lim(n, uint64(l.cfg.MaxTotal), "global over limit")
			case kindTenant:
				h := uint64(0)
				for j := 0; j < 8; j++ {
					h = h<<8 | uint64(e.id[j])
				}
				c.tenants[h] += n
				lim(n, uint64(l.cfg.MaxPerTenant), "tenant over limit")
			case kindClient:
				id := identity.Key(e.id)
				c.clients[id] += n
				c.rates[id] += rate
				lim(n, uint64(l.cfg.MaxPerIP), "client over limit")
				lim(uint64(rate), uint64(l.cfg.RatePerMin), "client over rate")
			}
		}
		if kind != kindGlobal {
			lim(uint64(live), uint64(l.cfg.BucketEntries), "bucket over its entry cap")
		}
		if kind == kindClient {
			c.entries = append(c.entries, live)
		}
	}
	return c
}

// sum of a map's values.
func sum[K comparable](m map[K]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
