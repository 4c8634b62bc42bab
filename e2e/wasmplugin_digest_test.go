package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stoa-platform/stoa-guard/e2e/wasmimage"
	"github.com/stretchr/testify/require"
)

// makeVar reads a simple variable of the Makefile (`NAME := value` or `NAME ?= value`, one
// line, no make functions or references): the test builds with exactly the Makefile's flags.
func makeVar(makefile []byte, name string) (string, error) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `[ \t]*[:?]?=[ \t]*(.*)$`)
	m := re.FindAllSubmatch(makefile, -1)
	if len(m) != 1 {
		return "", fmt.Errorf("Makefile: want one `%s := ...` line, found %d", name, len(m))
	}
	v := strings.TrimSpace(string(m[0][1]))
	if strings.Contains(v, "$") || strings.HasSuffix(v, `\`) {
		return "", fmt.Errorf("Makefile: %s = %q uses make syntax this test does not expand", name, v)
	}
	return v, nil
}

// shellWords splits a command line the way sh does for plain words and quotes ('...' and
// "..." without escapes), e.g. -ldflags='-s -w' -> [-ldflags=-s -w].
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\\' || c == '`' || c == '$':
			return nil, fmt.Errorf("%q: shell syntax %q is not supported here", s, c)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%q: unterminated quote", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// buildFilterLikeMake compiles the filter (the repository root package) into dir with the
// Makefile's WASM_ENV and WASM_FLAGS, as `make build` does, and returns the module and the Go
// release that compiled it.
func buildFilterLikeMake(t *testing.T, dir string) ([]byte, string) {
	t.Helper()
	root := repoRoot(t)
	mk := readRepoFile(t, "Makefile")
	envLine, err := makeVar(mk, "WASM_ENV")
	require.NoError(t, err)
	flagLine, err := makeVar(mk, "WASM_FLAGS")
	require.NoError(t, err)
	env, err := shellWords(envLine)
	require.NoError(t, err)
	flags, err := shellWords(flagLine)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	goVersion, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	require.NoError(t, err)

	out := filepath.Join(dir, "filter.wasm")
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", out, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s go %s: %v\n%s", envLine, strings.Join(args, " "), err, b)
	}
	wasm, err := os.ReadFile(out)
	require.NoError(t, err)
	return wasm, strings.TrimSpace(string(goVersion))
}

// TestWasmPluginPinsCurrentModule: the image `make image` builds from the filter as it is
// now (compiled afresh with the Makefile's flags, whatever filter.wasm lies around) is the one
// istio/wasmplugin.yaml pins. When the filter changes this fails until `make image-update`
// re-pins it; the digest also depends on the Go release, recorded next to the pin.
func TestWasmPluginPinsCurrentModule(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the digest pin needs a build of the filter")
	}
	wasm, goVersion := buildFilterLikeMake(t, t.TempDir())
	img, err := wasmimage.Build(wasm)
	require.NoError(t, err)
	require.NoError(t, wasmimage.Verify(img, wasm))
	d, err := img.Digest()
	require.NoError(t, err)

	manifest := readRepoFile(t, "istio/wasmplugin.yaml")
	pinned, err := wasmimage.PinnedDigest(manifest)
	require.NoError(t, err)
	if pinned == d.Hex {
		return
	}
	pinnedGo := wasmimage.PinnedToolchain(manifest)
	if pinnedGo != "" && pinnedGo != goVersion {
		t.Skipf("istio/wasmplugin.yaml pins an image whose module %s compiled; this machine's %s compiles other bytes (%s), so the pin cannot be checked here. Check with %s, or re-pin with `make image-update` when the project moves to %s.",
			pinnedGo, goVersion, d, pinnedGo, goVersion)
	}
	t.Fatalf("istio/wasmplugin.yaml pins sha256:%s, but the filter as it is now (built with the Makefile's flags by %s) makes the image %s.\n"+
		"The filter changed since the pin. Run `make image-update` (rebuilds filter.wasm, rewrites url and sha256 in istio/wasmplugin.yaml) and commit istio/wasmplugin.yaml with the change; `make push IMAGE=<registry>/<repo>:<tag>` publishes that image.",
		pinned, goVersion, d)
}

func TestMakeVarAndShellWords(t *testing.T) {
	mk := []byte("GO ?= go\nWASM_ENV  := GOOS=wasip1 GOARCH=wasm\nWASM_FLAGS := -buildmode=c-shared -trimpath -ldflags='-s -w' -tags \"a b\"\n\tWASM_FLAGS is not here\n")
	v, err := makeVar(mk, "WASM_FLAGS")
	require.NoError(t, err)
	w, err := shellWords(v)
	require.NoError(t, err)
	require.Equal(t, []string{"-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-tags", "a b"}, w)
	v, err = makeVar(mk, "WASM_ENV")
	require.NoError(t, err)
	w, err = shellWords(v)
	require.NoError(t, err)
	require.Equal(t, []string{"GOOS=wasip1", "GOARCH=wasm"}, w)
	v, err = makeVar(mk, "GO")
	require.NoError(t, err)
	require.Equal(t, "go", v)

	// Broken twins: what the test cannot expand is refused, not guessed.
	_, err = makeVar([]byte("WASM_FLAGS := $(BASE) -trimpath\n"), "WASM_FLAGS")
	require.ErrorContains(t, err, "make syntax")
	_, err = makeVar([]byte("X := 1\n"), "WASM_FLAGS")
	require.ErrorContains(t, err, "found 0")
	_, err = makeVar([]byte("WASM_FLAGS := a\nWASM_FLAGS := b\n"), "WASM_FLAGS")
	require.ErrorContains(t, err, "found 2")
	_, err = shellWords("-ldflags='-s -w")
	require.ErrorContains(t, err, "unterminated")
	_, err = shellWords(`-ldflags=\-s`)
	require.Error(t, err)
}

// The Makefile really holds the variables the digest test reads.
func TestMakefileBuildFlagsReadable(t *testing.T) {
	mk := readRepoFile(t, "Makefile")
	for _, name := range []string{"WASM_ENV", "WASM_FLAGS"} {
		v, err := makeVar(mk, name)
		require.NoError(t, err)
		_, err = shellWords(v)
		require.NoError(t, err)
	}
	flags, _ := makeVar(mk, "WASM_FLAGS")
	for _, f := range []string{"-trimpath", "-buildvcs=false", "-buildmode=c-shared"} {
		require.Containsf(t, flags, f, "WASM_FLAGS: %s is needed for a module (and an image digest) that depends only on the sources", f)
	}
}
