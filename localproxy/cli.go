package localproxy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/stoa-platform/stoa-guard/jwtauthn"
)

// Options are stoa-proxy's flags.
type Options struct {
	Listen, Admin, Upstream, Module, ConfigFile string
	Env                                         map[string]string
	Workers                                     int
	Profile                                     string
	JWKS, Issuer                                string
	JWTMetadataKey                              string
	ShutdownTimeout                             time.Duration
	LogLevel                                    string
}

type envFlag map[string]string

func (e envFlag) String() string { return fmt.Sprint(len(e), " variables") }
func (e envFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want KEY=VALUE (VALUE may be empty)")
	}
	e[k] = v
	return nil
}

// ParseFlags parses stoa-proxy's command line.
func ParseFlags(args []string, stderr io.Writer) (*Options, error) {
	o := &Options{Env: map[string]string{}}
	fs := flag.NewFlagSet("stoa-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "address to serve HTTP on")
	fs.StringVar(&o.Admin, "admin", "127.0.0.1:9901", `admin address (/stats/prometheus, /ready); "" disables it. Keep it on loopback`)
	fs.StringVar(&o.Upstream, "upstream", "http://127.0.0.1:8081", "upstream base URL")
	fs.StringVar(&o.Module, "module", "filter.wasm", "the filter module")
	fs.StringVar(&o.ConfigFile, "config", "", "plugin configuration JSON file (Envoy `configuration`); none = the filter's defaults")
	fs.Var(envFlag(o.Env), "env", "KEY=VALUE operator variable (vm_config.environment_variables), repeatable, e.g. -env ALLOWED_AUDIENCES=")
	fs.IntVar(&o.Workers, "workers", runtime.NumCPU(), "worker VMs (Envoy --concurrency)")
	fs.StringVar(&o.Profile, "profile", ">=1.39", `Envoy profile: "1.33-1.38" or ">=1.39"`)
	fs.StringVar(&o.JWKS, "jwks", "demo/jwks.json", `JWKS file for the jwt_authn stand-in; "" disables it (the payload header is still removed)`)
	fs.StringVar(&o.Issuer, "issuer", "https://auth.stoa.local/realms/demo", "accepted token issuer")
	fs.StringVar(&o.JWTMetadataKey, "jwt-metadata-key", "jwt_payload", `jwt_authn payload_in_metadata key the verified claims are exposed under; "" for none`)
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long open requests may take to finish on SIGINT/SIGTERM before they are cut")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.Workers < 1 || o.Workers > 256 {
		return nil, fmt.Errorf("-workers %d: want 1..256", o.Workers)
	}
	return o, nil
}

// Addrs are the bound addresses, reported once serving.
type Addrs struct{ HTTP, Admin net.Addr }

// Run starts the proxy as configured by o and serves until ctx ends, then
// shuts down: /ready turns 503, the listeners close, open requests get
// ShutdownTimeout to finish and are then cut (their streams end through the
// filter), the VMs close. ready, if not nil, is called once both listeners
// are bound.
func Run(ctx context.Context, o *Options, log *slog.Logger, ready func(Addrs)) error {
	up, err := url.Parse(o.Upstream)
	if err != nil {
		return fmt.Errorf("-upstream: %v", err)
	}
	module, err := os.ReadFile(o.Module)
	if err != nil {
		return fmt.Errorf("-module: %v (build it with `make build`)", err)
	}
	var plugin []byte
	if o.ConfigFile != "" {
		if plugin, err = os.ReadFile(o.ConfigFile); err != nil {
			return fmt.Errorf("-config: %v", err)
		}
	}
	var jf *jwtauthn.Filter
	if o.JWKS != "" {
		doc, err := os.ReadFile(o.JWKS)
		if err != nil {
			return fmt.Errorf("-jwks: %v", err)
		}
		ks, err := jwtauthn.ParseJWKS(doc)
		if err != nil {
			return fmt.Errorf("-jwks: %v", err)
		}
		// require_expiration: true, clock_skew_seconds: 60, as envoy.yaml.
		v, err := jwtauthn.NewVerifier(jwtauthn.Config{Issuer: o.Issuer, Keys: ks})
		if err != nil {
			return err
		}
		jf = &jwtauthn.Filter{Verifier: v}
	}

	eng, err := NewWasmEngine(ctx, WasmConfig{
		Module: module, PluginConfig: plugin, Env: o.Env, Workers: o.Workers, Profile: o.Profile,
		StatsTags: StatsTags, JWTMetadataKey: o.JWTMetadataKey, Log: log,
	})
	if err != nil {
		return err
	}
	defer eng.Close()

	p, err := New(Config{Upstream: up, Engine: eng, JWT: jf, BypassCORSPreflight: true, Log: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	srv := p.Server()
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()

	admin := &Admin{Engine: eng}
	var adminSrv *http.Server
	addrs := Addrs{HTTP: ln.Addr()}
	if o.Admin != "" {
		aln, err := net.Listen("tcp", o.Admin)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("-admin: %v", err)
		}
		adminSrv = &http.Server{Handler: admin, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10}
		go func() { errc <- adminSrv.Serve(aln) }()
		addrs.Admin = aln.Addr()
	}
	adminAddr := "off"
	if addrs.Admin != nil {
		adminAddr = addrs.Admin.String()
	}
	log.Info("stoa-proxy serving", "listen", addrs.HTTP.String(), "admin", adminAddr, "upstream", up.Redacted(),
		"workers", o.Workers, "profile", o.Profile, "jwt_authn", jf != nil)
	if ready != nil {
		ready(addrs)
	}

	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	admin.SetDraining()
	log.Info("stoa-proxy shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		_ = srv.Close() // cut SSE streams: each ends through the filter (on_log, on_done, on_delete)
	}
	waitc := make(chan struct{})
	go func() { p.Wait(); close(waitc) }()
	select {
	case <-waitc:
	case <-time.After(5 * time.Second):
		log.Warn("streams still ending after shutdown")
	}
	if adminSrv != nil {
		_ = adminSrv.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// NewLogger returns a text logger at level ("debug", "info", "warn", "error").
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
