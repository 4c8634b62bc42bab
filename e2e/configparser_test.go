package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stoa-platform/stoa-guard/config"
	"github.com/stretchr/testify/require"
	extv1alpha1 "istio.io/api/extensions/v1alpha1"
)

// shippedPlugin is the filter's configuration as a deployment file ships it: the plugin JSON
// and the environment the VM gets.
type shippedPlugin struct {
	json []byte
	env  map[string]string
}

func envoyPlugin(b []byte) (*shippedPlugin, error) {
	bs, err := loadBootstrap(b)
	if err != nil {
		return nil, err
	}
	p, err := extractEnvoyParts(bs)
	if err != nil {
		return nil, err
	}
	return &shippedPlugin{json: p.plugin, env: p.env}, nil
}

func istioPlugin(b []byte) (*shippedPlugin, error) {
	ys, err := splitYAML(b)
	if err != nil {
		return nil, err
	}
	for _, y := range ys {
		d, err := decodeIstioDoc("wasmplugin.yaml", y)
		if err != nil {
			return nil, err
		}
		w, ok := d.obj.(*extv1alpha1.WasmPlugin)
		if !ok {
			continue
		}
		j, err := w.GetPluginConfig().MarshalJSON()
		if err != nil {
			return nil, err
		}
		env := map[string]string{}
		for _, e := range w.GetVmConfig().GetEnv() {
			env[e.GetName()] = e.GetValue()
		}
		return &shippedPlugin{json: j, env: env}, nil
	}
	return nil, fmt.Errorf("no WasmPlugin")
}

// parse runs the filter's own parser on the shipped configuration, with overrides applied to
// the environment (an operator's rollback).
func (s *shippedPlugin) parse(overrides map[string]string) (*config.Config, error) {
	env := map[string]string{}
	for k, v := range s.env {
		env[k] = v
	}
	for k, v := range overrides {
		env[k] = v
	}
	return config.Parse(s.json, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

// checkSecureDefaults: the shipped configuration enforces all three controls.
func checkSecureDefaults(c *config.Config) error {
	switch {
	case !c.Audience.Enabled():
		return fmt.Errorf("audience check disabled")
	case c.CORS.Policy.Wildcard():
		return fmt.Errorf("CORS in wildcard mode")
	case !c.SSE.Enabled:
		return fmt.Errorf("SSE limiter disabled")
	case c.Mode.AudienceDryRun || c.Mode.CORSDryRun || c.Mode.SSEDryRun:
		return fmt.Errorf("a control is in dry_run")
	case c.SSE.IdleTimeout != 30*time.Second || c.SSE.MaxDuration != time.Hour || c.SSE.RetryAfter != 60:
		return fmt.Errorf("SSE timings %v/%v/%d differ from the security guide's 30s/1h/60", c.SSE.IdleTimeout, c.SSE.MaxDuration, c.SSE.RetryAfter)
	case c.SSE.MaxPerIP != 10 || c.SSE.MaxPerTenant != 100 || c.SSE.MaxTotal != 5000 || c.SSE.RateLimitPerMin != 5:
		return fmt.Errorf("SSE limits differ from the security guide's 10/100/5000/5")
	}
	return nil
}

// The documented one-line rollbacks and what each must switch off.
var rollbacks = []struct {
	env, value string
	off        func(*config.Config) bool
}{
	{"ALLOWED_AUDIENCES", "", func(c *config.Config) bool { return !c.Audience.Enabled() }},
	{"CORS_ORIGINS", "*", func(c *config.Config) bool { return c.CORS.Policy.Wildcard() }},
	{"SSE_LIMITER_ENABLED", "false", func(c *config.Config) bool { return !c.SSE.Enabled }},
}

func TestShippedConfigPassesFilterParser(t *testing.T) {
	for name, load := range map[string]func() (*shippedPlugin, error){
		"envoy.yaml":            func() (*shippedPlugin, error) { return envoyPlugin(readRepoFile(t, "envoy.yaml")) },
		"istio/wasmplugin.yaml": func() (*shippedPlugin, error) { return istioPlugin(readRepoFile(t, "istio/wasmplugin.yaml")) },
	} {
		t.Run(name, func(t *testing.T) {
			sp, err := load()
			require.NoError(t, err)
			c, err := sp.parse(nil)
			require.NoError(t, err)
			require.NoError(t, checkSecureDefaults(c))
			require.Equal(t, []string{"stoa-mcp-gateway", "account"}, c.Audience.Allowed)
			require.Equal(t, "x-jwt-payload", c.Audience.PayloadHeader)
			require.Empty(t, c.ClientIP.TrustedProxies)
			for _, rb := range rollbacks {
				c, err := sp.parse(map[string]string{rb.env: rb.value})
				require.NoError(t, err, rb.env)
				require.Truef(t, rb.off(c), "%s=%q does not roll back (the plugin JSON shadows it?)", rb.env, rb.value)
			}
		})
	}
}

func TestShippedConfigBrokenTwins(t *testing.T) {
	envoy := readRepoFile(t, "envoy.yaml")
	istio := readRepoFile(t, "istio/wasmplugin.yaml")
	for _, c := range []struct {
		file string
		twin
	}{
		{"envoy.yaml", twin{name: "typo'd JSON key", old: `"max_per_ip"`, repl: `"max_per_ipp"`, wantErr: "max_per_ipp"}},
		{"envoy.yaml", twin{name: "wrong type", old: `"max_total": 5000`, repl: `"max_total": "5000"`, wantErr: "max_total"}},
		{"envoy.yaml", twin{name: "bad duration", old: `"idle_timeout": "30s"`, repl: `"idle_timeout": "30 seconds"`, wantErr: "idle_timeout"}},
		{"envoy.yaml", twin{name: "bad CIDR in env", old: `SSE_TRUSTED_PROXIES: ""`, repl: `SSE_TRUSTED_PROXIES: "10.0.0.0/33"`, wantErr: "SSE_TRUSTED_PROXIES"}},
		{"envoy.yaml", twin{name: "bad origin in env", old: "http://localhost:3000", repl: "localhost:3000", wantErr: "CORS_ORIGINS"}},
		{"envoy.yaml", twin{name: "wrong mode", old: `"sse": "enforce"`, repl: `"sse": "enforced"`, wantErr: "mode.sse"}},
		{"istio/wasmplugin.yaml", twin{name: "typo'd JSON key", old: "tenant_claim:", repl: "tenant_clam:", wantErr: "tenant_clam"}},
		{"istio/wasmplugin.yaml", twin{name: "negative limit", old: "max_per_tenant: 100", repl: "max_per_tenant: -1", wantErr: "max_per_tenant"}},
		{"istio/wasmplugin.yaml", twin{name: "bad bool in env", old: "      value: \"true\"", repl: "      value: \"yes please\"", wantErr: "SSE_LIMITER_ENABLED"}},
	} {
		t.Run(c.file+"/"+c.name, func(t *testing.T) {
			var sp *shippedPlugin
			var err error
			if c.file == "envoy.yaml" {
				sp, err = envoyPlugin(c.apply(t, envoy))
			} else {
				sp, err = istioPlugin(c.apply(t, istio))
			}
			require.NoError(t, err, "the twin must still be a valid file, only a bad filter configuration")
			_, err = sp.parse(nil)
			require.Error(t, err)
			require.Contains(t, err.Error(), c.wantErr)
		})
	}
	// A shipped JSON that shadows a rollback variable parses, but the rollback does nothing.
	t.Run("envoy.yaml/JSON shadows ALLOWED_AUDIENCES", func(t *testing.T) {
		sp, err := envoyPlugin(mutate(t, envoy, `"allow_missing": false,`, `"allow_missing": false, "allowed": ["stoa-mcp-gateway"],`, 1))
		require.NoError(t, err)
		c, err := sp.parse(map[string]string{"ALLOWED_AUDIENCES": ""})
		require.NoError(t, err)
		require.True(t, c.Audience.Enabled(), "the JSON wins: this is why the checks refuse it")
	})
}
