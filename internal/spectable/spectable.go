// Package spectable is SPEC.md's behaviour table as data: one list of cases
// run twice, natively by the filter's tests (on the SDK's proxytest
// emulator) and against the compiled filter.wasm on the project's wazero host
// (moduletest), so that the two can never disagree silently.
//
// A Case starts one plugin (plugin JSON and environment), then runs Steps:
// each step may end open streams, move the clock, and send one request (or
// the same request Times times), then checks the outcome, the metrics and
// the logs. A runner provides a Start function returning a Target; Run does
// the rest.
package spectable

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Defaults of a Request.
const (
	DefaultMethod    = "GET"
	DefaultPath      = "/mcp"
	DefaultPeer      = "203.0.113.7:40000"
	DefaultAuthority = "mcp.stoa.dev"
	// MetadataKey is the jwt_authn payload_in_metadata key the metadata
	// cases configure (audience.payload_metadata_key).
	MetadataKey = "jwt_payload"
)

// Request is one HTTP request. Zero fields take the defaults above.
type Request struct {
	Method, Path string
	Peer         string      // property source.address ("ip:port", "[v6]:port")
	Headers      [][2]string // sent after :method, :path and :authority
	// Metadata, when not nil, is the verified payload jwt_authn put in its
	// dynamic metadata under MetadataKey (claim name → string, []string or
	// a number).
	Metadata map[string]any
	// Response, when not nil and the request was not answered locally, is
	// sent as the response headers (":status" first), and what the filter
	// leaves of them is returned in Result.ResponseHeaders.
	Response [][2]string
}

// Result is what one request produced.
type Result struct {
	Status          int               // local response status; 0: the request went on to the upstream
	Headers         map[string]string // local response headers, lower-case names
	Body            string            // local response body
	ResponseHeaders map[string]string // response headers after the filter (when Request.Response)
}

// Target is one started plugin, on a native emulator or in the module.
type Target interface {
	// Do opens a stream and runs the request headers (and the response
	// headers, see Request.Response). The stream stays open.
	Do(r Request) Result
	// EndOldest ends the oldest open stream normally (on_log, on_done, on_delete).
	EndOldest()
	// Advance moves the filter's clock by d and runs the ticks that are due.
	Advance(d time.Duration)
	// Metric returns a counter's or gauge's value by its stat name (without
	// the host's "wasmcustom." namespace), 0 when not defined.
	Metric(statName string) uint64
	// Logs returns every log line captured so far, one per line.
	Logs() string
}

// Start starts the plugin with the plugin JSON and environment. It returns
// the Target, or nil when the plugin refused to start, and in both cases the
// critical log lines written during start.
type Start func(t *testing.T, plugin string, env map[string]string) (tg Target, critical []string)

// Case is one row of the table.
type Case struct {
	Name   string
	Plugin string            // plugin JSON ("" none)
	Env    map[string]string // environment variables
	// StartError, when set: the plugin must refuse to start and log exactly
	// one critical line containing it.
	StartError string
	// StartLog, when set: a line logged at start contains it.
	StartLog string
	Steps    []Step
}

// Step is one request (or Times identical requests) with its expectations.
type Step struct {
	Name      string
	EndOldest int           // first end this many of the oldest open streams
	Advance   time.Duration // then move the clock
	Do        Request
	Times     int  // send Do this many times (default 1), each checked against Want
	End       bool // end each stream after its request
	Want      Want
}

// Want is what a step must produce.
type Want struct {
	Status int    // 0: no local response (the request passes)
	Reason string // the local body contains "reason":"<Reason>"
	Body   []string
	// Headers of the local response, compared exactly.
	Headers map[string]string
	// NoHeaderPrefix: no local response header name starts with it.
	NoHeaderPrefix string
	// ResponseHeaders after the filter, compared exactly.
	ResponseHeaders map[string]string
	// NoResponseHeaderPrefix: no response header name starts with it.
	NoResponseHeaderPrefix string
	// Metrics after the step, by stat name (see Stat).
	Metrics map[string]uint64
	// Secret strings that must appear neither in the local response nor in any log.
	NeverShown []string
}

// Stat returns the stat name of a metric with one label, in the Istio
// convention the filter uses ("reason=.=ip_limit;.;stoa_sse_rejected_total").
// It must equal filter.StatName (checked by the native runner).
func Stat(metric, label, value string) string {
	return label + "=.=" + value + ";.;" + metric
}

// Metric names (SPEC.md).
const (
	SSEConnections = "stoa_sse_connections_total"
	SSERejected    = "stoa_sse_rejected_total"
	SSEClosed      = "stoa_sse_closed_total"
	JWTFailures    = "stoa_jwt_validation_failures_total"
	CORSRejected   = "stoa_cors_rejected_total"
)

// JWT, CORS and SSE stat names of the table.
func jwt(reason string) string    { return Stat(JWTFailures, "reason", reason) }
func corsR(reason string) string  { return Stat(CORSRejected, "reason", reason) }
func sseR(reason string) string   { return Stat(SSERejected, "reason", reason) }
func tenant(tenant string) string { return Stat(SSEConnections, "tenant", tenant) }

// Payload returns claims as jwt_authn's forward_payload_header carries them:
// base64url JSON without padding.
func Payload(claims map[string]any) string {
	b, err := json.Marshal(claims)
	if err != nil {
		panic(err) // the table's own literals only
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// PaddedPayload is Payload with base64 padding (pad_forward_payload_header).
func PaddedPayload(claims map[string]any) string {
	b, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	return base64.URLEncoding.EncodeToString(b)
}

// Good is a valid payload: allowed audience, tenant acme.
var Good = Payload(map[string]any{"aud": "stoa-mcp-gateway", "tenant_id": "acme", "sub": "alice"})

// Run runs every case of Cases as a subtest.
func Run(t *testing.T, start Start) {
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) { RunCase(t, c, start) })
	}
}

// RunCase runs one case.
func RunCase(t *testing.T, c Case, start Start) {
	tg, critical := start(t, c.Plugin, c.Env)
	if c.StartError != "" {
		require.Nil(t, tg, "the plugin must refuse to start")
		require.Len(t, critical, 1, "exactly one critical line")
		assert.Contains(t, critical[0], c.StartError)
		return
	}
	require.NotNil(t, tg, "the plugin refused to start: %v", critical)
	if c.StartLog != "" {
		assert.Contains(t, tg.Logs(), c.StartLog)
	}
	for i, s := range c.Steps {
		name := s.Name
		if name == "" {
			name = "step"
		}
		for k := 0; k < s.EndOldest; k++ {
			tg.EndOldest()
		}
		if s.Advance > 0 {
			tg.Advance(s.Advance)
		}
		times := max(s.Times, 1)
		for n := 0; n < times; n++ {
			res := tg.Do(s.Do)
			if s.End {
				tg.EndOldest()
			}
			checkResult(t, res, s.Want, "step %d (%s), request %d of %d", i, name, n+1, times)
		}
		for stat, want := range s.Want.Metrics {
			assert.Equal(t, want, tg.Metric(stat), "step %d (%s): metric %s", i, name, stat)
		}
		if len(s.Want.NeverShown) > 0 {
			logs := tg.Logs()
			for _, secret := range s.Want.NeverShown {
				assert.NotContains(t, logs, secret, "step %d (%s): a log shows a secret", i, name)
			}
		}
	}
}

func checkResult(t *testing.T, res Result, w Want, format string, args ...any) {
	t.Helper()
	msg := func(what string) []any { return append([]any{format + ": " + what}, args...) }
	if !assert.Equal(t, w.Status, res.Status, msg("status (body %q)")...) {
		return
	}
	if w.Reason != "" {
		assert.Contains(t, res.Body, `"reason":"`+w.Reason+`"`, msg("reason")...)
	}
	for _, b := range w.Body {
		assert.Contains(t, res.Body, b, msg("body")...)
	}
	for name, v := range w.Headers {
		assert.Equal(t, v, res.Headers[name], msg("local response header "+name)...)
	}
	if w.NoHeaderPrefix != "" {
		for _, name := range sortedKeys(res.Headers) {
			assert.False(t, strings.HasPrefix(name, w.NoHeaderPrefix), msg("local response carries "+name)...)
		}
	}
	for name, v := range w.ResponseHeaders {
		got, ok := res.ResponseHeaders[name]
		assert.True(t, ok, msg("response header "+name+" missing")...)
		assert.Equal(t, v, got, msg("response header "+name)...)
	}
	if w.NoResponseHeaderPrefix != "" {
		for _, name := range sortedKeys(res.ResponseHeaders) {
			assert.False(t, strings.HasPrefix(name, w.NoResponseHeaderPrefix), msg("response carries "+name)...)
		}
	}
	shown := res.Body
	for _, name := range sortedKeys(res.Headers) {
		shown += "\n" + name + ": " + res.Headers[name]
	}
	for _, secret := range w.NeverShown {
		assert.NotContains(t, shown, secret, msg("the local response shows a secret")...)
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
