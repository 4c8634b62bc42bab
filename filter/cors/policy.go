package cors

import (
	"errors"
	"strconv"
	"strings"
)

// MaxMaxAge is the largest accepted PolicyConfig.MaxAge, in seconds (one
// day; browsers cap lower anyway).
const MaxMaxAge = 86400

// Reason says why a CORS request is refused. Its String is the metric label.
type Reason uint8

const (
	ReasonNone    Reason = iota // allowed
	ReasonOrigin                // origin not allowed (or not a valid origin)
	ReasonMethod                // preflight method not in allow_methods
	ReasonHeaders               // a requested header not in allow_headers
)

// String returns "", "origin", "method" or "headers".
func (r Reason) String() string {
	switch r {
	case ReasonOrigin:
		return "origin"
	case ReasonMethod:
		return "method"
	case ReasonHeaders:
		return "headers"
	}
	return ""
}

// PolicyConfig is the CORS configuration as written by the operator.
type PolicyConfig struct {
	// Origins are patterns (see ParsePattern), or exactly ["*"] for wildcard
	// mode. Empty: every cross-origin request is refused.
	Origins []string
	// AllowMethods are method tokens. The six methods Fetch normalises
	// (DELETE, GET, HEAD, OPTIONS, POST, PUT) are matched case-insensitively
	// and upper-cased; any other method is a case-sensitive token ("PATCH"
	// does not allow "patch"), as in Fetch. "*" is refused.
	AllowMethods []string
	// AllowHeaders are header names, matched case-insensitively. "*" is refused.
	AllowHeaders []string
	// ExposeHeaders are header names sent in Access-Control-Expose-Headers.
	ExposeHeaders []string
	// MaxAge is Access-Control-Max-Age in seconds, 0..MaxMaxAge.
	MaxAge int
}

// FieldError is a NewPolicy error: Field is the PolicyConfig field in
// configuration spelling ("origins", "allow_methods", "allow_headers",
// "expose_headers", "max_age"); Err says what is wrong and expected.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Policy is a compiled, immutable CORS policy, safe for concurrent use.
type Policy struct {
	wildcard    bool
	patterns    []Pattern
	methods     []string // normalised
	foldMethods []bool   // methods[i] is one of the six case-insensitive methods
	headers     []string // as configured (matched case-insensitively)

	allowMethods, allowHeaders, exposeHeaders, maxAge string
}

// normalisedMethods are the methods Fetch upper-cases (byte-case-insensitive).
var normalisedMethods = [...]string{"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"}

func normaliseMethod(m string) (string, bool) {
	for _, n := range normalisedMethods {
		if asciiEqualFold(m, n) {
			return n, true
		}
	}
	return m, false
}

// isTchar reports an RFC 9110 token character.
func isTchar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return indexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// CheckOrigins validates an origin list: every entry a pattern, or exactly
// ["*"]. The error quotes the first bad entry.
func CheckOrigins(origins []string) error {
	_, _, err := compileOrigins(origins)
	return err
}

func compileOrigins(origins []string) ([]Pattern, bool, error) {
	if len(origins) == 1 && origins[0] == "*" {
		return nil, true, nil
	}
	pats := make([]Pattern, 0, len(origins))
	for _, o := range origins {
		if o == "*" {
			return nil, false, errors.New(`"*": wildcard mode must be the only entry (origins: ["*"]); remove "*" or the other ` + strconv.Itoa(len(origins)-1) + " entries")
		}
		p, err := ParsePattern(o)
		if err != nil {
			return nil, false, err
		}
		dup := false
		for _, q := range pats {
			if q.text == p.text {
				dup = true
				break
			}
		}
		if !dup {
			pats = append(pats, p)
		}
	}
	return pats, false, nil
}

// CheckMethod validates one allow_methods entry.
func CheckMethod(m string) error {
	if m == "*" {
		return valueError(m, "wildcards are not supported (credentials are allowed); list each method, like GET")
	}
	if !isToken(m) {
		return valueError(m, "expected an HTTP method token, like GET or POST")
	}
	return nil
}

// CheckHeaderName validates one allow_headers / expose_headers entry.
func CheckHeaderName(h string) error {
	if h == "*" {
		return valueError(h, "wildcards are not supported (credentials are allowed); list each header, like Authorization")
	}
	if !isToken(h) {
		return valueError(h, "expected a header name token, like Content-Type")
	}
	return nil
}

// CheckMaxAge validates PolicyConfig.MaxAge.
func CheckMaxAge(n int) error {
	if n < 0 || n > MaxMaxAge {
		return errors.New(Quote(strconv.Itoa(n)) + ": expected seconds between 0 and " + strconv.Itoa(MaxMaxAge))
	}
	return nil
}

// NewPolicy compiles c. Errors are *FieldError naming the field and quoting
// the first bad value. Duplicate entries are dropped (headers compare
// case-insensitively). The header values are computed here, once.
func NewPolicy(c PolicyConfig) (*Policy, error) {
	pats, wildcard, err := compileOrigins(c.Origins)
	if err != nil {
		return nil, &FieldError{"origins", err}
	}
	p := &Policy{wildcard: wildcard, patterns: pats}
	for _, m := range c.AllowMethods {
		if err := CheckMethod(m); err != nil {
			return nil, &FieldError{"allow_methods", err}
		}
		n, fold := normaliseMethod(m)
		if !containsExact(p.methods, n) {
			p.methods = append(p.methods, n)
			p.foldMethods = append(p.foldMethods, fold)
		}
	}
	for _, h := range c.AllowHeaders {
		if err := CheckHeaderName(h); err != nil {
			return nil, &FieldError{"allow_headers", err}
		}
		if !containsFold(p.headers, h) {
			p.headers = append(p.headers, h)
		}
	}
	var expose []string
	for _, h := range c.ExposeHeaders {
		if err := CheckHeaderName(h); err != nil {
			return nil, &FieldError{"expose_headers", err}
		}
		if !containsFold(expose, h) {
			expose = append(expose, h)
		}
	}
	if err := CheckMaxAge(c.MaxAge); err != nil {
		return nil, &FieldError{"max_age", err}
	}
	p.allowMethods = strings.Join(p.methods, ", ")
	p.allowHeaders = strings.Join(p.headers, ", ")
	p.exposeHeaders = strings.Join(expose, ", ")
	p.maxAge = strconv.Itoa(c.MaxAge)
	return p, nil
}

func containsExact(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if asciiEqualFold(x, s) {
			return true
		}
	}
	return false
}

// Wildcard reports wildcard mode (Origins == ["*"]): any valid origin is
// allowed, Access-Control-Allow-Origin is "*" and credentials are never
// allowed.
func (p *Policy) Wildcard() bool { return p != nil && p.wildcard }

// AllowCredentials reports whether Access-Control-Allow-Credentials: true is
// sent (never in wildcard mode).
func (p *Policy) AllowCredentials() bool { return p != nil && !p.wildcard }

// AllowOrigin reports whether the raw Origin header value is allowed (for an
// actual request, and as the first preflight check). An invalid origin is
// never allowed, not even in wildcard mode; "null" only when listed (or in
// wildcard mode). A nil Policy allows nothing. 0 allocations.
func (p *Policy) AllowOrigin(origin string) bool {
	if p == nil {
		return false
	}
	o, ok := parseOrigin(origin)
	if !ok {
		return false
	}
	if p.wildcard {
		return true
	}
	for i := range p.patterns {
		if p.patterns[i].match(&o) {
			return true
		}
	}
	return false
}

// Preflight decides a preflight: origin is the raw Origin header, method the
// Access-Control-Request-Method value, requestHeaders the raw
// Access-Control-Request-Headers value (comma-separated, items trimmed of
// spaces and tabs, empty items ignored, names case-insensitive). Checks run
// in the order origin, method, headers; the first failure is returned.
// 0 allocations.
func (p *Policy) Preflight(origin, method, requestHeaders string) Reason {
	if !p.AllowOrigin(origin) {
		return ReasonOrigin
	}
	if !p.allowMethod(method) {
		return ReasonMethod
	}
	for rest := requestHeaders; ; {
		var item string
		if i := indexByte(rest, ','); i >= 0 {
			item, rest = rest[:i], rest[i+1:]
		} else {
			item, rest = rest, ""
		}
		item = trimOWS(item)
		if item != "" && !containsFold(p.headers, item) {
			return ReasonHeaders
		}
		if rest == "" {
			break
		}
	}
	return ReasonNone
}

// AllowMethod reports whether a preflight may request method.
func (p *Policy) allowMethod(m string) bool {
	for i, a := range p.methods {
		if m == a || (p.foldMethods[i] && asciiEqualFold(m, a)) {
			return true
		}
	}
	return false
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// AllowMethodsValue is the Access-Control-Allow-Methods value ("GET, POST").
func (p *Policy) AllowMethodsValue() string { return p.allowMethods }

// AllowHeadersValue is the Access-Control-Allow-Headers value.
func (p *Policy) AllowHeadersValue() string { return p.allowHeaders }

// ExposeHeadersValue is the Access-Control-Expose-Headers value ("" when none:
// then do not send the header).
func (p *Policy) ExposeHeadersValue() string { return p.exposeHeaders }

// MaxAgeValue is the Access-Control-Max-Age value ("600").
func (p *Policy) MaxAgeValue() string { return p.maxAge }

// Patterns returns the compiled origin patterns (nil in wildcard mode). The
// slice must not be modified. For diagnostics only: never log it.
func (p *Policy) Patterns() []Pattern { return p.patterns }
