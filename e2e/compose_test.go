package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
)

// loadCompose reads docker-compose.yaml with the Compose specification's own loader (schema
// validation, interpolation, path resolution), as `docker compose` does.
func loadCompose(root string, content []byte, env map[string]string) (*types.Project, error) {
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yaml"), Content: content}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("stoa-guard", true) })
}

var envoyTag = regexp.MustCompile(`^envoyproxy/envoy(?:-distroless)?:v1\.(\d+)(?:\.\d+|-latest)$`)

// checkCompose checks the hardening and wiring of the loaded project. envoyYAML is the
// Envoy bootstrap the compose file mounts (cross-checked: module path, ports, upstream).
func checkCompose(p *types.Project, envoyYAML []byte) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	for _, want := range []string{"envoy", "mcp-demo", "filter-build"} {
		if _, ok := p.Services[want]; !ok {
			bad("service %s is missing", want)
		}
	}
	oneShot := map[string]bool{}
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				oneShot[dep] = true
			}
		}
	}
	for name, s := range p.Services {
		if u := strings.Split(s.User, ":")[0]; u == "" || u == "root" || u == "0" {
			bad("%s: user %q: must run as a non-root user", name, s.User)
		} else if n, err := strconv.Atoi(u); err != nil || n == 0 {
			bad("%s: user %q: give a numeric non-zero uid (a name may map to root)", name, s.User)
		}
		if !s.ReadOnly {
			bad("%s: read_only must be true (read-only root filesystem)", name)
		}
		if !slices.Contains(s.CapDrop, "ALL") {
			bad("%s: cap_drop must include ALL", name)
		}
		if len(s.CapAdd) > 0 {
			bad("%s: cap_add %v: no capability is needed", name, s.CapAdd)
		}
		if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			bad("%s: security_opt must include no-new-privileges:true", name)
		}
		if s.Privileged || s.Pid == "host" || s.NetworkMode == "host" || s.Ipc == "host" {
			bad("%s: privileged or host namespaces", name)
		}
		if !oneShot[name] && (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0) {
			bad("%s: a health check is required", name)
		}
		for _, port := range s.Ports {
			if a, err := netip.ParseAddr(port.HostIP); err != nil || !a.IsLoopback() {
				bad("%s: port %d published on %q: publish on 127.0.0.1 only", name, port.Target, port.HostIP)
			}
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && !v.ReadOnly {
				bad("%s: bind mount %s -> %s must be read-only", name, v.Source, v.Target)
			}
		}
	}

	envoy, ok := p.Services["envoy"]
	if !ok {
		return errors.Join(errs...)
	}
	if m := envoyTag.FindStringSubmatch(envoy.Image); m == nil {
		bad("envoy image %q: want envoyproxy/envoy:v1.N-latest or v1.N.P", envoy.Image)
	} else if minor, _ := strconv.Atoi(m[1]); minor < 39 {
		bad("envoy image %q: Envoy >= 1.39 is needed for a standard-Go module (1.33-1.38 fail under GC load)", envoy.Image)
	}
	mounts := map[string]types.ServiceVolumeConfig{}
	for _, v := range envoy.Volumes {
		mounts[v.Target] = v
		if v.Type != types.VolumeTypeTmpfs && !v.ReadOnly {
			bad("envoy: mount %s must be read-only", v.Target)
		}
	}
	if v, ok := mounts["/etc/envoy/envoy.yaml"]; !ok || filepath.Base(v.Source) != "envoy.yaml" {
		bad("envoy: envoy.yaml must be mounted at /etc/envoy/envoy.yaml")
	}

	// Cross-checks with envoy.yaml.
	bs, err := loadBootstrap(envoyYAML)
	if err != nil {
		bad("envoy.yaml: %v", err)
		return errors.Join(errs...)
	}
	parts, err := extractEnvoyParts(bs)
	if err != nil {
		bad("envoy.yaml: %v", err)
		return errors.Join(errs...)
	}
	module := parts.wasm.GetVmConfig().GetCode().GetLocal().GetFilename()
	if v, ok := mounts[module]; !ok {
		bad("envoy: the module %s that envoy.yaml loads is not mounted", module)
	} else if v.Type == types.VolumeTypeVolume && (v.Volume == nil || v.Volume.Subpath != "filter.wasm") {
		bad("envoy: %s must be the filter.wasm sub-path of its volume", module)
	}
	published := map[uint32]bool{}
	for _, port := range envoy.Ports {
		published[port.Target] = true
	}
	for _, l := range bs.GetStaticResources().GetListeners() {
		if pv := l.GetAddress().GetSocketAddress().GetPortValue(); !published[pv] {
			bad("envoy: listener %s port %d is not published", l.GetName(), pv)
		}
	}
	for _, c := range bs.GetStaticResources().GetClusters() {
		for _, e := range c.GetLoadAssignment().GetEndpoints() {
			for _, le := range e.GetLbEndpoints() {
				sa := le.GetEndpoint().GetAddress().GetSocketAddress()
				if _, err := netip.ParseAddr(sa.GetAddress()); err == nil {
					continue // a literal address, not a compose service
				}
				svc, ok := p.Services[sa.GetAddress()]
				if !ok {
					bad("envoy.yaml cluster %s: %s is not a compose service", c.GetName(), sa.GetAddress())
					continue
				}
				if !slices.Contains(svc.Command, fmt.Sprintf("0.0.0.0:%d", sa.GetPortValue())) {
					bad("envoy.yaml cluster %s: %s does not listen on 0.0.0.0:%d (command %v)", c.GetName(), svc.Name, sa.GetPortValue(), svc.Command)
				}
				shared := false
				for n := range svc.Networks {
					if _, ok := envoy.Networks[n]; ok {
						shared = true
					}
				}
				if !shared {
					bad("envoy cannot reach %s: no common network", svc.Name)
				}
			}
		}
	}
	if demo, ok := p.Services["mcp-demo"]; ok {
		if len(demo.Ports) > 0 {
			bad("mcp-demo: publish no port (reachable through Envoy only)")
		}
		for n := range demo.Networks {
			if nw, ok := p.Networks[n]; !ok || !nw.Internal {
				bad("mcp-demo: network %s must be internal", n)
			}
		}
	}
	return errors.Join(errs...)
}

func validateCompose(t testing.TB, content []byte, env map[string]string) error {
	root := repoRoot(t)
	p, err := loadCompose(root, content, env)
	if err != nil {
		return err
	}
	return checkCompose(p, readRepoFile(t, "envoy.yaml"))
}

func TestComposeIsValidAndHardened(t *testing.T) {
	src := readRepoFile(t, "docker-compose.yaml")
	require.NoError(t, validateCompose(t, src, map[string]string{}))
	p, err := loadCompose(repoRoot(t), src, map[string]string{})
	require.NoError(t, err)
	require.Equal(t, "envoyproxy/envoy:v1.40-latest", p.Services["envoy"].Image, "the ENVOY_IMAGE default")

	p, err = loadCompose(repoRoot(t), src, map[string]string{"ENVOY_IMAGE": "envoyproxy/envoy:v1.39-latest"})
	require.NoError(t, err)
	require.Equal(t, "envoyproxy/envoy:v1.39-latest", p.Services["envoy"].Image)
	require.ErrorContains(t, validateCompose(t, src, map[string]string{"ENVOY_IMAGE": "envoyproxy/envoy:v1.37-latest"}), "Envoy >= 1.39")
}

func TestComposeBrokenTwins(t *testing.T) {
	src := readRepoFile(t, "docker-compose.yaml")
	for _, tw := range []twin{
		{name: "typo'd field", old: "read_only: true", repl: "read_onyl: true", wantErr: "read_onyl"},
		{name: "duplicate key", old: "    user: \"101:101\"", repl: "    user: \"101:101\"\n    user: \"0\"", wantErr: "already defined"},
		{name: "writable root filesystem", old: "    read_only: true\n    tmpfs", repl: "    read_only: false\n    tmpfs", wantErr: "envoy: read_only must be true"},
		{name: "writable envoy.yaml", old: "        target: /etc/envoy/envoy.yaml\n        read_only: true", repl: "        target: /etc/envoy/envoy.yaml\n        read_only: false", wantErr: "must be read-only"},
		{name: "writable module", old: "        target: /etc/envoy/filter.wasm\n        read_only: true", repl: "        target: /etc/envoy/filter.wasm\n        read_only: false", wantErr: "mount /etc/envoy/filter.wasm must be read-only"},
		{name: "module not mounted where envoy.yaml loads it", old: "target: /etc/envoy/filter.wasm", repl: "target: /etc/envoy/stoa.wasm", wantErr: "is not mounted"},
		{name: "root user", old: "user: \"101:101\"", repl: "user: \"0:0\"", wantErr: "non-root"},
		{name: "named user", old: "user: \"101:101\"", repl: "user: envoy", wantErr: "numeric non-zero uid"},
		{name: "capabilities kept", old: "cap_drop: [ALL]", repl: "cap_drop: [NET_RAW]", nth: 3, wantErr: "envoy: cap_drop must include ALL"},
		{name: "capability added", old: "cap_drop: [ALL]", repl: "cap_drop: [ALL]\n    cap_add: [NET_ADMIN]", nth: 2, wantErr: "cap_add"},
		{name: "privilege escalation", old: `security_opt: ["no-new-privileges:true"]`, repl: `security_opt: ["no-new-privileges:false"]`, nth: 2, wantErr: "mcp-demo: security_opt"},
		{name: "port on every interface", old: `"127.0.0.1:8080:8080"`, repl: `"8080:8080"`, wantErr: "publish on 127.0.0.1 only"},
		{name: "metrics port on every interface", old: `"127.0.0.1:9902:9902"`, repl: `"0.0.0.0:9902:9902"`, wantErr: "port 9902"},
		{name: "listener not published", old: "      - \"127.0.0.1:9902:9902\" # read-only metrics: GET /stats/prometheus, GET /ready\n", repl: "", wantErr: "listener stats port 9902 is not published"},
		{name: "no health check", old: "    healthcheck:\n      test: [\"CMD\", \"/mcp-demo\"", repl: "    x-healthcheck:\n      test: [\"CMD\", \"/mcp-demo\"", wantErr: "mcp-demo: a health check is required"},
		{name: "old Envoy by default", old: "envoyproxy/envoy:v1.40-latest", repl: "envoyproxy/envoy:v1.36-latest", wantErr: "Envoy >= 1.39"},
		{name: "demo server published", old: "    networks: [backend]\n", repl: "    networks: [backend]\n    ports: [\"127.0.0.1:8081:8081\"]\n", wantErr: "publish no port"},
		{name: "demo server with a way out", old: "    internal: true", repl: "    internal: false", wantErr: "must be internal"},
		{name: "demo server on another port", old: `command: ["-listen", "0.0.0.0:8081"]`, repl: `command: ["-listen", "0.0.0.0:9000"]`, wantErr: "does not listen on 0.0.0.0:8081"},
		{name: "wrong enum", old: "condition: service_healthy", repl: "condition: service_ready", wantErr: "condition value must be one of"},
	} {
		t.Run(tw.name, func(t *testing.T) {
			err := validateCompose(t, tw.apply(t, src), map[string]string{})
			require.Error(t, err)
			require.Contains(t, err.Error(), tw.wantErr)
		})
	}
}

// TestComposeBuildsLikeMake: the compose one-shot compiles the module with the Makefile's
// flags, so the module it mounts is the one `make build` (and the pinned image) holds.
func TestComposeBuildsLikeMake(t *testing.T) {
	mk := readRepoFile(t, "Makefile")
	flagLine, err := makeVar(mk, "WASM_FLAGS")
	require.NoError(t, err)
	want, err := shellWords(flagLine)
	require.NoError(t, err)
	envLine, err := makeVar(mk, "WASM_ENV")
	require.NoError(t, err)
	wantEnv, err := shellWords(envLine)
	require.NoError(t, err)

	check := func(compose []byte) error {
		p, err := loadCompose(repoRoot(t), compose, map[string]string{})
		if err != nil {
			return err
		}
		b := p.Services["filter-build"].Build
		if b == nil {
			return errors.New("filter-build has no build")
		}
		var line string
		for _, l := range strings.Split(b.DockerfileInline, "\n") {
			if strings.Contains(l, " go build ") {
				line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "RUN "))
			}
		}
		words, err := shellWords(line)
		if err != nil || len(words) == 0 {
			return fmt.Errorf("no go build line in filter-build's Dockerfile (%v)", err)
		}
		for _, w := range append(wantEnv, want...) {
			if !slices.Contains(words, w) {
				return fmt.Errorf("filter-build's go build lacks %s (Makefile: %s %s)", w, envLine, flagLine)
			}
		}
		return nil
	}
	src := readRepoFile(t, "docker-compose.yaml")
	require.NoError(t, check(src))
	require.ErrorContains(t, check(mutate(t, src, " -buildvcs=false", "", 1)), "-buildvcs=false")
	require.ErrorContains(t, check(mutate(t, src, "GOARCH=wasm ", "", 1)), "GOARCH=wasm")
}
