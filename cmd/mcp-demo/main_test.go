package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var fixed = time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(NewHandler(NewServer(func() time.Time { return fixed })))
	t.Cleanup(ts.Close)
	return ts
}

func connect(t *testing.T, tr mcp.Transport) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil)
	cs, err := c.Connect(ctx, tr, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func callText(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err)
	require.False(t, res.IsError, "tool error: %+v", res.Content)
	var out map[string]any
	b, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestTransports(t *testing.T) {
	ts := newTestServer(t)
	for name, tr := range map[string]func() mcp.Transport{
		"streamable": func() mcp.Transport {
			return &mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp", MaxRetries: -1}
		},
		"sse": func() mcp.Transport { return &mcp.SSEClientTransport{Endpoint: ts.URL + "/mcp/sse"} },
	} {
		t.Run(name, func(t *testing.T) {
			cs := connect(t, tr())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tools, err := cs.ListTools(ctx, nil)
			require.NoError(t, err)
			var names []string
			for _, tl := range tools.Tools {
				names = append(names, tl.Name)
			}
			assert.ElementsMatch(t, []string{"echo", "time"}, names)

			assert.Equal(t, "hello", callText(t, cs, "echo", map[string]any{"text": "hello"})["text"])
			assert.Equal(t, "2026-12-04T15:00:00Z", callText(t, cs, "time", nil)["time"])
		})
	}
}

func TestEchoBounded(t *testing.T) {
	ts := newTestServer(t)
	cs := connect(t, &mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp", MaxRetries: -1})
	big := make([]byte, 3*maxEcho)
	for i := range big {
		big[i] = 'a'
	}
	out := callText(t, cs, "echo", map[string]any{"text": string(big)})
	assert.Len(t, out["text"], maxEcho)
}

func TestTimeUnknownZoneIsToolError(t *testing.T) {
	ts := newTestServer(t)
	cs := connect(t, &mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp", MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "time", Arguments: map[string]any{"zone": "Nowhere/../etc"}})
	require.NoError(t, err)
	assert.True(t, res.IsError)
}

func TestHealthAndRoutes(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/health", 200},
		{"GET", "/nope", 404},
		{"POST", "/mcp/sse", 405},      // messages go to /mcp/messages
		{"POST", "/mcp/messages", 415}, // not JSON
		{"GET", "/mcp/messages", 405},  // streams open on /mcp/sse only
	} {
		req, err := http.NewRequest(tc.method, ts.URL+tc.path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		assert.Equal(t, tc.want, resp.StatusCode, "%s %s", tc.method, tc.path)
	}
}

func TestSSEEndpointEventPointsToMessages(t *testing.T) {
	ts := newTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", ts.URL+"/mcp/sse", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	buf := make([]byte, 256)
	n, err := resp.Body.Read(buf)
	require.NoError(t, err)
	assert.Contains(t, string(buf[:n]), "event: endpoint")
	assert.Contains(t, string(buf[:n]), "/mcp/messages?sessionid=")
}

func TestRunGracefulShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", func(a net.Addr) { addrc <- a }) }()
	addr := <-addrc
	_, port, _ := net.SplitHostPort(addr.String())
	assert.Equal(t, 0, healthcheck("0.0.0.0:"+port))
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	assert.Equal(t, 1, healthcheck(addr.String()))
}
