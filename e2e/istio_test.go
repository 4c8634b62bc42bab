package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	extv1alpha1 "istio.io/api/extensions/v1alpha1"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
)

// istioDoc is one YAML document of istio/, decoded.
type istioDoc struct {
	file, kind, apiVersion string
	meta                   metav1.ObjectMeta
	obj                    any // the typed spec or object
}

// splitYAML splits a multi-document YAML stream; empty documents are dropped.
func splitYAML(b []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) == 0 || t[0] == '#' || string(t) == "---" {
			continue
		}
		out = append(out, l...)
		out = append(out, '\n')
	}
	return out
}

// strictJSON decodes JSON into v the way the Kubernetes API server does in strict mode:
// field names case-sensitive (encoding/json would take "readOnlyRootFileSystem" for
// "readOnlyRootFilesystem"), unknown and duplicate fields refused.
func strictJSON(b []byte, v any) error {
	strict, err := kjson.UnmarshalStrict(b, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// strictK8sYAML decodes a Kubernetes object from YAML strictly (see strictJSON).
func strictK8sYAML(y []byte, v any) error {
	j, err := yamlToStrictJSON(y)
	if err != nil {
		return err
	}
	return strictJSON(j, v)
}

// crd is the envelope of a custom resource whose spec is an Istio proto (or other JSON).
type crd struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
}

// istioSpec maps a kind to its apiVersion and a fresh istio.io/api message for its spec.
var istioSpec = map[string]struct {
	apiVersion string
	spec       func() proto.Message
}{
	"WasmPlugin":            {"extensions.istio.io/v1alpha1", func() proto.Message { return &extv1alpha1.WasmPlugin{} }},
	"RequestAuthentication": {"security.istio.io/v1", func() proto.Message { return &securityv1.RequestAuthentication{} }},
	"AuthorizationPolicy":   {"security.istio.io/v1", func() proto.Message { return &securityv1.AuthorizationPolicy{} }},
}

// k8sKinds are the Kubernetes objects istio/ may hold, decoded strictly into k8s.io/api types.
var k8sKinds = map[string]struct {
	apiVersion string
	obj        func() any
}{
	"Namespace":     {"v1", func() any { return &corev1.Namespace{} }},
	"NetworkPolicy": {"networking.k8s.io/v1", func() any { return &networkingv1.NetworkPolicy{} }},
	"Deployment":    {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"StatefulSet":   {"apps/v1", func() any { return &appsv1.StatefulSet{} }},
	"DaemonSet":     {"apps/v1", func() any { return &appsv1.DaemonSet{} }},
	"Job":           {"batch/v1", func() any { return &batchv1.Job{} }},
	"Pod":           {"v1", func() any { return &corev1.Pod{} }},
}

// istioOperator is the part of install.istio.io/v1alpha1 IstioOperator that istio/mesh.yaml uses;
// meshConfig itself is decoded with protojson into istio.io/api's MeshConfig.
type istioOperator struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	} `json:"spec"`
}

// prometheusRule mirrors monitoring.coreos.com/v1 PrometheusRule (prometheus-operator's types
// are not a dependency here); decoded strictly.
type prometheusRule struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []struct {
				Alert         string            `json:"alert,omitempty"`
				Record        string            `json:"record,omitempty"`
				Expr          string            `json:"expr"`
				For           string            `json:"for,omitempty"`
				KeepFiringFor string            `json:"keep_firing_for,omitempty"`
				Labels        map[string]string `json:"labels,omitempty"`
				Annotations   map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// decodeIstioDoc decodes one document strictly with the real API types.
func decodeIstioDoc(file string, y []byte) (*istioDoc, error) {
	j, err := yamlToStrictJSON(y)
	if err != nil {
		return nil, err
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		return nil, err
	}
	d := &istioDoc{file: file, kind: head.Kind, apiVersion: head.APIVersion}
	if s, ok := istioSpec[head.Kind]; ok {
		if head.APIVersion != s.apiVersion {
			return nil, fmt.Errorf("%s: apiVersion %q, want %q", head.Kind, head.APIVersion, s.apiVersion)
		}
		var c crd
		if err := strictJSON(j, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", head.Kind, err)
		}
		spec := s.spec()
		// protojson, not the types' UnmarshalJSON: that one silently drops unknown fields.
		if err := strictProto.Unmarshal(c.Spec, spec); err != nil {
			return nil, fmt.Errorf("%s spec: %w", head.Kind, err)
		}
		d.meta, d.obj = c.Metadata, spec
		return d, nil
	}
	if k, ok := k8sKinds[head.Kind]; ok {
		if head.APIVersion != k.apiVersion {
			return nil, fmt.Errorf("%s: apiVersion %q, want %q", head.Kind, head.APIVersion, k.apiVersion)
		}
		obj := k.obj()
		if err := strictK8sYAML(y, obj); err != nil {
			return nil, fmt.Errorf("%s: %w", head.Kind, err)
		}
		d.meta, d.obj = *objectMeta(obj), obj
		return d, nil
	}
	switch head.Kind {
	case "IstioOperator":
		var op istioOperator
		if head.APIVersion != "install.istio.io/v1alpha1" {
			return nil, fmt.Errorf("IstioOperator: apiVersion %q", head.APIVersion)
		}
		if err := strictJSON(j, &op); err != nil {
			return nil, fmt.Errorf("IstioOperator: %w", err)
		}
		mc := &meshv1alpha1.MeshConfig{}
		if err := strictProto.Unmarshal(op.Spec.MeshConfig, mc); err != nil {
			return nil, fmt.Errorf("IstioOperator meshConfig: %w", err)
		}
		d.meta, d.obj = op.Metadata, mc
		return d, nil
	case "PrometheusRule":
		var pr prometheusRule
		if head.APIVersion != "monitoring.coreos.com/v1" {
			return nil, fmt.Errorf("PrometheusRule: apiVersion %q", head.APIVersion)
		}
		if err := strictJSON(j, &pr); err != nil {
			return nil, fmt.Errorf("PrometheusRule: %w", err)
		}
		d.meta, d.obj = pr.Metadata, &pr
		return d, nil
	}
	return nil, fmt.Errorf("kind %q (%s) is not one this test knows how to validate", head.Kind, head.APIVersion)
}

func objectMeta(obj any) *metav1.ObjectMeta {
	switch o := obj.(type) {
	case *corev1.Namespace:
		return &o.ObjectMeta
	case *networkingv1.NetworkPolicy:
		return &o.ObjectMeta
	case *appsv1.Deployment:
		return &o.ObjectMeta
	case *appsv1.StatefulSet:
		return &o.ObjectMeta
	case *appsv1.DaemonSet:
		return &o.ObjectMeta
	case *batchv1.Job:
		return &o.ObjectMeta
	case *corev1.Pod:
		return &o.ObjectMeta
	}
	return &metav1.ObjectMeta{}
}

// istioFiles reads every YAML file of istio/ (name -> content).
func istioFiles(t testing.TB) map[string][]byte {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "istio")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, e := range ents {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = b
	}
	require.NotEmpty(t, files)
	return files
}

// validateIstio decodes and checks the whole istio/ directory as one set.
func validateIstio(files map[string][]byte) error {
	var docs []*istioDoc
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ys, err := splitYAML(files[n])
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		for i, y := range ys {
			d, err := decodeIstioDoc(n, y)
			if err != nil {
				return fmt.Errorf("%s doc %d: %w", n, i, err)
			}
			docs = append(docs, d)
		}
	}
	return checkIstioSet(docs)
}

var (
	ociDigestURL = regexp.MustCompile(`^oci://[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:([0-9a-f]{64})$`)
	sha256Hex    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

const gatewayApp = "stoa-mcp-gateway"

func checkIstioSet(docs []*istioDoc) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	byKind := map[string][]*istioDoc{}
	for _, d := range docs {
		byKind[d.kind] = append(byKind[d.kind], d)
	}
	one := func(kind string) *istioDoc {
		if len(byKind[kind]) != 1 {
			bad("want exactly one %s, found %d", kind, len(byKind[kind]))
			return nil
		}
		return byKind[kind][0]
	}

	// Namespace with the restricted Pod Security Standard.
	ns := ""
	if d := one("Namespace"); d != nil {
		ns = d.meta.Name
		for _, mode := range []string{"enforce", "audit", "warn"} {
			if v := d.meta.Labels["pod-security.kubernetes.io/"+mode]; v != "restricted" {
				bad("Namespace %s: label pod-security.kubernetes.io/%s = %q, want restricted", ns, mode, v)
			}
		}
	}
	for _, d := range docs {
		if d.kind == "Namespace" || d.kind == "IstioOperator" {
			continue
		}
		if d.meta.Namespace != ns {
			bad("%s %s (%s): namespace %q, want %q", d.kind, d.meta.Name, d.file, d.meta.Namespace, ns)
		}
	}

	var payloadHeader string
	if d := one("WasmPlugin"); d != nil {
		payloadHeader = checkWasmPlugin(d.obj.(*extv1alpha1.WasmPlugin), bad)
	}
	if d := one("RequestAuthentication"); d != nil {
		ra := d.obj.(*securityv1.RequestAuthentication)
		checkSelector("RequestAuthentication", ra.GetSelector(), bad)
		if len(ra.GetJwtRules()) == 0 {
			bad("RequestAuthentication: no jwtRules")
		}
		for i, r := range ra.GetJwtRules() {
			if r.GetIssuer() == "" {
				bad("RequestAuthentication jwtRules[%d]: issuer is required", i)
			}
			if !strings.HasPrefix(r.GetJwksUri(), "https://") && r.GetJwks() == "" {
				bad("RequestAuthentication jwtRules[%d]: jwksUri must be https (or jwks inline)", i)
			}
			if len(r.GetAudiences()) > 0 {
				bad("RequestAuthentication jwtRules[%d] sets audiences %v: the audience check is stoa-guard's (metrics, rollback)", i, r.GetAudiences())
			}
			if r.GetOutputPayloadToHeader() == "" || !strings.EqualFold(r.GetOutputPayloadToHeader(), payloadHeader) {
				bad("RequestAuthentication jwtRules[%d]: outputPayloadToHeader %q != pluginConfig audience.payload_header %q", i, r.GetOutputPayloadToHeader(), payloadHeader)
			}
		}
	}
	if d := one("AuthorizationPolicy"); d != nil {
		ap := d.obj.(*securityv1.AuthorizationPolicy)
		checkSelector("AuthorizationPolicy", ap.GetSelector(), bad)
		if ap.GetAction() != securityv1.AuthorizationPolicy_ALLOW {
			bad("AuthorizationPolicy: action %v, want ALLOW", ap.GetAction())
		}
		principals := false
		for _, r := range ap.GetRules() {
			if len(r.GetFrom()) == 0 && len(r.GetTo()) == 0 && len(r.GetWhen()) == 0 {
				bad("AuthorizationPolicy: an empty rule allows everything")
			}
			for _, f := range r.GetFrom() {
				if slices.Contains(f.GetSource().GetRequestPrincipals(), "*") {
					principals = true
				}
			}
		}
		if !principals {
			bad("AuthorizationPolicy: no rule requires a request principal (a verified JWT)")
		}
	}
	if d := one("NetworkPolicy"); d != nil {
		checkNetworkPolicy(d.obj.(*networkingv1.NetworkPolicy), bad)
	}
	if d := one("IstioOperator"); d != nil {
		mc := d.obj.(*meshv1alpha1.MeshConfig)
		if !slices.Contains(mc.GetDefaultConfig().GetProxyStatsMatcher().GetInclusionPrefixes(), "wasmcustom") {
			bad("meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes must include wasmcustom")
		}
		for _, tag := range []string{"reason", "tenant"} {
			if !slices.Contains(mc.GetDefaultConfig().GetExtraStatTags(), tag) {
				bad("meshConfig.defaultConfig.extraStatTags must include %s", tag)
			}
		}
	}
	if d := one("PrometheusRule"); d != nil {
		checkPrometheusRule(d.obj.(*prometheusRule), bad)
	}
	for _, d := range docs {
		if spec, ok := podSpecOf(d.obj); ok {
			if err := checkRestrictedPod(spec); err != nil {
				bad("%s %s: %v", d.kind, d.meta.Name, err)
			}
		}
	}
	return errors.Join(errs...)
}

func checkSelector(kind string, s *typev1beta1.WorkloadSelector, bad func(string, ...any)) {
	if s.GetMatchLabels()["app"] != gatewayApp {
		bad("%s: selector must be app=%s, got %v", kind, gatewayApp, s.GetMatchLabels())
	}
}

// checkWasmPlugin returns the payload header the plugin reads.
func checkWasmPlugin(w *extv1alpha1.WasmPlugin, bad func(string, ...any)) string {
	if len(w.GetTargetRefs()) == 0 {
		checkSelector("WasmPlugin", w.GetSelector(), bad)
	}
	m := ociDigestURL.FindStringSubmatch(w.GetUrl())
	if m == nil {
		bad("WasmPlugin url %q: want oci://<registry>/<repo>@sha256:<64 hex> (pinned by digest)", w.GetUrl())
	} else if w.GetSha256() != m[2] {
		bad("WasmPlugin sha256 %q != the url's digest %q", w.GetSha256(), m[2])
	}
	if !sha256Hex.MatchString(w.GetSha256()) {
		bad("WasmPlugin sha256 %q is not 64 lower-case hex digits", w.GetSha256())
	}
	if w.GetPhase() != extv1alpha1.PluginPhase_AUTHZ {
		bad("WasmPlugin phase %v, want AUTHZ (after Istio's jwt_authn, which runs in AUTHN)", w.GetPhase())
	}
	if w.GetFailStrategy() != extv1alpha1.FailStrategy_FAIL_CLOSE {
		bad("WasmPlugin failStrategy %v, want FAIL_CLOSE", w.GetFailStrategy())
	}
	if w.GetType() != extv1alpha1.PluginType_HTTP {
		bad("WasmPlugin type %v, want HTTP", w.GetType())
	}
	env := map[string]bool{}
	for _, e := range w.GetVmConfig().GetEnv() {
		if _, ok := operatorEnv[e.GetName()]; !ok {
			bad("WasmPlugin vmConfig.env %q is not an operator variable of SPEC.md", e.GetName())
		}
		if e.GetValueFrom() != extv1alpha1.EnvValueSource_INLINE {
			bad("WasmPlugin vmConfig.env %s: valueFrom %v, want INLINE", e.GetName(), e.GetValueFrom())
		}
		env[e.GetName()] = true
	}
	for _, k := range []string{"ALLOWED_AUDIENCES", "CORS_ORIGINS", "SSE_LIMITER_ENABLED", "SSE_TRUSTED_PROXIES"} {
		if !env[k] {
			bad("WasmPlugin vmConfig.env: %s is missing (operators roll back through it)", k)
		}
	}
	pj, err := w.GetPluginConfig().MarshalJSON()
	if err != nil || w.GetPluginConfig() == nil {
		bad("WasmPlugin pluginConfig is required")
		return ""
	}
	if err := checkNoShadowing(pj); err != nil {
		bad("WasmPlugin pluginConfig: %v", err)
	}
	v, err := pluginView(pj)
	if err != nil {
		bad("WasmPlugin pluginConfig: %v", err)
		return ""
	}
	return v.Audience.PayloadHeader
}

func checkNetworkPolicy(np *networkingv1.NetworkPolicy, bad func(string, ...any)) {
	if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 {
		bad("NetworkPolicy: an empty podSelector selects every pod of the namespace")
	}
	types := map[networkingv1.PolicyType]bool{}
	for _, t := range np.Spec.PolicyTypes {
		types[t] = true
	}
	if !types[networkingv1.PolicyTypeIngress] || !types[networkingv1.PolicyTypeEgress] {
		bad("NetworkPolicy: policyTypes must list Ingress and Egress, got %v", np.Spec.PolicyTypes)
	}
	peerKey := func(p networkingv1.NetworkPolicyPeer) string {
		var parts []string
		if p.PodSelector != nil {
			parts = append(parts, "pods:"+labelsKey(p.PodSelector.MatchLabels))
		}
		if p.NamespaceSelector != nil {
			parts = append(parts, "ns:"+labelsKey(p.NamespaceSelector.MatchLabels))
		}
		if p.IPBlock != nil {
			parts = append(parts, "ip:"+p.IPBlock.CIDR)
		}
		return strings.Join(parts, ",")
	}
	var in []string
	for i, r := range np.Spec.Ingress {
		if len(r.From) == 0 {
			bad("NetworkPolicy ingress[%d]: no `from` allows every source", i)
		}
		for _, p := range r.From {
			in = append(in, peerKey(p))
		}
	}
	sort.Strings(in)
	wantIn := []string{"ns:kubernetes.io/metadata.name=ingress-nginx", "pods:app=" + gatewayApp}
	if !slices.Equal(in, wantIn) {
		bad("NetworkPolicy ingress peers %v, want exactly %v", in, wantIn)
	}
	allowedOut := map[string]bool{
		"pods:app=postgresql": true,
		"pods:app=redis":      true,
		"pods:k8s-app=kube-dns,ns:kubernetes.io/metadata.name=kube-system": true,
		"pods:app=istiod,ns:kubernetes.io/metadata.name=istio-system":      true,
	}
	seen := map[string]bool{}
	dnsPorts := map[string]bool{}
	for i, r := range np.Spec.Egress {
		if len(r.To) == 0 {
			bad("NetworkPolicy egress[%d]: no `to` allows every destination", i)
		}
		for _, p := range r.To {
			k := peerKey(p)
			if !allowedOut[k] {
				bad("NetworkPolicy egress[%d]: destination %q is not in the security guide's list", i, k)
			}
			seen[k] = true
			if strings.Contains(k, "kube-dns") {
				for _, port := range r.Ports {
					if port.Port != nil && port.Port.IntValue() == 53 && port.Protocol != nil {
						dnsPorts[string(*port.Protocol)] = true
					}
				}
				if len(r.Ports) == 0 {
					bad("NetworkPolicy egress[%d]: DNS rule must be limited to port 53", i)
				}
			}
		}
	}
	for _, k := range []string{"pods:app=postgresql", "pods:app=redis", "pods:k8s-app=kube-dns,ns:kubernetes.io/metadata.name=kube-system"} {
		if !seen[k] {
			bad("NetworkPolicy egress: %s is missing", k)
		}
	}
	if !dnsPorts["UDP"] || !dnsPorts["TCP"] {
		bad("NetworkPolicy egress: DNS needs 53/UDP and 53/TCP, got %v", dnsPorts)
	}
}

func labelsKey(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

var wantAlerts = map[string]string{
	"STOAHighSSERejectionRate":  "rate(stoa_sse_rejected_total[5m]) > 10",
	"STOAJWTValidationFailures": "rate(stoa_jwt_validation_failures_total[5m]) > 5",
}

var metricInExpr = regexp.MustCompile(`\b(stoa_[a-z_]+)\b`)

func checkPrometheusRule(pr *prometheusRule, bad func(string, ...any)) {
	known := map[string]bool{}
	for _, fs := range filterStats {
		known[fs.name] = true
	}
	got := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		if g.Name == "" {
			bad("PrometheusRule: a group needs a name")
		}
		for _, r := range g.Rules {
			if r.Alert == "" && r.Record == "" {
				bad("PrometheusRule group %s: a rule needs alert or record", g.Name)
			}
			for _, m := range metricInExpr.FindAllString(r.Expr, -1) {
				if !known[m] {
					bad("PrometheusRule %s: expr uses %s, which the filter does not define", r.Alert, m)
				}
			}
			want, ok := wantAlerts[r.Alert]
			if !ok {
				continue
			}
			got[r.Alert] = true
			if strings.Join(strings.Fields(r.Expr), " ") != want {
				bad("PrometheusRule %s: expr %q, want %q", r.Alert, r.Expr, want)
			}
			if r.Labels["severity"] != "warning" {
				bad("PrometheusRule %s: severity %q, want warning", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				bad("PrometheusRule %s: a summary annotation is required", r.Alert)
			}
		}
	}
	for a := range wantAlerts {
		if !got[a] {
			bad("PrometheusRule: alert %s is missing", a)
		}
	}
}

func loadMeshConfig(t testing.TB, b []byte) *meshv1alpha1.MeshConfig {
	t.Helper()
	ys, err := splitYAML(b)
	require.NoError(t, err)
	require.Len(t, ys, 1)
	d, err := decodeIstioDoc("mesh.yaml", ys[0])
	require.NoError(t, err)
	return d.obj.(*meshv1alpha1.MeshConfig)
}

func TestIstioManifestsAreValid(t *testing.T) {
	require.NoError(t, validateIstio(istioFiles(t)))
}

// TestIstioManifestsBrokenTwins: each twin is istio/ with one defect in one file.
func TestIstioManifestsBrokenTwins(t *testing.T) {
	files := istioFiles(t)
	cases := []struct {
		file string
		twin
	}{
		{"wasmplugin.yaml", twin{name: "typo'd field", old: "failStrategy:", repl: "failStrategi:", wantErr: "failStrategi"}},
		{"wasmplugin.yaml", twin{name: "wrong enum", old: "failStrategy: FAIL_CLOSE", repl: "failStrategy: FAIL_CLOSED", wantErr: "FAIL_CLOSED"}},
		{"wasmplugin.yaml", twin{name: "fail open", old: "failStrategy: FAIL_CLOSE", repl: "failStrategy: FAIL_OPEN", wantErr: "want FAIL_CLOSE"}},
		{"wasmplugin.yaml", twin{name: "phase before jwt_authn", old: "phase: AUTHZ", repl: "phase: AUTHN", wantErr: "want AUTHZ"}},
		{"wasmplugin.yaml", twin{name: "url by tag", old: "stoa-guard@sha256:", repl: "stoa-guard:latest#", wantErr: "pinned by digest"}},
		{"wasmplugin.yaml", twin{name: "sha256 disagrees with url", old: "  sha256: \"", repl: "  sha256: \"1", wantErr: "WasmPlugin sha256"}},
		{"wasmplugin.yaml", twin{name: "missing selector", old: "  selector:\n    matchLabels:\n      app: stoa-mcp-gateway\n", repl: "", wantErr: "WasmPlugin: selector"}},
		{"wasmplugin.yaml", twin{name: "env from host", old: "      value: stoa-mcp-gateway,account", repl: "      valueFrom: HOST", wantErr: "want INLINE"}},
		{"wasmplugin.yaml", twin{name: "missing rollback variable", old: "    - name: SSE_LIMITER_ENABLED\n      value: \"true\"\n", repl: "", wantErr: "SSE_LIMITER_ENABLED is missing"}},
		{"wasmplugin.yaml", twin{name: "pluginConfig shadows a rollback", old: "    sse:\n", repl: "    sse:\n      enabled: true\n", wantErr: "shadows SSE_LIMITER_ENABLED"}},
		{"wasmplugin.yaml", twin{name: "duplicate key", old: "  phase: AUTHZ", repl: "  phase: AUTHZ\n  phase: STATS", wantErr: "already set in map"}},
		{"wasmplugin.yaml", twin{name: "wrong apiVersion", old: "extensions.istio.io/v1alpha1", repl: "extensions.istio.io/v1", nth: 1, wantErr: "apiVersion"}},
		{"requestauthentication.yaml", twin{name: "typo'd field", old: "outputPayloadToHeader:", repl: "outputPayloadToHeaders:", wantErr: "outputPayloadToHeaders"}},
		{"requestauthentication.yaml", twin{name: "audiences enforced by Istio", old: "    outputPayloadToHeader:", repl: "    audiences: [stoa-mcp-gateway]\n    outputPayloadToHeader:", wantErr: "sets audiences"}},
		{"requestauthentication.yaml", twin{name: "payload header disagreement", old: "outputPayloadToHeader: x-jwt-payload", repl: "outputPayloadToHeader: x-payload", wantErr: "outputPayloadToHeader"}},
		{"requestauthentication.yaml", twin{name: "missing issuer", old: "  - issuer: https://keycloak.example.com/realms/stoa\n    jwksUri", repl: "  - jwksUri", wantErr: "issuer is required"}},
		{"requestauthentication.yaml", twin{name: "other namespace", old: "namespace: stoa-system", repl: "namespace: default", wantErr: `namespace "default"`}},
		{"authorizationpolicy.yaml", twin{name: "no JWT required", old: `requestPrincipals: ["*"]`, repl: `principals: ["*"]`, wantErr: "requires a request principal"}},
		{"authorizationpolicy.yaml", twin{name: "wrong enum", old: "action: ALLOW", repl: "action: PERMIT", wantErr: "PERMIT"}},
		{"namespace.yaml", twin{name: "baseline instead of restricted", old: "pod-security.kubernetes.io/enforce: restricted", repl: "pod-security.kubernetes.io/enforce: baseline", wantErr: "enforce = \"baseline\""}},
		{"namespace.yaml", twin{name: "missing warn label", old: "    pod-security.kubernetes.io/warn: restricted\n", repl: "", wantErr: "pod-security.kubernetes.io/warn"}},
		{"namespace.yaml", twin{name: "typo'd field", old: "  labels:", repl: "  label:", wantErr: "label"}},
		{"networkpolicy.yaml", twin{name: "typo'd field (strict decoding)", old: "podSelector:", repl: "podselector:", wantErr: "podselector"}},
		{"networkpolicy.yaml", twin{name: "egress open to all", old: "  - to:\n    - podSelector:\n        matchLabels:\n          app: redis\n", repl: "  - {}\n", wantErr: "allows every destination"}},
		{"networkpolicy.yaml", twin{name: "extra ingress source", old: "          app: stoa-mcp-gateway", repl: "          app: anything", wantErr: "ingress peers"}},
		{"networkpolicy.yaml", twin{name: "DNS over UDP only", old: "    - protocol: TCP\n      port: 53\n", repl: "", wantErr: "53/UDP and 53/TCP"}},
		{"networkpolicy.yaml", twin{name: "no egress policy type", old: "  - Egress\n", repl: "", wantErr: "policyTypes"}},
		{"networkpolicy.yaml", twin{name: "wrong enum", old: "protocol: UDP", repl: "protocol: UPD", wantErr: "53/UDP"}},
		{"mesh.yaml", twin{name: "typo'd field", old: "inclusionPrefixes:", repl: "inclusionPrefix:", wantErr: "inclusionPrefix"}},
		{"mesh.yaml", twin{name: "missing tag", old: "      - tenant\n", repl: "", wantErr: "extraStatTags must include tenant"}},
		{"mesh.yaml", twin{name: "wrong stats prefix", old: "        - wasmcustom", repl: "        - wasm_custom", wantErr: "inclusionPrefixes must include wasmcustom"}},
		{"prometheusrule.yaml", twin{name: "typo'd field", old: "      expr: rate(stoa_sse", repl: "      exp: rate(stoa_sse", wantErr: `unknown field "spec.groups[0].rules[0].exp"`}},
		{"prometheusrule.yaml", twin{name: "wrong threshold", old: "[5m]) > 10", repl: "[5m]) > 100", wantErr: "STOAHighSSERejectionRate: expr"}},
		{"prometheusrule.yaml", twin{name: "wrong severity", old: "severity: warning", repl: "severity: critical", nth: 2, wantErr: "STOAJWTValidationFailures: severity"}},
		{"prometheusrule.yaml", twin{name: "metric the filter does not define", old: "rate(stoa_jwt_validation_failures_total", repl: "rate(stoa_jwt_failures_total", wantErr: "does not define"}},
		{"prometheusrule.yaml", twin{name: "missing alert", old: "alert: STOAJWTValidationFailures", repl: "alert: STOAJWTFailures", wantErr: "STOAJWTValidationFailures is missing"}},
	}
	for _, c := range cases {
		t.Run(c.file+"/"+c.name, func(t *testing.T) {
			broken := map[string][]byte{}
			for k, v := range files {
				broken[k] = v
			}
			broken[c.file] = c.apply(t, files[c.file])
			err := validateIstio(broken)
			require.Error(t, err)
			require.Contains(t, err.Error(), c.wantErr)
		})
	}
	t.Run("unknown kind", func(t *testing.T) {
		broken := map[string][]byte{}
		for k, v := range files {
			broken[k] = v
		}
		broken["extra.yaml"] = []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
		require.ErrorContains(t, validateIstio(broken), `kind "ConfigMap"`)
	})
}

// TestIstioYAMLSplitsMultiDocument: several objects in one file are all validated.
func TestIstioYAMLSplitsMultiDocument(t *testing.T) {
	files := istioFiles(t)
	var all []byte
	for _, n := range []string{"namespace.yaml", "networkpolicy.yaml"} {
		all = append(all, []byte("---\n")...)
		all = append(all, files[n]...)
	}
	ys, err := splitYAML(all)
	require.NoError(t, err)
	require.Len(t, ys, 2)
	merged := map[string][]byte{}
	for k, v := range files {
		if k != "namespace.yaml" && k != "networkpolicy.yaml" {
			merged[k] = v
		}
	}
	merged["both.yaml"] = all
	require.NoError(t, validateIstio(merged))
	merged["both.yaml"] = mutate(t, all, "podSelector:", "podselector:", 1)
	require.ErrorContains(t, validateIstio(merged), "podselector")
}
