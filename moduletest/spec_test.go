package moduletest

import (
	"testing"

	"github.com/stoa-platform/stoa-guard/internal/spectable"
)

// TestSpecTable runs SPEC.md's behaviour table — the same one package filter
// runs natively — against the compiled filter.wasm under both Envoy profiles.
func TestSpecTable(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.String(), func(t *testing.T) { spectable.Run(t, startModule(p)) })
	}
}
