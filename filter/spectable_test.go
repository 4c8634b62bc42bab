package filter

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/internal/spectable"
)

// TestSpecTable runs SPEC.md's shared behaviour table (internal/spectable)
// natively, on the SDK's proxytest emulator. moduletest runs the same table
// against the compiled filter.wasm on the wazero host.
func TestSpecTable(t *testing.T) {
	require.Equal(t, StatName(MetricSSERejected, "reason", "ip_limit"), spectable.Stat(spectable.SSERejected, "reason", "ip_limit"))
	for _, m := range [][2]string{{MetricSSEConnections, spectable.SSEConnections}, {MetricSSERejected, spectable.SSERejected},
		{MetricSSEClosed, spectable.SSEClosed}, {MetricJWTFailures, spectable.JWTFailures}, {MetricCORSRejected, spectable.CORSRejected}} {
		require.Equal(t, m[0], m[1])
	}
	spectable.Run(t, startNative)
}

// streamProps is a Host whose properties are the current request's (Envoy
// keeps them per stream; proxytest keeps one map and cannot delete), with
// everything else from the SDK adapter.
type streamProps struct {
	*sdkHost
	props map[string][]byte
}

func (h *streamProps) Property(path string) ([]byte, error) {
	if v, ok := h.props[path]; ok {
		return v, nil
	}
	return nil, abi.ErrNotFound
}

type nativeTarget struct {
	t     *testing.T
	emu   proxytest.HostEmulator
	host  *streamProps
	clock *fakeClock
	open  []uint32
}

func startNative(t *testing.T, plugin string, env map[string]string) (spectable.Target, []string) {
	clock := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	host := &streamProps{sdkHost: newSDKHost()}
	opt := proxytest.NewEmulatorOption().
		WithVMContext(NewVMContext(host, clock.now, lookup)).
		WithPluginConfiguration([]byte(plugin))
	emu, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	if emu.StartPlugin() != types.OnPluginStartStatusOK {
		return nil, emu.GetCriticalLogs()
	}
	return &nativeTarget{t: t, emu: emu, host: host, clock: clock}, emu.GetCriticalLogs()
}

func (n *nativeTarget) Do(r spectable.Request) spectable.Result {
	n.t.Helper()
	method, path, peer := r.Method, r.Path, r.Peer
	if method == "" {
		method = spectable.DefaultMethod
	}
	if path == "" {
		path = spectable.DefaultPath
	}
	if peer == "" {
		peer = spectable.DefaultPeer
	}
	n.host.props = map[string][]byte{"source\x00address": []byte(peer)}
	if r.Metadata != nil {
		base := "metadata\x00filter_metadata\x00envoy.filters.http.jwt_authn\x00" + spectable.MetadataKey
		n.host.props[base] = serializeProperty(n.t, r.Metadata)
		for k, v := range r.Metadata {
			n.host.props[base+"\x00"+k] = serializeProperty(n.t, v)
		}
	}
	id := n.emu.InitializeHttpContext()
	n.open = append(n.open, id)
	hs := append([][2]string{{":method", method}, {":path", path}, {":authority", spectable.DefaultAuthority}}, r.Headers...)
	n.emu.CallOnRequestHeaders(id, hs, false)
	var res spectable.Result
	if local := n.emu.GetSentLocalResponse(id); local != nil {
		res.Status, res.Body, res.Headers = int(local.StatusCode), string(local.Data), map[string]string{}
		for _, kv := range local.Headers {
			res.Headers[strings.ToLower(kv[0])] = kv[1]
		}
		return res
	}
	if r.Response != nil {
		n.emu.CallOnResponseHeaders(id, r.Response, false)
		res.ResponseHeaders = map[string]string{}
		for _, kv := range n.emu.GetCurrentResponseHeaders(id) {
			res.ResponseHeaders[kv[0]] = kv[1]
		}
	}
	return res
}

func (n *nativeTarget) EndOldest() {
	n.t.Helper()
	require.NotEmpty(n.t, n.open, "no open stream to end")
	n.emu.CompleteHttpContext(n.open[0])
	n.open = n.open[1:]
}

func (n *nativeTarget) Advance(d time.Duration) {
	n.clock.advance(d)
	n.emu.Tick()
}

func (n *nativeTarget) Metric(name string) uint64 {
	if v, err := n.emu.GetCounterMetric(name); err == nil {
		return v
	}
	if v, err := n.emu.GetGaugeMetric(name); err == nil {
		return v
	}
	return 0
}

func (n *nativeTarget) Logs() string {
	var all []string
	for _, l := range [][]string{n.emu.GetTraceLogs(), n.emu.GetDebugLogs(), n.emu.GetInfoLogs(),
		n.emu.GetWarnLogs(), n.emu.GetErrorLogs(), n.emu.GetCriticalLogs()} {
		all = append(all, l...)
	}
	return strings.Join(all, "\n")
}

// serializeProperty renders v as Envoy serialises a metadata value for
// proxy_get_property: strings raw, numbers 8 bytes little-endian, lists as
// Pairs with keys only, maps as Pairs (keys sorted).
func serializeProperty(t *testing.T, v any) []byte {
	var pairs []abi.Header
	switch x := v.(type) {
	case string:
		return []byte(x)
	case int:
		return binary.LittleEndian.AppendUint64(nil, uint64(x))
	case []string:
		for _, s := range x {
			pairs = append(pairs, abi.Header{Name: s})
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			pairs = append(pairs, abi.Header{Name: k, Value: string(serializeProperty(t, x[k]))})
		}
	default:
		t.Fatalf("spectable: cannot serialise %T", v)
	}
	b, err := abi.AppendPairs(nil, pairs)
	require.NoError(t, err, fmt.Sprint(v))
	return b
}
