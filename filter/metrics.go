package filter

import (
	"time"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/filter/audience"
	"github.com/stoa-platform/stoa-guard/filter/cors"
	"github.com/stoa-platform/stoa-guard/filter/limiter"
)

// Metric names as SPEC.md gives them. Labels travel in the stat name in
// Istio's convention ("reason=.=ip_limit;.;stoa_sse_rejected_total") and are
// turned back into Prometheus labels by the stats tag regexes shipped in
// envoy.yaml (stats_tags) and istio/ (extraStatTags).
const (
	MetricSSEConnections = "stoa_sse_connections_total"
	MetricSSERejected    = "stoa_sse_rejected_total"
	MetricSSEClosed      = "stoa_sse_closed_total"
	MetricJWTFailures    = "stoa_jwt_validation_failures_total"
	MetricCORSRejected   = "stoa_cors_rejected_total"

	// OtherTenant is the label of every tenant past the label cap.
	OtherTenant = "_other"
	// maxTenantLabelLen bounds one tenant label.
	maxTenantLabelLen = 64
)

// Label values, in the order of the decision packages' Reason constants.
var (
	sseRejectReasons = [...]limiter.Reason{limiter.GlobalLimit, limiter.IPLimit, limiter.TenantLimit, limiter.RateLimit}
	jwtReasons       = [...]audience.Reason{audience.MissingToken, audience.Malformed, audience.MissingAudience, audience.InvalidAudience}
	corsReasons      = [...]cors.Reason{cors.ReasonOrigin, cors.ReasonMethod, cors.ReasonHeaders}
)

// Close reasons for stoa_sse_closed_total.
const (
	closeIdle = iota
	closeMaxDuration
)

var closeReasons = [...]string{closeIdle: "idle_timeout", closeMaxDuration: "max_duration"}

// StatName returns the stat name carrying one label in Istio's convention.
func StatName(metric, label, value string) string {
	return label + "=.=" + value + ";.;" + metric
}

// metrics holds the ids of every metric the filter defines. The fixed-label
// counters are defined once at configuration; tenant gauges are defined on
// first use, up to maxTenants, then everything goes to OtherTenant.
type metrics struct {
	host Host

	sseRejected map[limiter.Reason]uint32
	jwt         map[audience.Reason]uint32
	cors        map[cors.Reason]uint32
	closed      [len(closeReasons)]uint32

	maxTenants int
	label      []byte // scratch for sanitising
	// gauges are the labelled tenant gauges with the tenant each counts (for
	// the tick's resync from shared data); labels indexes them by label.
	gauges     []tenantGauge
	labels     map[string]int
	resyncNext int    // the next gauge to resync (round robin)
	otherID    uint32 // OtherTenant's gauge, once defined
	hasOther   bool
}

// tenantGauge is one labelled tenant gauge. shared: two tenants sanitise to
// its label, so no single tenant's count is its value and it is not resynced.
type tenantGauge struct {
	id     uint32
	tenant string
	shared bool
}

func newMetrics(h Host, maxTenants int) (*metrics, error) {
	m := &metrics{
		host:        h,
		sseRejected: make(map[limiter.Reason]uint32, len(sseRejectReasons)),
		jwt:         make(map[audience.Reason]uint32, len(jwtReasons)),
		cors:        make(map[cors.Reason]uint32, len(corsReasons)),
		maxTenants:  maxTenants,
		labels:      make(map[string]int),
		label:       make([]byte, 0, maxTenantLabelLen),
	}
	var err error
	define := func(metric, reason string) uint32 {
		if err != nil {
			return 0
		}
		var id uint32
		id, err = h.DefineMetric(abi.MetricCounter, StatName(metric, "reason", reason))
		return id
	}
	for _, r := range sseRejectReasons {
		m.sseRejected[r] = define(MetricSSERejected, r.String())
	}
	for _, r := range jwtReasons {
		m.jwt[r] = define(MetricJWTFailures, r.String())
	}
	for _, r := range corsReasons {
		m.cors[r] = define(MetricCORSRejected, r.String())
	}
	for i, r := range closeReasons {
		m.closed[i] = define(MetricSSEClosed, r)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) inc(id uint32, ok bool) {
	if ok {
		_ = m.host.IncrementMetric(id, 1)
	}
}

func (m *metrics) sseRejectedInc(r limiter.Reason) { id, ok := m.sseRejected[r]; m.inc(id, ok) }
func (m *metrics) jwtInc(r audience.Reason)        { id, ok := m.jwt[r]; m.inc(id, ok) }
func (m *metrics) corsInc(r cors.Reason)           { id, ok := m.cors[r]; m.inc(id, ok) }
func (m *metrics) closedInc(reason int)            { m.inc(m.closed[reason], true) }

// tenantGauge returns the gauge id for tenant, defining it on first use. The
// label is the tenant lower-cased with every byte outside [a-z0-9_-] turned
// into '_', cut to 64 bytes; past maxTenants distinct labels the tenant is
// counted under OtherTenant (other is then true); ok is false when the host
// refuses the metric. Only a new label allocates: a tenant counted under
// OtherTenant does not.
func (m *metrics) tenantGauge(tenant string) (id uint32, other, ok bool) {
	m.label = sanitizeLabel(m.label[:0], tenant)
	if i, ok := m.labels[string(m.label)]; ok { // no allocation: map lookup by converted []byte
		g := &m.gauges[i]
		if g.tenant != tenant {
			g.shared = true
		}
		return g.id, false, true
	}
	if len(m.labels) >= m.maxTenants || string(m.label) == OtherTenant {
		// Past the cap: no new string (this path runs for every admission
		// of every tenant beyond the first maxTenants).
		if !m.hasOther {
			oid, err := m.host.DefineMetric(abi.MetricGauge, StatName(MetricSSEConnections, "tenant", OtherTenant))
			if err != nil {
				return 0, false, false
			}
			m.otherID, m.hasOther = oid, true
		}
		return m.otherID, true, true
	}
	name := string(m.label)
	id, err := m.host.DefineMetric(abi.MetricGauge, StatName(MetricSSEConnections, "tenant", name))
	if err != nil {
		return 0, false, false
	}
	m.labels[name] = len(m.gauges)
	m.gauges = append(m.gauges, tenantGauge{id: id, tenant: string([]byte(tenant))}) // tenant may alias host memory
	return id, false, true
}

// resyncTenantGauges sets each labelled tenant gauge to the tenant's live
// leases in shared data, so a gauge left high by a VM
// that died with streams open heals within max_duration + one tick, like
// the slots. Every VM sets the same value; an increment racing with it is
// corrected at the next tick. OtherTenant and shared labels keep counting
// by increments only. At most resyncPerTick gauges are set per tick, in
// turn, which bounds the tick's host calls and the memory the values read
// from shared data take in the VM (with the default 100 labels every gauge
// is set within 7 ticks).
func (m *metrics) resyncTenantGauges(l *limiter.Limiter, now time.Time) {
	for k := 0; k < resyncPerTick && k < len(m.gauges); k++ {
		if m.resyncNext >= len(m.gauges) {
			m.resyncNext = 0
		}
		g := &m.gauges[m.resyncNext]
		m.resyncNext++
		if g.shared {
			continue
		}
		if n, err := l.TenantLeases(now, g.tenant); err == nil {
			_ = m.host.RecordMetric(g.id, n)
		}
	}
}

func sanitizeLabel(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, '_')
	}
	for i := 0; i < len(s) && len(dst) < maxTenantLabelLen; i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// resyncPerTick is how many tenant gauges one tick sets from shared data.
const resyncPerTick = 16
