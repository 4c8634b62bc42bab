package localproxy

import (
	"errors"
	"strings"
)

// Envoy's HTTP connection manager in envoy.yaml runs with normalize_path,
// merge_slashes, path_with_escaped_slashes_action: REJECT_REQUEST and
// headers_with_underscores_action: REJECT_REQUEST, so the filter never sees
// "/health/../mcp" or "/mcp%2Fsse". The local proxy does the same before the
// filter.

var errEscapedSlash = errors.New("escaped slash or backslash in path")

// normalizePath returns the request target with its path normalised: "\"
// becomes "/", dot segments (also percent-encoded ones, "%2e") are resolved
// (RFC 3986 5.2.4; ".." never climbs above the root), repeated slashes are
// merged. The query is kept verbatim. %2F and %5C (any case) in the path are
// refused. The result always starts with "/".
func normalizePath(target string) (string, error) {
	path, query, hasQuery := strings.Cut(target, "?")
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	lower := strings.ToLower(path)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return "", errEscapedSlash
	}
	path = strings.ReplaceAll(path, `\`, "/")
	segs := strings.Split(path, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch dotSegment(s) {
		case 1:
			if last {
				out = append(out, "")
			}
		case 2:
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			if s == "" && !last {
				continue // merge slashes (and drop the leading empty segment)
			}
			out = append(out, s)
		}
	}
	res := "/" + strings.Join(out, "/")
	if hasQuery {
		res += "?" + query
	}
	return res, nil
}

// dotSegment reports 1 for ".", 2 for "..", with %2e in any case for a dot.
func dotSegment(s string) int {
	if len(s) > 6 {
		return 0
	}
	s = strings.ReplaceAll(strings.ToLower(s), "%2e", ".")
	switch s {
	case ".":
		return 1
	case "..":
		return 2
	}
	return 0
}

// hasUnderscoreHeader reports whether a header name contains "_" (Envoy
// refuses such requests: some back ends treat "_" as "-", a spoofing path).
func hasUnderscoreHeader(names func(func(string) bool)) bool {
	found := false
	names(func(n string) bool {
		if strings.IndexByte(n, '_') >= 0 {
			found = true
			return false
		}
		return true
	})
	return found
}
