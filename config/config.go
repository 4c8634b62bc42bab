// Package config parses and validates stoa-guard's configuration: the plugin
// JSON (Envoy `configuration`, Istio `pluginConfig`) merged with the
// operator-facing environment variables of SPEC.md, per key, with the
// precedence plugin JSON > environment > defaults.
//
// Parsing is strict: an unknown key at any level, a duplicate key, a wrong
// type or an out-of-range value is an error, and Parse returns ONE error, the
// first problem found in a deterministic order (the JSON in document order,
// then the environment variables in the order of SPEC.md's table, then the
// checks that involve several keys). The error names the key (JSON path like
// "sse.max_per_ip" or the environment variable name), quotes the bad value
// (cut to about 64 bytes) and says what is expected. Parse never panics.
//
// The result is compiled for the filter: CIDRs as netip.Prefix, durations as
// time.Duration, the CORS policy as a *cors.Policy, modes as DryRun flags.
// Warnings lists every rollback in force (for one start-up log line each);
// they never contain the contents of an allow list.
//
// The package is pure Go (no Wasm imports) and builds for GOOS=wasip1.
package config

import (
	"net/netip"
	"time"

	"github.com/stoa-platform/stoa-guard/filter/cors"
)

// Config is the validated, compiled configuration. It is immutable after
// Parse; slices must not be modified.
type Config struct {
	Audience Audience
	CORS     CORS
	SSE      SSE
	ClientIP ClientIP
	Metrics  Metrics
	Mode     Mode

	warnings []string
}

// Audience configures the JWT audience check.
type Audience struct {
	// Allowed audiences (ALLOWED_AUDIENCES, audience.allowed). Empty: the
	// check is disabled (rollback; warned).
	Allowed []string
	// AllowMissing accepts tokens without an aud claim (audience.allow_missing).
	AllowMissing bool
	// PayloadHeader is the lower-cased request header carrying the verified
	// JWT payload (jwt_authn forward_payload_header); "" when only
	// PayloadMetadataKey is used.
	PayloadHeader string
	// PayloadMetadataKey is the jwt_authn payload_in_metadata key; "" = unused.
	PayloadMetadataKey string
	// TenantClaim is the claim naming the tenant.
	TenantClaim string
	// ExemptPaths skip the audience check: an entry ending in "/" is a prefix,
	// any other entry an exact path.
	ExemptPaths []string
}

// Enabled reports whether the audience check runs (the allow list is not empty).
func (a Audience) Enabled() bool { return len(a.Allowed) > 0 }

// CORS configures the origin whitelist.
type CORS struct {
	// Config is the policy as configured (lists trimmed, empty items dropped).
	Config cors.PolicyConfig
	// Policy is Config compiled; never nil after Parse.
	Policy *cors.Policy
}

// SSE configures SSE detection and the connection limiter.
type SSE struct {
	Enabled                          bool // SSE_LIMITER_ENABLED, sse.enabled
	MaxPerIP, MaxPerTenant, MaxTotal int  // concurrent streams
	RateLimitPerMin                  int  // new admitted streams per client per rolling minute
	// RateLimitMessagePosts counts MCP Streamable HTTP message POSTs (Accept
	// lists application/json as well as text/event-stream) toward
	// RateLimitPerMin. false (default): such a POST holds a slot under the
	// three concurrency limits while open, but a client may send as many as
	// it makes calls.
	RateLimitMessagePosts    bool
	IdleTimeout, MaxDuration time.Duration // idle_timeout <= max_duration
	Tick                     time.Duration // 100ms..idle_timeout
	RetryAfter               int           // seconds, the Retry-After value
	Paths                    []string      // paths that are SSE whatever the Accept header (see IsPath)
	Scope                    string        // shared-data key namespace, [A-Za-z0-9_.-]{1,64}
	IPBuckets, TenantBuckets int           // shared-data buckets, 1..65536
}

// IsPath reports whether the request path (":path", query and fragment
// ignored) is one of Paths: an entry ending in "/" matches as a prefix, any
// other entry the path itself and everything below it ("/mcp/sse",
// "/mcp/sse/", "/mcp/sse/x", never "/mcp/ssex"), as Envoy's
// path_separated_prefix routes them. Case-sensitive; 0 allocations.
func (s *SSE) IsPath(path string) bool {
	for i := 0; i < len(path); i++ {
		if path[i] == '?' || path[i] == '#' {
			path = path[:i]
			break
		}
	}
	for _, p := range s.Paths {
		if p[len(p)-1] == '/' {
			if len(path) >= len(p) && path[:len(p)] == p {
				return true
			}
		} else if len(path) >= len(p) && path[:len(p)] == p && (len(path) == len(p) || path[len(p)] == '/') {
			return true
		}
	}
	return false
}

// Mode holds the per-control dry_run switches (mode.audience, mode.cors,
// mode.sse = "dry_run"): the control decides and counts but never refuses.
type Mode struct {
	AudienceDryRun, CORSDryRun, SSEDryRun bool
}

// ClientIP configures client identity.
type ClientIP struct {
	// TrustedProxies (SSE_TRUSTED_PROXIES, client_ip.trusted_proxies): only
	// peers inside one of them may set X-Forwarded-For. Masked prefixes; a
	// bare IP is a /32 or /128.
	TrustedProxies []netip.Prefix
	// IPv6Prefix is the prefix length IPv6 clients are keyed by (32..128).
	IPv6Prefix int
}

// Metrics configures metric cardinality.
type Metrics struct {
	// MaxTenantLabels caps distinct tenant label values; the overflow is
	// reported as "_other". 0 reports every tenant as "_other".
	MaxTenantLabels int
}

// Warnings returns one line per rollback or weakened control in force
// (audience check disabled, CORS wildcard mode, SSE limiter disabled, each
// dry_run mode, ...) and per environment variable overridden by the plugin
// JSON. Lines name keys and variables, never the contents of an allow list.
func (c *Config) Warnings() []string {
	if c == nil {
		return nil
	}
	return c.warnings
}

// Default values, as SPEC.md's table.
var (
	DefaultAllowedAudiences = []string{"stoa-mcp-gateway", "account"}
	DefaultCORSOrigins      = []string{
		"https://console.stoa.dev", "https://portal.stoa.dev",
		"https://console.gostoa.dev", "https://portal.gostoa.dev",
	}
	DefaultCORSAllowMethods  = []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"}
	DefaultCORSAllowHeaders  = []string{"Authorization", "Content-Type", "X-Request-ID", "X-Tenant-ID"}
	DefaultCORSExposeHeaders = []string{"X-Request-ID", "X-Trace-ID"}
	DefaultExemptPaths       = []string{"/.well-known/", "/health"}
	DefaultSSEPaths          = []string{"/mcp/sse"}
)

const (
	DefaultCORSMaxAge      = 600
	DefaultPayloadHeader   = "x-jwt-payload"
	DefaultTenantClaim     = "tenant_id"
	DefaultMaxPerIP        = 10
	DefaultMaxPerTenant    = 100
	DefaultMaxTotal        = 5000
	DefaultIdleTimeout     = 30 * time.Second
	DefaultMaxDuration     = time.Hour
	DefaultRatePerMin      = 5
	DefaultRetryAfter      = 60
	DefaultScope           = "default"
	DefaultIPBuckets       = 4096
	DefaultTenantBuckets   = 256
	DefaultTick            = time.Second
	DefaultIPv6Prefix      = 64
	DefaultMaxTenantLabels = 100
)

// Environment variable names (SPEC.md).
const (
	EnvAllowedAudiences  = "ALLOWED_AUDIENCES"
	EnvCORSOrigins       = "CORS_ORIGINS"
	EnvCORSAllowMethods  = "CORS_ALLOW_METHODS"
	EnvCORSAllowHeaders  = "CORS_ALLOW_HEADERS"
	EnvCORSExposeHeaders = "CORS_EXPOSE_HEADERS"
	EnvCORSMaxAge        = "CORS_MAX_AGE"
	EnvSSEEnabled        = "SSE_LIMITER_ENABLED"
	EnvTrustedProxies    = "SSE_TRUSTED_PROXIES"
)

// Limits of accepted values.
const (
	MaxConfigBytes   = 1 << 20 // plugin JSON size
	maxDepth         = 16      // JSON nesting
	maxLimit         = 1_000_000
	maxRate          = 1000 // the limiter keeps a client's newest admissions, at most this many
	minMaxDuration   = time.Second
	maxRetryAfter    = 86400
	minTick          = 100 * time.Millisecond
	maxTick          = time.Hour
	maxMaxDuration   = 24 * time.Hour
	minBuckets       = 1
	maxBuckets       = 65536
	minIPv6Prefix    = 32
	maxIPv6Prefix    = 128
	maxTenantLabels  = 10000
	maxListItems     = 1024
	maxStringLen     = 1024
	maxScopeLen      = 64
	maxTrustedPrefix = 1024
)

func defaults() *Config {
	c := &Config{
		Audience: Audience{
			Allowed:       clone(DefaultAllowedAudiences),
			PayloadHeader: DefaultPayloadHeader,
			TenantClaim:   DefaultTenantClaim,
			ExemptPaths:   clone(DefaultExemptPaths),
		},
		CORS: CORS{Config: cors.PolicyConfig{
			Origins:       clone(DefaultCORSOrigins),
			AllowMethods:  clone(DefaultCORSAllowMethods),
			AllowHeaders:  clone(DefaultCORSAllowHeaders),
			ExposeHeaders: clone(DefaultCORSExposeHeaders),
			MaxAge:        DefaultCORSMaxAge,
		}},
		SSE: SSE{
			Enabled:         true,
			MaxPerIP:        DefaultMaxPerIP,
			MaxPerTenant:    DefaultMaxPerTenant,
			MaxTotal:        DefaultMaxTotal,
			RateLimitPerMin: DefaultRatePerMin,
			IdleTimeout:     DefaultIdleTimeout,
			MaxDuration:     DefaultMaxDuration,
			Tick:            DefaultTick,
			RetryAfter:      DefaultRetryAfter,
			Paths:           clone(DefaultSSEPaths),
			Scope:           DefaultScope,
			IPBuckets:       DefaultIPBuckets,
			TenantBuckets:   DefaultTenantBuckets,
		},
		ClientIP: ClientIP{TrustedProxies: []netip.Prefix{}, IPv6Prefix: DefaultIPv6Prefix},
		Metrics:  Metrics{MaxTenantLabels: DefaultMaxTenantLabels},
	}
	return c
}

func clone(s []string) []string { return append([]string{}, s...) }

// Default returns the configuration with no plugin JSON and no environment.
func Default() *Config {
	c, err := Parse(nil, nil)
	if err != nil { // unreachable: the defaults are valid
		return nil
	}
	return c
}
