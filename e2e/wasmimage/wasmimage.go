// Package wasmimage builds stoa-guard's OCI image in the Wasm image format Istio pulls
// (WasmPlugin `url: oci://...`), without Docker, reproducibly.
//
// Format: the "compat" variant of the Wasm image specification (solo-io/wasm spec-compat.md),
// which Istio's fetcher tries first: an OCI image manifest with ONE layer of media type
// application/vnd.oci.image.layer.v1.tar+gzip holding a single file, plugin.wasm, and the
// manifest annotation module.wasm.image/variant=compat. It is what `docker build` of
// `FROM scratch / COPY plugin.wasm ./` produces, so every registry and every tool (crane,
// skopeo, docker) handles it. The alternative "oci" variant (a raw layer of media type
// application/vnd.module.wasm.content.layer.v1+wasm) needs a second, runtime-config layer in
// Istio's fetcher and custom media types some registries refuse.
//
// Reproducibility: the tar entry has fixed metadata (mtime 1970-01-01, uid/gid 0, mode 0444),
// gzip has no name and no mtime, the config's created time is the epoch, nothing reads the
// clock or the environment: the manifest digest depends only on the module bytes (and on Go's
// compress/flate output, stable across releases for years; TestGoldenDigest pins it).
package wasmimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// PluginFile is the file name Istio looks for in the layer.
	PluginFile = "plugin.wasm"
	// VariantAnnotation marks a compat-variant image with an OCI layer media type.
	VariantAnnotation = "module.wasm.image/variant"
	// Variant is the value of VariantAnnotation.
	Variant = "compat"
)

var epoch = time.Unix(0, 0).UTC()

// options are the knobs the tests turn to build broken images; Build uses the defaults.
type options struct {
	fileName   string
	layerType  types.MediaType
	annotation bool
	mtime      time.Time
}

func defaults() options {
	return options{fileName: PluginFile, layerType: types.OCILayer, annotation: true, mtime: epoch}
}

// Build returns the image for a Wasm module. It refuses bytes that are not a Wasm binary.
func Build(wasm []byte) (v1.Image, error) { return build(wasm, defaults()) }

func build(wasm []byte, o options) (v1.Image, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("not a WebAssembly binary (no \\0asm magic)")
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     o.fileName,
		Size:     int64(len(wasm)),
		Mode:     0o444,
		ModTime:  o.mtime,
		Format:   tar.FormatUSTAR,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(wasm); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	// zw.Header is zero: no file name, no mtime, OS "unknown".
	if _, err := zw.Write(tb.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	blob := gz.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	}, tarball.WithMediaType(o.layerType))
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "wasm",
		OS:           "wasip1",
		Created:      v1.Time{Time: epoch},
		RootFS:       v1.RootFS{Type: "layers"},
		Config:       v1.Config{},
	})
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: o.layerType,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "stoa-guard wasm-image: " + o.fileName},
	})
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if o.annotation {
		img = mutate.Annotations(img, map[string]string{VariantAnnotation: Variant}).(v1.Image)
	}
	return img, nil
}

// Verify checks that img is a compat-variant Wasm image carrying exactly wasm, the way Istio's
// fetcher reads it (last layer, OCI tar+gzip, plugin.wasm inside).
func Verify(img v1.Image, wasm []byte) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	if m.MediaType != types.OCIManifestSchema1 {
		return fmt.Errorf("manifest media type %q, want %q", m.MediaType, types.OCIManifestSchema1)
	}
	if m.Config.MediaType != types.OCIConfigJSON {
		return fmt.Errorf("config media type %q, want %q", m.Config.MediaType, types.OCIConfigJSON)
	}
	if m.Annotations[VariantAnnotation] != Variant {
		return fmt.Errorf("annotation %s=%q, want %q", VariantAnnotation, m.Annotations[VariantAnnotation], Variant)
	}
	if len(m.Layers) != 1 {
		return fmt.Errorf("%d layers, want 1", len(m.Layers))
	}
	if m.Layers[0].MediaType != types.OCILayer {
		return fmt.Errorf("layer media type %q, want %q", m.Layers[0].MediaType, types.OCILayer)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		return fmt.Errorf("layer is not gzip: %w", err)
	}
	tr := tar.NewReader(zr)
	found := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if filepath.Base(h.Name) != PluginFile {
			return fmt.Errorf("layer holds %q: only %s is expected", h.Name, PluginFile)
		}
		if !h.ModTime.Equal(epoch) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			return fmt.Errorf("%s: metadata not fixed (mtime %v, uid %d, gid %d): the build would not be reproducible", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if !bytes.Equal(b, wasm) {
			return fmt.Errorf("%s differs from the module", PluginFile)
		}
		found++
	}
	if found != 1 {
		return fmt.Errorf("layer holds no %s", PluginFile)
	}
	return nil
}

// WriteLayout writes img as an OCI image layout in dir (replacing a previous layout there)
// and returns the manifest digest. It refuses to clear a non-empty dir that is not a layout.
func WriteLayout(dir string, img v1.Image, tag string) (v1.Hash, error) {
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return v1.Hash{}, fmt.Errorf("%s exists and is not an OCI layout: not overwriting it", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return v1.Hash{}, err
		}
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return v1.Hash{}, err
	}
	return d, nil
}

// Push uploads img to ref (a tag or repository reference) with the default keychain (docker
// credential helpers / ~/.docker/config.json) and returns the pinned digest reference.
func Push(ctx context.Context, ref string, img v1.Image) (name.Digest, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return name.Digest{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return r.Context().Digest(d.String()), nil
}

var (
	// toolchainLine records which Go release compiled the pinned module: the module's bytes,
	// hence the digest, depend on it. `wasm-image build -update -toolchain goX.Y.Z` writes it.
	toolchainLine = regexp.MustCompile(`(?m)^([ \t]*# make image: built with )(\S+)(.*)$`)
	urlDigest     = regexp.MustCompile(`(?m)^(\s*url:\s*"?oci://)([^@\s"]+)@sha256:([0-9a-f]{64})("?\s*)$`)
	sha256Field   = regexp.MustCompile(`(?m)^(\s*sha256:\s*)"?([0-9a-f]{64})"?(\s*)$`)
	errNoPinning  = errors.New("no `url: oci://<repo>@sha256:<64 hex>` and `sha256: \"<64 hex>\"` lines found")
)

// PinnedDigest reads the digest a WasmPlugin manifest pins (url and sha256 must agree).
func PinnedDigest(wasmPluginYAML []byte) (string, error) {
	u := urlDigest.FindAllSubmatch(wasmPluginYAML, -1)
	s := sha256Field.FindAllSubmatch(wasmPluginYAML, -1)
	if len(u) != 1 || len(s) != 1 {
		return "", errNoPinning
	}
	if string(u[0][3]) != string(s[0][2]) {
		return "", fmt.Errorf("url digest %s and sha256 %s disagree", u[0][3], s[0][2])
	}
	return string(s[0][2]), nil
}

// Check reports whether the WasmPlugin manifest pins digest d.
func Check(wasmPluginYAML []byte, d v1.Hash) error {
	got, err := PinnedDigest(wasmPluginYAML)
	if err != nil {
		return err
	}
	if got != d.Hex {
		return fmt.Errorf("the WasmPlugin pins sha256:%s but the module's image is %s: run `make image-update` and commit istio/wasmplugin.yaml", got, d)
	}
	return nil
}

// Update rewrites the WasmPlugin manifest to pin digest d (url and sha256); repo, when not
// empty, also replaces the url's repository (after a push elsewhere).
func Update(wasmPluginYAML []byte, d v1.Hash, repo string) ([]byte, error) {
	if len(urlDigest.FindAllIndex(wasmPluginYAML, -1)) != 1 || len(sha256Field.FindAllIndex(wasmPluginYAML, -1)) != 1 {
		return nil, errNoPinning
	}
	out := urlDigest.ReplaceAllFunc(wasmPluginYAML, func(m []byte) []byte {
		sm := urlDigest.FindSubmatch(m)
		r := string(sm[2])
		if repo != "" {
			r = repo
		}
		return []byte(string(sm[1]) + r + "@sha256:" + d.Hex + string(sm[4]))
	})
	out = sha256Field.ReplaceAllFunc(out, func(m []byte) []byte {
		sm := sha256Field.FindSubmatch(m)
		return []byte(string(sm[1]) + `"` + d.Hex + `"` + string(sm[3]))
	})
	return out, nil
}

// PinnedToolchain returns the Go release the WasmPlugin manifest says compiled the pinned
// module ("" when the manifest does not say).
func PinnedToolchain(wasmPluginYAML []byte) string {
	m := toolchainLine.FindSubmatch(wasmPluginYAML)
	if m == nil {
		return ""
	}
	return string(m[2])
}

// UpdateToolchain records goVersion (e.g. "go1.26.8") as the Go release that compiled the
// pinned module: the comment line above the url is rewritten, or inserted when missing.
func UpdateToolchain(wasmPluginYAML []byte, goVersion string) ([]byte, error) {
	if !regexp.MustCompile(`^go[0-9][0-9A-Za-z.+-]*$`).MatchString(goVersion) {
		return nil, fmt.Errorf("toolchain %q: want a Go version such as go1.26.8", goVersion)
	}
	if n := len(toolchainLine.FindAllIndex(wasmPluginYAML, -1)); n > 1 {
		return nil, fmt.Errorf("%d `# make image: built with` lines, want at most one", n)
	} else if n == 1 {
		return toolchainLine.ReplaceAll(wasmPluginYAML, []byte("${1}"+goVersion+"${3}")), nil
	}
	loc := urlDigest.FindSubmatchIndex(wasmPluginYAML)
	if loc == nil || len(urlDigest.FindAllIndex(wasmPluginYAML, -1)) != 1 {
		return nil, errNoPinning
	}
	// The url line starts after the last newline of the match's leading blanks.
	start := loc[0] + bytes.LastIndexByte(wasmPluginYAML[loc[0]:loc[3]], '\n') + 1
	indent := regexp.MustCompile(`^[ \t]*`).Find(wasmPluginYAML[start:loc[3]])
	line := string(indent) + "# make image: built with " + goVersion + " (the digest depends on it; refresh: make image-update)\n"
	out := append([]byte(nil), wasmPluginYAML[:start]...)
	out = append(out, line...)
	return append(out, wasmPluginYAML[start:]...), nil
}
