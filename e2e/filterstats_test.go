package e2e

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/filter"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// recordingHost is a filter.Host that records the metrics the filter defines. It is only as
// much of a host as configuration and one SSE request need.
type recordingHost struct {
	mu      sync.Mutex
	config  []byte
	headers []abi.Header
	peer    string
	shared  map[string]sharedValue
	cas     uint32
	metrics []string // names as defined, in order
	local   uint32   // status of the last local response, 0 if none
}

type sharedValue struct {
	v   []byte
	cas uint32
}

func (h *recordingHost) Log(abi.LogLevel, string)      {}
func (h *recordingHost) PluginConfig() ([]byte, error) { return h.config, nil }
func (h *recordingHost) RequestHeaders(dst []abi.Header) ([]abi.Header, error) {
	return append(dst[:0], h.headers...), nil
}
func (h *recordingHost) AddResponseHeader(string, string) error { return nil }
func (h *recordingHost) SendLocalResponse(status uint32, _ []abi.Header, _ []byte, _ string) error {
	h.local = status
	return nil
}
func (h *recordingHost) Property(path string) ([]byte, error) {
	if path == "source\x00address" {
		return []byte(h.peer), nil
	}
	return nil, abi.ErrNotFound
}
func (h *recordingHost) SharedGet(key string, dst []byte) ([]byte, uint32, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.shared[key]
	if !ok {
		return dst[:0], 0, abi.ErrNotFound
	}
	return append(dst[:0], v.v...), v.cas, nil
}

// SharedSet follows Envoy: cas 0 writes, another cas must match, a missing key is created.
func (h *recordingHost) SharedSet(key string, value []byte, cas uint32) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.shared[key]; ok && cas != 0 && cas != v.cas {
		return abi.ErrCasMismatch
	}
	h.cas++
	h.shared[key] = sharedValue{append([]byte(nil), value...), h.cas}
	return nil
}
func (h *recordingHost) SetTickPeriod(time.Duration) error { return nil }
func (h *recordingHost) SetEffectiveContext(uint32) error  { return nil }
func (h *recordingHost) CloseStream() error                { return nil }
func (h *recordingHost) DefineMetric(_ abi.MetricKind, name string) (uint32, error) {
	if i := slices.Index(h.metrics, name); i >= 0 {
		return uint32(i), nil
	}
	h.metrics = append(h.metrics, name)
	return uint32(len(h.metrics) - 1), nil
}
func (h *recordingHost) IncrementMetric(uint32, int64) error { return nil }
func (h *recordingHost) RecordMetric(uint32, uint64) error   { return nil }

// definedStats configures the real filter with a shipped configuration, opens one SSE stream
// for tenant, and returns every stat name it defined, as Envoy names them ("wasmcustom.").
func definedStats(t *testing.T, sp *shippedPlugin, tenant string) []string {
	t.Helper()
	h := &recordingHost{config: sp.json, peer: "203.0.113.7:40000", shared: map[string]sharedValue{}}
	env := func(k string) (string, bool) { v, ok := sp.env[k]; return v, ok }
	vm := filter.NewVMContext(h, time.Now, env)
	p := vm.NewPluginContext(1)
	require.Equal(t, types.OnPluginStartStatusOK, p.OnPluginStart(len(sp.json)))

	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"stoa-mcp-gateway","tenant_id":"` + tenant + `"}`))
	h.headers = []abi.Header{
		{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/mcp/sse"}, {Name: ":authority", Value: "mcp.example"},
		{Name: "accept", Value: "text/event-stream"}, {Name: "x-jwt-payload", Value: payload},
	}
	s := p.NewHttpContext(2)
	require.Equal(t, types.ActionContinue, s.OnHttpRequestHeaders(len(h.headers), true), "the stream is admitted (local reply %d)", h.local)
	s.OnHttpStreamDone()

	names := make([]string, len(h.metrics))
	for i, n := range h.metrics {
		names[i] = "wasmcustom." + n
	}
	return names
}

// TestStatsTagsExtractWhatTheFilterDefines: the names the stats tag checks use are the ones the
// filter really defines (recorded from the filter itself, configured as shipped), and the
// shipped extractors (envoy.yaml stats_tags, Istio extraStatTags) turn each into the SPEC name
// and label.
func TestStatsTagsExtractWhatTheFilterDefines(t *testing.T) {
	envoySrc := readRepoFile(t, "envoy.yaml")
	bs, err := loadBootstrap(envoySrc)
	require.NoError(t, err)
	envoyRules, err := bootstrapTagRules(bs)
	require.NoError(t, err)
	var istioRules []tagRule
	for _, tag := range loadMeshConfig(t, readRepoFile(t, "istio/mesh.yaml")).GetDefaultConfig().GetExtraStatTags() {
		istioRules = append(istioRules, istioExtraStatTagRule(tag))
	}

	// What the checks list, as full stat names.
	listed := map[string]bool{}
	for _, fs := range filterStats {
		if fs.tag == "reason" {
			for _, v := range fs.values {
				listed[statName(fs.tag, v, fs.name)] = true
			}
		}
	}

	envoyCfg, err := envoyPlugin(envoySrc)
	require.NoError(t, err)
	envoyCfg.json = []byte(strings.Replace(string(envoyCfg.json), `"payload_metadata_key": "jwt_payload",`, "", 1)) // no jwt_authn metadata here: read the header
	istioCfg, err := istioPlugin(readRepoFile(t, "istio/wasmplugin.yaml"))
	require.NoError(t, err)
	for name, c := range map[string]struct {
		cfg   *shippedPlugin
		rules []tagRule
	}{"envoy.yaml": {envoyCfg, envoyRules}, "istio": {istioCfg, istioRules}} {
		t.Run(name, func(t *testing.T) {
			defined := definedStats(t, c.cfg, "Acme Corp")
			reasons := map[string]bool{}
			for _, n := range defined {
				if strings.HasPrefix(n, "wasmcustom.reason=") {
					reasons[n] = true
				}
			}
			require.Equal(t, listed, reasons, "the reason stats the filter defines vs the ones the checks list (filterStats)")
			require.Contains(t, defined, "wasmcustom."+filter.StatName(filter.MetricSSEConnections, "tenant", "acme_corp"), "tenant gauge of the admitted stream (label sanitised)")

			require.NoError(t, checkDefinedExtraction(defined, c.rules))

			// Broken twins: an extractor missing, or one that leaves the separator behind.
			require.ErrorContains(t, checkDefinedExtraction(defined, c.rules[:1]), "tenant=")
			bad := []tagRule{c.rules[0], {"tenant", regexp.MustCompile(`^wasmcustom\.(tenant=\.=([a-z0-9_-]+));\.;stoa_`)}}
			require.ErrorContains(t, checkDefinedExtraction(defined, bad), "stoa_sse_connections_total")
		})
	}
}

// checkDefinedExtraction: rules turn every defined name into wasmcustom.<metric> and exactly
// one label whose value is the one in the name.
func checkDefinedExtraction(defined []string, rules []tagRule) error {
	var errs []error
	for _, n := range defined {
		got, tags := extractTags(n, rules)
		metric := n[strings.LastIndex(n, ";.;")+3:]
		ok := got == "wasmcustom."+metric && len(tags) == 1
		for tag, v := range tags {
			ok = ok && "wasmcustom."+filter.StatName(metric, tag, v) == n
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%s -> %s %v", n, got, tags))
		}
	}
	return errors.Join(errs...)
}
