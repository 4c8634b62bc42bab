package localproxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stoa-platform/stoa-guard/jwtauthn"
)

// Defaults for Config's zero values.
const (
	DefaultMaxHeaderBytes        = 60 << 10 // Envoy's max_request_headers_kb default is 60
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultIdleTimeout           = 5 * time.Minute
	chunkSize                    = 32 << 10
)

// Config configures a Proxy.
type Config struct {
	// Upstream is the base URL requests are forwarded to (scheme and host;
	// its path, if any, is prefixed to the request's).
	Upstream *url.URL
	// Engine runs the filter (required).
	Engine Engine
	// JWT is the jwt_authn stand-in; nil forwards requests without it (the
	// payload header is still removed).
	JWT *jwtauthn.Filter
	// BypassCORSPreflight skips token verification on CORS preflights, as
	// jwt_authn's bypass_cors_preflight; the payload header is removed anyway.
	BypassCORSPreflight bool
	// PayloadHeader is the jwt_authn payload header (jwtauthn.DefaultPayloadHeader when empty).
	PayloadHeader string

	MaxHeaderBytes        int
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	ReadHeaderTimeout     time.Duration
	IdleTimeout           time.Duration

	// Now is the clock for token expiry (time.Now when nil).
	Now func() time.Time
	// Log receives operational messages (slog.Default when nil). Tokens and
	// payloads are never logged.
	Log *slog.Logger
	// Transport overrides the upstream transport (tests).
	Transport http.RoundTripper
}

// Proxy is the HTTP front. Create with New; serve with Serve.
type Proxy struct {
	cfg       Config
	transport http.RoundTripper
	nextConn  atomic.Uint64
	active    sync.WaitGroup
	streams   atomic.Int64
}

type ctxKey int

const connKey ctxKey = 0

type connInfo struct {
	id     uint64
	worker int
	local  netip.AddrPort
}

// New checks cfg and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Engine == nil || cfg.Engine.Workers() < 1 {
		return nil, errors.New("localproxy: an engine with at least one worker is required")
	}
	if cfg.Upstream == nil || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") || cfg.Upstream.Host == "" {
		return nil, errors.New("localproxy: upstream must be an http:// or https:// URL with a host")
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.PayloadHeader == "" {
		cfg.PayloadHeader = jwtauthn.DefaultPayloadHeader
	}
	if cfg.JWT != nil && cfg.JWT.PayloadHeader == "" {
		j := *cfg.JWT
		j.PayloadHeader = cfg.PayloadHeader
		cfg.JWT = &j
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	p := &Proxy{cfg: cfg, transport: cfg.Transport}
	if p.transport == nil {
		p.transport = &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:    cfg.DialTimeout,
			ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
			MaxIdleConns:           1024,
			MaxIdleConnsPerHost:    256,
			IdleConnTimeout:        90 * time.Second,
			DisableCompression:     true,
			MaxResponseHeaderBytes: int64(cfg.MaxHeaderBytes),
		}
	}
	return p, nil
}

// Server returns an *http.Server for the proxy with every bound set. Serve it
// on a listener of your own (srv.Serve(ln)).
func (p *Proxy) Server() *http.Server {
	return &http.Server{
		Handler:           p,
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
		ReadHeaderTimeout: p.cfg.ReadHeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		ConnContext:       p.connContext,
		ErrorLog:          slog.NewLogLogger(p.cfg.Log.Handler(), slog.LevelDebug),
	}
}

// ActiveStreams is the number of requests in flight through the filter.
func (p *Proxy) ActiveStreams() int64 { return p.streams.Load() }

// Wait blocks until every stream has ended (after the server was shut down).
func (p *Proxy) Wait() { p.active.Wait() }

// connContext assigns the connection to a worker, round-robin.
func (p *Proxy) connContext(ctx context.Context, c net.Conn) context.Context {
	id := p.nextConn.Add(1)
	ci := &connInfo{id: id, worker: int((id - 1) % uint64(p.cfg.Engine.Workers()))}
	if a, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		ci.local = a
	}
	return context.WithValue(ctx, connKey, ci)
}

func (p *Proxy) conn(r *http.Request) *connInfo {
	if ci, ok := r.Context().Value(connKey).(*connInfo); ok {
		return ci
	}
	// Served without Server() (e.g. httptest with a plain handler).
	id := p.nextConn.Add(1)
	return &connInfo{id: id, worker: int((id - 1) % uint64(p.cfg.Engine.Workers()))}
}

// hopByHop are removed in both directions (RFC 9110 7.6.1), like Envoy.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopByHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, n := range hopByHop {
		h.Del(n)
	}
}

func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// ServeHTTP proxies one request through the jwt_authn stand-in and the filter.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.active.Add(1)
	defer p.active.Done()
	ci := p.conn(r)
	peer, _ := netip.ParseAddrPort(r.RemoteAddr)

	// 1. Connection manager.
	if hasUnderscoreHeader(func(yield func(string) bool) {
		for k := range r.Header {
			if !yield(k) {
				return
			}
		}
	}) {
		writePlain(w, http.StatusBadRequest, "header name with underscore")
		return
	}
	target := r.RequestURI
	if target == "" || r.Method == http.MethodConnect || !strings.HasPrefix(target, "/") {
		target = r.URL.RequestURI()
	}
	path, err := normalizePath(target)
	if err != nil {
		writePlain(w, http.StatusBadRequest, "bad path")
		return
	}
	removeHopByHop(r.Header)
	for k := range r.Header {
		if strings.HasPrefix(k, "X-Envoy-") {
			delete(r.Header, k)
		}
	}
	appendXFF(r.Header, peer.Addr())
	r.Header.Set("X-Forwarded-Proto", "http")
	reqID := newRequestID()
	r.Header.Set("X-Request-Id", reqID)

	// 2. jwt_authn.
	var payload []byte
	if p.cfg.JWT == nil || (p.cfg.BypassCORSPreflight && isPreflight(r)) {
		r.Header.Del(p.cfg.PayloadHeader)
	} else {
		out, pl, err := p.cfg.JWT.Authenticate(r.Header, p.cfg.Now())
		if out == jwtauthn.Rejected {
			p.cfg.Log.Debug("jwt_authn: token refused", "reason", err, "peer", peer.Addr())
			jwtauthn.WriteUnauthorized(w, r)
			return
		}
		payload = pl
	}

	// 3. The filter.
	s, err := p.cfg.Engine.NewStream(ci.worker, StreamInfo{
		Source: peer, Destination: ci.local, ConnectionID: ci.id,
		Protocol: r.Proto, RequestID: reqID, JWTPayload: payload,
	})
	if err != nil {
		p.cfg.Log.Error("filter: cannot open a stream", "err", err)
		writePlain(w, http.StatusServiceUnavailable, "filter unavailable")
		return
	}
	p.streams.Add(1)
	defer p.streams.Add(-1)
	defer s.End()

	hdrs, local, err := s.RequestHeaders(requestHeaders(r, path), r.ContentLength == 0 && r.Body == http.NoBody)
	if err != nil {
		p.cfg.Log.Error("filter: on_request_headers failed", "err", err)
		writePlain(w, http.StatusInternalServerError, "filter failure")
		return
	}
	if local != nil {
		writeLocal(w, local)
		return
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var closedByFilter atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-s.Closed():
			closedByFilter.Store(true)
			cancel()
		case <-stop:
		}
	}()

	out, err := p.outbound(ctx, r, hdrs)
	if err != nil {
		p.cfg.Log.Debug("bad request after the filter", "err", err)
		writePlain(w, http.StatusBadRequest, "bad request")
		return
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		if closedByFilter.Load() {
			abort()
		}
		if r.Context().Err() != nil {
			return // client gone: End runs from the defer
		}
		p.cfg.Log.Debug("upstream request failed", "err", err)
		// Envoy's router answers 503 through the filter chain.
		resp = &http.Response{
			StatusCode: http.StatusServiceUnavailable,
			Header:     http.Header{"Content-Type": {"text/plain"}},
			Body:       io.NopCloser(strings.NewReader("upstream connect error or disconnect/reset before headers")),
		}
	}
	defer resp.Body.Close()

	removeHopByHop(resp.Header)
	rh, local, err := s.ResponseHeaders(responseHeaders(resp), false)
	if err != nil {
		p.cfg.Log.Error("filter: on_response_headers failed", "err", err)
		writePlain(w, http.StatusInternalServerError, "filter failure")
		return
	}
	if local != nil {
		writeLocal(w, local)
		return
	}
	status := resp.StatusCode
	wh := w.Header()
	for _, h := range rh {
		if h.Name == ":status" {
			if n, err := strconv.Atoi(h.Value); err == nil && n >= 100 && n <= 999 {
				status = n
			}
			continue
		}
		if strings.HasPrefix(h.Name, ":") {
			continue
		}
		wh[http.CanonicalHeaderKey(h.Name)] = append(wh[http.CanonicalHeaderKey(h.Name)], h.Value)
	}
	rc := http.NewResponseController(w)
	w.WriteHeader(status)
	_ = rc.Flush()

	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if err := s.ResponseBody(buf[:n], false); err != nil {
				p.cfg.Log.Error("filter: on_response_body failed", "err", err)
				abort()
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // client gone
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
		if rerr == io.EOF {
			_ = s.ResponseBody(nil, true)
			return
		}
		if rerr != nil {
			if r.Context().Err() != nil && !closedByFilter.Load() {
				return // client gone
			}
			// Closed by the filter, or the upstream reset mid-body: Envoy
			// resets the downstream stream too.
			abort()
		}
	}
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// abort resets the client's stream: net/http's documented way is to panic
// with http.ErrAbortHandler, which the server recovers without logging; it
// closes an HTTP/1 connection, or resets an HTTP/2 stream. Deferred calls
// (the stream's End) run first.
func abort() { panic(http.ErrAbortHandler) }

// appendXFF appends peer to X-Forwarded-For as Envoy does with
// use_remote_address: duplicate headers are coalesced into one value joined
// by "," and the peer is appended with ",".
func appendXFF(h http.Header, peer netip.Addr) {
	if !peer.IsValid() {
		return
	}
	ip := peer.Unmap().String()
	prev := h.Values("X-Forwarded-For")
	if len(prev) == 0 {
		h.Set("X-Forwarded-For", ip)
		return
	}
	h.Set("X-Forwarded-For", strings.Join(prev, ",")+","+ip)
}

// requestHeaders lists the request's headers as Envoy hands them to the
// filter: pseudo-headers first, names lower-case, each value separate. Go
// loses the order across names; names are sorted for determinism.
func requestHeaders(r *http.Request, path string) []Header {
	hs := make([]Header, 0, 4+len(r.Header))
	hs = append(hs,
		Header{":authority", r.Host},
		Header{":path", path},
		Header{":method", r.Method},
		Header{":scheme", "http"},
	)
	return appendSorted(hs, r.Header)
}

func responseHeaders(resp *http.Response) []Header {
	hs := make([]Header, 0, 1+len(resp.Header))
	hs = append(hs, Header{":status", strconv.Itoa(resp.StatusCode)})
	return appendSorted(hs, resp.Header)
}

func appendSorted(hs []Header, h http.Header) []Header {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		lk := strings.ToLower(k)
		for _, v := range h[k] {
			hs = append(hs, Header{lk, v})
		}
	}
	return hs
}

// outbound builds the upstream request from the headers the filter left.
func (p *Proxy) outbound(ctx context.Context, r *http.Request, hs []Header) (*http.Request, error) {
	method, path, authority := r.Method, r.URL.RequestURI(), r.Host
	h := make(http.Header, len(hs))
	for _, x := range hs {
		switch x.Name {
		case ":method":
			method = x.Value
		case ":path":
			path = x.Value
		case ":authority":
			authority = x.Value
		default:
			if strings.HasPrefix(x.Name, ":") {
				continue
			}
			k := http.CanonicalHeaderKey(x.Name)
			h[k] = append(h[k], x.Value)
		}
	}
	if !strings.HasPrefix(path, "/") {
		return nil, errors.New("path must start with /")
	}
	ref, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, err
	}
	u := *p.cfg.Upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + ref.Path
	u.RawPath = ""
	if ref.RawPath != "" {
		u.RawPath = strings.TrimSuffix(u.EscapedPath(), "/") + ref.RawPath
	}
	u.RawQuery = ref.RawQuery
	out, err := http.NewRequestWithContext(ctx, method, u.String(), r.Body)
	if err != nil {
		return nil, err
	}
	if r.Body == nil || r.Body == http.NoBody {
		out.Body = nil
	}
	out.ContentLength = r.ContentLength
	out.Header = h
	out.Host = authority // Envoy keeps :authority unless the route rewrites it
	if h.Get("User-Agent") == "" {
		h["User-Agent"] = nil // no Go default
	}
	return out, nil
}

func writeLocal(w http.ResponseWriter, l *LocalReply) {
	wh := w.Header()
	for _, h := range l.Headers {
		if strings.HasPrefix(h.Name, ":") {
			continue
		}
		k := http.CanonicalHeaderKey(h.Name)
		wh[k] = append(wh[k], h.Value)
	}
	if wh.Get("Content-Length") == "" {
		wh.Set("Content-Length", strconv.Itoa(len(l.Body)))
	}
	status := l.Status
	if status < 100 || status > 999 {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	_, _ = w.Write(l.Body)
}

func writePlain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
