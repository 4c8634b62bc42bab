package moduletest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/filter/limiter"
	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// keyPrefix is the limiter's shared-data namespace with the default scope.
const keyPrefix = "stoa.sse/default/"

// storeCounts is what the limiter's records in shared data count at the
// host's current time, read from outside the VMs.
type storeCounts struct {
	keys      int    // limiter keys present
	bytes     int    // their keys and values
	global    uint64 // live leases in the global record
	tenants   uint64 // live leases over every tenant bucket
	clients   uint64 // live leases over every client bucket
	entries   int    // live client entries over every client bucket
	maxBucket int    // most live entries in one client bucket
}

func readStore(t testing.TB, h *wasmhost.Host) storeCounts {
	t.Helper()
	now := h.Clock().Now()
	var c storeCounts
	sd := h.Shared()
	vmID := h.Config().VMID
	assert.Equal(t, sd.Len(vmID), len(sd.Keys(vmID)))
	for _, k := range sd.Keys(vmID) {
		if !strings.HasPrefix(k, keyPrefix) {
			t.Errorf("shared-data key outside the limiter's namespace: %q", k)
			continue
		}
		v, _, err := sd.Get(vmID, k, nil)
		require.NoError(t, err)
		c.keys++
		c.bytes += len(k) + len(v)
		name := strings.TrimPrefix(k, keyPrefix)
		if name == "anchor" {
			continue
		}
		st, ok := limiter.Inspect(v, now)
		require.True(t, ok, "record %s does not decode", k)
		switch {
		case name == "g":
			c.global = st.Leases
		case strings.HasPrefix(name, "t/"):
			c.tenants += st.Leases
		case strings.HasPrefix(name, "c/"):
			c.clients += st.Leases
			c.entries += st.Entries
			c.maxBucket = max(c.maxBucket, st.Entries)
		default:
			t.Errorf("unknown limiter key %q", k)
		}
	}
	return c
}

// requireZero checks that no record counts a live lease.
func requireZero(t testing.TB, h *wasmhost.Host) storeCounts {
	t.Helper()
	c := readStore(t, h)
	require.Zero(t, c.global, "global leases")
	require.Zero(t, c.tenants, "tenant leases")
	require.Zero(t, c.clients, "client leases")
	return c
}

// gauges returns the sum of every stoa_sse_connections_total gauge.
func gauges(h *wasmhost.Host) int64 {
	var sum int64
	for _, mv := range h.Metrics().Snapshot() {
		if strings.HasSuffix(mv.Name, ";.;stoa_sse_connections_total") {
			sum += int64(mv.Value)
		}
	}
	return sum
}
