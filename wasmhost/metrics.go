package wasmhost

import (
	"errors"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// StatPrefix is the namespace Envoy puts before every metric a module defines.
const StatPrefix = "wasmcustom."

// TagRule is one stats tag extractor, as in Envoy's bootstrap
// stats_config.stats_tags (tag_name + regex) or Istio's extraStatTags.
// Envoy semantics: the regex is searched (unanchored) in the full stat name;
// the first capture group is removed from the name, the second (if any) is
// the tag value (else the first is). Every rule runs on the original name.
type TagRule struct {
	Name  string
	Regex string
}

// Tag is one extracted tag.
type Tag struct {
	Name, Value string
}

type tagExtractor struct {
	name string
	re   *regexp.Regexp
}

// Metrics is the stats store shared by every VM of a Host (Envoy's stats are
// process-wide: VMs defining the same name share one stat). Safe for
// concurrent use.
//
// RATIONALE: the tag regexes use Go's regexp (RE2), not std::regex as Envoy
// does by default; the two agree on the anchored-free, non-backtracking
// patterns stats tags use. regexp is fine here: this package runs natively,
// never inside the module.
type Metrics struct {
	mu     sync.RWMutex
	byName map[string]*metric
	tags   []tagExtractor
}

type metric struct {
	name string // full name, wasmcustom.<name>
	typ  MetricType
	v    atomic.Uint64
	// histogram samples (count and sum only)
	n, sum atomic.Uint64
}

// NewMetrics compiles the tag rules (an error names the bad rule).
func NewMetrics(rules []TagRule) (*Metrics, error) {
	m := &Metrics{byName: make(map[string]*metric)}
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Name == "" {
			return nil, errors.New("wasmhost: stats tag rule with an empty name")
		}
		if seen[r.Name] {
			return nil, errors.New("wasmhost: stats tag " + strconv.Quote(r.Name) + " specified twice")
		}
		seen[r.Name] = true
		re, err := regexp.Compile(r.Regex)
		if err != nil {
			return nil, errors.New("wasmhost: stats tag " + strconv.Quote(r.Name) + ": " + err.Error())
		}
		if re.NumSubexp() < 1 {
			return nil, errors.New("wasmhost: stats tag " + strconv.Quote(r.Name) + ": regex needs a capture group")
		}
		m.tags = append(m.tags, tagExtractor{r.Name, re})
	}
	return m, nil
}

func (m *Metrics) lookupOrCreate(full string, typ MetricType) *metric {
	m.mu.RLock()
	x := m.byName[full]
	m.mu.RUnlock()
	if x != nil {
		return x
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if x = m.byName[full]; x == nil {
		x = &metric{name: full, typ: typ}
		m.byName[full] = x
	}
	return x
}

func (m *Metrics) find(name string) *metric {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if x := m.byName[name]; x != nil {
		return x
	}
	return m.byName[StatPrefix+name]
}

// Value returns a counter or gauge value by name ("wasmcustom.x" or "x").
func (m *Metrics) Value(name string) (uint64, bool) {
	x := m.find(name)
	if x == nil {
		return 0, false
	}
	if x.typ == MetricHistogram {
		return x.n.Load(), true
	}
	return x.v.Load(), true
}

// Int returns Value as a signed number (gauges that went below zero wrap in
// Envoy's uint64; this shows them as negative).
func (m *Metrics) Int(name string) int64 {
	v, _ := m.Value(name)
	return int64(v)
}

// MetricValue is one entry of a Snapshot.
type MetricValue struct {
	Name  string // full stat name, wasmcustom.<name>
	Type  MetricType
	Value uint64 // counters and gauges; histograms: sample count
	Sum   uint64 // histograms: sum of samples
}

// Snapshot returns every metric, sorted by name.
func (m *Metrics) Snapshot() []MetricValue {
	m.mu.RLock()
	out := make([]MetricValue, 0, len(m.byName))
	for _, x := range m.byName {
		mv := MetricValue{Name: x.name, Type: x.typ, Value: x.v.Load()}
		if x.typ == MetricHistogram {
			mv.Value, mv.Sum = x.n.Load(), x.sum.Load()
		}
		out = append(out, mv)
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ExtractTags applies the tag rules to a full stat name and returns the
// tag-extracted name and the tags, as Envoy's TagProducer does.
func (m *Metrics) ExtractTags(name string) (string, []Tag) {
	if len(m.tags) == 0 {
		return name, nil
	}
	remove := make([]bool, len(name))
	var tags []Tag
	for _, t := range m.tags {
		loc := t.re.FindStringSubmatchIndex(name)
		if loc == nil || loc[2] < 0 {
			continue
		}
		vs, ve := loc[2], loc[3]
		if len(loc) >= 6 && loc[4] >= 0 {
			vs, ve = loc[4], loc[5]
		}
		tags = append(tags, Tag{t.name, name[vs:ve]})
		for i := loc[2]; i < loc[3]; i++ {
			remove[i] = true
		}
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if !remove[i] {
			b.WriteByte(name[i])
		}
	}
	return b.String(), tags
}

// Prometheus renders counters and gauges in Prometheus text format as
// Envoy's /stats/prometheus does for custom stats: tags extracted, the
// "wasmcustom" namespace stripped, no "envoy_" prefix, names sanitised,
// one "# TYPE" line per family. Histograms are not rendered.
func (m *Metrics) Prometheus() string {
	type sample struct {
		labels string
		value  uint64
	}
	type family struct {
		typ     string
		samples []sample
	}
	fams := map[string]*family{}
	for _, mv := range m.Snapshot() {
		if mv.Type == MetricHistogram {
			continue
		}
		base, tags := m.ExtractTags(mv.Name)
		base = strings.TrimPrefix(base, StatPrefix)
		base = promName(base)
		typ := "counter"
		if mv.Type == MetricGauge {
			typ = "gauge"
		}
		f := fams[base]
		if f == nil {
			f = &family{typ: typ}
			fams[base] = f
		}
		var lb strings.Builder
		for i, t := range tags {
			if i > 0 {
				lb.WriteByte(',')
			}
			lb.WriteString(promName(t.Name))
			lb.WriteString(`="`)
			lb.WriteString(promEscape(t.Value))
			lb.WriteByte('"')
		}
		f.samples = append(f.samples, sample{lb.String(), mv.Value})
	}
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		f := fams[n]
		sort.Slice(f.samples, func(i, j int) bool { return f.samples[i].labels < f.samples[j].labels })
		b.WriteString("# TYPE " + n + " " + f.typ + "\n")
		for _, s := range f.samples {
			b.WriteString(n)
			if s.labels != "" {
				b.WriteString("{" + s.labels + "}")
			}
			b.WriteString(" " + strconv.FormatUint(s.value, 10) + "\n")
		}
	}
	return b.String()
}

func promName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}

func promEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return r.Replace(s)
}

// vmMetrics is one VM's id table. Ids follow Envoy: the low two bits are
// the type, ids advance by 4 (first counter 4, first gauge 5, first histogram 6).
type vmMetrics struct {
	byID [3][]*metric
}

func (v *vmMetrics) define(m *Metrics, typ MetricType, name string) (uint32, Status) {
	if typ > MetricHistogram {
		return 0, StatusBadArgument
	}
	x := m.lookupOrCreate(StatPrefix+name, typ)
	v.byID[typ] = append(v.byID[typ], x)
	return uint32(len(v.byID[typ]))*4 + uint32(typ), StatusOK
}

func (v *vmMetrics) get(id uint32) (*metric, MetricType) {
	typ := MetricType(id & 3)
	if typ > MetricHistogram {
		return nil, typ
	}
	k := int(id>>2) - 1
	if k < 0 || k >= len(v.byID[typ]) {
		return nil, typ
	}
	return v.byID[typ][k], typ
}

func (v *vmMetrics) increment(id uint32, off int64) Status {
	x, typ := v.get(id)
	switch typ {
	case MetricCounter:
		if x == nil {
			return StatusNotFound
		}
		if off <= 0 {
			return StatusBadArgument
		}
		x.v.Add(uint64(off))
		return StatusOK
	case MetricGauge:
		if x == nil {
			return StatusNotFound
		}
		x.v.Add(uint64(off)) // two's complement: negative offsets subtract
		return StatusOK
	}
	return StatusBadArgument
}

func (v *vmMetrics) record(id uint32, val uint64) Status {
	x, typ := v.get(id)
	if x == nil {
		return StatusNotFound
	}
	switch typ {
	case MetricCounter:
		x.v.Add(val)
	case MetricGauge:
		x.v.Store(val)
	case MetricHistogram:
		x.n.Add(1)
		x.sum.Add(val)
	}
	return StatusOK
}

func (v *vmMetrics) value(id uint32) (uint64, Status) {
	x, typ := v.get(id)
	if typ == MetricHistogram || typ > MetricHistogram {
		return 0, StatusBadArgument
	}
	if x == nil {
		return 0, StatusNotFound
	}
	return x.v.Load(), StatusOK
}
