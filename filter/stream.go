package filter

import (
	"strings"
	"time"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/filter/audience"
	"github.com/stoa-platform/stoa-guard/filter/cors"
	"github.com/stoa-platform/stoa-guard/filter/identity"
	"github.com/stoa-platform/stoa-guard/filter/limiter"
)

const (
	anonymousTenant = "anonymous"
	sourceAddress   = "source\x00address"
	eventStream     = "text/event-stream"
	applicationJSON = "application/json"
)

// stream is the state of one HTTP stream. It implements the SDK's
// types.HttpContext plus abi.DoneHandler and abi.DeleteHandler, so that the
// slots of an admitted stream are released by whichever of proxy_on_log,
// proxy_on_done and proxy_on_delete comes first.
type stream struct {
	p  *plugin
	id uint32

	// origin is a copy of an allowed Origin header, for the response.
	origin []byte
	// corsHeaders: add CORS headers to the response.
	corsHeaders bool

	admitted     bool
	lease        limiter.Lease
	tenantGauge  uint32
	hasGauge     bool
	otherGauge   bool      // tenantGauge is OtherTenant's (never resynced)
	lastActivity time.Time // admission, or the tick that saw the last response bytes
	active       bool      // response bytes since the last tick
	closeReason  int       // -1: not closed by the filter
	activeIdx    int
}

var (
	_ types.HttpContext = (*stream)(nil)
	_ abi.DoneHandler   = (*stream)(nil)
	_ abi.DeleteHandler = (*stream)(nil)
)

func (s *stream) reset(p *plugin, id uint32) {
	s.p, s.id = p, id
	s.origin = s.origin[:0]
	s.corsHeaders = false
	s.admitted, s.active = false, false
	s.lease = limiter.Lease{}
	s.hasGauge = false
	s.closeReason = -1
	s.activeIdx = -1
}

// request is what one pass over the request headers finds. Strings alias
// host memory valid during OnHttpRequestHeaders only.
type request struct {
	method, path, origin  string
	acrMethod, acrHeaders string
	hasACRMethod          bool
	origins, payloads     int
	payload               string
	sse                   bool
	acceptJSON            bool // Accept lists application/json
}

// OnHttpRequestHeaders runs SPEC's decisions in order: client identity,
// CORS, audience, SSE admission. A refusal answers locally and pauses.
func (s *stream) OnHttpRequestHeaders(int, bool) types.Action {
	p := s.p
	if p == nil || p.cfg == nil {
		return types.ActionContinue
	}
	var err error
	p.headers, err = p.host.RequestHeaders(p.headers[:0])
	if err != nil {
		p.host.Log(abi.LogError, "stoa-guard: cannot read request headers: "+err.Error())
		return s.send(&reply{status: 503, body: []byte(`{"error":"unavailable"}`), details: "stoa_internal"})
	}
	r := s.scan()

	// CORS: only requests with an Origin are cross-origin requests.
	preflight := false
	if r.origins > 0 {
		preflight = r.method == "OPTIONS" && r.hasACRMethod
		if act, done := s.checkCORS(&r, preflight); done {
			return act
		}
	}

	// Audience: never for preflights (jwt_authn may bypass them and leave a
	// client-sent payload header in place) nor for exempt paths.
	claimsOK := false
	if !preflight && (p.checker.Enabled() || (r.sse && p.limiter != nil)) {
		reason := s.claims(&r)
		if reason == audience.None && p.checker.Enabled() {
			reason = p.checker.Check(&p.claims)
		}
		claimsOK = reason == audience.None
		if reason != audience.None && p.checker.Enabled() && !p.exempt.Match(r.path) {
			p.metrics.jwtInc(reason)
			if !p.cfg.Mode.AudienceDryRun {
				return s.send(p.replies.unauthorized[reason])
			}
			p.host.Log(abi.LogInfo, "stoa-guard: dry run: would refuse token: "+reason.String())
		}
	}

	if r.sse && p.limiter != nil && !preflight && (r.method == "GET" || r.method == "POST") {
		tenant := anonymousTenant
		if claimsOK && p.claims.Tenant != "" {
			tenant = p.claims.Tenant
		}
		if act, done := s.admit(&r, tenant); done {
			return act
		}
	}
	return types.ActionContinue
}

// scan reads every header once.
func (s *stream) scan() request {
	p := s.p
	var r request
	p.xff = p.xff[:0]
	payloadHeader := p.cfg.Audience.PayloadHeader
	for _, h := range p.headers {
		switch h.Name {
		case ":method":
			r.method = h.Value
		case ":path":
			r.path = h.Value
		case "origin":
			r.origin = h.Value
			r.origins++
		case "access-control-request-method":
			r.acrMethod, r.hasACRMethod = h.Value, true
		case "access-control-request-headers":
			if r.acrHeaders == "" {
				r.acrHeaders = h.Value
			} else {
				r.acrHeaders += "," + h.Value // rare: allocates
			}
		case "accept":
			if acceptsMedia(h.Value, eventStream) {
				r.sse = true
			}
			if acceptsMedia(h.Value, applicationJSON) {
				r.acceptJSON = true
			}
		case "x-forwarded-for":
			p.xff = append(p.xff, h.Value)
		case payloadHeader:
			r.payload = h.Value
			r.payloads++
		}
	}
	if !r.sse {
		r.sse = p.cfg.SSE.IsPath(r.path)
	}
	return r
}

// checkCORS answers preflights and refuses unlisted origins.
func (s *stream) checkCORS(r *request, preflight bool) (types.Action, bool) {
	p := s.p
	var reason cors.Reason
	switch {
	case r.origins > 1:
		reason = cors.ReasonOrigin // two Origin headers: never a browser
	case preflight:
		reason = p.cors.Preflight(r.origin, r.acrMethod, r.acrHeaders)
	case !p.cors.AllowOrigin(r.origin):
		reason = cors.ReasonOrigin
	}
	if reason != cors.ReasonNone {
		p.metrics.corsInc(reason)
		if !p.cfg.Mode.CORSDryRun {
			return s.send(p.replies.forbidden[reason]), true
		}
		p.host.Log(abi.LogInfo, "stoa-guard: dry run: would refuse CORS request: "+reason.String())
		return types.ActionContinue, false
	}
	if preflight {
		rp := &p.replies.preflight
		if !p.cors.Wildcard() {
			rp.headers[0].Value = r.origin
		}
		act := s.send(rp)
		rp.headers[0].Value = ""
		if p.cors.Wildcard() {
			rp.headers[0].Value = "*"
		}
		return act, true
	}
	s.origin = append(s.origin[:0], r.origin...)
	s.corsHeaders = true
	return types.ActionContinue, false
}

// claims fills p.claims from jwt_authn's verified payload: dynamic metadata
// when payload_metadata_key is configured (the header is then never read),
// else the forwarded payload header, which must appear exactly once.
func (s *stream) claims(r *request) audience.Reason {
	p := s.p
	p.claims = audience.Claims{}
	if p.metaAud != "" {
		return s.metadataClaims()
	}
	switch r.payloads {
	case 0:
		return audience.MissingToken
	case 1:
		return p.decoder.DecodeHeader(r.payload, &p.claims)
	default:
		return audience.Malformed // duplicate payload header: a spoofing attempt
	}
}

func (s *stream) metadataClaims() audience.Reason {
	p := s.p
	aud, err := p.host.Property(p.metaAud)
	switch err {
	case nil:
		if reason := p.claims.SetAudFromProperty(aud); reason != audience.None {
			return reason
		}
	case abi.ErrNotFound:
		// No aud: is there a payload at all?
		base := p.metaAud[:len(p.metaAud)-len("\x00aud")]
		if _, err := p.host.Property(base); err != nil {
			return audience.MissingToken
		}
	default:
		return audience.MissingToken
	}
	if t, err := p.host.Property(p.metaTenant); err == nil {
		p.claims.SetTenantFromProperty(t)
	}
	return audience.None
}

// admit asks the limiter for a slot. The client is identified only here, as
// only SSE admission needs it.
func (s *stream) admit(r *request, tenant string) (types.Action, bool) {
	p := s.p
	var key identity.Key
	if raw, err := p.host.Property(sourceAddress); err == nil {
		if peer, err := identity.ParsePeer(string(raw)); err == nil {
			key = p.resolver.Key(p.resolver.Client(peer, p.xff))
		}
	} // an unknown peer shares the zero key: limited, never unlimited
	now := p.clock()
	admit := p.limiter.Admit
	if r.method == "POST" && r.acceptJSON && !p.cfg.SSE.RateLimitMessagePosts {
		admit = p.limiter.AdmitUnrated // a Streamable HTTP message, not a new stream
	}
	reason, err := admit(now, key, tenant, &s.lease)
	if err != nil || reason == limiter.Busy {
		// Shared data failed or stayed contended past the retry budget: fail
		// closed, reported as global_limit (the shared state is saturated).
		if err != nil {
			p.host.Log(abi.LogWarn, "stoa-guard: SSE admission failed, refusing: "+err.Error())
		}
		reason = limiter.GlobalLimit
	}
	if reason != limiter.None {
		p.metrics.sseRejectedInc(reason)
		if !p.cfg.Mode.SSEDryRun {
			return s.send(p.replies.tooMany[reason]), true
		}
		p.host.Log(abi.LogInfo, "stoa-guard: dry run: would refuse SSE stream: "+reason.String())
		return types.ActionContinue, false
	}
	s.admitted = true
	s.lastActivity = now
	p.streams.track(s)
	if id, other, ok := p.metrics.tenantGauge(tenant); ok {
		s.tenantGauge, s.hasGauge, s.otherGauge = id, true, other
		_ = p.host.IncrementMetric(id, 1)
	}
	return types.ActionContinue, false
}

func (s *stream) send(r *reply) types.Action {
	if err := s.p.host.SendLocalResponse(r.status, r.headers, r.body, r.details); err != nil {
		s.p.host.Log(abi.LogError, "stoa-guard: cannot send local response: "+err.Error())
	}
	return types.ActionPause
}

// OnHttpRequestBody passes bodies through.
func (*stream) OnHttpRequestBody(int, bool) types.Action { return types.ActionContinue }

// OnHttpRequestTrailers passes trailers through.
func (*stream) OnHttpRequestTrailers(int) types.Action { return types.ActionContinue }

// OnHttpResponseHeaders adds the CORS headers of an allowed actual request.
func (s *stream) OnHttpResponseHeaders(int, bool) types.Action {
	p := s.p
	if p == nil {
		return types.ActionContinue
	}
	if s.corsHeaders {
		if p.cors.Wildcard() {
			_ = p.host.AddResponseHeader("access-control-allow-origin", "*")
		} else {
			_ = p.host.AddResponseHeader("access-control-allow-origin", unsafeString(s.origin))
			_ = p.host.AddResponseHeader("access-control-allow-credentials", "true")
		}
		if v := p.cors.ExposeHeadersValue(); v != "" {
			_ = p.host.AddResponseHeader("access-control-expose-headers", v)
		}
		_ = p.host.AddResponseHeader("vary", "Origin")
	}
	if s.admitted {
		s.active = true
	}
	return types.ActionContinue
}

// OnHttpResponseBody marks activity: every chunk of an admitted stream. The
// next tick turns the mark into a time, so a chunk costs no clock call.
func (s *stream) OnHttpResponseBody(int, bool) types.Action {
	if s.admitted {
		s.active = true
	}
	return types.ActionContinue
}

// OnHttpResponseTrailers passes trailers through.
func (*stream) OnHttpResponseTrailers(int) types.Action { return types.ActionContinue }

// OnHttpStreamDone is proxy_on_log.
func (s *stream) OnHttpStreamDone() { s.end() }

// OnDone is proxy_on_done.
func (s *stream) OnDone() { s.end() }

// OnDelete is proxy_on_delete: release if nothing did, then recycle.
func (s *stream) OnDelete() {
	p := s.p
	if p == nil {
		return
	}
	s.end()
	p.streams.put(s)
}

func (s *stream) end() {
	if s.p != nil && s.admitted {
		s.release(s.p.clock())
	}
}

// release frees the stream's slots exactly once.
func (s *stream) release(now time.Time) {
	p := s.p
	if !s.admitted {
		return
	}
	s.admitted = false
	p.streams.untrack(s)
	if err := p.limiter.Release(now, &s.lease); err != nil {
		p.host.Log(abi.LogWarn, "stoa-guard: SSE release failed (the lease will expire): "+err.Error())
	}
	// A labelled gauge is also set from shared data on each tick, which
	// stops counting an expired lease: then the decrement is already done.
	if s.hasGauge && (s.otherGauge || now.Before(s.lease.Expiry())) {
		_ = p.host.IncrementMetric(s.tenantGauge, -1)
	}
	s.hasGauge = false
}

// acceptsMedia reports whether an Accept value lists the media type mt
// (lower case), compared without regard to case as servers do (media types
// are case-insensitive), so "TEXT/Event-Stream" cannot slip a stream past
// the limiter. It does not allocate.
func acceptsMedia(v, mt string) bool {
	for len(v) >= len(mt) {
		i := 0
		for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == ',') {
			i++
		}
		v = v[i:]
		if len(v) >= len(mt) && strings.EqualFold(v[:len(mt)], mt) {
			rest := v[len(mt):]
			if rest == "" || rest[0] == ',' || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t' {
				return true
			}
		}
		j := strings.IndexByte(v, ',')
		if j < 0 {
			return false
		}
		v = v[j+1:]
	}
	return false
}
