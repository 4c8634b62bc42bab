// Package wasmbuild builds a Go package into a proxy-wasm module
// (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared) for tests, once per
// test binary and package.
//
// Usage:
//
//	func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m)) }
//	...
//	path := wasmbuild.Build(t, "github.com/stoa-platform/stoa-guard/abi/internal/testguest")
package wasmbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	dir    string
	builds = map[string]*result{}
)

type result struct {
	once sync.Once
	path string
	err  error
	out  string
}

// Main runs the tests and then removes the modules built by Build. Use it
// from TestMain: os.Exit(wasmbuild.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	if dir != "" {
		_ = os.RemoveAll(dir)
		dir = ""
	}
	mu.Unlock()
	return code
}

// Build compiles pkg (an import path or a directory, resolved from the
// test's working directory, inside this module) into a .wasm file and
// returns its path. The first call per pkg builds; later calls in the same
// test binary reuse the file. A build failure fails t with the compiler
// output. Extra arguments are passed to go build (e.g. "-trimpath").
func Build(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	key := pkg + "\x00" + strings.Join(flags, "\x00")
	mu.Lock()
	if dir == "" {
		d, err := os.MkdirTemp("", "wasmbuild-")
		if err != nil {
			mu.Unlock()
			t.Fatalf("wasmbuild: %v", err)
		}
		dir = d
	}
	r, ok := builds[key]
	if !ok {
		r = &result{}
		builds[key] = r
	}
	outDir := dir
	mu.Unlock()

	r.once.Do(func() {
		sum := sha256.Sum256([]byte(key))
		r.path = filepath.Join(outDir, hex.EncodeToString(sum[:8])+".wasm")
		args := append([]string{"build", "-buildmode=c-shared", "-o", r.path}, flags...)
		args = append(args, pkg)
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		r.err, r.out = err, string(out)
	})
	if r.err != nil {
		t.Fatalf("wasmbuild: go build %s: %v\n%s", pkg, r.err, r.out)
	}
	return r.path
}
