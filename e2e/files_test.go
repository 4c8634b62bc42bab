package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// repoRoot is the stoa-guard repository root (the parent of this module).
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Dir(filepath.Dir(file))
}

// readRepoFile reads a shipped file relative to the repository root.
func readRepoFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	require.NoError(t, err)
	return b
}

// mutate replaces the n-th (1-based) occurrence of old with repl, failing the test when the
// original text has fewer occurrences: a broken twin must really change the file.
func mutate(t testing.TB, src []byte, old, repl string, n int) []byte {
	t.Helper()
	s := string(src)
	idx := -1
	from := 0
	for i := 0; i < n; i++ {
		j := strings.Index(s[from:], old)
		require.GreaterOrEqualf(t, j, 0, "broken twin: %q occurs fewer than %d times", old, n)
		idx = from + j
		from = idx + len(old)
	}
	return []byte(s[:idx] + repl + s[idx+len(old):])
}

// twin is one broken variant of a shipped file and the error text that proves it was caught.
type twin struct {
	name    string
	old     string
	repl    string
	nth     int // occurrence of old to replace, 1-based (0 means 1)
	wantErr string
}

func (tw twin) apply(t testing.TB, src []byte) []byte {
	n := tw.nth
	if n == 0 {
		n = 1
	}
	return mutate(t, src, tw.old, tw.repl, n)
}
