package wasmimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/require"
)

// tinyWasm is the smallest valid module (magic + version) followed by an empty custom section,
// a fixed input for the golden digest.
var tinyWasm = []byte("\x00asm\x01\x00\x00\x00\x00\x05\x04stoa")

// goldenDigest pins the image format: any change to the layer, config or manifest (or to Go's
// gzip output) changes it, and then every published digest would change too.
const goldenDigest = "sha256:4b9e27b810a16dee33bd54c4fe0a9cea6cd2a8881808978fc0dac24c6d6a20ef"

func TestBuildLayoutMediaTypes(t *testing.T) {
	img, err := Build(tinyWasm)
	require.NoError(t, err)
	require.NoError(t, Verify(img, tinyWasm))

	dir := filepath.Join(t.TempDir(), "oci")
	d, err := WriteLayout(dir, img, "latest")
	require.NoError(t, err)

	// Read it back as any OCI tool would.
	p, err := layout.FromPath(dir)
	require.NoError(t, err)
	idx, err := p.ImageIndex()
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 1)
	require.Equal(t, d, im.Manifests[0].Digest)
	require.Equal(t, types.OCIManifestSchema1, im.Manifests[0].MediaType)
	require.Equal(t, "latest", im.Manifests[0].Annotations["org.opencontainers.image.ref.name"])
	back, err := idx.Image(d)
	require.NoError(t, err)
	require.NoError(t, Verify(back, tinyWasm))

	m, err := back.Manifest()
	require.NoError(t, err)
	require.Equal(t, types.OCIConfigJSON, m.Config.MediaType)
	require.Equal(t, types.OCILayer, m.Layers[0].MediaType)
	require.Equal(t, Variant, m.Annotations[VariantAnnotation])
	cf, err := back.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, "wasm", cf.Architecture)
	require.Equal(t, "wasip1", cf.OS)
	require.Len(t, cf.RootFS.DiffIDs, 1)
	_, err = os.Stat(filepath.Join(dir, "oci-layout"))
	require.NoError(t, err)

	// Istio's reading: the last layer, gunzipped, holds plugin.wasm with the module bytes.
	layers, err := back.Layers()
	require.NoError(t, err)
	rc, err := layers[len(layers)-1].Compressed()
	require.NoError(t, err)
	zr, err := gzip.NewReader(rc)
	require.NoError(t, err)
	require.True(t, zr.Header.ModTime.IsZero(), "gzip header carries no mtime")
	require.Empty(t, zr.Header.Name)
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	require.NoError(t, err)
	require.Equal(t, PluginFile, h.Name)
	require.Equal(t, int64(0o444), h.Mode)
	b, err := io.ReadAll(tr)
	require.NoError(t, err)
	require.Equal(t, tinyWasm, b)
	_, err = tr.Next()
	require.ErrorIs(t, err, io.EOF)
}

func TestBuildIsReproducible(t *testing.T) {
	a, err := Build(tinyWasm)
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond) // a clock-dependent build would differ now
	b, err := Build(append([]byte(nil), tinyWasm...))
	require.NoError(t, err)
	da, _ := a.Digest()
	db, _ := b.Digest()
	require.Equal(t, da, db)

	// Rewriting the layout gives the same bytes.
	dir := filepath.Join(t.TempDir(), "oci")
	d1, err := WriteLayout(dir, a, "latest")
	require.NoError(t, err)
	d2, err := WriteLayout(dir, b, "latest")
	require.NoError(t, err)
	require.Equal(t, d1, d2)

	// The digest follows the module.
	other := append([]byte(nil), tinyWasm...)
	other[len(other)-1] = 'b' // custom section "stob"
	c, err := Build(other)
	require.NoError(t, err)
	dc, _ := c.Digest()
	require.NotEqual(t, da, dc)
}

func TestGoldenDigest(t *testing.T) {
	img, err := Build(tinyWasm)
	require.NoError(t, err)
	d, err := img.Digest()
	require.NoError(t, err)
	require.Equal(t, goldenDigest, d.String())
}

// TestVerifyBrokenTwins: images Istio would not load (or that are not reproducible) fail.
func TestVerifyBrokenTwins(t *testing.T) {
	for name, c := range map[string]struct {
		mod     func(*options)
		wantErr string
	}{
		"wrong file name":    {func(o *options) { o.fileName = "filter.wasm" }, `holds "filter.wasm"`},
		"docker layer type":  {func(o *options) { o.layerType = types.DockerLayer }, "layer media type"},
		"custom wasm layer":  {func(o *options) { o.layerType = "application/vnd.module.wasm.content.layer.v1+wasm" }, "layer media type"},
		"no variant":         {func(o *options) { o.annotation = false }, VariantAnnotation},
		"clock in the layer": {func(o *options) { o.mtime = time.Now() }, "not fixed"},
	} {
		t.Run(name, func(t *testing.T) {
			o := defaults()
			c.mod(&o)
			img, err := build(tinyWasm, o)
			require.NoError(t, err)
			require.ErrorContains(t, Verify(img, tinyWasm), c.wantErr)
		})
	}
	img, err := Build(tinyWasm)
	require.NoError(t, err)
	require.ErrorContains(t, Verify(img, []byte("\x00asm\x01\x00\x00\x00")), "differs")
	_, err = Build([]byte("#!/bin/sh\necho not wasm\n"))
	require.ErrorContains(t, err, "not a WebAssembly binary")
}

func TestWriteLayoutRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("x"), 0o600))
	img, err := Build(tinyWasm)
	require.NoError(t, err)
	_, err = WriteLayout(dir, img, "")
	require.ErrorContains(t, err, "not an OCI layout")
	_, err = os.Stat(filepath.Join(dir, "precious.txt"))
	require.NoError(t, err)
}

const pluginYAML = `spec:
  url: oci://ghcr.io/stoa-platform/stoa-guard@sha256:1111111111111111111111111111111111111111111111111111111111111111
  sha256: "1111111111111111111111111111111111111111111111111111111111111111"
  phase: AUTHZ
`

func TestCheckAndUpdateWasmPlugin(t *testing.T) {
	d, err := v1.NewHash("sha256:" + strings.Repeat("ab", 32))
	require.NoError(t, err)
	require.ErrorContains(t, Check([]byte(pluginYAML), d), "make image")

	up, err := Update([]byte(pluginYAML), d, "")
	require.NoError(t, err)
	require.NoError(t, Check(up, d))
	require.Contains(t, string(up), "oci://ghcr.io/stoa-platform/stoa-guard@sha256:"+d.Hex+"\n")
	require.Contains(t, string(up), `sha256: "`+d.Hex+`"`)
	require.Contains(t, string(up), "phase: AUTHZ")

	moved, err := Update([]byte(pluginYAML), d, "registry.example.com/team/stoa-guard")
	require.NoError(t, err)
	require.Contains(t, string(moved), "oci://registry.example.com/team/stoa-guard@sha256:"+d.Hex)

	// Broken twins: disagreeing pins, no pins, two pins.
	disagree := strings.Replace(pluginYAML, `sha256: "1111`, `sha256: "2111`, 1)
	require.ErrorContains(t, Check([]byte(disagree), d), "disagree")
	_, err = Update([]byte("spec:\n  url: oci://x/y:latest\n"), d, "")
	require.Error(t, err)
	_, err = Update(bytes.Repeat([]byte(pluginYAML), 2), d, "")
	require.Error(t, err)
}

func TestToolchainRecord(t *testing.T) {
	require.Empty(t, PinnedToolchain([]byte(pluginYAML)))

	// Inserted above the url, with its indentation, also after a blank line.
	spaced := strings.Replace(pluginYAML, "  url:", "\n  url:", 1)
	for _, src := range []string{pluginYAML, spaced} {
		up, err := UpdateToolchain([]byte(src), "go1.26.8")
		require.NoError(t, err)
		require.Equal(t, "go1.26.8", PinnedToolchain(up))
		require.Contains(t, string(up), "\n  # make image: built with go1.26.8 (the digest depends on it; refresh: make image-update)\n  url: oci://")
		d, err := v1.NewHash("sha256:" + strings.Repeat("11", 32))
		require.NoError(t, err)
		require.NoError(t, Check(up, d), "the pins are untouched")

		// Rewritten in place, once.
		again, err := UpdateToolchain(up, "go1.27.0")
		require.NoError(t, err)
		require.Equal(t, "go1.27.0", PinnedToolchain(again))
		require.Equal(t, 1, strings.Count(string(again), "# make image: built with"))
		require.Equal(t, len(up)+len("go1.27.0")-len("go1.26.8"), len(again))
	}

	// Broken twins: not a Go version, two records, nothing to anchor on.
	_, err := UpdateToolchain([]byte(pluginYAML), "1.26.8")
	require.ErrorContains(t, err, "want a Go version")
	_, err = UpdateToolchain([]byte(pluginYAML), "go1.26.8\n  phase: AUTHN")
	require.ErrorContains(t, err, "want a Go version")
	up, err := UpdateToolchain([]byte(pluginYAML), "go1.26.8")
	require.NoError(t, err)
	_, err = UpdateToolchain(append(up, up...), "go1.26.9")
	require.ErrorContains(t, err, "at most one")
	_, err = UpdateToolchain([]byte("spec:\n  url: oci://x/y:latest\n"), "go1.26.8")
	require.Error(t, err)
}

// TestPushToRegistry pushes to an in-process registry and pulls the image back the way
// Istio's fetcher does (by digest): same digest, same module.
func TestPushToRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	img, err := Build(tinyWasm)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ref, err := Push(ctx, host+"/stoa-platform/stoa-guard:v0.0.1", img)
	require.NoError(t, err)
	require.Equal(t, host+"/stoa-platform/stoa-guard@"+goldenDigest, ref.String())

	pinned, err := name.NewDigest(ref.String())
	require.NoError(t, err)
	back, err := remote.Image(pinned, remote.WithContext(ctx))
	require.NoError(t, err)
	require.NoError(t, Verify(back, tinyWasm))
	d, err := back.Digest()
	require.NoError(t, err)
	require.Equal(t, goldenDigest, d.String())

	// The tag points at it too.
	tagged, err := name.NewTag(host + "/stoa-platform/stoa-guard:v0.0.1")
	require.NoError(t, err)
	desc, err := remote.Head(tagged, remote.WithContext(ctx))
	require.NoError(t, err)
	require.Equal(t, goldenDigest, desc.Digest.String())
	require.Equal(t, types.OCIManifestSchema1, desc.MediaType)

	// Broken twin: a reference that is not one.
	_, err = Push(ctx, "UPPER/case:tag", img)
	require.Error(t, err)
}
