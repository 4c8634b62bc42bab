package localproxy

// TagRule is one stats tag extractor (envoy.yaml stats_config.stats_tags).
type TagRule struct {
	Name, Regex string
}

// StatsTags are the tag-extraction rules the project ships in envoy.yaml
// (stats_config.stats_tags), so that the local proxy's /stats/prometheus
// shows the same names and labels as Envoy's:
// wasmcustom.reason=.=ip_limit;.;stoa_sse_rejected_total becomes
// stoa_sse_rejected_total{reason="ip_limit"}. TestStatsTagsMatchEnvoyYAML
// keeps this copy equal to envoy.yaml's.
var StatsTags = []TagRule{
	{Name: "reason", Regex: `^wasmcustom\.(reason=\.=([a-z0-9_]+);\.;)stoa_`},
	{Name: "tenant", Regex: `^wasmcustom\.(tenant=\.=([a-z0-9_-]+);\.;)stoa_`},
}
