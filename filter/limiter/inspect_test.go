package limiter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/filter/limiter/limitertest"
)

func TestInspectCountsLiveLeases(t *testing.T) {
	s := limitertest.NewMemStore()
	l := newLimiter(t, defaultConfig(), s)
	var leases [3]Lease
	for i := range leases {
		r, err := l.Admit(t0, ipKey(i%2), "acme", &leases[i])
		require.NoError(t, err)
		require.Equal(t, None, r)
	}
	read := func(key string, now time.Time) RecordStats {
		v, _, ok := s.Value(key)
		require.True(t, ok, key)
		st, ok := Inspect(v, now)
		require.True(t, ok, key)
		return st
	}
	g := l.Keys()[0]
	assert.Equal(t, RecordStats{Leases: 3, Entries: 1}, read(g, t0))
	var clients uint64
	for _, k := range l.Keys()[1+l.cfg.TenantBuckets : len(l.Keys())-1] {
		if v, _, ok := s.Value(k); ok {
			st, ok := Inspect(v, t0)
			require.True(t, ok)
			clients += st.Leases
		}
	}
	assert.EqualValues(t, 3, clients)

	require.NoError(t, l.Release(t0.Add(time.Second), &leases[0]))
	assert.EqualValues(t, 2, read(g, t0.Add(time.Second)).Leases)
	// Never released: the leases stop counting at their expiry.
	assert.Zero(t, read(g, leases[1].Expiry()).Leases)
	assert.EqualValues(t, 2, read(g, leases[1].Expiry().Add(-time.Second)).Leases)
}

func TestInspectRefusesWhatIsNotARecord(t *testing.T) {
	for _, v := range [][]byte{nil, {}, {0x00}, {formatVersion<<4 | 7, 0, 0, 0, 0, 0}, {formatVersion << 4, 0, 0, 0, 0, 0},
		{header(kindGlobal), 1, 2}, []byte("anchor"), {header(kindClient), 0, 0, 0, 0, 1}} {
		_, ok := Inspect(v, t0)
		assert.False(t, ok, "%x", v)
	}
	_, ok := Inspect([]byte{header(kindGlobal), 0, 0, 0, 0, 0}, t0)
	assert.True(t, ok, "an empty global record")
}
