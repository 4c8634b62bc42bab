package main

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/stoa-platform/stoa-guard/e2e/wasmimage"
	"github.com/stretchr/testify/require"
)

var tinyWasm = []byte("\x00asm\x01\x00\x00\x00\x00\x05\x04stoa")

const manifest = `spec:
  url: oci://ghcr.io/stoa-platform/stoa-guard@sha256:1111111111111111111111111111111111111111111111111111111111111111
  sha256: "1111111111111111111111111111111111111111111111111111111111111111"
`

// The Makefile's image, image-update and push targets, end to end on temporary files.
func TestBuildCheckUpdatePush(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "filter.wasm")
	require.NoError(t, os.WriteFile(wasm, tinyWasm, 0o644))
	plugin := filepath.Join(dir, "wasmplugin.yaml")
	require.NoError(t, os.WriteFile(plugin, []byte(manifest), 0o644))
	out := filepath.Join(dir, "oci")

	img, err := wasmimage.Build(tinyWasm)
	require.NoError(t, err)
	d, err := img.Digest()
	require.NoError(t, err)

	// make image: the layout is written, then the stale pin is reported.
	err = run([]string{"build", "-wasm", wasm, "-out", out, "-check", plugin})
	require.ErrorContains(t, err, "make image-update")
	_, err = os.Stat(filepath.Join(out, "index.json"))
	require.NoError(t, err)

	// make image-update: pinned, with the Go release; then make image passes.
	require.NoError(t, run([]string{"build", "-wasm", wasm, "-out", out, "-update", plugin, "-toolchain", "go1.26.8"}))
	y, err := os.ReadFile(plugin)
	require.NoError(t, err)
	require.NoError(t, wasmimage.Check(y, d))
	require.Equal(t, "go1.26.8", wasmimage.PinnedToolchain(y))
	require.NoError(t, run([]string{"build", "-wasm", wasm, "-out", out, "-check", plugin}))

	// make push: the url moves to the pushed repository, same digest.
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	require.NoError(t, run([]string{"push", "-wasm", wasm, "-update", plugin, "-toolchain", "go1.26.8", host + "/team/stoa-guard:v1"}))
	y, err = os.ReadFile(plugin)
	require.NoError(t, err)
	require.Contains(t, string(y), "url: oci://"+host+"/team/stoa-guard@sha256:"+d.Hex+"\n")
	require.NoError(t, wasmimage.Check(y, d))

	// Misuse is refused.
	require.Error(t, run(nil))
	require.Error(t, run([]string{"build", "-wasm", wasm, "-out", out, "-check", plugin, "-update", plugin}))
	require.ErrorContains(t, run([]string{"build", "-wasm", wasm, "-out", out, "-toolchain", "go1.26.8"}), "-toolchain needs -update")
	require.Error(t, run([]string{"push", "-wasm", wasm}))
	notWasm := filepath.Join(dir, "x.wasm")
	require.NoError(t, os.WriteFile(notWasm, []byte("#!/bin/sh\n"), 0o644))
	require.ErrorContains(t, run([]string{"digest", "-wasm", notWasm}), "not a WebAssembly binary")
}
