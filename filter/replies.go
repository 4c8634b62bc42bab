package filter

import (
	"strconv"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/filter/audience"
	"github.com/stoa-platform/stoa-guard/filter/cors"
	"github.com/stoa-platform/stoa-guard/filter/limiter"
)

// reply is one local response, built once at configuration so that refusing
// a request allocates nothing. Bodies name the reason only: never the token,
// the payload or an allow list.
type reply struct {
	status  uint32
	headers []abi.Header
	body    []byte
	details string // Envoy's response code details (shows in access logs)
}

// replies holds every local response the filter can send.
type replies struct {
	unauthorized map[audience.Reason]*reply
	forbidden    map[cors.Reason]*reply
	tooMany      map[limiter.Reason]*reply

	// preflight is the 204 answer; headers[0] is the Allow-Origin slot,
	// filled per request from the stream's copy of the Origin header.
	preflight reply
}

const (
	hdrContentType = "content-type"
	jsonType       = "application/json"
	varyPreflight  = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
)

func newReplies(p *cors.Policy, retryAfter int) *replies {
	r := &replies{
		unauthorized: make(map[audience.Reason]*reply, len(jwtReasons)),
		forbidden:    make(map[cors.Reason]*reply, len(corsReasons)),
		tooMany:      make(map[limiter.Reason]*reply, len(sseRejectReasons)),
	}
	for _, reason := range jwtReasons {
		desc := reason.Description()
		r.unauthorized[reason] = &reply{
			status: 401,
			headers: []abi.Header{
				{Name: "www-authenticate", Value: `Bearer error="invalid_token", error_description="` + desc + `"`},
				{Name: hdrContentType, Value: jsonType},
			},
			body:    []byte(`{"error":"invalid_token","error_description":` + strconv.Quote(desc) + `}`),
			details: "stoa_jwt_" + reason.String(),
		}
	}
	for _, reason := range corsReasons {
		r.forbidden[reason] = &reply{
			status:  403,
			headers: []abi.Header{{Name: hdrContentType, Value: jsonType}, {Name: "vary", Value: "Origin"}},
			body:    []byte(`{"error":"cors_rejected","reason":"` + reason.String() + `"}`),
			details: "stoa_cors_" + reason.String(),
		}
	}
	retry := strconv.Itoa(retryAfter)
	for _, reason := range sseRejectReasons {
		r.tooMany[reason] = &reply{
			status:  429,
			headers: []abi.Header{{Name: "retry-after", Value: retry}, {Name: hdrContentType, Value: jsonType}},
			body:    []byte(`{"error":"too_many_requests","reason":"` + reason.String() + `","retry_after":` + retry + `}`),
			details: "stoa_sse_" + reason.String(),
		}
	}
	h := []abi.Header{
		{Name: "access-control-allow-origin"}, // filled per request
		{Name: "access-control-allow-methods", Value: p.AllowMethodsValue()},
		{Name: "access-control-allow-headers", Value: p.AllowHeadersValue()},
		{Name: "access-control-max-age", Value: p.MaxAgeValue()},
	}
	if p.Wildcard() {
		h[0].Value = "*"
	} else {
		h = append(h, abi.Header{Name: "access-control-allow-credentials", Value: "true"})
	}
	h = append(h, abi.Header{Name: "vary", Value: varyPreflight})
	r.preflight = reply{status: 204, headers: h, details: "stoa_cors_preflight"}
	return r
}
