package jwtauthn

import (
	"encoding/base64"
	"net/http"
	"strings"
	"time"
)

// DefaultPayloadHeader is the header the verified payload is forwarded in
// (jwt_authn's forward_payload_header as the project configures it).
const DefaultPayloadHeader = "x-jwt-payload"

// Outcome is what Authenticate decided.
type Outcome uint8

const (
	// NoToken: no bearer token; the request continues without payload.
	NoToken Outcome = iota
	// Verified: the payload header now carries the verified payload.
	Verified
	// Rejected: answer 401 (WriteUnauthorized); the request must not continue.
	Rejected
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case NoToken:
		return "no_token"
	case Verified:
		return "verified"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Filter applies a Verifier to requests as jwt_authn does with
// forward_payload_header and allow_missing.
type Filter struct {
	// Verifier checks the tokens (required).
	Verifier *Verifier
	// PayloadHeader to forward the payload in; DefaultPayloadHeader when empty.
	PayloadHeader string
	// Forward keeps the Authorization header upstream after a successful
	// verification (jwt_authn's `forward`); false removes it, as Envoy does by
	// default.
	Forward bool
}

// Authenticate strips any client-sent payload header from h, then looks for
// one "Authorization: Bearer <jwt>" header. Without one it returns NoToken.
// With a valid token it sets the payload header (base64url of the payload, no
// padding) and returns Verified; with an invalid token, or several
// Authorization headers, Rejected and the reason. It never panics and never
// puts the token in the error.
func (f *Filter) Authenticate(h http.Header, now time.Time) (Outcome, []byte, error) {
	ph := f.PayloadHeader
	if ph == "" {
		ph = DefaultPayloadHeader
	}
	// ALWAYS first: only a payload verified here may reach the filter.
	h.Del(ph)

	vals := h.Values("Authorization")
	var token string
	n := 0
	for _, v := range vals {
		if t, ok := bearer(v); ok {
			token = t
			n++
		}
	}
	switch {
	case n == 0:
		return NoToken, nil, nil
	case n > 1 || len(vals) > 1:
		return Rejected, nil, ErrMalformed
	}
	payload, err := f.Verifier.Verify(token, now)
	if err != nil {
		return Rejected, nil, err
	}
	h.Set(ph, base64.RawURLEncoding.EncodeToString(payload))
	if !f.Forward {
		h.Del("Authorization")
	}
	return Verified, payload, nil
}

// bearer extracts the token of an "Authorization: Bearer <token>" value (scheme
// case-insensitive). Other schemes are not JWTs: ok is false.
func bearer(v string) (string, bool) {
	const p = "bearer "
	if len(v) < len(p) || !strings.EqualFold(v[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(v[len(p):]), true
}

// WriteUnauthorized answers as jwt_authn does when verification fails:
// 401, WWW-Authenticate with error="invalid_token", body
// "Jwt verification fails". Nothing of the token is echoed.
func WriteUnauthorized(w http.ResponseWriter, r *http.Request) {
	realm := "http://" + r.Host + r.URL.EscapedPath()
	if r.TLS != nil {
		realm = "https://" + r.Host + r.URL.EscapedPath()
	}
	realm = strings.Map(func(c rune) rune {
		if c == '"' || c == '\\' || c < 0x20 || c == 0x7f {
			return -1
		}
		return c
	}, realm)
	hd := w.Header()
	hd.Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token"`)
	hd.Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte("Jwt verification fails"))
}
