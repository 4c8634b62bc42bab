package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	extv1alpha1 "istio.io/api/extensions/v1alpha1"
)

// rollbackPatch finds the documented `kubectl patch wasmplugin --type=json` guards:
// {"op":"test","path":"/spec/vmConfig/env/N/name","value":"NAME"}.
var rollbackPatch = regexp.MustCompile(`"path":\s*"/spec/vmConfig/env/(\d+)/name",\s*"value":\s*"([A-Z_]+)"`)

// checkRollbackDocs: every documented patch guard names the variable that really sits at that
// index of istio/wasmplugin.yaml's vmConfig.env (else the documented rollback is refused).
// It returns how many guards it checked.
func checkRollbackDocs(doc []byte, env []*extv1alpha1.EnvVar) (int, error) {
	var errs []error
	ms := rollbackPatch.FindAllSubmatch(doc, -1)
	for _, m := range ms {
		i, err := strconv.Atoi(string(m[1]))
		switch {
		case err != nil || i >= len(env):
			errs = append(errs, fmt.Errorf("vmConfig.env/%s does not exist", m[1]))
		case env[i].GetName() != string(m[2]):
			errs = append(errs, fmt.Errorf("vmConfig.env/%d is %s, the documented patch expects %s", i, env[i].GetName(), m[2]))
		}
	}
	return len(ms), errors.Join(errs...)
}

func TestDocumentedRollbacksMatchWasmPlugin(t *testing.T) {
	ys, err := splitYAML(readRepoFile(t, "istio/wasmplugin.yaml"))
	require.NoError(t, err)
	d, err := decodeIstioDoc("wasmplugin.yaml", ys[0])
	require.NoError(t, err)
	env := d.obj.(*extv1alpha1.WasmPlugin).GetVmConfig().GetEnv()

	n, err := checkRollbackDocs(readRepoFile(t, "istio/README.md"), env)
	require.NoError(t, err, "istio/README.md")
	require.Positive(t, n, "istio/README.md documents a rollback patch")
	if b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md")); err == nil {
		_, err = checkRollbackDocs(b, env)
		require.NoError(t, err, "README.md")
	}

	// Broken twins: a guard on the wrong index, an index past the list.
	_, err = checkRollbackDocs([]byte(`"path":"/spec/vmConfig/env/1/name","value":"SSE_LIMITER_ENABLED"`), env)
	require.ErrorContains(t, err, "is CORS_ORIGINS")
	_, err = checkRollbackDocs([]byte(`"path": "/spec/vmConfig/env/99/name", "value": "ALLOWED_AUDIENCES"`), env)
	require.ErrorContains(t, err, "env/99 does not exist")
}
