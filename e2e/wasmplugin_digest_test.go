package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stoa-platform/stoa-guard/e2e/wasmimage"
	"github.com/stretchr/testify/require"
)

// TestWasmPluginPinsCurrentModule: istio/wasmplugin.yaml pins the image `make image` builds
// from the filter.wasm at the repository root (reproducible: same module, same digest).
func TestWasmPluginPinsCurrentModule(t *testing.T) {
	wasm, err := os.ReadFile(filepath.Join(repoRoot(t), "filter.wasm"))
	if os.IsNotExist(err) {
		t.Skip("filter.wasm is not built at the repository root (make build): digest pin not checked")
	}
	require.NoError(t, err)
	img, err := wasmimage.Build(wasm)
	require.NoError(t, err)
	d, err := img.Digest()
	require.NoError(t, err)
	require.NoError(t, wasmimage.Check(readRepoFile(t, "istio/wasmplugin.yaml"), d),
		"refresh it with `make image` (go run ./cmd/wasm-image build -wasm ../filter.wasm -update ../istio/wasmplugin.yaml)")
}
