package limiter

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/filter/identity"
	"github.com/stoa-platform/stoa-guard/filter/limiter/limitertest"
)

func TestReasonString(t *testing.T) {
	for r, want := range map[Reason]string{
		None: "", GlobalLimit: "global_limit", IPLimit: "ip_limit", TenantLimit: "tenant_limit",
		RateLimit: "rate_limit", Busy: "busy", Reason(99): "unknown",
	} {
		assert.Equal(t, want, r.String())
	}
}

func TestNewValidates(t *testing.T) {
	s := limitertest.NewMemStore()
	bad := map[string]func(*Config){
		"negative ip":       func(c *Config) { c.MaxPerIP = -1 },
		"negative tenant":   func(c *Config) { c.MaxPerTenant = -1 },
		"negative total":    func(c *Config) { c.MaxTotal = -1 },
		"negative rate":     func(c *Config) { c.RatePerMin = -1 },
		"huge rate":         func(c *Config) { c.RatePerMin = 1001 },
		"zero duration":     func(c *Config) { c.MaxDuration = 0 },
		"sub-second":        func(c *Config) { c.MaxDuration = time.Millisecond },
		"negative tick":     func(c *Config) { c.Tick = -time.Second },
		"negative buckets":  func(c *Config) { c.IPBuckets = -1 },
		"too many tenants":  func(c *Config) { c.TenantBuckets = 1<<16 + 1 },
		"scope with slash":  func(c *Config) { c.Scope = "a/b" },
		"scope too long":    func(c *Config) { c.Scope = strings.Repeat("a", 65) },
		"negative retries":  func(c *Config) { c.MaxRetries = -1 },
		"entries too large": func(c *Config) { c.BucketEntries = 5000 },
	}
	for name, f := range bad {
		t.Run(name, func(t *testing.T) {
			c := defaultConfig()
			f(&c)
			_, err := New(c, s)
			assert.Error(t, err)
		})
	}
	_, err := New(defaultConfig(), nil)
	assert.Error(t, err)

	l := newLimiter(t, defaultConfig(), s)
	c := l.Config()
	assert.Equal(t, DefaultIPBuckets, c.IPBuckets)
	assert.Equal(t, DefaultTenantBuckets, c.TenantBuckets)
	assert.Equal(t, DefaultBucketEntries, c.BucketEntries)
	assert.Equal(t, DefaultScope, c.Scope)
	assert.Equal(t, DefaultMaxRetries, c.MaxRetries)
	assert.Empty(t, s.Keys(), "New makes no store call")
}

func TestKeysBoundedAndPrefixed(t *testing.T) {
	c := defaultConfig()
	c.Scope = "prod-1"
	l := newLimiter(t, c, limitertest.NewMemStore())
	ks := l.Keys()
	require.Len(t, ks, 2+256+4096)
	seen := map[string]bool{}
	for _, k := range ks {
		assert.True(t, strings.HasPrefix(k, "stoa.sse/prod-1/"), k)
		assert.False(t, seen[k], "duplicate key %s", k)
		seen[k] = true
	}
	assert.Equal(t, "stoa.sse/prod-1/g", ks[0])
	assert.Equal(t, "stoa.sse/prod-1/t/0", ks[1])
	assert.Equal(t, "stoa.sse/prod-1/c/4095", ks[len(ks)-2])
	assert.Equal(t, "stoa.sse/prod-1/anchor", ks[len(ks)-1])
}

// admitN admits n streams and returns their leases; it fails the test on refusal.
func admitN(t *testing.T, l *Limiter, now time.Time, n int, ip func(i int) identity.Key, tenant func(i int) string) []Lease {
	t.Helper()
	ls := make([]Lease, n)
	for i := range ls {
		r, err := l.Admit(now, ip(i), tenant(i), &ls[i])
		require.NoError(t, err)
		require.Equal(t, None, r, "admission %d", i)
		require.True(t, ls[i].Admitted())
	}
	return ls
}

func sameIP(int) identity.Key    { return ipKey(1) }
func otherIP(i int) identity.Key { return ipKey(100 + i) }
func sameTenant(int) string      { return "acme" }
func otherTenant(i int) string   { return "tenant-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) }
func releaseAll(l *Limiter, now time.Time, ls []Lease) {
	for i := range ls {
		_ = l.Release(now, &ls[i])
	}
}

func TestEachLimitAndItsReason(t *testing.T) {
	small := func() Config {
		c := defaultConfig()
		c.MaxPerIP, c.MaxPerTenant, c.MaxTotal, c.RatePerMin = 3, 3, 3, 3
		return c
	}
	cases := []struct {
		name   string
		cfg    func(*Config)
		ip     func(int) identity.Key
		tenant func(int) string
		churn  bool // release each admission at once (only the rate fills)
		want   Reason
	}{
		{"global", func(c *Config) { c.MaxPerIP, c.MaxPerTenant, c.RatePerMin = 10, 10, 10 }, otherIP, otherTenant, false, GlobalLimit},
		{"ip", func(c *Config) { c.MaxTotal, c.MaxPerTenant, c.RatePerMin = 10, 10, 10 }, sameIP, otherTenant, false, IPLimit},
		{"tenant", func(c *Config) { c.MaxTotal, c.MaxPerIP, c.RatePerMin = 10, 10, 10 }, otherIP, sameTenant, false, TenantLimit},
		{"rate", func(c *Config) { c.MaxTotal, c.MaxPerIP, c.MaxPerTenant = 10, 10, 10 }, sameIP, sameTenant, true, RateLimit},
		// Several limits reached at once: the first in SPEC order wins.
		{"global before ip", func(c *Config) {}, sameIP, sameTenant, false, GlobalLimit},
		{"ip before tenant and rate", func(c *Config) { c.MaxTotal = 10 }, sameIP, sameTenant, false, IPLimit},
		{"tenant before rate", func(c *Config) { c.MaxTotal, c.MaxPerIP = 10, 10 }, sameIP, sameTenant, false, TenantLimit},
		{"ip before rate", func(c *Config) { c.MaxTotal, c.MaxPerTenant = 10, 10 }, sameIP, sameTenant, false, IPLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := small()
			tc.cfg(&c)
			s := limitertest.NewMemStore()
			l := newLimiter(t, c, s)
			ls := admitN(t, l, t0, 3, tc.ip, tc.tenant)
			if tc.churn {
				releaseAll(l, t0, ls)
			}
			var lease Lease
			r, err := l.Admit(t0.Add(time.Second), tc.ip(3), tc.tenant(3), &lease)
			require.NoError(t, err)
			assert.Equal(t, tc.want, r)
			assert.False(t, lease.Admitted())
			assert.True(t, lease.Deadline().IsZero())
			// A refusal holds nothing: the counts are those of the 3 admitted.
			cn := inspect(t, l, s, t0.Add(time.Second))
			if tc.churn {
				assert.Zero(t, cn.global)
			} else {
				assert.Equal(t, uint64(3), cn.global)
				assert.Equal(t, uint64(3), sum(cn.tenants))
				assert.Equal(t, uint64(3), sum(cn.clients))
			}
		})
	}
}

func TestLimitZeroRefusesEverything(t *testing.T) {
	for _, f := range []func(*Config){
		func(c *Config) { c.MaxTotal = 0 }, func(c *Config) { c.MaxPerIP = 0 },
		func(c *Config) { c.MaxPerTenant = 0 }, func(c *Config) { c.RatePerMin = 0 },
	} {
		c := defaultConfig()
		f(&c)
		l := newLimiter(t, c, limitertest.NewMemStore())
		var lease Lease
		r, err := l.Admit(t0, ipKey(1), "a", &lease)
		require.NoError(t, err)
		assert.NotEqual(t, None, r)
	}
}

func TestRateWindowRolling(t *testing.T) {
	c := defaultConfig()
	c.RatePerMin = 2
	s := limitertest.NewMemStore()
	l := newLimiter(t, c, s)
	try := func(at time.Duration) Reason {
		var lease Lease
		r, err := l.Admit(t0.Add(at), ipKey(7), "acme", &lease)
		require.NoError(t, err)
		require.NoError(t, l.Release(t0.Add(at), &lease)) // streams end at once: only the rate counts
		return r
	}
	assert.Equal(t, None, try(0))
	assert.Equal(t, None, try(30*time.Second))
	assert.Equal(t, RateLimit, try(59*time.Second))                 // 0 and 30 in the window
	assert.Equal(t, None, try(60*time.Second))                      // 0 left the window
	assert.Equal(t, RateLimit, try(61*time.Second))                 // 30 and 60
	assert.Equal(t, RateLimit, try(89*time.Second))                 // still 30 and 60
	assert.Equal(t, None, try(90*time.Second))                      // 30 left
	assert.Equal(t, None, try(150*time.Second))                     // 60 and 90 left: 150 alone
	assert.Equal(t, None, try(151*time.Second))                     // 150, 151
	assert.Equal(t, RateLimit, try(152*time.Second))                //
	assert.Equal(t, None, try(10*time.Minute))                      // long after: a fresh window
	assert.Equal(t, None, try(10*time.Minute+time.Second/2))        // same second: the 2nd
	assert.Equal(t, RateLimit, try(10*time.Minute+time.Second*3/4)) // the 3rd
}

func TestRateCountsOnlyAdmittedStreams(t *testing.T) {
	c := defaultConfig()
	c.RatePerMin, c.MaxPerTenant = 2, 1
	s := limitertest.NewMemStore()
	l := newLimiter(t, c, s)
	var held Lease
	r, err := l.Admit(t0, ipKey(2), "full", &held) // the tenant is now full
	require.NoError(t, err)
	require.Equal(t, None, r)
	for i := 0; i < 5; i++ { // refused by the tenant limit: must not consume ipKey(1)'s rate
		var lease Lease
		r, err := l.Admit(t0, ipKey(1), "full", &lease)
		require.NoError(t, err)
		require.Equal(t, TenantLimit, r)
	}
	ls := admitN(t, l, t0, 2, func(int) identity.Key { return ipKey(1) }, otherTenant)
	releaseAll(l, t0, ls)
	var lease Lease
	r, err = l.Admit(t0, ipKey(1), "other", &lease)
	require.NoError(t, err)
	assert.Equal(t, RateLimit, r)
}

func TestReleaseExactlyOnce(t *testing.T) {
	c := defaultConfig()
	c.MaxPerIP = 2
	s := limitertest.NewMemStore()
	l := newLimiter(t, c, s)
	a := admitN(t, l, t0, 1, sameIP, sameTenant)[0]
	require.NoError(t, l.Release(t0, &a))
	assert.False(t, a.Admitted())
	b := admitN(t, l, t0, 2, sameIP, sameTenant) // 2 live
	g0, s0 := s.Calls()
	for i := 0; i < 3; i++ { // on_log, on_done, on_delete: all call Release
		require.NoError(t, l.Release(t0, &a))
	}
	g1, s1 := s.Calls()
	assert.Equal(t, g0, g1, "a second release makes no call")
	assert.Equal(t, s0, s1, "a second release makes no call")
	cn := inspect(t, l, s, t0)
	assert.Equal(t, uint64(2), cn.global, "the second release did not free another stream's slot")
	assert.Equal(t, uint64(2), cn.clients[ipKey(1)])
	var lease Lease
	r, _ := l.Admit(t0, ipKey(1), "acme", &lease)
	assert.Equal(t, IPLimit, r)
	releaseAll(l, t0, b)
	cn = inspect(t, l, s, t0)
	assert.Zero(t, cn.global)
	assert.Zero(t, sum(cn.tenants))
	assert.Zero(t, sum(cn.clients))
	// A lease never admitted, and a nil lease, release as no-ops.
	var zero Lease
	assert.NoError(t, l.Release(t0, &zero))
	assert.NoError(t, l.Release(t0, nil))
}

func TestAdmitRefusesALeaseInUse(t *testing.T) {
	l := newLimiter(t, defaultConfig(), limitertest.NewMemStore())
	a := admitN(t, l, t0, 1, sameIP, sameTenant)[0]
	r, err := l.Admit(t0, ipKey(1), "acme", &a)
	assert.Equal(t, Busy, r)
	assert.ErrorIs(t, err, ErrLeaseInUse)
	assert.True(t, a.Admitted(), "the held lease is untouched")
	r, err = l.Admit(t0, ipKey(1), "acme", nil)
	assert.Equal(t, Busy, r)
	assert.Error(t, err)
}

func TestDeadlineAndExpiry(t *testing.T) {
	l := newLimiter(t, defaultConfig(), limitertest.NewMemStore()) // 1h: grain 60 s
	at := t0.Add(59*time.Second + 900*time.Millisecond)            // cohort t0
	a := admitN(t, l, at, 1, sameIP, sameTenant)[0]
	assert.Equal(t, t0.Add(time.Hour), a.Deadline())
	assert.Equal(t, t0.Add(time.Hour+time.Second), a.Expiry())
	life := a.Deadline().Sub(at)
	assert.LessOrEqual(t, life, time.Hour)
	assert.Greater(t, life, time.Hour-time.Minute)
	b := admitN(t, l, t0.Add(time.Minute), 1, sameIP, sameTenant)[0] // next cohort
	assert.Equal(t, t0.Add(time.Hour+time.Minute), b.Deadline())
}

func TestExpiredLeaseReleaseIsNoop(t *testing.T) {
	s := limitertest.NewMemStore()
	l := newLimiter(t, defaultConfig(), s)
	a := admitN(t, l, t0, 1, sameIP, sameTenant)[0]
	g0, s0 := s.Calls()
	require.NoError(t, l.Release(a.Expiry(), &a))
	g1, s1 := s.Calls()
	assert.Equal(t, g0+s0, g1+s1, "an expired lease costs no call")
	assert.False(t, a.Admitted())
	cn := inspect(t, l, s, a.Expiry())
	assert.Zero(t, cn.global)
}

func TestDeadVMSlotsExpire(t *testing.T) {
	c := defaultConfig()
	c.MaxTotal, c.MaxPerIP, c.MaxPerTenant, c.RatePerMin = 20, 20, 20, 1000
	s := limitertest.NewMemStore()
	dead := newLimiter(t, c, s) // a VM that admits and then dies: no release ever comes
	var held []Lease
	for i := 0; i < 20; i++ {
		at := t0.Add(time.Duration(i) * 3 * time.Minute) // spread over many cohorts
		held = append(held, admitN(t, dead, at, 1, sameIP, sameTenant)...)
	}
	alive := newLimiter(t, c, s)
	last := held[len(held)-1]
	// At the first lease's expiry exactly one slot is back.
	first := held[0]
	assert.Equal(t, t0.Add(time.Hour+time.Second), first.Expiry())
	assert.Equal(t, uint64(20), inspect(t, alive, s, first.Expiry().Add(-time.Second)).global)
	assert.Equal(t, uint64(19), inspect(t, alive, s, first.Expiry()).global)
	// Until then, and while dead leases still count, the VM's slots are held.
	var lease Lease
	r, err := alive.Admit(first.Expiry().Add(-time.Second), ipKey(9), "other", &lease)
	require.NoError(t, err)
	assert.Equal(t, GlobalLimit, r)
	var mine []Lease
	for at := first.Expiry(); at.Before(last.Expiry()); at = at.Add(3 * time.Minute) {
		var l1, l2 Lease
		r, err := alive.Admit(at, ipKey(9), "other", &l1)
		require.NoError(t, err)
		require.Equal(t, None, r, "each expired dead cohort frees its slot")
		mine = append(mine, l1)
		r, err = alive.Admit(at, ipKey(10), "other", &l2)
		require.NoError(t, err)
		require.Equal(t, GlobalLimit, r, "and only its slot")
	}
	require.Len(t, mine, 19)
	releaseAll(alive, last.Expiry().Add(-time.Second), mine)
	// Within max_duration + one tick of the last admission, every slot is back.
	end := t0.Add(57*time.Minute + time.Hour + time.Second)
	assert.Equal(t, last.Expiry(), end)
	ls := admitN(t, alive, end, 20, otherIP, sameTenant)
	assert.Len(t, ls, 20) // (the loop's admissions above expired too, all by end)
	cn := inspect(t, alive, s, end)
	assert.Equal(t, uint64(20), cn.global)
	assert.Zero(t, cn.clients[ipKey(1)], "the dead VM's client entry was pruned")
}

func TestTenantIsolation(t *testing.T) {
	c := defaultConfig()
	c.MaxPerTenant = 3
	c.TenantBuckets = 1 // worst case: every tenant in one record
	s := limitertest.NewMemStore()
	l := newLimiter(t, c, s)
	admitN(t, l, t0, 3, otherIP, sameTenant)
	var lease Lease
	r, _ := l.Admit(t0, ipKey(50), "acme", &lease)
	require.Equal(t, TenantLimit, r)
	ls := admitN(t, l, t0, 3, func(i int) identity.Key { return ipKey(60 + i) }, func(int) string { return "globex" })
	assert.Len(t, ls, 3)
	cn := inspect(t, l, s, t0)
	assert.Len(t, cn.tenants, 2)
	for _, n := range cn.tenants {
		assert.Equal(t, uint64(3), n)
	}
}

func TestClientBucketCollisionIsolation(t *testing.T) {
	c := defaultConfig()
	c.MaxPerIP = 2
	c.IPBuckets = 1 // every client in one record
	s := limitertest.NewMemStore()
	l := newLimiter(t, c, s)
	admitN(t, l, t0, 2, sameIP, sameTenant)
	var lease Lease
	r, _ := l.Admit(t0, ipKey(1), "acme", &lease)
	require.Equal(t, IPLimit, r)
	ls := admitN(t, l, t0, 2, func(int) identity.Key { return ipKey(2) }, sameTenant)
	assert.Len(t, ls, 2)
	cn := inspect(t, l, s, t0)
	assert.Equal(t, uint64(2), cn.clients[ipKey(1)])
	assert.Equal(t, uint64(2), cn.clients[ipKey(2)])
	// IPv6 /64 keys that differ only in the low bits of the prefix are distinct too.
	var k1, k2 identity.Key
	k1[0], k2[0], k2[7] = 0x20, 0x20, 1
	admitN(t, l, t0, 2, func(int) identity.Key { return k1 }, sameTenant)
	admitN(t, l, t0, 2, func(int) identity.Key { return k2 }, sameTenant)
}

func TestClientBucketFullEvictsRateOnlyEntries(t *testing.T) {
	c := defaultConfig()
	c.IPBuckets, c.BucketEntries = 1, 3
	s := limitertest.NewMemStore()
	l := newLimiter(t, c, s)
	// Three clients with live streams fill the bucket.
	var live []Lease
	for i := 0; i < 3; i++ {
		live = append(live, admitN(t, l, t0.Add(time.Duration(i)*5*time.Second), 1,
			func(int) identity.Key { return otherIP(i) }, sameTenant)...)
	}
	var lease Lease
	r, _ := l.Admit(t0, ipKey(9), "acme", &lease)
	assert.Equal(t, IPLimit, r, "every entry holds a live lease: refused (documented)")
	// Clients 0 and 1 end their streams at 10 s and 20 s: rate-only entries.
	require.NoError(t, l.Release(t0.Add(10*time.Second), &live[0]))
	require.NoError(t, l.Release(t0.Add(20*time.Second), &live[1]))
	a := admitN(t, l, t0.Add(30*time.Second), 1, func(int) identity.Key { return ipKey(9) }, sameTenant)
	cn := inspect(t, l, s, t0.Add(30*time.Second))
	assert.Equal(t, uint64(1), cn.clients[ipKey(9)])
	assert.Equal(t, 3, cn.entries[0])
	_, kept := cn.rates[otherIP(1)]
	assert.True(t, kept)
	assert.Zero(t, cn.rates[otherIP(0)], "the oldest rate-only entry was evicted")
	_ = a
}

func TestTenantBucketFullRefuses(t *testing.T) {
	c := defaultConfig()
	c.TenantBuckets, c.BucketEntries = 1, 2
	l := newLimiter(t, c, limitertest.NewMemStore())
	admitN(t, l, t0, 2, otherIP, otherTenant)
	var lease Lease
	r, _ := l.Admit(t0, ipKey(99), "third", &lease)
	assert.Equal(t, TenantLimit, r)
	r, _ = l.Admit(t0, ipKey(98), otherTenant(0), &lease) // a tenant already present is fine
	assert.Equal(t, None, r)
}

func TestCorruptRecordRecovers(t *testing.T) {
	garbage := [][]byte{
		nil, {}, {0xff}, []byte("not a record at all"), {0x11, 0, 0, 0, 0, 5},
		{0x13, 1, 2, 3, 4, 1}, {0x12, 0, 0, 0, 0, 0, 0xde}, // wrong kind, trailing byte
	}
	for i, g := range garbage {
		s := limitertest.NewMemStore()
		c := defaultConfig()
		c.TenantBuckets, c.IPBuckets = 1, 1
		l := newLimiter(t, c, s)
		for _, k := range l.Keys()[:len(l.Keys())-1] {
			s.Put(k, g)
		}
		a := admitN(t, l, t0, 1, sameIP, sameTenant)[0]
		assert.Positive(t, l.Stats().Corrupt, "case %d", i)
		cn := inspect(t, l, s, t0) // decodes every record it wrote
		assert.Equal(t, uint64(1), cn.global)
		require.NoError(t, l.Release(t0, &a))
		assert.Zero(t, inspect(t, l, s, t0).global)
	}
}

// TestCreationRace: two VMs find the global record missing; the rival
// creates it while we are about to. Our Set, conditioned on the anchor's
// CAS, must fail instead of overwriting the rival's admission.
func TestCreationRace(t *testing.T) {
	for _, key := range []string{"g", "t/", "c/"} {
		t.Run(key, func(t *testing.T) {
			s := limitertest.NewMemStore()
			c := defaultConfig()
			c.TenantBuckets, c.IPBuckets = 1, 1
			us, rival := newLimiter(t, c, s), newLimiter(t, c, s)
			fired := false
			var rl Lease
			s.BeforeSet = func(k string) {
				if !fired && strings.HasPrefix(k, "stoa.sse/default/"+key) {
					if _, _, exists := s.Value(k); !exists {
						fired = true
						r, err := rival.Admit(t0, ipKey(2), "acme", &rl)
						require.NoError(t, err)
						require.Equal(t, None, r)
					}
				}
			}
			var ul Lease
			r, err := us.Admit(t0, ipKey(1), "acme", &ul)
			s.BeforeSet = nil
			require.NoError(t, err)
			require.Equal(t, None, r)
			require.True(t, fired)
			assert.Positive(t, us.Stats().Mismatches, "our create lost the race and retried")
			cn := inspect(t, us, s, t0)
			assert.Equal(t, uint64(2), cn.global, "both admissions counted")
			assert.Equal(t, uint64(2), sum(cn.tenants))
			assert.Equal(t, uint64(1), cn.clients[ipKey(1)])
			assert.Equal(t, uint64(1), cn.clients[ipKey(2)])
			require.NoError(t, us.Release(t0, &ul))
			require.NoError(t, rival.Release(t0, &rl))
			cn = inspect(t, us, s, t0)
			assert.Zero(t, cn.global)
		})
	}
}

// TestCreationCasNeverMatchesARival: whatever the rival's creation CAS,
// it differs from the anchor's (one counter, one value per write) —
// including across the counter's wrap to 1.
func TestCreationCasNeverMatchesARival(t *testing.T) {
	for _, start := range []uint32{1, 2, 0xfffffffe, 0xffffffff, 0} {
		s := limitertest.NewMemStore()
		s.SetNextCas(start)
		c := defaultConfig()
		us, rival := newLimiter(t, c, s), newLimiter(t, c, s)
		var ul, rl Lease
		fired := false
		s.BeforeSet = func(k string) {
			if !fired && k == "stoa.sse/default/g" {
				fired = true
				_, _ = rival.Admit(t0, ipKey(2), "b", &rl)
			}
		}
		r, err := us.Admit(t0, ipKey(1), "a", &ul)
		s.BeforeSet = nil
		require.NoError(t, err)
		require.Equal(t, None, r)
		assert.Equal(t, uint64(2), inspect(t, us, s, t0).global, "start %#x", start)
	}
}

type failingStore struct {
	Store
	getErr, setErr error
	sets           int
	failAfter      int // Sets that succeed before setErr applies
}

func (f *failingStore) Get(k string, dst []byte) ([]byte, uint32, error) {
	if f.getErr != nil {
		return nil, 0, f.getErr
	}
	return f.Store.Get(k, dst)
}

func (f *failingStore) Set(k string, v []byte, cas uint32) error {
	f.sets++
	if f.setErr != nil && f.sets > f.failAfter {
		return f.setErr
	}
	return f.Store.Set(k, v, cas)
}

func TestRetriesExhaustedRefusesAsBusy(t *testing.T) {
	mem := limitertest.NewMemStore()
	c := defaultConfig()
	c.MaxRetries = 5
	// A rival writes the contended key before every one of our Sets.
	for _, key := range []string{"stoa.sse/default/g", "stoa.sse/default/t/", "stoa.sse/default/c/"} {
		t.Run(key, func(t *testing.T) {
			l := newLimiter(t, c, mem)
			mem.BeforeSet = func(k string) {
				if strings.HasPrefix(k, key) {
					if v, _, ok := mem.Value(k); ok {
						mem.Put(k, v) // same value, new CAS
					}
				}
			}
			// Warm the keys first so they exist.
			var w Lease
			hook := mem.BeforeSet
			mem.BeforeSet = nil
			r, _ := l.Admit(t0, ipKey(3), "acme", &w)
			require.Equal(t, None, r)
			require.NoError(t, l.Release(t0, &w))
			mem.BeforeSet = hook
			var lease Lease
			r, err := l.Admit(t0, ipKey(3), "acme", &lease)
			mem.BeforeSet = nil
			assert.NoError(t, err)
			assert.Equal(t, Busy, r)
			assert.False(t, lease.Admitted())
			assert.Positive(t, l.Stats().Exhausted)
			cn := inspect(t, l, mem, t0)
			assert.Zero(t, cn.global, "nothing stays reserved")
			assert.Zero(t, sum(cn.tenants))
			assert.Zero(t, sum(cn.clients))
		})
	}
}

func TestStoreErrorIsBusyWithError(t *testing.T) {
	boom := abi.Status(10)
	for _, f := range []*failingStore{{getErr: boom}, {setErr: boom}, {setErr: boom, failAfter: 2}} {
		mem := limitertest.NewMemStore()
		f.Store = mem
		l := newLimiter(t, defaultConfig(), f)
		var lease Lease
		r, err := l.Admit(t0, ipKey(1), "acme", &lease)
		assert.Equal(t, Busy, r)
		assert.True(t, errors.Is(err, boom))
		assert.False(t, lease.Admitted())
	}
}

func TestReleaseStoreErrorStillMarksReleased(t *testing.T) {
	mem := limitertest.NewMemStore()
	f := &failingStore{Store: mem}
	l := newLimiter(t, defaultConfig(), f)
	a := admitN(t, l, t0, 1, sameIP, sameTenant)[0]
	f.setErr = abi.Status(10)
	assert.Error(t, l.Release(t0, &a))
	assert.False(t, a.Admitted())
	assert.NoError(t, l.Release(t0, &a), "exactly once even after a failure")
	assert.Positive(t, l.Stats().LeakedRelease)
	// The leaked slot comes back at the lease's expiry.
	assert.Zero(t, inspect(t, l, mem, a.Expiry()).global)
}

func TestForeignLease(t *testing.T) {
	s := limitertest.NewMemStore()
	a := newLimiter(t, defaultConfig(), s)
	c := defaultConfig()
	c.IPBuckets = 16
	b := newLimiter(t, c, s)
	lease := admitN(t, a, t0, 1, sameIP, sameTenant)[0]
	assert.ErrorIs(t, b.Release(t0, &lease), ErrForeignLease)
	assert.False(t, lease.Admitted())
}

func TestClockOutOfRange(t *testing.T) {
	l := newLimiter(t, defaultConfig(), limitertest.NewMemStore())
	var lease Lease
	for _, at := range []time.Time{{}, time.Unix(0, 0), time.Unix(1<<32-10, 0)} {
		r, err := l.Admit(at, ipKey(1), "a", &lease)
		assert.Equal(t, Busy, r)
		assert.ErrorIs(t, err, ErrClock)
	}
}

func TestCallsPerAdmissionAndRelease(t *testing.T) {
	s := limitertest.NewMemStore()
	l := newLimiter(t, defaultConfig(), s)
	calls := func(f func()) (uint64, uint64) {
		g0, s0 := s.Calls()
		f()
		g1, s1 := s.Calls()
		return g1 - g0, s1 - s0
	}
	var a Lease
	g, st := calls(func() { _, _ = l.Admit(t0, ipKey(1), "acme", &a) })
	t.Logf("first admission ever (creates 3 keys): %d gets + %d sets", g, st)
	assert.LessOrEqual(t, g+st, uint64(9))
	g, st = calls(func() { _ = l.Release(t0, &a) })
	t.Logf("warm release: %d gets + %d sets", g, st)
	assert.Equal(t, [2]uint64{0, 3}, [2]uint64{g, st})
	g, st = calls(func() { _, _ = l.Admit(t0, ipKey(1), "acme", &a) })
	t.Logf("warm admission: %d gets + %d sets", g, st)
	assert.Equal(t, [2]uint64{0, 3}, [2]uint64{g, st})

	// A new VM (empty cache), keys existing: cold.
	l2 := newLimiter(t, defaultConfig(), s)
	var b Lease
	g, st = calls(func() { _, _ = l2.Admit(t0, ipKey(1), "acme", &b) })
	t.Logf("cold admission: %d gets + %d sets", g, st)
	assert.Equal(t, [2]uint64{3, 3}, [2]uint64{g, st})
	g, st = calls(func() { _ = l2.Release(t0, &b) })
	t.Logf("release after cold admission: %d gets + %d sets", g, st)
	assert.Equal(t, [2]uint64{0, 3}, [2]uint64{g, st})

	// l's cache is now stale (l2 wrote): its predictions miss, then recover.
	g, st = calls(func() { _ = l.Release(t0, &a) })
	t.Logf("release with a stale cache: %d gets + %d sets", g, st)
	assert.LessOrEqual(t, g+st, uint64(9))
	assert.Zero(t, inspect(t, l, s, t0).global)
}

func TestCasWrapAround(t *testing.T) {
	s := limitertest.NewMemStore()
	s.SetNextCas(0xffffffff - 20)
	c := defaultConfig()
	c.MaxPerIP = 3
	vms := []*Limiter{newLimiter(t, c, s), newLimiter(t, c, s)}
	var ls []Lease
	for i := 0; i < 60; i++ {
		var lease Lease
		r, err := vms[i%2].Admit(t0, ipKey(i%5), "acme", &lease)
		require.NoError(t, err)
		if r == None {
			ls = append(ls, lease)
		}
		inspect(t, vms[0], s, t0)
	}
	assert.Len(t, ls, 15, "5 clients x MaxPerIP 3, across the wrap")
	for i := range ls {
		require.NoError(t, vms[i%2].Release(t0, &ls[i]))
	}
	assert.Zero(t, inspect(t, vms[0], s, t0).global)
}

// TestAdmitUnratedHoldsSlotsButNoRate: unrated admissions (Streamable HTTP
// message POSTs) are refused by the concurrency limits like any stream, but
// neither consume nor meet the client's new-stream rate.
func TestAdmitUnratedHoldsSlotsButNoRate(t *testing.T) {
	c := defaultConfig() // 10 per client, 5 new streams a minute
	s := limitertest.NewMemStore()
	l := newLimiter(t, c, s)
	ip := ipKey(1)
	// 50 sequential unrated streams in one second: never rate-limited.
	for i := range 50 {
		var lease Lease
		r, err := l.AdmitUnrated(t0, ip, "acme", &lease)
		require.NoError(t, err)
		require.Equal(t, None, r, "unrated admission %d", i)
		require.NoError(t, l.Release(t0, &lease))
	}
	require.Zero(t, inspect(t, l, s, t0).rates[ip], "unrated admissions record no rate")
	// The rate is still whole for real streams: 5 admitted, the 6th refused.
	var streams [6]Lease
	for i := range 5 {
		r, err := l.Admit(t0, ip, "acme", &streams[i])
		require.NoError(t, err)
		require.Equal(t, None, r)
	}
	r, _ := l.Admit(t0, ip, "acme", &streams[5])
	require.Equal(t, RateLimit, r)
	// Concurrency still binds unrated streams: 5 held + 5 unrated = 10, the 11th refused.
	var posts [6]Lease
	for i := range 5 {
		r, err := l.AdmitUnrated(t0, ip, "acme", &posts[i])
		require.NoError(t, err)
		require.Equal(t, None, r)
	}
	r, _ = l.AdmitUnrated(t0, ip, "acme", &posts[5])
	require.Equal(t, IPLimit, r)
	releaseAll(l, t0, streams[:5])
	releaseAll(l, t0, posts[:5])
	require.Zero(t, inspect(t, l, s, t0).global)
}

// TestTenantLeasesCountsEveryVM: the tenant's live leases as the store holds
// them, whichever VM admitted them, until they expire.
func TestTenantLeasesCountsEveryVM(t *testing.T) {
	c := defaultConfig()
	c.MaxDuration = time.Minute
	s := limitertest.NewMemStore()
	a, b := newLimiter(t, c, s), newLimiter(t, c, s)
	var leases [5]Lease
	for i := range leases {
		l := a
		if i%2 == 1 {
			l = b
		}
		r, err := l.Admit(t0, ipKey(i), "acme", &leases[i])
		require.NoError(t, err)
		require.Equal(t, None, r)
	}
	var other Lease
	_, err := a.Admit(t0, ipKey(9), "globex", &other)
	require.NoError(t, err)
	n, err := b.TenantLeases(t0, "acme")
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	require.NoError(t, a.Release(t0, &leases[0]))
	n, _ = b.TenantLeases(t0, "acme")
	require.EqualValues(t, 4, n)
	n, _ = b.TenantLeases(t0, "nobody")
	require.Zero(t, n)
	// Leases never released (a dead VM) stop counting when they expire.
	n, _ = b.TenantLeases(t0.Add(2*time.Minute+2*time.Second), "acme")
	require.Zero(t, n)
	require.Zero(t, testing.AllocsPerRun(50, func() { _, _ = b.TenantLeases(t0, "acme") }))
}
