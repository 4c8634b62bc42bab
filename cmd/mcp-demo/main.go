// Command mcp-demo is the demo upstream of stoa-guard: a real MCP server on the
// official Go SDK (github.com/modelcontextprotocol/go-sdk). It serves
//
//	/mcp           Streamable HTTP transport (2025-03-26 and later)
//	/mcp/sse       legacy HTTP+SSE transport (2024-11-05): GET opens the event stream
//	/mcp/messages  where the legacy transport's clients POST their messages
//	/health        200 "ok"
//
// with two tools, echo and time. It keeps no secrets and does no
// authentication: it is meant to run behind stoa-proxy or Envoy, on loopback
// or a private network.
//
// The legacy transport's message endpoint is moved off /mcp/sse on purpose:
// the filter treats every request to an SSE path as a new SSE stream, so
// message POSTs there would count against the SSE limits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Version is the implementation version the server announces.
const Version = "v0.1.0"

// EchoInput is the echo tool's argument.
type EchoInput struct {
	Text string `json:"text" jsonschema:"the text to echo back"`
}

// EchoOutput is the echo tool's structured result.
type EchoOutput struct {
	Text string `json:"text"`
}

// TimeInput is the time tool's argument.
type TimeInput struct {
	Zone string `json:"zone,omitempty" jsonschema:"an IANA time zone such as Europe/Paris; UTC when empty"`
}

// TimeOutput is the time tool's structured result.
type TimeOutput struct {
	Time string `json:"time"`
	Zone string `json:"zone"`
}

// maxEcho bounds what echo returns.
const maxEcho = 4096

// NewServer returns the demo MCP server with its tools. now is the clock of
// the time tool.
func NewServer(now func() time.Time) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "stoa-mcp-demo", Version: Version}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Returns its text argument unchanged."},
		func(_ context.Context, _ *mcp.CallToolRequest, in EchoInput) (*mcp.CallToolResult, EchoOutput, error) {
			t := in.Text
			if len(t) > maxEcho {
				t = t[:maxEcho]
			}
			return nil, EchoOutput{Text: t}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "time", Description: "Returns the current time (RFC 3339)."},
		func(_ context.Context, _ *mcp.CallToolRequest, in TimeInput) (*mcp.CallToolResult, TimeOutput, error) {
			loc := time.UTC
			if in.Zone != "" {
				l, err := time.LoadLocation(in.Zone)
				if err != nil {
					return nil, TimeOutput{}, errors.New("unknown time zone")
				}
				loc = l
			}
			return nil, TimeOutput{Time: now().In(loc).Format(time.RFC3339), Zone: loc.String()}, nil
		})
	return s
}

// NewHandler routes the demo's endpoints to server.
func NewHandler(server *mcp.Server) http.Handler {
	get := func(*http.Request) *mcp.Server { return server }
	streamable := mcp.NewStreamableHTTPHandler(get, nil)
	sse := mcp.NewSSEHandler(get, nil)

	mux := http.NewServeMux()
	mux.Handle("/mcp", streamable)
	// GET /mcp/sse opens a legacy session. The SDK advertises the message
	// endpoint relative to the GET's path, so present the GET as /mcp/messages.
	mux.HandleFunc("GET /mcp/sse", func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/mcp/messages"
		r2.URL.RawPath = ""
		sse.ServeHTTP(w, r2)
	})
	mux.Handle("POST /mcp/messages", sse)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// newHTTPServer bounds what a client may hold. There is no WriteTimeout: SSE
// responses are long-lived by design.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve on")
	health := flag.Bool("healthcheck", false, "probe http://<listen>/health and exit 0 if it answers 200 (for container health checks)")
	flag.Parse()
	if *health {
		os.Exit(healthcheck(*listen))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, func(a net.Addr) { log.Printf("mcp-demo: serving MCP on http://%s/mcp (SSE: /mcp/sse)", a) }); err != nil {
		log.Fatalf("mcp-demo: %v", err)
	}
}

// run serves until ctx ends, then shuts down gracefully (bounded).
func run(ctx context.Context, listen string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := newHTTPServer(NewHandler(NewServer(time.Now)))
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// SSE streams do not end by themselves: cut them.
		_ = srv.Close()
	}
	return nil
}

func healthcheck(listen string) int {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad -listen:", err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/health")
	if err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "unhealthy:", resp.Status)
		return 1
	}
	return 0
}
