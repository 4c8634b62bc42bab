package limiter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/filter/limiter/limitertest"
)

func TestAdmitReleaseZeroAllocs(t *testing.T) {
	s := limitertest.NewMemStore()
	c := defaultConfig()
	c.RatePerMin = 1000
	a, b := newLimiter(t, c, s), newLimiter(t, c, s)
	var lease Lease
	i := 0
	run := func(l *Limiter) {
		now := t0.Add(time.Duration(i) * time.Second)
		i++
		r, err := l.Admit(now, ipKey(i%3), "acme", &lease)
		if r != None || err != nil {
			t.Fatalf("refused: %v %v", r, err)
		}
		if err := l.Release(now, &lease); err != nil {
			t.Fatal(err)
		}
	}
	for j := 0; j < 50; j++ { // warm up: keys created, buffers grown
		run(a)
		run(b)
	}
	assert.Zero(t, testing.AllocsPerRun(500, func() { run(a) }), "warm, one VM")
	assert.Zero(t, testing.AllocsPerRun(500, func() { run(a); run(b) }), "two VMs alternating (CAS misses, Gets)")
	// Refusals allocate nothing either.
	c.MaxPerIP = 1
	l := newLimiter(t, c, s)
	var held, other Lease
	r, err := l.Admit(t0, ipKey(50), "acme", &held)
	require.NoError(t, err)
	require.Equal(t, None, r)
	assert.Zero(t, testing.AllocsPerRun(500, func() {
		if r, _ := l.Admit(t0, ipKey(50), "acme", &other); r != IPLimit {
			t.Fatal(r)
		}
	}), "refusal")
}

func BenchmarkAdmitRelease(b *testing.B) {
	bench := func(b *testing.B, vms int) {
		s := limitertest.NewMemStore()
		c := defaultConfig()
		c.RatePerMin = 1000
		ls := make([]*Limiter, vms)
		for i := range ls {
			ls[i] = newLimiter(b, c, s)
		}
		var lease Lease
		b.ReportAllocs()
		b.ResetTimer()
		s.ResetCalls()
		for i := 0; i < b.N; i++ {
			l := ls[i%vms]
			now := t0.Add(time.Duration(i) * 100 * time.Millisecond)
			if r, err := l.Admit(now, ipKey(i%7), "acme", &lease); r != None || err != nil {
				b.Fatal(r, err)
			}
			if err := l.Release(now, &lease); err != nil {
				b.Fatal(err)
			}
		}
		g, st := s.Calls()
		b.ReportMetric(float64(g+st)/float64(b.N), "calls/op")
		b.ReportMetric(float64(g)/float64(b.N), "gets/op")
	}
	b.Run("1VM", func(b *testing.B) { bench(b, 1) })
	b.Run("4VMs-roundrobin", func(b *testing.B) { bench(b, 4) })
}
