package filter

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/abi"
)

// metricsHost defines metrics with increasing ids; nothing else is called.
type metricsHost struct {
	Host
	names []string
}

func (h *metricsHost) DefineMetric(_ abi.MetricKind, name string) (uint32, error) {
	h.names = append(h.names, name)
	return uint32(len(h.names)), nil
}

// TestTenantBeyondLabelCapAllocatesNothing pins a leak found on the wazero
// host: every SSE admission of a tenant past metrics.max_tenant_labels
// built the tenant's label as a new string before falling back to "_other",
// so a gateway with more tenants than labels made garbage on every
// admission and its VM's linear memory grew (moduletest,
// TestSharedDataBoundedByConfiguration: 4.5 → 6 MiB over 250,000 admissions
// from 1,000 tenants).
func TestTenantBeyondLabelCapAllocatesNothing(t *testing.T) {
	h := &metricsHost{}
	m, err := newMetrics(h, 2)
	require.NoError(t, err)
	first, _, ok := m.tenantGauge("a")
	require.True(t, ok)
	_, _, ok = m.tenantGauge("b")
	require.True(t, ok)
	other, isOther, ok := m.tenantGauge("c")
	require.True(t, ok)
	assert.True(t, isOther, "c is past the cap")
	assert.Equal(t, StatName(MetricSSEConnections, "tenant", OtherTenant), h.names[len(h.names)-1])
	defined := len(h.names)

	assert.Zero(t, testing.AllocsPerRun(200, func() {
		if id, _, _ := m.tenantGauge("a"); id != first {
			t.Fatal("label a moved")
		}
	}), "a labelled tenant")
	assert.Zero(t, testing.AllocsPerRun(200, func() {
		if id, _, _ := m.tenantGauge("tenant-beyond-the-cap"); id != other {
			t.Fatal("not counted under _other")
		}
	}), "a tenant past the cap")
	assert.Len(t, h.names, defined, "no metric defined past the cap")
}
