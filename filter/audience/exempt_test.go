package audience

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

var defaultExempt = NewExempt([]string{"/.well-known/", "/health"})

func TestExemptMatch(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/health", true},
		{"/health?probe=1", true},
		{"/health#x", true},
		{"/.well-known/oauth-protected-resource", true},
		{"/.well-known/openid-configuration?x=/../mcp", true}, // the query is not the path
		{"/.well-known/", true},
		{"/.well-known/a/b/c", true},
		{"/.well-known", false}, // prefix entries match below the slash only
		{"/health/", false},
		{"/healthz", false},
		{"/health/x", false},
		{"//health", false},
		{"/Health", false},
		{"/HEALTH", false},
		{"/.WELL-KNOWN/x", false},
		{"/mcp", false},
		{"/mcp/sse", false},
		{"", false},
		{"health", false},
		{"*", false},
		{"http://host/health", false},
		{"/health ", false},
		{"/health\x00", false},
		{"/hea%6cth", false},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, defaultExempt.Match(tc.path), "%q", tc.path)
	}
	var zero Exempt
	assert.False(t, zero.Match("/health"))
	assert.False(t, NewExempt(nil).Match("/"))
	assert.True(t, NewExempt([]string{"/"}).Match("/anything"))
}

// A prefix match on "/.well-known/" must not exempt a protected path that a
// normaliser (Envoy normalize_path, the upstream framework) resolves
// elsewhere.
func TestExemptPathTraversal(t *testing.T) {
	for _, p := range []string{
		"/.well-known/../mcp",
		"/.well-known/../mcp/sse",
		"/.well-known/..",
		"/.well-known/./../mcp",
		"/.well-known/.",
		"/.well-known//../mcp",
		"/.well-known/%2e%2e/mcp",
		"/.well-known/%2E%2E/mcp",
		"/.well-known/..%2fmcp",
		"/.well-known/%2fmcp",
		"/%2e well-known/x",
		"/%2ewell-known/x",
		"/.well-known/..\\mcp",
		"/.well-known\\..\\mcp",
		"/.well-known/..;/mcp",
		"/.well-known/;/../mcp",
		"/health;x",
		"/health/..",
		"/health/.",
		"/.well-known/\t/../mcp",
		"/.well-known/..\x00/mcp",
		"/.well-known/\xc0\xae\xc0\xae/mcp", // overlong UTF-8 dots
		"/.well-known//mcp",
	} {
		assert.False(t, defaultExempt.Match(p), "%q", p)
	}
}

func TestCheckExemptPath(t *testing.T) {
	for _, ok := range []string{"/health", "/.well-known/", "/", "/a/b/", "/a.b/c..d/.x"} {
		assert.NoError(t, CheckExemptPath(ok), ok)
	}
	for _, bad := range []string{"", "health", "/a/../b", "/a/./", "/a//", "//", "/a?b", "/a#b", "/a%20", "/a b", "/a\\b", "/a;b", "/..", "/."} {
		assert.ErrorIs(t, CheckExemptPath(bad), ErrExemptPath, bad)
	}
	// Bad entries are dropped, not matched.
	e := NewExempt([]string{"/a/../b", "/ok", ""})
	assert.False(t, e.Match("/a/../b"))
	assert.True(t, e.Match("/ok"))
}
