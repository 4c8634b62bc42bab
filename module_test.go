package main_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stoa-platform/stoa-guard/abi/abitest"
	"github.com/stoa-platform/stoa-guard/internal/wasmbuild"
)

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m)) }

// TestFilterModuleABI builds filter.wasm from this repository the way
// `make build` does and checks what Envoy will see: imports only env.proxy_*
// and WASI functions that Envoy 1.33 provides, the ABI 0.2.1 marker, the
// allocator and every callback with its exact signature.
func TestFilterModuleABI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the wasm module")
	}
	path := wasmbuild.Build(t, "github.com/stoa-platform/stoa-guard", "-trimpath", "-ldflags=-s -w")
	wasm, err := os.ReadFile(path)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, abitest.Check(ctx, wasm))
	inv, err := abitest.Inspect(ctx, wasm)
	require.NoError(t, err)
	t.Logf("filter.wasm: %d bytes", len(wasm))
	t.Logf("imports (%d): %v", len(inv.Imports), inv.Imports)
}
