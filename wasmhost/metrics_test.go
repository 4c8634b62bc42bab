package wasmhost_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stoa-platform/stoa-guard/localproxy"
	"github.com/stoa-platform/stoa-guard/wasmhost"
)

type metricImports struct {
	define, increment, record, get uint32
	str                            *strs
}

func newMetricGuest() (*mod, *metricImports) {
	m := newMod()
	mi := &metricImports{
		define:    m.Import("env", "proxy_define_metric", p(4), p(1)),
		increment: m.Import("env", "proxy_increment_metric", vt(i32, i64), p(1)),
		record:    m.Import("env", "proxy_record_metric", vt(i32, i64), p(1)),
		get:       m.Import("env", "proxy_get_metric", p(2), p(1)),
	}
	m.proxyBasics()
	mi.str = m.strings()
	return m, mi
}

// defineAt defines a metric and stores its id at idAddr; returns the status.
func (mi *metricImports) defineAt(typ wasmhost.MetricType, name string, idAddr uint32) []byte {
	a, n := mi.str.put(name)
	return ops(i32c(int32(typ)), i32c(a), i32c(n), i32c(int32(idAddr)), call(mi.define))
}

func (mi *metricImports) inc(idAddr uint32, v int64) []byte {
	return ops(load(idAddr), i64c(v), call(mi.increment))
}

func (mi *metricImports) rec(idAddr uint32, v int64) []byte {
	return ops(load(idAddr), i64c(v), call(mi.record))
}

// Ids, statuses and values as Envoy's Context::defineMetric,
// incrementMetric, recordMetric and getMetric give them.
func TestMetricsHostCalls(t *testing.T) {
	const ids = 0x200 // counter, gauge, histogram, counter again
	m, mi := newMetricGuest()
	r := func(i uint32) uint32 { return results + 4*i }
	m.Func("proxy_on_request_headers", p(3), p(1), nil,
		store(r(0), mi.defineAt(wasmhost.MetricCounter, "c", ids)),
		store(r(1), mi.defineAt(wasmhost.MetricGauge, "g", ids+4)),
		store(r(2), mi.defineAt(wasmhost.MetricHistogram, "h", ids+8)),
		store(r(3), mi.defineAt(wasmhost.MetricCounter, "c", ids+12)),
		store(r(4), mi.defineAt(3, "x", ids+16)),
		store(r(5), mi.inc(ids, 5)),
		store(r(6), mi.inc(ids, -1)), // counters only go up
		store(r(7), mi.inc(ids, 0)),
		store(r(8), mi.inc(ids+12, 1)), // the second id is the same stat
		store(r(9), mi.inc(ids+4, 3)),
		store(r(10), mi.inc(ids+4, -5)), // gauges go down, below zero too
		store(r(11), mi.inc(ids+8, 1)),  // histograms are recorded, not incremented
		store(r(12), mi.rec(ids, 4)),    // record on a counter adds
		store(r(13), mi.rec(ids+8, 7)),
		store(r(14), i32c(4*100), i64c(1), call(mi.record)), // unknown counter id
		store(r(15), load(ids), i32c(0x300), call(mi.get)),
		store(r(16), load(ids+8), i32c(0x308), call(mi.get)),
		store(r(17), load(ids+4), i32c(0x310), call(mi.get)),
		store(r(18), i32c(4*100), i64c(1), call(mi.increment)),
		store(r(19), i32c(4*100+3), i64c(1), call(mi.increment)), // type bits 3
		store(r(20), mi.rec(ids+4, 9)),                           // record on a gauge sets
		i32c(0))
	m.peekBody()
	h := newHost(t, m.Bytes(), wasmhost.Config{})
	s, err := newVM(t, h).NewStream(nil)
	must(t, err)
	_, err = s.RequestHeaders(nil, false)
	must(t, err)

	const (
		ok       = uint32(wasmhost.StatusOK)
		notFound = uint32(wasmhost.StatusNotFound)
		badArg   = uint32(wasmhost.StatusBadArgument)
	)
	want := []uint32{ok, ok, ok, ok, badArg, ok, badArg, badArg, ok, ok, ok, badArg, ok, ok, notFound,
		ok, badArg, ok, notFound, badArg, ok}
	for i, w := range want {
		if got := peek(t, s, r(uint32(i))); got != w {
			t.Errorf("step %d: status %d, want %d", i, got, w)
		}
	}
	// Low two bits are the type, ids advance by 4 per type.
	for i, w := range []uint32{4, 5, 6, 8} {
		if got := peek(t, s, ids+4*uint32(i)); got != w {
			t.Errorf("id %d = %d, want %d", i, got, w)
		}
	}
	// get_metric saw counter 5+1+4 = 10 and gauge 3-5 = -2 (as uint64).
	if lo, hi := peek(t, s, 0x300), peek(t, s, 0x304); lo != 10 || hi != 0 {
		t.Errorf("get_metric(counter) = %d,%d", lo, hi)
	}
	if lo, hi := peek(t, s, 0x310), peek(t, s, 0x314); lo != 0xfffffffe || hi != 0xffffffff {
		t.Errorf("get_metric(gauge) = %#x,%#x; want -2", lo, hi)
	}

	mt := h.Metrics()
	if v, ok := mt.Value("c"); !ok || v != 10 {
		t.Errorf("Value(c) = %d, %v", v, ok)
	}
	if v, ok := mt.Value("wasmcustom.g"); !ok || v != 9 {
		t.Errorf("Value(wasmcustom.g) = %d, %v (record sets a gauge)", v, ok)
	}
	if _, ok := mt.Value("x"); ok {
		t.Error("a metric of type 3 was created")
	}
	snap := mt.Snapshot()
	names := make([]string, len(snap))
	for i, v := range snap {
		names[i] = v.Name
	}
	if !slices.Equal(names, []string{"wasmcustom.c", "wasmcustom.g", "wasmcustom.h"}) {
		t.Fatalf("Snapshot names %q", names)
	}
	if hist := snap[2]; hist.Type != wasmhost.MetricHistogram || hist.Value != 1 || hist.Sum != 7 {
		t.Errorf("histogram %+v, want 1 sample summing 7", hist)
	}
}

// Every VM has its own ids; the stats are process-wide, shared by name.
func TestMetricsSharedAcrossVMs(t *testing.T) {
	m, mi := newMetricGuest()
	m.Func("proxy_on_vm_start", p(2), p(1), nil,
		mi.defineAt(wasmhost.MetricCounter, "requests", 0x200), drop,
		mi.defineAt(wasmhost.MetricGauge, "active", 0x204), drop, i32c(1))
	m.Func("proxy_on_request_headers", p(3), p(1), nil,
		mi.inc(0x200, 1), drop, mi.inc(0x204, 1), drop, load(0x200))
	m.Func("proxy_on_done", p(1), p(1), nil, mi.inc(0x204, -1), drop, i32c(1))
	h := newHost(t, m.Bytes(), wasmhost.Config{})
	const vms, each = 4, 50
	var wg sync.WaitGroup
	for range vms {
		vm := newVM(t, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				s, err := vm.NewStream(nil)
				if err != nil {
					t.Error(err)
					return
				}
				if id, err := s.RequestHeaders(nil, true); err != nil || id != 4 {
					t.Errorf("counter id %d, %v", id, err)
				}
				if err := s.End(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if v, _ := h.Metrics().Value("requests"); v != vms*each {
		t.Fatalf("requests = %d, want %d", v, vms*each)
	}
	if v := h.Metrics().Int("active"); v != 0 {
		t.Fatalf("active = %d, want 0", v)
	}
}

func projectTagRules() []wasmhost.TagRule {
	var out []wasmhost.TagRule
	for _, r := range localproxy.StatsTags {
		out = append(out, wasmhost.TagRule{Name: r.Name, Regex: r.Regex})
	}
	return out
}

// The project's envoy.yaml stats_tags (localproxy.StatsTags) turn the
// filter's tag-in-name convention into labels, and Prometheus output strips
// the wasmcustom namespace as Envoy's /stats/prometheus does.
func TestMetricsTagsAndPrometheusWithProjectRules(t *testing.T) {
	mt, err := wasmhost.NewMetrics(projectTagRules())
	must(t, err)
	for _, c := range []struct {
		name, base string
		tags       []wasmhost.Tag
	}{
		{"wasmcustom.reason=.=ip_limit;.;stoa_sse_rejected_total", "wasmcustom.stoa_sse_rejected_total",
			[]wasmhost.Tag{{Name: "reason", Value: "ip_limit"}}},
		{"wasmcustom.tenant=.=acme-1;.;stoa_requests_total", "wasmcustom.stoa_requests_total",
			[]wasmhost.Tag{{Name: "tenant", Value: "acme-1"}}},
		{"wasmcustom.stoa_plain_total", "wasmcustom.stoa_plain_total", nil},
		// Values outside the rules' character classes are not extracted.
		{"wasmcustom.reason=.=Bad Value;.;stoa_x", "wasmcustom.reason=.=Bad Value;.;stoa_x", nil},
		// The rules are anchored: a tag elsewhere is part of the name.
		{"other.reason=.=ip_limit;.;stoa_x", "other.reason=.=ip_limit;.;stoa_x", nil},
	} {
		base, tags := mt.ExtractTags(c.name)
		if base != c.base || !slices.Equal(tags, c.tags) {
			t.Errorf("ExtractTags(%q) = %q %v, want %q %v", c.name, base, tags, c.base, c.tags)
		}
	}

	m, mi := newMetricGuest()
	m.Func("proxy_on_vm_start", p(2), p(1), nil,
		mi.defineAt(wasmhost.MetricCounter, "reason=.=ip_limit;.;stoa_sse_rejected_total", 0x200), drop,
		mi.defineAt(wasmhost.MetricCounter, "reason=.=tenant_limit;.;stoa_sse_rejected_total", 0x204), drop,
		mi.defineAt(wasmhost.MetricGauge, "tenant=.=acme;.;stoa_sse_active", 0x208), drop,
		mi.defineAt(wasmhost.MetricCounter, "stoa.requests-total", 0x20c), drop,
		mi.defineAt(wasmhost.MetricHistogram, "stoa_latency", 0x210), drop,
		mi.inc(0x200, 3), drop, mi.inc(0x204, 1), drop, mi.inc(0x208, 2), drop, mi.inc(0x20c, 7), drop,
		mi.rec(0x210, 5), drop,
		i32c(1))
	h := newHost(t, m.Bytes(), wasmhost.Config{StatsTags: projectTagRules()})
	newVM(t, h)
	want := `# TYPE stoa_requests_total counter
stoa_requests_total 7
# TYPE stoa_sse_active gauge
stoa_sse_active{tenant="acme"} 2
# TYPE stoa_sse_rejected_total counter
stoa_sse_rejected_total{reason="ip_limit"} 3
stoa_sse_rejected_total{reason="tenant_limit"} 1
`
	if got := h.Metrics().Prometheus(); got != want {
		t.Fatalf("Prometheus:\n%s\nwant:\n%s", got, want)
	}
}

func TestMetricsRefuseBadTagRules(t *testing.T) {
	for _, c := range []struct {
		rules []wasmhost.TagRule
		want  string
	}{
		{[]wasmhost.TagRule{{Name: "reason", Regex: `^wasmcustom\.(reason=\.=([a-z]+`}}, `"reason"`},
		{[]wasmhost.TagRule{{Name: "nogroup", Regex: `^wasmcustom\.x`}}, "capture group"},
		{[]wasmhost.TagRule{{Name: "", Regex: `(x)`}}, "empty name"},
		{[]wasmhost.TagRule{{Name: "t", Regex: `(x)`}, {Name: "t", Regex: `(y)`}}, "twice"},
	} {
		_, err := wasmhost.NewMetrics(c.rules)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewMetrics(%v) = %v, want an error containing %q", c.rules, err, c.want)
		}
		if _, err := wasmhost.NewHost(context.Background(), minimal().Bytes(), wasmhost.Config{StatsTags: c.rules}); err == nil {
			t.Errorf("NewHost accepted rules %v", c.rules)
		}
	}
}
