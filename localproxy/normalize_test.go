package localproxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalizePath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                    "/",
		"/mcp/sse":             "/mcp/sse",
		"/mcp/sse/":            "/mcp/sse/",
		"//mcp///sse":          "/mcp/sse",
		"/health/../mcp":       "/mcp",
		"/health/%2e%2e/mcp":   "/mcp",
		"/health/.%2E/mcp":     "/mcp",
		"/a/./b/.":             "/a/b/",
		"/../../etc":           "/etc",
		"/a/..":                "/",
		`/a\..\mcp`:            "/mcp",
		"/mcp?x=/../y&z=%2F":   "/mcp?x=/../y&z=%2F",
		"/.well-known/../mcp":  "/mcp",
		"/%2e%2e%2e/x":         "/%2e%2e%2e/x",
		"/mcp/sse?sessionid=1": "/mcp/sse?sessionid=1",
	} {
		got, err := normalizePath(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
}

// TestEscapedSlashAttack: "/health%2F..%2Fmcp" must not reach the filter's
// exempt-path check as something else (envoy.yaml: REJECT_REQUEST).
func TestEscapedSlashAttack(t *testing.T) {
	for _, in := range []string{"/health%2F..%2Fmcp", "/mcp%2fsse", "/health%5C..%5Cmcp", "/x%5c"} {
		_, err := normalizePath(in)
		require.ErrorIs(t, err, errEscapedSlash, in)
	}
}

func TestExemptPathTraversalAttack(t *testing.T) {
	eng := &fakeEngine{}
	h := newHarness(t, eng, nil, nil)
	req, _ := http.NewRequest("GET", h.url+"/x", nil)
	req.URL.Opaque = "/health/../mcp/sse" // sent verbatim
	resp := h.do(req)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "/mcp/sse", header(eng.all()[0].reqH, ":path")[0])
	assert.Equal(t, "/mcp/sse", (<-h.seen).URL.Path)

	req, _ = http.NewRequest("GET", h.url+"/x", nil)
	req.URL.Opaque = "/health%2F..%2Fmcp"
	resp = h.do(req)
	resp.Body.Close()
	assert.Equal(t, 400, resp.StatusCode)
	assert.Len(t, eng.all(), 1, "refused before the filter")
}

func TestHeaderWithUnderscoreRefused(t *testing.T) {
	eng := &fakeEngine{}
	h := newHarness(t, eng, nil, nil)
	resp, _ := h.get("/", map[string][]string{"X_Jwt_Payload": {"e30"}})
	assert.Equal(t, 400, resp.StatusCode)
	assert.Empty(t, eng.all())
}

// FuzzNormalizePath: what the filter sees as :path, as Envoy's normalisation
// would give it. For any request target: no panic; an escaped slash or
// backslash in the path is refused; otherwise the result starts with "/", is
// a fixed point, has no backslash, no empty segment but possibly the last,
// no dot segment (also percent-encoded, any case: "/.well-known/%2E%2e/mcp"
// cannot reach /mcp as an exempt path), and keeps the query verbatim.
// Seeds: testdata/fuzz/FuzzNormalizePath.
func FuzzNormalizePath(f *testing.F) {
	f.Add("/a/../b//c?x")
	f.Add(`\..\%2e`)
	isDot := func(seg string) bool {
		d := strings.NewReplacer("%2e", ".", "%2E", ".").Replace(seg)
		return d == "." || d == ".."
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := normalizePath(s)
		path, query, hasQuery := strings.Cut(s, "?")
		if i := strings.IndexByte(path, '#'); i >= 0 {
			path = path[:i]
		}
		lp := strings.ToLower(path)
		if escaped := strings.Contains(lp, "%2f") || strings.Contains(lp, "%5c"); escaped != (err != nil) {
			t.Fatalf("normalizePath(%q) error %v, escaped slash %v", s, err, escaped)
		}
		if err != nil {
			return
		}
		if out == "" || out[0] != '/' {
			t.Fatalf("%q -> %q", s, out)
		}
		again, err := normalizePath(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", s, out, again, err)
		}
		opath, oquery, oHasQuery := strings.Cut(out, "?")
		if oHasQuery != hasQuery || oquery != query {
			t.Fatalf("query changed: %q -> %q", s, out)
		}
		if strings.ContainsAny(opath, "\\#") {
			t.Fatalf("%q -> %q keeps a backslash or fragment", s, out)
		}
		segs := strings.Split(opath[1:], "/")
		for i, seg := range segs {
			if (seg == "" && i != len(segs)-1) || isDot(seg) {
				t.Fatalf("%q -> %q has segment %q", s, out, seg)
			}
		}
	})
}
