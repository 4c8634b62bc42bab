// Package audience decides the JWT audience check of the filter: it decodes
// the payload that Envoy's jwt_authn forwarded (after it verified the
// signature), extracts `aud` and the tenant claim, and compares the audience
// with the configured allow list. It also decides which paths are exempt.
//
// The package is pure (no host calls) and never panics. It never returns,
// logs or formats the token, the payload or the allow list: callers get a
// Reason, whose String and Description are fixed texts.
package audience

// Limits. They bound the work per request and are part of the contract.
const (
	// MaxPayloadSize is the largest decoded payload accepted, in bytes;
	// a bigger one is Malformed.
	MaxPayloadSize = 16 << 10
	// MaxAud is how many audience values Claims keeps (the first ones, in
	// token order); later values of a longer array are not compared.
	MaxAud = 8
	// MaxAudValues is the longest `aud` array accepted; a longer one is
	// Malformed.
	MaxAudValues = 64
	// MaxTenantLen is the longest tenant accepted, in bytes (after JSON
	// unescaping). A longer tenant is treated as no tenant.
	MaxTenantLen = 128
	// DefaultTenantClaim is the tenant claim name used when none is given.
	DefaultTenantClaim = "tenant_id"
)

// Reason is the outcome of the audience check. The zero value, None, means
// the request may proceed.
type Reason uint8

// Reasons, in the order the filter reports them.
const (
	None Reason = iota
	MissingToken
	Malformed
	MissingAudience
	InvalidAudience
)

// String returns the metric / log label: "", "missing_token", "malformed",
// "missing_audience", "invalid_audience" ("unknown" for other values).
func (r Reason) String() string {
	switch r {
	case None:
		return ""
	case MissingToken:
		return "missing_token"
	case Malformed:
		return "malformed"
	case MissingAudience:
		return "missing_audience"
	case InvalidAudience:
		return "invalid_audience"
	}
	return "unknown"
}

// Description returns the fixed error_description text for the
// WWW-Authenticate header and the JSON body. It never contains request data.
func (r Reason) Description() string {
	switch r {
	case None:
		return ""
	case MissingToken:
		return "Missing token"
	case Malformed:
		return "Malformed token payload"
	case MissingAudience:
		return "Token has no audience"
	case InvalidAudience:
		return "Invalid audience"
	}
	return "Invalid token"
}

// Claims are the claims the filter needs. Strings alias the buffer they were
// decoded from (the Decoder's scratch buffer, or the property bytes given to
// the Set*FromProperty helpers): they are valid until that buffer is reused,
// i.e. the next decode on the same Decoder. Copy them to keep them longer.
//
// AudPresent is true when the token has an `aud` claim, even an empty
// array (then NAud is 0). Only the first MaxAud values are kept.
// Tenant is "" when the token has no usable tenant claim.
type Claims struct {
	Aud        [MaxAud]string
	NAud       int
	AudPresent bool
	Tenant     string
}

// Reset clears c.
func (c *Claims) Reset() { *c = Claims{} }

// AddAud records one audience value (for callers filling Claims from
// jwt_authn metadata). It sets AudPresent; the value is kept only while
// fewer than MaxAud are held, and AddAud reports whether it was kept.
func (c *Claims) AddAud(v string) bool {
	c.AudPresent = true
	if c.NAud < 0 || c.NAud >= MaxAud {
		return false
	}
	c.Aud[c.NAud] = v
	c.NAud++
	return true
}

// SetTenant sets the tenant if v is acceptable — 1..MaxTenantLen bytes, no
// ASCII control characters (below 0x20, or 0x7f) — and clears it otherwise.
// It reports whether v was accepted. The header route applies the same rule.
func (c *Claims) SetTenant(v string) bool {
	if !validTenant(v) {
		c.Tenant = ""
		return false
	}
	c.Tenant = v
	return true
}

func validTenant(v string) bool {
	if len(v) == 0 || len(v) > MaxTenantLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// Checker compares audiences with the allow list. It is immutable after
// NewChecker and safe for concurrent use.
type Checker struct {
	allowed      []string
	allowMissing bool
}

// NewChecker returns a Checker for the allowed audiences (exact,
// case-sensitive comparison, RFC 7519 §4.1.3). Empty entries are dropped;
// no entries left = the check is disabled (Enabled false, Check None).
// allowMissing lets a token without an `aud` claim through; it does not
// cover an `aud` that is present but empty ("" or []).
func NewChecker(allowed []string, allowMissing bool) *Checker {
	c := &Checker{allowMissing: allowMissing}
	for _, a := range allowed {
		if a != "" {
			c.allowed = append(c.allowed, a)
		}
	}
	return c
}

// Enabled reports whether the allow list is non-empty.
func (c *Checker) Enabled() bool { return c != nil && len(c.allowed) > 0 }

// Check returns None when one of the token's audiences (the first MaxAud)
// is in the allow list, MissingAudience when there is no `aud` claim
// (None if allowMissing), InvalidAudience otherwise — also for an empty
// `aud` string or array. A disabled Checker returns None; nil Claims give
// MissingToken. It does not allocate.
func (c *Checker) Check(cl *Claims) Reason {
	if !c.Enabled() {
		return None
	}
	if cl == nil {
		return MissingToken
	}
	if !cl.AudPresent {
		if c.allowMissing {
			return None
		}
		return MissingAudience
	}
	n := min(max(cl.NAud, 0), MaxAud)
	for i := 0; i < n; i++ {
		for _, a := range c.allowed {
			if cl.Aud[i] == a {
				return None
			}
		}
	}
	return InvalidAudience
}
