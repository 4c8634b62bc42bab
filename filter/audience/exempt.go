package audience

import "errors"

// Exempt is the set of paths that skip the audience check (by default the
// "/.well-known/" prefix and "/health"). The zero value exempts nothing.
//
// Matching is on raw bytes, after cutting the query string ('?') and
// fragment ('#'): an entry ending in "/" matches every path that starts with
// it, any other entry only the identical path. There is no normalisation:
// "/Health", "/health/" and "//health" are not "/health". And because a
// proxy or upstream might normalise what we do not, a path is never exempt
// when it could mean a different path after normalisation: it must start
// with "/" and must not contain '%' (any percent-encoding), '\\', ';',
// "//", a "." or ".." segment, or a byte below 0x21 or 0x7f and above.
// "/.well-known/../mcp" is therefore NOT exempt though it starts with the
// prefix. Refusing an exemption is the safe direction: the request then
// simply needs a token.
type Exempt struct {
	exact  []string
	prefix []string
}

// ErrExemptPath is returned by CheckExemptPath.
var ErrExemptPath = errors.New(`audience: exempt path must start with "/" and contain no query, '%', '\', ';', "//", "." or ".." segment, space or control character`)

// CheckExemptPath reports whether p can be an Exempt entry (the config
// parser should refuse the entries NewExempt would drop).
func CheckExemptPath(p string) error {
	if !safePath(p) {
		return ErrExemptPath
	}
	return nil
}

// NewExempt returns the set for paths; entries failing CheckExemptPath are
// dropped (the configuration should have refused them).
func NewExempt(paths []string) Exempt {
	var e Exempt
	for _, p := range paths {
		if !safePath(p) {
			continue
		}
		if p[len(p)-1] == '/' {
			e.prefix = append(e.prefix, p)
		} else {
			e.exact = append(e.exact, p)
		}
	}
	return e
}

// Match reports whether the request path (the :path header, query string
// included or not) is exempt. It does not allocate.
func (e Exempt) Match(path string) bool {
	for i := 0; i < len(path); i++ {
		if path[i] == '?' || path[i] == '#' {
			path = path[:i]
			break
		}
	}
	if !safePath(path) {
		return false
	}
	for _, x := range e.exact {
		if path == x {
			return true
		}
	}
	for _, p := range e.prefix {
		if len(path) >= len(p) && path[:len(p)] == p {
			return true
		}
	}
	return false
}

// safePath: starts with "/", no byte a normaliser could reinterpret, no
// empty, "." or ".." segment except a final empty one (trailing "/").
func safePath(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	seg := 1 // start of the current segment
	for i := 1; i <= len(p); i++ {
		if i < len(p) {
			switch c := p[i]; {
			case c <= 0x20 || c >= 0x7f, c == '%', c == '\\', c == ';', c == '?', c == '#':
				return false
			case c != '/':
				continue
			}
		}
		// p[seg:i] is a complete segment
		s := p[seg:i]
		if s == "." || s == ".." || (len(s) == 0 && i < len(p)) { // "//" anywhere
			return false
		}
		seg = i + 1
	}
	return true
}
