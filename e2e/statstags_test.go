package e2e

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/stretchr/testify/require"
)

// The stat names the filter defines (CONTRACTS.md, Metrics), with every value SPEC.md names.
// Envoy prefixes custom Wasm stats with "wasmcustom.".
type filterStat struct {
	name   string // the Prometheus name after extraction
	tag    string
	values []string
}

var filterStats = []filterStat{
	{"stoa_sse_rejected_total", "reason", []string{"ip_limit", "tenant_limit", "global_limit", "rate_limit"}},
	{"stoa_sse_closed_total", "reason", []string{"idle_timeout", "max_duration"}},
	{"stoa_jwt_validation_failures_total", "reason", []string{"invalid_audience", "missing_token", "missing_audience", "malformed"}},
	{"stoa_cors_rejected_total", "reason", []string{"origin", "method", "headers"}},
	// Tenants are sanitised to [a-z0-9_-]{1,64}; overflow goes to "_other".
	{"stoa_sse_connections_total", "tenant", []string{"acme", "anonymous", "_other", "t-1_x", strings.Repeat("z", 64)}},
}

// statName is the name as the filter defines it, in Istio's label convention.
func statName(tag, value, name string) string {
	return "wasmcustom." + tag + "=.=" + value + ";.;" + name
}

// tagRule is one tag extractor: Envoy's stats_tags entry or Istio's extraStatTags rule.
type tagRule struct {
	name string
	re   *regexp.Regexp
}

// extractTags mirrors Envoy's TagExtractor on one name: for each rule whose regex matches, the
// first capture group is removed from the name and the second (or, when there is none, the
// first) is the tag value. Envoy applies every extractor to the original name and then removes
// all matched ranges, which is what this does.
func extractTags(name string, rules []tagRule) (string, map[string]string) {
	tags := map[string]string{}
	type span struct{ from, to int }
	var remove []span
	for _, r := range rules {
		m := r.re.FindStringSubmatchIndex(name)
		if m == nil || len(m) < 4 || m[2] < 0 {
			continue
		}
		value := name[m[2]:m[3]]
		if len(m) >= 6 && m[4] >= 0 {
			value = name[m[4]:m[5]]
		}
		tags[r.name] = value
		remove = append(remove, span{m[2], m[3]})
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		inside := false
		for _, s := range remove {
			if i >= s.from && i < s.to {
				inside = true
				break
			}
		}
		if !inside {
			b.WriteByte(name[i])
		}
	}
	return b.String(), tags
}

// envoyDefaultTagRegexes is Envoy's list of default tag extractors (source/common/config/
// well_known_names.cc), applied while stats_config.use_all_default_tags is unset or true.
// Newer Envoy releases add extractors of the same shape: anchored to their own first name
// segment ("^http", "^cluster", ...). Envoy even indexes extractors by that first segment, so a
// "wasmcustom." name only ever meets the unanchored ones (the two response-code suffixes).
// Lookaheads "(?=...)" are removed (RE2 has none): that only widens a regex, so "the relaxed
// regex does not match" proves "the real one does not match".
var envoyDefaultTagRegexes = map[string]string{
	"envoy.response_code":              `_rq(_(\d{3}))$`,
	"envoy.response_code_class":        `_rq_(\d)xx$`,
	"envoy.dynamo_partition_id":        `^http(?=\.).*?\.dynamodb\.table(?=\.).*?\.capacity(?=\.).*?(\.__partition_id=(\w{7}))$`,
	"envoy.dynamo_operation":           `^http(?=\.).*?\.dynamodb.(?:operation|table(?=\.).*?\.capacity)(\.(.*?))(?:\.|$)`,
	"envoy.mongo_callsite":             `^mongo(?=\.).*?\.collection(?=\.).*?\.callsite\.((.*?)\.).*?query.\w+?$`,
	"envoy.dynamo_table":               `^http(?=\.).*?\.dynamodb.(?:table|error)\.((.*?)\.)`,
	"envoy.mongo_collection":           `^mongo(?=\.).*?\.collection\.((.*?)\.).*?query.\w+?$`,
	"envoy.mongo_cmd":                  `^mongo(?=\.).*?\.cmd\.((.*?)\.)\w+?$`,
	"envoy.grpc_bridge_method":         `^cluster(?=\.).*?\.grpc(?=\.).*\.((.*?)\.)\w+?$`,
	"envoy.http_user_agent":            `^http(?=\.).*?\.user_agent\.((.*?)\.)\w+?$`,
	"envoy.virtual_cluster":            `^vhost(?=\.).*?\.vcluster\.((.*?)\.)\w+?$`,
	"envoy.fault_downstream_cluster":   `^http(?=\.).*?\.fault\.((.*?)\.)\w+?$`,
	"envoy.ssl_cipher":                 `^listener(?=\.).*?\.ssl\.cipher(\.(.*?))$`,
	"envoy.ssl_cipher_suite":           `^cluster(?=\.).*?\.ssl\.ciphers(\.(.*?))$`,
	"envoy.grpc_bridge_service":        `^cluster(?=\.).*?\.grpc\.((.*?)\.)`,
	"envoy.tcp_prefix":                 `^tcp\.((.*?)\.)\w+?$`,
	"envoy.udp_prefix":                 `^udp\.((.*?)\.)\w+?$`,
	"envoy.clientssl_prefix":           `^auth\.clientssl\.((.*?)\.)\w+?$`,
	"envoy.ratelimit_prefix":           `^ratelimit\.((.*?)\.)\w+?$`,
	"envoy.cluster_name":               `^cluster\.(([^\.]+)\.).*`,
	"envoy.http_conn_manager_prefix":   `^listener(?=\.).*?\.http\.((.*?)\.)`,
	"envoy.http_conn_manager_prefix#2": `^http\.((.*?)\.)`,
	"envoy.listener_address":           `^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)`,
	"envoy.virtual_host":               `^vhost\.((.*?)\.)`,
	"envoy.mongo_prefix":               `^mongo\.((.*?)\.)`,
	"envoy.rds_route_config":           `^http(?=\.).*?\.rds\.((.*?)\.)\w+?$`,
	"envoy.worker_id":                  `^listener_manager\.((worker_\d+)\.)`,
}

var lookahead = regexp.MustCompile(`\(\?=[^)]*\)`)

func envoyDefaultRules(t testing.TB) []tagRule {
	var rules []tagRule
	for name, expr := range envoyDefaultTagRegexes {
		re, err := regexp.Compile(lookahead.ReplaceAllString(expr, ""))
		require.NoError(t, err, name)
		rules = append(rules, tagRule{name, re})
	}
	return rules
}

// istioExtraStatTagRule is the rule Istio's bootstrap template generates for each extraStatTags
// entry (tools/packaging/common/envoy_bootstrap.json): "({{tag}}=\\.=(.*?);\\.;)".
func istioExtraStatTagRule(tag string) tagRule {
	return tagRule{tag, regexp.MustCompile(`(` + regexp.QuoteMeta(tag) + `=\.=(.*?);\.;)`)}
}

func bootstrapTagRules(bs *bootstrapv3.Bootstrap) ([]tagRule, error) {
	var rules []tagRule
	for _, st := range bs.GetStatsConfig().GetStatsTags() {
		expr := st.GetRegex()
		if expr == "" {
			continue // fixed_value tags extract nothing from names
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("stats_tags %s: %w", st.GetTagName(), err)
		}
		rules = append(rules, tagRule{st.GetTagName(), re})
	}
	return rules, nil
}

// checkExtraction proves that rules turn every filter stat into its Prometheus name and label.
func checkExtraction(rules []tagRule) error {
	var errs []error
	for _, fs := range filterStats {
		for _, v := range fs.values {
			full := statName(fs.tag, v, fs.name)
			got, tags := extractTags(full, rules)
			want := map[string]string{fs.tag: v}
			if got != "wasmcustom."+fs.name || !maps.Equal(tags, want) {
				errs = append(errs, fmt.Errorf("%s -> %s %v, want wasmcustom.%s %v", full, got, tags, fs.name, want))
			}
		}
	}
	return errors.Join(errs...)
}

// checkStatsTags is the envoy.yaml part: its stats_tags extract reason and tenant.
func checkStatsTags(bs *bootstrapv3.Bootstrap) error {
	rules, err := bootstrapTagRules(bs)
	if err != nil {
		return err
	}
	if err := checkExtraction(rules); err != nil {
		return fmt.Errorf("stats_tags: %w", err)
	}
	return nil
}

func TestStatsTagsExtractFilterLabels(t *testing.T) {
	bs, err := loadBootstrap(readRepoFile(t, "envoy.yaml"))
	require.NoError(t, err)
	rules, err := bootstrapTagRules(bs)
	require.NoError(t, err)
	require.NoError(t, checkExtraction(rules))

	// The same with Envoy's default extractors applied too (use_all_default_tags is left on):
	// they must not take any part of the filter's names.
	if u := bs.GetStatsConfig().GetUseAllDefaultTags(); u != nil {
		require.True(t, u.GetValue(), "envoy.yaml turns Envoy's default tags off: its own stats lose their labels")
	}
	require.NoError(t, checkExtraction(append(rules, envoyDefaultRules(t)...)))
}

func TestEnvoyDefaultTagsLeaveFilterStatsAlone(t *testing.T) {
	defaults := envoyDefaultRules(t)
	for _, fs := range filterStats {
		for _, v := range fs.values {
			full := statName(fs.tag, v, fs.name)
			for _, r := range defaults {
				require.Falsef(t, r.re.MatchString(full), "default extractor %s matches %s", r.name, full)
				require.Falsef(t, r.re.MatchString("wasmcustom."+fs.name), "default extractor %s matches the extracted name", r.name)
			}
		}
	}
	// Sanity of the emulation itself: defaults do tag Envoy's own names.
	got, tags := extractTags("cluster.mcp_demo.upstream_rq_200", defaults)
	require.Equal(t, "cluster.upstream_rq", got)
	require.Equal(t, map[string]string{"envoy.cluster_name": "mcp_demo", "envoy.response_code": "200"}, tags)
}

// TestStatsTagsLeaveEnvoyStatsAlone: our extractors are anchored to the filter's names.
func TestStatsTagsLeaveEnvoyStatsAlone(t *testing.T) {
	bs, err := loadBootstrap(readRepoFile(t, "envoy.yaml"))
	require.NoError(t, err)
	rules, err := bootstrapTagRules(bs)
	require.NoError(t, err)
	for _, n := range []string{
		"cluster.mcp_demo.upstream_rq_200",
		"http.stoa_mcp.jwt_authn.denied",
		"wasm.envoy.wasm.runtime.v8.active",
		"wasmcustom.other_plugin_total",
		"reason=.=x;.;istio_requests_total",
	} {
		got, tags := extractTags(n, rules)
		require.Equal(t, n, got)
		require.Empty(t, tags)
	}
}

// TestIstioExtraStatTagsExtractFilterLabels: istio/mesh.yaml's extraStatTags [reason, tenant]
// become Istio's generated regexes, which extract the same labels (Istio turns the default
// extractors off: use_all_default_tags false).
func TestIstioExtraStatTagsExtractFilterLabels(t *testing.T) {
	mc := loadMeshConfig(t, readRepoFile(t, "istio/mesh.yaml"))
	var rules []tagRule
	for _, tag := range mc.GetDefaultConfig().GetExtraStatTags() {
		rules = append(rules, istioExtraStatTagRule(tag))
	}
	require.NoError(t, checkExtraction(rules))
}

func TestStatsTagsBrokenTwins(t *testing.T) {
	ok := []tagRule{
		{"reason", regexp.MustCompile(`^wasmcustom\.(reason=\.=([a-z0-9_]+);\.;)stoa_`)},
		{"tenant", regexp.MustCompile(`^wasmcustom\.(tenant=\.=([a-z0-9_-]+);\.;)stoa_`)},
	}
	require.NoError(t, checkExtraction(ok))
	for name, rules := range map[string][]tagRule{
		"tenant missing":              ok[:1],
		"no value group":              {ok[0], {"tenant", regexp.MustCompile(`^wasmcustom\.(tenant=\.=[a-z0-9_-]+;\.;)stoa_`)}},
		"groups swapped":              {ok[0], {"tenant", regexp.MustCompile(`^wasmcustom\.tenant=\.=(([a-z0-9_-]+);\.;)stoa_`)}},
		"value class too narrow":      {ok[0], {"tenant", regexp.MustCompile(`^wasmcustom\.(tenant=\.=([a-z]+);\.;)stoa_`)}},
		"separator left in the name":  {{"reason", regexp.MustCompile(`^wasmcustom\.(reason=\.=([a-z0-9_]+));\.;stoa_`)}, ok[1]},
		"istio rule for a typo'd tag": {istioExtraStatTagRule("reasons"), istioExtraStatTagRule("tenant")},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, checkExtraction(rules))
		})
	}
}
