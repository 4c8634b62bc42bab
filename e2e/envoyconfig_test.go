package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	// Every extension envoy.yaml names, so that its typed_config Anys resolve and validate.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
)

// The filters envoy.yaml must run, in this order, on the MCP listener.
var wantHTTPFilters = []struct{ name, typeURL string }{
	{"envoy.filters.http.jwt_authn", "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"},
	{"envoy.filters.http.wasm", "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"},
	{"envoy.filters.http.router", "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}

// operatorEnv are the environment variables of SPEC.md; the plugin JSON must not shadow the
// ones with a documented rollback (JSON wins over the environment).
var operatorEnv = map[string]string{ // env name -> JSON key that would shadow it
	"ALLOWED_AUDIENCES":   "audience.allowed",
	"CORS_ORIGINS":        "cors.origins",
	"CORS_ALLOW_METHODS":  "cors.allow_methods",
	"CORS_ALLOW_HEADERS":  "cors.allow_headers",
	"CORS_EXPOSE_HEADERS": "cors.expose_headers",
	"CORS_MAX_AGE":        "cors.max_age",
	"SSE_LIMITER_ENABLED": "sse.enabled",
	"SSE_TRUSTED_PROXIES": "client_ip.trusted_proxies",
}

// yamlToStrictJSON converts YAML to JSON, refusing duplicate keys.
func yamlToStrictJSON(b []byte) ([]byte, error) {
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	return j, nil
}

// strictProto is protojson with unknown fields refused and Anys resolved from the registry.
var strictProto = protojson.UnmarshalOptions{DiscardUnknown: false, Resolver: protoregistry.GlobalTypes}

type validatorAll interface{ ValidateAll() error }

// deepValidate runs the generated validation on m and on every message inside every Any,
// recursively (the generated ValidateAll stops at typed_config), and refuses deprecated fields.
func deepValidate(m proto.Message) error {
	var errs []error
	var walk func(path string, m protoreflect.Message)
	validate := func(path string, m protoreflect.Message) {
		if v, ok := m.Interface().(validatorAll); ok {
			if err := v.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", path, m.Descriptor().FullName(), err))
			}
		}
	}
	walk = func(path string, m protoreflect.Message) {
		if m.Descriptor().FullName() == "google.protobuf.Any" {
			a := m.Interface().(*anypb.Any)
			inner, err := a.UnmarshalNew()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: cannot unpack %s: %w", path, a.GetTypeUrl(), err))
				return
			}
			p := path + "[" + a.GetTypeUrl() + "]"
			validate(p, inner.ProtoReflect())
			walk(p, inner.ProtoReflect())
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			fp := path + "." + string(fd.Name())
			if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
				errs = append(errs, fmt.Errorf("%s: deprecated field is set", fp))
			}
			if fd.Enum() != nil && !fd.IsList() && !fd.IsMap() {
				if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
					if opts, ok := ev.Options().(*descriptorpb.EnumValueOptions); ok && opts.GetDeprecated() {
						errs = append(errs, fmt.Errorf("%s: deprecated enum value %s", fp, ev.Name()))
					}
				}
			}
			switch {
			case fd.IsList() && fd.Message() != nil:
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					walk(fmt.Sprintf("%s[%d]", fp, i), l.Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(fmt.Sprintf("%s[%s]", fp, k.String()), mv.Message())
					return true
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				walk(fp, v.Message())
			}
			return true
		})
	}
	validate("bootstrap", m.ProtoReflect())
	walk("bootstrap", m.ProtoReflect())
	return errors.Join(errs...)
}

// loadBootstrap is the whole read path: YAML (no duplicate keys) -> JSON -> strict protojson.
func loadBootstrap(b []byte) (*bootstrapv3.Bootstrap, error) {
	j, err := yamlToStrictJSON(b)
	if err != nil {
		return nil, err
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := strictProto.Unmarshal(j, bs); err != nil {
		return nil, fmt.Errorf("protojson: %w", err)
	}
	return bs, nil
}

// envoyParts are the pieces of envoy.yaml the hand checks look at.
type envoyParts struct {
	bs      *bootstrapv3.Bootstrap
	hcm     *hcmv3.HttpConnectionManager
	jwt     *jwtv3.JwtAuthentication
	wasm    *wasmv3.PluginConfig
	plugin  []byte            // the Wasm configuration JSON
	env     map[string]string // vm_config.environment_variables.key_values
	filters []string
}

func extractEnvoyParts(bs *bootstrapv3.Bootstrap) (*envoyParts, error) {
	p := &envoyParts{bs: bs}
	for _, l := range bs.GetStaticResources().GetListeners() {
		if l.GetName() != "stoa_mcp" {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().MessageIs(h) {
					if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
						return nil, err
					}
					p.hcm = h
				}
			}
		}
	}
	if p.hcm == nil {
		return nil, errors.New("no http_connection_manager on listener stoa_mcp")
	}
	for _, f := range p.hcm.GetHttpFilters() {
		p.filters = append(p.filters, f.GetName())
		switch f.GetName() {
		case "envoy.filters.http.jwt_authn":
			p.jwt = &jwtv3.JwtAuthentication{}
			if err := f.GetTypedConfig().UnmarshalTo(p.jwt); err != nil {
				return nil, fmt.Errorf("jwt_authn: %w", err)
			}
		case "envoy.filters.http.wasm":
			w := &wasmfilterv3.Wasm{}
			if err := f.GetTypedConfig().UnmarshalTo(w); err != nil {
				return nil, fmt.Errorf("wasm: %w", err)
			}
			p.wasm = w.GetConfig()
			sv := &wrapperspb.StringValue{}
			if err := p.wasm.GetConfiguration().UnmarshalTo(sv); err != nil {
				return nil, fmt.Errorf("wasm configuration must be a google.protobuf.StringValue: %w", err)
			}
			p.plugin = []byte(sv.GetValue())
			p.env = p.wasm.GetVmConfig().GetEnvironmentVariables().GetKeyValues()
		}
	}
	if p.jwt == nil || p.wasm == nil {
		return nil, fmt.Errorf("filters %v: jwt_authn and wasm are both required", p.filters)
	}
	return p, nil
}

// handCheckEnvoy checks what the generated validation rules cannot know.
func handCheckEnvoy(p *envoyParts) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	// Filter order and types.
	if len(p.hcm.GetHttpFilters()) != len(wantHTTPFilters) {
		bad("http_filters %v, want %d filters: jwt_authn, wasm, router", p.filters, len(wantHTTPFilters))
	} else {
		for i, f := range p.hcm.GetHttpFilters() {
			if f.GetName() != wantHTTPFilters[i].name || f.GetTypedConfig().GetTypeUrl() != wantHTTPFilters[i].typeURL {
				bad("http_filters[%d] = %s (%s), want %s", i, f.GetName(), f.GetTypedConfig().GetTypeUrl(), wantHTTPFilters[i].name)
			}
		}
	}

	// Admin on loopback only.
	adm := p.bs.GetAdmin().GetAddress().GetSocketAddress().GetAddress()
	if a, err := netip.ParseAddr(adm); err != nil || !a.IsLoopback() {
		bad("admin address %q is not a loopback address", adm)
	}

	// Every route's cluster exists.
	clusters := map[string]bool{}
	for _, c := range p.bs.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = true
	}
	for _, l := range p.bs.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				h := &hcmv3.HttpConnectionManager{}
				if !f.GetTypedConfig().MessageIs(h) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
					bad("listener %s: %v", l.GetName(), err)
					continue
				}
				for _, vh := range h.GetRouteConfig().GetVirtualHosts() {
					for _, r := range vh.GetRoutes() {
						ra := r.GetRoute()
						if ra == nil {
							continue
						}
						names := []string{ra.GetCluster()}
						for _, wc := range ra.GetWeightedClusters().GetClusters() {
							names = append(names, wc.GetName())
						}
						for _, n := range names {
							if n != "" && !clusters[n] {
								bad("listener %s route %q: cluster %q is not defined", l.GetName(), r.GetName(), n)
							}
						}
						if ra.GetClusterHeader() != "" {
							bad("route %q: cluster_header routes cannot be checked", r.GetName())
						}
					}
				}
			}
		}
	}

	// Wasm VM.
	vm := p.wasm.GetVmConfig()
	if vm.GetRuntime() != "envoy.wasm.runtime.v8" {
		bad("wasm runtime %q, want envoy.wasm.runtime.v8", vm.GetRuntime())
	}
	if fn := vm.GetCode().GetLocal().GetFilename(); fn != "/etc/envoy/filter.wasm" {
		bad("wasm code %q, want local file /etc/envoy/filter.wasm (the compose mount)", fn)
	}
	if vm.GetVmId() == "" {
		bad("wasm vm_id is empty: shared data is keyed by vm_id")
	}
	if p.wasm.GetFailurePolicy() != wasmv3.FailurePolicy_FAIL_CLOSED {
		bad("wasm failure_policy %v, want FAIL_CLOSED (a failed security filter must not let traffic through)", p.wasm.GetFailurePolicy())
	}
	for k := range p.env {
		if _, ok := operatorEnv[k]; !ok {
			bad("wasm environment variable %q is not an operator variable of SPEC.md", k)
		}
	}
	for _, k := range []string{"ALLOWED_AUDIENCES", "CORS_ORIGINS", "SSE_LIMITER_ENABLED", "SSE_TRUSTED_PROXIES"} {
		if _, ok := p.env[k]; !ok {
			bad("wasm environment variable %s is missing (operators roll back through it)", k)
		}
	}
	cfg, err := pluginView(p.plugin)
	if err != nil {
		bad("wasm configuration: %v", err)
		return errors.Join(errs...)
	}
	if err := checkNoShadowing(p.plugin); err != nil {
		bad("wasm configuration: %v", err)
	}

	// jwt_authn <-> filter agreement.
	if !p.jwt.GetBypassCorsPreflight() {
		bad("jwt_authn bypass_cors_preflight must be true (preflights carry no token)")
	}
	if len(p.jwt.GetProviders()) == 0 {
		bad("jwt_authn has no provider")
	}
	for name, pr := range p.jwt.GetProviders() {
		if pr.GetIssuer() == "" {
			bad("jwt_authn provider %s: issuer is empty", name)
		}
		if len(pr.GetAudiences()) > 0 {
			bad("jwt_authn provider %s sets audiences %v: the audience check is the filter's (metrics, rollback)", name, pr.GetAudiences())
		}
		if pr.GetForwardPayloadHeader() != cfg.Audience.PayloadHeader {
			bad("jwt_authn provider %s forward_payload_header %q != filter audience.payload_header %q", name, pr.GetForwardPayloadHeader(), cfg.Audience.PayloadHeader)
		}
		if cfg.Audience.PayloadMetadataKey != "" && pr.GetPayloadInMetadata() != cfg.Audience.PayloadMetadataKey {
			bad("jwt_authn provider %s payload_in_metadata %q != filter audience.payload_metadata_key %q", name, pr.GetPayloadInMetadata(), cfg.Audience.PayloadMetadataKey)
		}
	}
	mcpRequired := false
	for _, r := range p.jwt.GetRules() {
		m := r.GetMatch()
		if m.GetPathSeparatedPrefix() == "/mcp" || m.GetPrefix() == "/mcp" {
			if _, ok := p.jwt.GetProviders()[r.GetRequires().GetProviderName()]; ok {
				mcpRequired = true
			}
		}
	}
	if !mcpRequired {
		bad("jwt_authn must require a provider on /mcp (authentication must survive ALLOWED_AUDIENCES=\"\")")
	}

	// SSE route timeouts: Envoy's are backstops just above the filter's.
	idle, err1 := time.ParseDuration(cfg.SSE.IdleTimeout)
	maxd, err2 := time.ParseDuration(cfg.SSE.MaxDuration)
	if err1 != nil || err2 != nil {
		bad("sse.idle_timeout %q / sse.max_duration %q must be set as Go durations here", cfg.SSE.IdleTimeout, cfg.SSE.MaxDuration)
	}
	found := false
	for _, vh := range p.hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if !routeCovers(r.GetMatch(), "/mcp/sse") {
				continue
			}
			if !found {
				found = true // the first matching route is the one Envoy uses
				checkSSERoute(r, idle, maxd, bad)
			}
		}
	}
	if !found {
		bad("no route serves /mcp/sse")
	}
	return errors.Join(errs...)
}

func routeCovers(m *routev3.RouteMatch, path string) bool {
	switch {
	case m.GetPath() != "":
		return m.GetPath() == path
	case m.GetPathSeparatedPrefix() != "":
		pre := m.GetPathSeparatedPrefix()
		return path == pre || strings.HasPrefix(path, pre+"/")
	case m.GetPrefix() != "":
		return strings.HasPrefix(path, m.GetPrefix())
	}
	return false
}

func checkSSERoute(r *routev3.Route, idle, maxd time.Duration, bad func(string, ...any)) {
	ra := r.GetRoute()
	if ra == nil {
		bad("route %q serving /mcp/sse is not a forwarding route", r.GetName())
		return
	}
	if ra.GetTimeout() == nil || ra.GetTimeout().AsDuration() != 0 {
		bad("route %q: timeout must be 0s for SSE (got %v)", r.GetName(), ra.GetTimeout().AsDuration())
	}
	if it := ra.GetIdleTimeout().AsDuration(); ra.GetIdleTimeout() == nil || it < idle || it > idle+10*time.Second {
		bad("route %q: idle_timeout %v must be a backstop in [%v, %v] (filter sse.idle_timeout)", r.GetName(), it, idle, idle+10*time.Second)
	}
	md := ra.GetMaxStreamDuration().GetMaxStreamDuration()
	if md == nil || md.AsDuration() < maxd || md.AsDuration() > maxd+5*time.Minute {
		bad("route %q: max_stream_duration %v must be a backstop in [%v, %v] (filter sse.max_duration)", r.GetName(), md.AsDuration(), maxd, maxd+5*time.Minute)
	}
}

// pluginJSON is the part of the filter's configuration the deployment checks read. It is decoded
// leniently here; the filter's own parser (config.Parse) is the strict judge, see
// configparser_test.go.
type pluginJSON struct {
	Audience struct {
		PayloadHeader      string   `json:"payload_header"`
		PayloadMetadataKey string   `json:"payload_metadata_key"`
		ExemptPaths        []string `json:"exempt_paths"`
	} `json:"audience"`
	SSE struct {
		IdleTimeout string `json:"idle_timeout"`
		MaxDuration string `json:"max_duration"`
		RetryAfter  int    `json:"retry_after"`
	} `json:"sse"`
}

func pluginView(b []byte) (*pluginJSON, error) {
	var v pluginJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	if v.Audience.PayloadHeader == "" {
		v.Audience.PayloadHeader = "x-jwt-payload" // SPEC default
	}
	return &v, nil
}

// checkNoShadowing refuses plugin JSON keys that would override an operator variable: with
// them, the documented one-line rollbacks (env) would silently do nothing.
func checkNoShadowing(b []byte) error {
	var m map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("not a JSON object of sections: %w", err)
	}
	var errs []error
	keys := make([]string, 0, len(operatorEnv))
	for k := range operatorEnv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, env := range keys {
		sec, key, _ := strings.Cut(operatorEnv[env], ".")
		if _, ok := m[sec][key]; ok {
			errs = append(errs, fmt.Errorf("JSON key %s shadows %s (JSON wins over env: the rollback would not work)", operatorEnv[env], env))
		}
	}
	return errors.Join(errs...)
}

// validateEnvoyYAML is everything the test proves about envoy.yaml, short of the filter's parser.
func validateEnvoyYAML(b []byte) (*envoyParts, error) {
	bs, err := loadBootstrap(b)
	if err != nil {
		return nil, err
	}
	if err := deepValidate(bs); err != nil {
		return nil, fmt.Errorf("validation: %w", err)
	}
	p, err := extractEnvoyParts(bs)
	if err != nil {
		return nil, err
	}
	if err := handCheckEnvoy(p); err != nil {
		return nil, err
	}
	if err := checkStatsTags(bs); err != nil {
		return nil, err
	}
	return p, nil
}

func TestEnvoyYAMLIsValid(t *testing.T) {
	p, err := validateEnvoyYAML(readRepoFile(t, "envoy.yaml"))
	require.NoError(t, err)
	require.Equal(t, []string{"envoy.filters.http.jwt_authn", "envoy.filters.http.wasm", "envoy.filters.http.router"}, p.filters)
}

// TestEnvoyYAMLBrokenTwins proves each check can fail: every twin is envoy.yaml with one defect.
func TestEnvoyYAMLBrokenTwins(t *testing.T) {
	src := readRepoFile(t, "envoy.yaml")
	twins := []twin{
		{name: "typo'd field", old: "forward_payload_header:", repl: "forward_payload_headr:", wantErr: `unknown field "forward_payload_headr"`},
		{name: "typo'd field at top level", old: "stats_config:", repl: "stat_config:", wantErr: `unknown field "stat_config"`},
		{name: "wrong enum", old: "failure_policy: FAIL_CLOSED", repl: "failure_policy: FAIL_CLOSE", wantErr: "FAIL_CLOSE"},
		{name: "duplicate key", old: "stat_prefix: stoa_mcp", repl: "stat_prefix: stoa_mcp\n          stat_prefix: other", wantErr: "already set in map"},
		{name: "unknown typed_config type", old: "downstream_connections.v3.DownstreamConnectionsConfig", repl: "downstream_connections.v3.DownstreamConnectionConfig", wantErr: "DownstreamConnectionConfig"},
		{name: "rule broken inside an Any (deep validation)", old: "stat_prefix: stoa_mcp", repl: `stat_prefix: ""`, wantErr: "StatPrefix"},
		{name: "rule broken two Anys deep", old: "max_active_downstream_connections: 10000", repl: "max_active_downstream_connections: 0", wantErr: "MaxActiveDownstreamConnections"},
		{name: "deprecated fail_open", old: "failure_policy: FAIL_CLOSED", repl: "fail_open: true", wantErr: "deprecated field"},
		{name: "route to a missing cluster", old: "cluster: mcp_demo", repl: "cluster: mcp_dmeo", nth: 2, wantErr: `cluster "mcp_dmeo" is not defined`},
		{name: "other wasm runtime", old: "runtime: envoy.wasm.runtime.v8", repl: "runtime: envoy.wasm.runtime.wamr", wantErr: "want envoy.wasm.runtime.v8"},
		{name: "module elsewhere", old: "filename: /etc/envoy/filter.wasm", repl: "filename: /tmp/filter.wasm", wantErr: "want local file /etc/envoy/filter.wasm"},
		{name: "admin on every interface", old: "address: 127.0.0.1, port_value: 9901 }\n\nstats_config", repl: "address: 0.0.0.0, port_value: 9901 }\n\nstats_config", wantErr: "not a loopback address"},
		{name: "jwt_authn enforces audiences", old: "issuer: https://auth.stoa.local/realms/demo", repl: "issuer: https://auth.stoa.local/realms/demo\n                  audiences: [stoa-mcp-gateway]", wantErr: "sets audiences"},
		{name: "payload header disagreement", old: "forward_payload_header: x-jwt-payload", repl: "forward_payload_header: x-payload", wantErr: "forward_payload_header"},
		{name: "no preflight bypass", old: "bypass_cors_preflight: true", repl: "bypass_cors_preflight: false", wantErr: "bypass_cors_preflight"},
		{name: "/mcp without authentication", old: "requires: { provider_name: stoa_demo }", repl: "requires: { allow_missing: {} }", wantErr: "must require a provider on /mcp"},
		{name: "SSE route with a response timeout", old: "timeout: 0s", repl: "timeout: 15s", wantErr: "timeout must be 0s"},
		{name: "SSE idle backstop below the filter's", old: "idle_timeout: 35s", repl: "idle_timeout: 20s", wantErr: "idle_timeout 20s"},
		{name: "SSE lifetime backstop below the filter's", old: "max_stream_duration: 3660s", repl: "max_stream_duration: 1800s", wantErr: "max_stream_duration 30m0s"},
		{name: "plugin JSON shadows a rollback variable", old: `"allow_missing": false,`, repl: `"allow_missing": false, "allowed": ["stoa-mcp-gateway"],`, wantErr: "shadows ALLOWED_AUDIENCES"},
		{name: "plugin JSON is not JSON", old: `"mode": {`, repl: `"mode": {{`, wantErr: "wasm configuration"},
		{name: "unknown environment variable", old: "SSE_LIMITER_ENABLED: \"true\"", repl: "SSE_LIMITER_ENABLE: \"true\"", wantErr: `"SSE_LIMITER_ENABLE" is not an operator variable`},
		{name: "stats tag regex typo", old: `regex: '^wasmcustom\.(reason=\.=`, repl: `regex: '^wasmcustom\.(reasn=\.=`, wantErr: "reason"},
		{name: "stats tag regex without a value group", old: `(tenant=\.=([a-z0-9_-]+);\.;)`, repl: `(tenant=\.=[a-z0-9_-]+;\.;)`, wantErr: "tenant"},
	}
	for _, tw := range twins {
		t.Run(tw.name, func(t *testing.T) {
			_, err := validateEnvoyYAML(tw.apply(t, src))
			require.Error(t, err)
			require.Contains(t, err.Error(), tw.wantErr)
		})
	}
}

// TestEnvoyFilterOrderTwin swaps the jwt_authn and wasm filter blocks of envoy.yaml: the filter
// would then trust a client-sent x-jwt-payload header that jwt_authn has not yet removed.
func TestEnvoyFilterOrderTwin(t *testing.T) {
	src := string(readRepoFile(t, "envoy.yaml"))
	const jwtMark = "          - name: envoy.filters.http.jwt_authn\n"
	const wasmMark = "          - name: envoy.filters.http.wasm\n"
	const routerMark = "          - name: envoy.filters.http.router\n"
	i, j, k := strings.Index(src, jwtMark), strings.Index(src, wasmMark), strings.Index(src, routerMark)
	require.True(t, 0 <= i && i < j && j < k, "filter blocks not found in the expected order")
	swapped := src[:i] + src[j:k] + src[i:j] + src[k:]
	_, err := validateEnvoyYAML([]byte(swapped))
	require.ErrorContains(t, err, "http_filters[0] = envoy.filters.http.wasm")
}

// TestShallowValidationMissesTypedConfig pins why the deep walk exists: the generated
// ValidateAll of the bootstrap accepts a broken HttpConnectionManager inside typed_config.
func TestShallowValidationMissesTypedConfig(t *testing.T) {
	src := readRepoFile(t, "envoy.yaml")
	bs, err := loadBootstrap(mutate(t, src, "stat_prefix: stoa_mcp", `stat_prefix: ""`, 1))
	require.NoError(t, err)
	require.NoError(t, bs.ValidateAll(), "generated validation alone")
	require.ErrorContains(t, deepValidate(bs), "StatPrefix")
}
