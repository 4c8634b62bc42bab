package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stoa-platform/stoa-guard/jwtauthn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func verifier(t *testing.T) *jwtauthn.Verifier {
	b, err := os.ReadFile("../../demo/jwks.json")
	require.NoError(t, err)
	ks, err := jwtauthn.ParseJWKS(b)
	require.NoError(t, err)
	v, err := jwtauthn.NewVerifier(jwtauthn.Config{Issuer: DefaultIssuer, Keys: ks})
	require.NoError(t, err)
	return v
}

func mintArgs(t *testing.T, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(append([]string{"-key", "../../demo/demo-signing-key.pem"}, args...), &out, &errb, func() time.Time { return t0 })
	return strings.TrimSpace(out.String()), errb.String(), code
}

func payload(t *testing.T, tok string) map[string]any {
	p := strings.Split(tok, ".")
	require.Len(t, p, 3)
	b, err := base64.RawURLEncoding.DecodeString(p[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func TestMint(t *testing.T) {
	v := verifier(t)
	for _, tc := range []struct {
		name    string
		args    []string
		aud     any
		tenant  any
		verify  error
		noAud   bool
		noTenan bool
	}{
		{name: "defaults", aud: "stoa-mcp-gateway", tenant: "acme"},
		{name: "array aud", args: []string{"-aud", "a, b,"}, aud: []any{"a", "b"}, tenant: "acme"},
		{name: "no aud", args: []string{"-aud", "none"}, noAud: true, tenant: "acme"},
		{name: "no tenant", args: []string{"-tenant", ""}, aud: "stoa-mcp-gateway", noTenan: true},
		{name: "expired", args: []string{"-exp", "-5m"}, aud: "stoa-mcp-gateway", tenant: "acme", verify: jwtauthn.ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, stderr, code := mintArgs(t, tc.args...)
			require.Equal(t, 0, code, stderr)
			m := payload(t, tok)
			if tc.noAud {
				assert.NotContains(t, m, "aud")
			} else {
				assert.Equal(t, tc.aud, m["aud"])
			}
			if tc.noTenan {
				assert.NotContains(t, m, "tenant_id")
			} else {
				assert.Equal(t, tc.tenant, m["tenant_id"])
			}
			_, err := v.Verify(tok, t0)
			if tc.verify != nil {
				require.ErrorIs(t, err, tc.verify)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

func TestMintErrors(t *testing.T) {
	_, stderr, code := mintArgs(t, "-aud", "")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "-aud is empty")
	_, _, code = mintArgs(t, "-exp", "soon")
	assert.Equal(t, 2, code)
	var out, errb bytes.Buffer
	code = run([]string{"-key", "/nonexistent"}, &out, &errb, time.Now)
	assert.Equal(t, 1, code)
	assert.Contains(t, errb.String(), "reading -key")
	assert.Empty(t, out.String())
}
