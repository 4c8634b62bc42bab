package abi_test

import (
	"context"
	"os"
	"testing"

	"github.com/stoa-platform/stoa-guard/abi/abitest"
	"github.com/stoa-platform/stoa-guard/internal/wasmbuild"
	"github.com/stretchr/testify/require"
)

const testGuest = "github.com/stoa-platform/stoa-guard/abi/internal/testguest"

func TestMain(m *testing.M) { os.Exit(wasmbuild.Main(m)) }

func guestWasm(t *testing.T) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	b, err := os.ReadFile(wasmbuild.Build(t, testGuest))
	require.NoError(t, err)
	return b
}

// TestGuestModuleABI checks the built test guest's imports and exports the
// way Envoy 1.33+ will see them.
func TestGuestModuleABI(t *testing.T) {
	wasm := guestWasm(t)
	ctx := context.Background()
	require.NoError(t, abitest.Check(ctx, wasm))
	inv, err := abitest.Inspect(ctx, wasm)
	require.NoError(t, err)
	t.Logf("size %d bytes", len(wasm))
	t.Logf("imports (%d): %v", len(inv.Imports), inv.Imports)
	t.Logf("exports (%d): %v", len(inv.Exports), inv.Exports)
}
