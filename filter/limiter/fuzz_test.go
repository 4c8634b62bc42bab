package limiter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/filter/limiter/limitertest"
)

// FuzzRecordDecode: no stored bytes make the decoder (or an admission over
// them) panic; whatever decodes re-encodes to an equal record; an admission
// over garbage leaves valid records holding exactly its lease.
func FuzzRecordDecode(f *testing.F) {
	// Seeds: real records of each kind, and classic breakages.
	s := limitertest.NewMemStore()
	c := defaultConfig()
	c.TenantBuckets, c.IPBuckets = 1, 1
	l, _ := New(c, s)
	for i := 0; i < 4; i++ {
		var lease Lease
		_, _ = l.Admit(t0.Add(time.Duration(i)*time.Minute), ipKey(i%2), tenantName(i), &lease)
	}
	for _, k := range s.Keys() {
		v, _, _ := s.Value(k)
		f.Add(v)
		if len(v) > 6 {
			f.Add(v[:len(v)-1])
			f.Add(append(append([]byte(nil), v...), 0))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x11, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0x13, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r, r2 record
		for kind := kindGlobal; kind <= kindClient; kind++ {
			if decode(b, kind, &r) != nil {
				continue
			}
			enc := encode(&r, r.stamp, nil)
			require.NoError(t, decode(enc, kind, &r2))
			require.Equal(t, r.ents, r2.ents)
			require.Equal(t, r.cohorts, r2.cohorts)
			require.Equal(t, r.rates, r2.rates)
		}
		s := limitertest.NewMemStore()
		l, err := New(c, s)
		require.NoError(t, err)
		for _, k := range l.Keys()[:len(l.Keys())-1] {
			s.Put(k, b)
		}
		now := t0.Add(2 * time.Hour)
		var lease Lease
		r0, err := l.Admit(now, ipKey(9), "fuzz", &lease)
		require.NoError(t, err)
		if r0 == None { // all three records were written: valid now, holding our lease
			cn := inspectOpt(t, l, s, now, false)
			require.GreaterOrEqual(t, cn.global, uint64(1))
			require.GreaterOrEqual(t, cn.clients[ipKey(9)], uint64(1))
			require.NoError(t, l.Release(now, &lease))
		}
	})
}
