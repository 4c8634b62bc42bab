package main

// The end-to-end test of `make run` (issue 4): the official MCP Go SDK client
// talks to this demo server through stoa-proxy — the real command, built from
// the repository root and started as a process, running the real filter.wasm
// with the jwt_authn stand-in on the demo key — exactly as a user does after
// `make run`. The root module is built with `go build`, not imported: this
// module's go.mod stays free of a replace directive, so the demo's Docker
// build (context cmd/mcp-demo) keeps working.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// repoRoot is the stoa-guard repository (this module lives in cmd/mcp-demo).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.Contains(t, string(b), "module github.com/stoa-platform/stoa-guard\n")
	return root
}

// binaries builds stoa-proxy, stoa-token and filter.wasm from the repository
// once per test binary.
func binaries(t *testing.T) (proxy, token, wasm string) {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "stoa-e2e-"); buildErr != nil {
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		for _, b := range []struct {
			env  []string
			args []string
		}{
			{nil, []string{"build", "-o", filepath.Join(buildDir, "stoa-proxy"), "./cmd/stoa-proxy"}},
			{nil, []string{"build", "-o", filepath.Join(buildDir, "stoa-token"), "./cmd/stoa-token"}},
			{[]string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"},
				[]string{"build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(buildDir, "filter.wasm"), "."}},
		} {
			cmd := exec.Command(goBin, b.args...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), b.env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(b.args, " "), err, out)
				return
			}
		}
	})
	require.NoError(t, buildErr)
	return filepath.Join(buildDir, "stoa-proxy"), filepath.Join(buildDir, "stoa-token"), filepath.Join(buildDir, "filter.wasm")
}

// mint runs stoa-token with args (the demo key) and returns the token.
func mint(t *testing.T, args ...string) string {
	t.Helper()
	_, tokenBin, _ := binaries(t)
	root := repoRoot(t)
	cmd := exec.Command(tokenBin, append([]string{"-key", filepath.Join(root, "demo", "demo-signing-key.pem")}, args...)...)
	out, err := cmd.Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// stoaProxy is a running stoa-proxy process.
type stoaProxy struct {
	cmd         *exec.Cmd
	url, admin  string
	done        chan error
	mu          sync.Mutex
	stderr      strings.Builder
	stopTimeout time.Duration
}

var servingRE = regexp.MustCompile(`msg="stoa-proxy serving" listen=(\S+) admin=(\S+)`)

// startProxy starts stoa-proxy in front of upstream with the defaults of
// `make run` (no plugin config, demo JWKS and issuer) plus extra flags.
func startProxy(t *testing.T, upstream string, extra ...string) *stoaProxy {
	t.Helper()
	proxyBin, _, wasm := binaries(t)
	root := repoRoot(t)
	args := append([]string{
		"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-upstream", upstream, "-module", wasm,
		"-workers", "2", "-jwks", filepath.Join(root, "demo", "jwks.json"),
		"-issuer", "https://auth.stoa.local/realms/demo", "-shutdown-timeout", "2s",
	}, extra...)
	p := &stoaProxy{cmd: exec.Command(proxyBin, args...), done: make(chan error, 1)}
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := servingRE.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m:
				default:
				}
			}
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() { p.stop(t) })
	// The first start after a build compiles filter.wasm (seconds; more on a
	// busy machine); later starts reuse the compiled code.
	select {
	case m := <-ready:
		p.url, p.admin = "http://"+m[1], "http://"+m[2]
	case err := <-p.done:
		p.done <- err
		t.Fatalf("stoa-proxy exited: %v\n%s", err, p.log())
	case <-time.After(180 * time.Second):
		t.Fatalf("stoa-proxy not serving after 180s\n%s", p.log())
	}
	return p
}

func (p *stoaProxy) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (p *stoaProxy) stop(t *testing.T) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("stoa-proxy still running 15s after SIGTERM\n%s", p.log())
		return errors.New("killed")
	}
}

// bearer adds the Authorization header to every request of the MCP client.
type bearer struct {
	token   string
	base    http.RoundTripper
	refused *atomic.Int64 // counts 401 invalid_audience answers, if set
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := b.base.RoundTrip(r)
	if b.refused != nil && resp != nil && resp.StatusCode == http.StatusUnauthorized &&
		strings.Contains(resp.Header.Get("WWW-Authenticate"), "Invalid audience") {
		b.refused.Add(1)
	}
	return resp, err
}

func httpClient(token string) *http.Client {
	return &http.Client{Transport: bearer{token: token, base: &http.Transport{Proxy: nil}}, Timeout: 30 * time.Second}
}

func demoUpstream(t *testing.T) *httptest.Server {
	ts := httptest.NewServer(NewHandler(NewServer(func() time.Time { return fixed })))
	t.Cleanup(ts.Close)
	return ts
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tools, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// TestE2EMCPThroughStoaProxy: with a token for the gateway's audience, the
// SDK client connects through the filter over both transports, lists the
// tools and calls one.
func TestE2EMCPThroughStoaProxy(t *testing.T) {
	up := demoUpstream(t)
	p := startProxy(t, up.URL)
	tok := mint(t) // aud stoa-mcp-gateway, tenant acme

	for name, tr := range map[string]func() mcp.Transport{
		"streamable": func() mcp.Transport {
			return &mcp.StreamableClientTransport{Endpoint: p.url + "/mcp", HTTPClient: httpClient(tok), MaxRetries: -1}
		},
		"sse": func() mcp.Transport {
			return &mcp.SSEClientTransport{Endpoint: p.url + "/mcp/sse", HTTPClient: httpClient(tok)}
		},
	} {
		t.Run(name, func(t *testing.T) {
			cs := connect(t, tr())
			assert.ElementsMatch(t, []string{"echo", "time"}, toolNames(t, cs))
			assert.Equal(t, "through the filter", callText(t, cs, "echo", map[string]any{"text": "through the filter"})["text"])
			assert.Equal(t, "2026-12-04T15:00:00Z", callText(t, cs, "time", nil)["time"])
		})
	}
	m := scrape(t, p.admin)
	assert.Contains(t, m, `stoa_jwt_validation_failures_total{reason="invalid_audience"} 0`)
}

// TestE2EWrongAudienceGets401: a token minted for another client (valid
// signature, issuer and expiry) cannot open an MCP session over either
// transport: the filter answers 401 invalid_audience.
func TestE2EWrongAudienceGets401(t *testing.T) {
	up := demoUpstream(t)
	p := startProxy(t, up.URL)
	tok := mint(t, "-aud", "other-client")
	var refused atomic.Int64
	wrong := &http.Client{Transport: bearer{token: tok, base: &http.Transport{Proxy: nil}, refused: &refused}, Timeout: 30 * time.Second}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil)
	for name, tr := range map[string]mcp.Transport{
		"streamable": &mcp.StreamableClientTransport{Endpoint: p.url + "/mcp", HTTPClient: wrong, MaxRetries: -1},
		"sse":        &mcp.SSEClientTransport{Endpoint: p.url + "/mcp/sse", HTTPClient: wrong},
	} {
		before := refused.Load()
		cs, err := c.Connect(ctx, tr, nil)
		if cs != nil {
			_ = cs.Close()
		}
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "Unauthorized", name)
		assert.Greater(t, refused.Load(), before, "%s: refused by the filter with 401 invalid_audience", name)
	}

	// What the client got, seen raw: 401 with the WWW-Authenticate challenge.
	req, _ := http.NewRequestWithContext(ctx, "POST", p.url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := wrong.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 401, resp.StatusCode)
	assert.Equal(t, `Bearer error="invalid_token", error_description="Invalid audience"`, resp.Header.Get("WWW-Authenticate"))
	assert.Contains(t, string(body), "Invalid audience")

	// An expired token never reaches the filter: jwt_authn refuses it.
	resp, err = httpClient(mint(t, "-exp", "-5m")).Do(mustReq(t, ctx, p.url+"/mcp"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 401, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)

	// Every 401 invalid_audience the client saw was counted, no more.
	assert.Contains(t, scrape(t, p.admin), fmt.Sprintf(`stoa_jwt_validation_failures_total{reason="invalid_audience"} %d`+"\n", refused.Load()))
}

func mustReq(t *testing.T, ctx context.Context, url string) *http.Request {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	require.NoError(t, err)
	return req
}

func scrape(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get(admin + "/stats/prometheus")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestE2EStoaProxyStopsOnSIGTERM: with an MCP SSE session open, SIGTERM
// (what `make run`'s Ctrl-C handling sends) stops stoa-proxy cleanly: exit
// status 0, within its -shutdown-timeout plus the cut of the open stream.
func TestE2EStoaProxyStopsOnSIGTERM(t *testing.T) {
	up := demoUpstream(t)
	p := startProxy(t, up.URL)
	cs := connect(t, &mcp.SSEClientTransport{Endpoint: p.url + "/mcp/sse", HTTPClient: httpClient(mint(t))})
	assert.NotEmpty(t, toolNames(t, cs))

	start := time.Now()
	err := p.stop(t)
	took := time.Since(start)
	require.NoError(t, err, "exit status\n%s", p.log())
	assert.Less(t, took, 8*time.Second, "-shutdown-timeout 2s, then the streams are cut")
	assert.Contains(t, p.log(), "stoa-proxy shutting down")
	assert.NotContains(t, p.log(), "Bearer ", "no token in the logs")
}
