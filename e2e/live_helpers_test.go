package e2e

// Helpers of the real-Envoy suite (live_envoy_test.go): where the Envoy is, the expectations
// read from envoy.yaml, demo tokens, SSE reading, Retry-After and Prometheus text parsing.
// Their unit tests (live_helpers_unit_test.go) run everywhere; the suite only with an Envoy.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stoa-platform/stoa-guard/config"
	"github.com/stoa-platform/stoa-guard/jwtauthn"
)

// Where the compose stack publishes Envoy (docker-compose.yaml): the MCP listener and the
// read-only metrics listener (GET /stats/prometheus, GET /ready).
const (
	composeURL      = "http://127.0.0.1:8080"
	composeAdminURL = "http://127.0.0.1:9902"
	noEnvoy         = "no Envoy: set ENVOY_URL=http://127.0.0.1:8080 (and ENVOY_ADMIN_URL=http://127.0.0.1:9902) or run `docker compose up -d`"
	demoKid         = "stoa-demo-1"
)

// liveTarget is the Envoy under test.
type liveTarget struct {
	url, admin string // admin may be empty: the metrics checks are then skipped
	explicit   bool   // from ENVOY_URL: unreachable is a failure, not a skip
}

// probeEnvoy asks GET <url>/health and reports whether an Envoy answered it.
func probeEnvoy(ctx context.Context, c *http.Client, url string) (envoy bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s/health: %s", url, resp.Status)
	}
	return strings.EqualFold(resp.Header.Get("Server"), "envoy"), nil
}

// skipper is the part of testing.TB findEnvoy uses.
type skipper interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
}

// findEnvoy returns the Envoy to test: ENVOY_URL (and ENVOY_ADMIN_URL) when set, else the
// compose stack on its loopback ports when an Envoy answers there; else it skips the test
// with one line.
func findEnvoy(t skipper, getenv func(string) string) liveTarget {
	t.Helper()
	return findEnvoyAt(t, getenv, composeURL, composeAdminURL)
}

func findEnvoyAt(t skipper, getenv func(string) string, defURL, defAdmin string) liveTarget {
	t.Helper()
	c := &http.Client{Timeout: 3 * time.Second}
	if u := strings.TrimRight(getenv("ENVOY_URL"), "/"); u != "" {
		tg := liveTarget{url: u, admin: strings.TrimRight(getenv("ENVOY_ADMIN_URL"), "/"), explicit: true}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := probeEnvoy(ctx, c, u); err != nil {
			t.Fatalf("ENVOY_URL=%s does not answer: %v", u, err)
		}
		return tg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if envoy, err := probeEnvoy(ctx, c, defURL); err != nil || !envoy {
		t.Skip(noEnvoy)
	}
	return liveTarget{url: defURL, admin: defAdmin}
}

// liveExpect is what envoy.yaml makes the filter and Envoy do: the suite's expectations.
type liveExpect struct {
	cfg          *config.Config // the filter's configuration as Envoy gets it
	origin       string         // an allowed origin
	issuer       string
	routeIdle    time.Duration // Envoy's idle backstop on the SSE route
	wrongAud     string
	allowedAud   string
	retryAfter   string
	maxAttempts  int // streams to open before a refusal must come
	idleDeadline time.Duration
}

func loadLiveExpect(envoyYAML []byte) (*liveExpect, error) {
	bs, err := loadBootstrap(envoyYAML)
	if err != nil {
		return nil, err
	}
	p, err := extractEnvoyParts(bs)
	if err != nil {
		return nil, err
	}
	sp := &shippedPlugin{json: p.plugin, env: p.env}
	cfg, err := sp.parse(nil)
	if err != nil {
		return nil, err
	}
	e := &liveExpect{cfg: cfg, wrongAud: "other-client"}
	if len(cfg.Audience.Allowed) == 0 {
		return nil, errors.New("envoy.yaml: the audience check is off (ALLOWED_AUDIENCES empty)")
	}
	e.allowedAud = cfg.Audience.Allowed[0]
	origins := strings.Split(p.env["CORS_ORIGINS"], ",")
	if o := strings.TrimSpace(origins[0]); o == "" || o == "*" {
		return nil, errors.New("envoy.yaml: CORS_ORIGINS lists no origin")
	} else {
		e.origin = o
	}
	for _, pr := range p.jwt.GetProviders() {
		e.issuer = pr.GetIssuer()
	}
	for _, vh := range p.hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if e.routeIdle == 0 && routeCovers(r.GetMatch(), "/mcp/sse") {
				e.routeIdle = r.GetRoute().GetIdleTimeout().AsDuration()
			}
		}
	}
	e.retryAfter = strconv.Itoa(cfg.SSE.RetryAfter)
	e.maxAttempts = min(cfg.SSE.MaxPerIP, cfg.SSE.RateLimitPerMin) + 1
	// The filter closes from its tick: idle_timeout + one tick, well before Envoy's backstop.
	e.idleDeadline = cfg.SSE.IdleTimeout + cfg.SSE.Tick
	return e, nil
}

// mintToken signs a demo token (demo/demo-signing-key.pem, the key envoy.yaml's jwt_authn
// trusts) for aud (a string, a []string, or nil for no aud claim) and tenant.
func mintToken(keyPEM []byte, issuer string, aud any, tenant string, now time.Time) (string, error) {
	k, err := jwtauthn.ParseRSAPrivateKeyPEM(keyPEM)
	if err != nil {
		return "", err
	}
	c := map[string]any{
		"iss": issuer, "sub": "e2e-live", "iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
		"tenant_id": tenant,
	}
	if aud != nil {
		c["aud"] = aud
	}
	return jwtauthn.SignRS256(k, demoKid, c)
}

// sseEvent is one server-sent event.
type sseEvent struct {
	Event, Data, ID string
}

// readSSEEvent reads the next event (text/event-stream): fields up to a blank line; comment
// lines (":...") and unknown fields are skipped; data lines are joined with "\n". A stream
// that ends mid-event returns io.ErrUnexpectedEOF; at an event boundary, io.EOF.
func readSSEEvent(r *bufio.Reader) (sseEvent, error) {
	var ev sseEvent
	var data []string
	started := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && (started || line != "") {
				return ev, io.ErrUnexpectedEOF
			}
			return ev, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if !started {
				continue
			}
			ev.Data = strings.Join(data, "\n")
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		started = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
		case "id":
			ev.ID = value
		}
	}
}

// parseRetryAfter reads a Retry-After value (RFC 9110 10.2.3): delay-seconds or an HTTP-date
// (relative to now).
func parseRetryAfter(v string, now time.Time) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, errors.New("Retry-After is missing")
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("Retry-After %q: not delay-seconds", v)
		}
		return time.Duration(n) * time.Second, nil
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, fmt.Errorf("Retry-After %q: neither delay-seconds nor an HTTP-date", v)
	}
	return max(t.Sub(now), 0), nil
}

// promSamples parses Prometheus text exposition into "name{k="v",...}" -> value, the labels
// sorted by name so that lookups do not depend on Envoy's order.
func promSamples(body string) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, rest := line, "", ""
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("line %d: unbalanced braces", n)
			}
			name, labels, rest = line[:i], line[i+1:j], strings.TrimSpace(line[j+1:])
		} else if i := strings.IndexAny(line, " \t"); i >= 0 {
			name, rest = line[:i], strings.TrimSpace(line[i+1:])
		} else {
			return nil, fmt.Errorf("line %d: no value", n)
		}
		fields := strings.Fields(rest) // value [timestamp]
		if len(fields) == 0 {
			return nil, fmt.Errorf("line %d: no value", n)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil && !strings.EqualFold(fields[0], "nan") {
			return nil, fmt.Errorf("line %d: value %q", n, fields[0])
		}
		if err != nil {
			v = math.NaN()
		}
		key, err := sampleKey(name, labels)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out[key] = v
	}
	return out, sc.Err()
}

// sampleKey normalises name{labels} with the labels sorted.
func sampleKey(name, labels string) (string, error) {
	var pairs []string
	for rest := strings.TrimSpace(labels); rest != ""; {
		k, after, ok := strings.Cut(rest, "=")
		if !ok || len(after) == 0 || after[0] != '"' {
			return "", fmt.Errorf("labels %q", labels)
		}
		// A quoted value with \" \\ \n escapes.
		var v strings.Builder
		i := 1
		for ; i < len(after) && after[i] != '"'; i++ {
			if after[i] == '\\' && i+1 < len(after) {
				i++
			}
			v.WriteByte(after[i])
		}
		if i >= len(after) {
			return "", fmt.Errorf("labels %q: unterminated value", labels)
		}
		pairs = append(pairs, strings.TrimSpace(k)+"="+strconv.Quote(v.String()))
		rest = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(after[i+1:]), ","))
	}
	if len(pairs) == 0 {
		return name, nil
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}", nil
}

// metric names one sample: metric("stoa_sse_rejected_total", "reason", "ip_limit").
func metric(name string, kv ...string) string {
	if len(kv) == 0 {
		return name
	}
	var labels []string
	for i := 0; i+1 < len(kv); i += 2 {
		labels = append(labels, kv[i]+"="+strconv.Quote(kv[i+1]))
	}
	slices.Sort(labels)
	return name + "{" + strings.Join(labels, ",") + "}"
}
