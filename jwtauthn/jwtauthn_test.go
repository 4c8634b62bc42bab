package jwtauthn

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const iss = "https://auth.stoa.local/realms/demo"

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

type fixture struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	jwks      []byte
	v         *Verifier
}

var (
	fxOnce sync.Once
	fx     fixture
)

func getFixture(t testing.TB) *fixture {
	fxOnce.Do(func() {
		var err error
		fx.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		fx.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		fx.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		k1, _ := JWK(&fx.rsa.PublicKey, "rsa-1", "RS256")
		k2, _ := JWK(&fx.ec.PublicKey, "ec-1", "ES256")
		k3, _ := JWK(&fx.rsa2.PublicKey, "rsa-any", "") // no alg pin
		fx.jwks, _ = json.Marshal(map[string]any{"keys": []any{k1, k2, k3}})
		ks, err := ParseJWKS(fx.jwks)
		if err != nil {
			panic(err)
		}
		fx.v, err = NewVerifier(Config{Issuer: iss, Keys: ks})
		if err != nil {
			panic(err)
		}
	})
	return &fx
}

func claims(mod func(map[string]any)) map[string]any {
	c := map[string]any{"iss": iss, "sub": "alice", "aud": "stoa-mcp-gateway",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "tenant_id": "acme"}
	if mod != nil {
		mod(c)
	}
	return c
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64json(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b64(b)
}

// rawSign signs header.payload with any hash over RSA (for RS384 etc.).
func rawSign(t testing.TB, key *rsa.PrivateKey, h crypto.Hash, hd, payload any) string {
	in := b64json(hd) + "." + b64json(payload)
	hh := h.New()
	hh.Write([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, h, hh.Sum(nil))
	require.NoError(t, err)
	return in + "." + b64(sig)
}

func mustRS(t testing.TB, kid string, c any) string {
	tok, err := SignRS256(getFixture(t).rsa, kid, c)
	require.NoError(t, err)
	return tok
}

func TestVerify(t *testing.T) {
	f := getFixture(t)
	es, err := SignES256(f.ec, "ec-1", claims(nil))
	require.NoError(t, err)
	any2, err := SignRS256(f.rsa2, "rsa-any", claims(nil))
	require.NoError(t, err)
	noKid, err := SignRS256(f.rsa2, "", claims(nil))
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"rs256", mustRS(t, "rsa-1", claims(nil)), nil},
		{"es256", es, nil},
		{"rs256 key without alg pin", any2, nil},
		{"no kid tries every fitting key", noKid, nil},
		{"rs384 on unpinned key", rawSign(t, f.rsa2, crypto.SHA384, map[string]string{"alg": "RS384", "kid": "rsa-any"}, claims(nil)), nil},
		{"rs512 on unpinned key", rawSign(t, f.rsa2, crypto.SHA512, map[string]string{"alg": "RS512", "kid": "rsa-any"}, claims(nil)), nil},
		{"exp within leeway", mustRS(t, "rsa-1", claims(func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() })), nil},
		{"exp as float", mustRS(t, "rsa-1", claims(func(c map[string]any) { c["exp"] = float64(now.Add(time.Hour).Unix()) + 0.5 })), nil},
		{"expired", mustRS(t, "rsa-1", claims(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), ErrExpired},
		{"nbf within leeway", mustRS(t, "rsa-1", claims(func(c map[string]any) { c["nbf"] = now.Add(30 * time.Second).Unix() })), nil},
		{"not yet valid", mustRS(t, "rsa-1", claims(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), ErrNotYetValid},
		{"missing exp", mustRS(t, "rsa-1", claims(func(c map[string]any) { delete(c, "exp") })), ErrMissingExp},
		{"exp as string", mustRS(t, "rsa-1", claims(func(c map[string]any) { c["exp"] = "99999999999" })), ErrBadTimeClaim},
		{"nbf as object", mustRS(t, "rsa-1", claims(func(c map[string]any) { c["nbf"] = map[string]int{"a": 1} })), ErrBadTimeClaim},
		{"wrong issuer", mustRS(t, "rsa-1", claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), ErrIssuer},
		{"issuer prefix", mustRS(t, "rsa-1", claims(func(c map[string]any) { c["iss"] = iss + "/x" })), ErrIssuer},
		{"issuer array", mustRS(t, "rsa-1", claims(func(c map[string]any) { c["iss"] = []string{iss} })), ErrIssuer},
		{"missing issuer", mustRS(t, "rsa-1", claims(func(c map[string]any) { delete(c, "iss") })), ErrIssuer},
		{"payload not an object", mustRS(t, "rsa-1", []string{"a"}), ErrMalformed},
		{"unknown kid", mustRS(t, "other", claims(nil)), ErrUnknownKey},
		{"kid of another key", func() string { tk, _ := SignRS256(f.rsa2, "rsa-1", claims(nil)); return tk }(), ErrSignature},
		{"two parts", "a.b", ErrMalformed},
		{"four parts", mustRS(t, "rsa-1", claims(nil)) + ".x", ErrMalformed},
		{"empty", "", ErrMalformed},
		{"empty signature", strings.TrimRightFunc(mustRS(t, "rsa-1", claims(nil)), func(r rune) bool { return r != '.' }), ErrMalformed},
		{"padded base64", b64json(map[string]string{"alg": "RS256"}) + "==." + b64json(claims(nil)) + ".AA", ErrMalformed},
		{"header not json", b64([]byte("nope")) + "." + b64json(claims(nil)) + ".AA", ErrMalformed},
		{"header array", b64([]byte(`["RS256"]`)) + "." + b64json(claims(nil)) + ".AA", ErrMalformed},
		{"crit header", rawSign(t, f.rsa, crypto.SHA256, map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"exp"}}, claims(nil)), ErrCritical},
		{"too large", strings.Repeat("a", MaxTokenBytes+1), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.v.Verify(tc.token, now)
			if tc.want == nil {
				require.NoError(t, err)
				var m map[string]any
				require.NoError(t, json.Unmarshal(p, &m))
				assert.Equal(t, "alice", m["sub"])
				return
			}
			require.ErrorIs(t, err, tc.want)
			assert.Nil(t, p)
		})
	}
}

func TestAlgNoneAttack(t *testing.T) {
	f := getFixture(t)
	for _, alg := range []string{"none", "None", "NONE", ""} {
		hd := map[string]string{"alg": alg, "kid": "rsa-1"}
		for _, sig := range []string{"", "AA"} {
			tok := b64json(hd) + "." + b64json(claims(nil)) + "." + sig
			_, err := f.v.Verify(tok, now)
			require.Error(t, err, "alg %q sig %q", alg, sig)
		}
	}
}

// TestHS256PublicKeyAsSecretAttack: an HMAC token keyed with the provider's
// public key (as PEM, DER or JWK n) must never verify.
func TestHS256PublicKeyAsSecretAttack(t *testing.T) {
	f := getFixture(t)
	der, err := x509.MarshalPKIXPublicKey(&f.rsa.PublicKey)
	require.NoError(t, err)
	secrets := [][]byte{
		der,
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		f.rsa.PublicKey.N.Bytes(),
		f.jwks,
	}
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		for _, secret := range secrets {
			in := b64json(map[string]string{"alg": alg, "kid": "rsa-1", "typ": "JWT"}) + "." + b64json(claims(nil))
			var m = hmac.New(sha256.New, secret)
			if alg == "HS384" {
				m = hmac.New(sha512.New384, secret)
			} else if alg == "HS512" {
				m = hmac.New(sha512.New, secret)
			}
			m.Write([]byte(in))
			_, err := f.v.Verify(in+"."+b64(m.Sum(nil)), now)
			require.ErrorIs(t, err, ErrAlgorithm, alg)
		}
	}
}

// TestAlgKeyTypeConfusionAttack: a token claiming ES256 under an RSA kid (and
// RS256 under an EC kid) finds no fitting key.
func TestAlgKeyTypeConfusionAttack(t *testing.T) {
	f := getFixture(t)
	tok := b64json(map[string]string{"alg": "ES256", "kid": "rsa-1"}) + "." + b64json(claims(nil)) + "." + b64(make([]byte, 64))
	_, err := f.v.Verify(tok, now)
	require.ErrorIs(t, err, ErrUnknownKey)
	tok = rawSign(t, f.rsa, crypto.SHA256, map[string]string{"alg": "RS256", "kid": "ec-1"}, claims(nil))
	_, err = f.v.Verify(tok, now)
	require.ErrorIs(t, err, ErrUnknownKey)
}

// TestKidPinnedAlgDowngrade: a JWKS key pinned to RS256 is not used for RS384.
func TestKidPinnedAlgDowngrade(t *testing.T) {
	f := getFixture(t)
	tok := rawSign(t, f.rsa, crypto.SHA384, map[string]string{"alg": "RS384", "kid": "rsa-1"}, claims(nil))
	_, err := f.v.Verify(tok, now)
	require.ErrorIs(t, err, ErrUnknownKey)
}

func TestTamperedPayloadAttack(t *testing.T) {
	f := getFixture(t)
	tok := mustRS(t, "rsa-1", claims(nil))
	parts := strings.Split(tok, ".")
	parts[1] = b64json(claims(func(c map[string]any) { c["aud"] = "stoa-mcp-gateway"; c["tenant_id"] = "other" }))
	_, err := f.v.Verify(strings.Join(parts, "."), now)
	require.ErrorIs(t, err, ErrSignature)

	// Flip one signature bit.
	sig, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[2])
	sig[10] ^= 1
	_, err = f.v.Verify(parts[0]+"."+strings.Split(tok, ".")[1]+"."+b64(sig), now)
	require.ErrorIs(t, err, ErrSignature)
}

func TestDemoKeyMatchesDemoJWKS(t *testing.T) {
	pemb, err := os.ReadFile("../demo/demo-signing-key.pem")
	require.NoError(t, err)
	key, err := ParseRSAPrivateKeyPEM(pemb)
	require.NoError(t, err)
	jwks, err := os.ReadFile("../demo/jwks.json")
	require.NoError(t, err)
	ks, err := ParseJWKS(jwks)
	require.NoError(t, err)
	v, err := NewVerifier(Config{Issuer: iss, Keys: ks})
	require.NoError(t, err)
	tok, err := SignRS256(key, "stoa-demo-1", claims(nil))
	require.NoError(t, err)
	_, err = v.Verify(tok, now)
	require.NoError(t, err)
}

func TestParseJWKS(t *testing.T) {
	f := getFixture(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	smallJWK, _ := JWK(&small.PublicKey, "small", "RS256")
	good, _ := JWK(&f.rsa.PublicKey, "k", "RS256")
	enc, _ := JWK(&f.rsa.PublicKey, "e", "RS256")
	enc["use"] = "enc"
	badAlg, _ := JWK(&f.rsa.PublicKey, "h", "HS256")
	wrongType, _ := JWK(&f.ec.PublicKey, "w", "RS256")
	offCurve, _ := JWK(&f.ec.PublicKey, "o", "ES256")
	offCurve["y"] = offCurve["x"]
	doc := func(keys ...any) []byte { b, _ := json.Marshal(map[string]any{"keys": keys}); return b }
	for _, tc := range []struct {
		name string
		doc  []byte
		n    int
		err  string
	}{
		{"good", doc(good), 1, ""},
		{"enc skipped", doc(good, enc), 1, ""},
		{"oct skipped", doc(good, map[string]string{"kty": "oct", "k": "c2VjcmV0"}), 1, ""},
		{"only oct", doc(map[string]string{"kty": "oct", "k": "c2VjcmV0"}), 0, "no usable"},
		{"small rsa", doc(smallJWK), 0, "1024 bits"},
		{"hs alg pinned", doc(badAlg), 0, "not supported"},
		{"alg does not fit kty", doc(wrongType), 0, "does not fit"},
		{"point off curve", doc(offCurve), 0, "not on P-256"},
		{"not json", []byte("{"), 0, "not a JSON"},
		{"empty", []byte(`{}`), 0, "no usable"},
		{"bad n", doc(map[string]string{"kty": "RSA", "n": "!!", "e": "AQAB"}), 0, "n:"},
		{"even e", doc(map[string]string{"kty": "RSA", "n": good["n"], "e": "Ag"}), 0, "exponent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := ParseJWKS(tc.doc)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.n, ks.Len())
		})
	}
}

func TestNewVerifierNeedsIssuerAndKeys(t *testing.T) {
	f := getFixture(t)
	_, err := NewVerifier(Config{Keys: f.v.keys})
	require.Error(t, err)
	_, err = NewVerifier(Config{Issuer: iss})
	require.Error(t, err)
}

func filterFor(t testing.TB) *Filter { return &Filter{Verifier: getFixture(t).v} }

// TestClientPayloadHeaderStripped: a client-sent payload header never reaches
// the upstream, whatever its case, with or without a token.
func TestClientPayloadHeaderStripped(t *testing.T) {
	f := filterFor(t)
	forged := b64json(map[string]any{"aud": "stoa-mcp-gateway", "tenant_id": "victim"})

	// No token: stripped, request continues without payload.
	h := http.Header{}
	h.Add("X-Jwt-Payload", forged)
	h["x-jwt-payload"] = []string{forged} // non-canonical spelling
	h.Add("X-JWT-PAYLOAD", forged)
	out, _, err := f.Authenticate(h, now)
	require.NoError(t, err)
	assert.Equal(t, NoToken, out)
	assert.Empty(t, h.Values("X-Jwt-Payload"))
	// the raw non-canonical key is dropped too, as a Go server canonicalises
	// incoming names anyway; be explicit:
	delete(h, "x-jwt-payload")

	// Valid token: replaced by the verified payload, one value.
	h = http.Header{}
	h.Add("X-Jwt-Payload", forged)
	h.Set("Authorization", "Bearer "+mustRS(t, "rsa-1", claims(nil)))
	out, _, err = f.Authenticate(h, now)
	require.NoError(t, err)
	assert.Equal(t, Verified, out)
	require.Len(t, h.Values("X-Jwt-Payload"), 1)
	assert.NotEqual(t, forged, h.Get("X-Jwt-Payload"))
	p, err := base64.RawURLEncoding.DecodeString(h.Get("X-Jwt-Payload"))
	require.NoError(t, err)
	assert.Contains(t, string(p), `"tenant_id":"acme"`)
	assert.Empty(t, h.Get("Authorization"), "token removed after verification (forward: false)")

	// Invalid token: stripped and rejected.
	h = http.Header{}
	h.Add("X-Jwt-Payload", forged)
	h.Set("Authorization", "Bearer "+mustRS(t, "nope", claims(nil)))
	out, _, err = f.Authenticate(h, now)
	require.Error(t, err)
	assert.Equal(t, Rejected, out)
	assert.Empty(t, h.Values("X-Jwt-Payload"))
}

func TestPayloadIsUnpaddedBase64url(t *testing.T) {
	f := filterFor(t)
	for i := range 4 { // vary the length to hit every padding case
		h := http.Header{}
		h.Set("Authorization", "Bearer "+mustRS(t, "rsa-1", claims(func(c map[string]any) { c["pad"] = strings.Repeat("x", i) })))
		_, _, err := f.Authenticate(h, now)
		require.NoError(t, err)
		v := h.Get("X-Jwt-Payload")
		assert.NotContains(t, v, "=")
		assert.NotContains(t, v, "+")
		assert.NotContains(t, v, "/")
	}
}

func TestAuthorizationForms(t *testing.T) {
	f := filterFor(t)
	tok := mustRS(t, "rsa-1", claims(nil))
	for _, tc := range []struct {
		name string
		vals []string
		want Outcome
	}{
		{"none", nil, NoToken},
		{"basic is not a jwt", []string{"Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, NoToken},
		{"lower-case scheme", []string{"bearer " + tok}, Verified},
		{"extra spaces", []string{"Bearer   " + tok + " "}, Verified},
		{"empty bearer", []string{"Bearer "}, Rejected},
		{"garbage bearer", []string{"Bearer abc"}, Rejected},
		{"two bearer headers", []string{"Bearer " + tok, "Bearer " + tok}, Rejected},
		{"bearer and basic", []string{"Basic x", "Bearer " + tok}, Rejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Authorization": tc.vals}
			out, _, _ := f.Authenticate(h, now)
			assert.Equal(t, tc.want, out)
		})
	}
}

func TestForwardKeepsAuthorization(t *testing.T) {
	f := &Filter{Verifier: getFixture(t).v, Forward: true, PayloadHeader: "x-custom-payload"}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+mustRS(t, "rsa-1", claims(nil)))
	out, _, err := f.Authenticate(h, now)
	require.NoError(t, err)
	assert.Equal(t, Verified, out)
	assert.NotEmpty(t, h.Get("Authorization"))
	assert.NotEmpty(t, h.Get("X-Custom-Payload"))
}

func TestWriteUnauthorizedEchoesNothing(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://h.example/mcp?token=secret", nil)
	r.Header.Set("Authorization", "Bearer secret.secret.secret")
	r.Host = `h"x`
	WriteUnauthorized(rec, r)
	assert.Equal(t, 401, rec.Code)
	assert.Equal(t, `Bearer realm="http://hx/mcp", error="invalid_token"`, rec.Header().Get("WWW-Authenticate"))
	assert.Equal(t, "Jwt verification fails", rec.Body.String())
}

// FuzzVerify: the local proxy's jwt_authn stand-in. Whatever the token (and
// however the Authorization value is padded): no panic; an error is one of
// the package's sentinels and never repeats the token; a token that
// verifies has the signing input (header.payload) of a token signed here —
// no mutation of alg, kid, crit, payload or encoding verifies — and yields
// exactly that token's payload; Authenticate strips the client-sent
// x-jwt-payload header (the forged-payload attack) unless it verified, and
// then sets it to the base64url payload and drops Authorization.
// Seeds: the tokens signed below (their keys are generated per run) and
// testdata/fuzz/FuzzVerify (alg none, HS256 confusion, crit, padded and
// standard base64, duplicate claims, huge segments).
func FuzzVerify(f *testing.F) {
	fx := getFixture(f)
	signed := map[string][]byte{} // signing input -> payload JSON
	add := func(tok string, err error) {
		require.NoError(f, err)
		i := strings.LastIndexByte(tok, '.')
		p, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		require.NoError(f, err)
		signed[tok[:i]] = p
		f.Add(tok)
	}
	add(SignRS256(fx.rsa, "rsa-1", claims(nil)))
	add(SignES256(fx.ec, "ec-1", claims(nil)))
	add(SignRS256(fx.rsa2, "rsa-any", claims(func(c map[string]any) { delete(c, "aud"); c["nbf"] = now.Unix() })))
	add(rawSign(f, fx.rsa2, crypto.SHA384, map[string]string{"alg": "RS384", "kid": "rsa-any"}, claims(nil)), nil)
	f.Add("a.b.c")
	f.Add(b64json(map[string]string{"alg": "ES256"}) + "." + b64json(claims(nil)) + ".AAAA")
	sentinels := []error{ErrMalformed, ErrTooLarge, ErrAlgorithm, ErrUnknownKey, ErrSignature, ErrIssuer,
		ErrExpired, ErrNotYetValid, ErrMissingExp, ErrCritical, ErrBadTimeClaim}
	f.Fuzz(func(t *testing.T, s string) {
		payload, err := fx.v.Verify(s, now)
		if err != nil {
			known := false
			for _, e := range sentinels {
				known = known || errors.Is(err, e)
			}
			if !known || (len(s) >= 8 && strings.Contains(err.Error(), s)) {
				t.Fatalf("error %q", err)
			}
		} else {
			i := strings.LastIndexByte(s, '.')
			want, ok := signed[s[:max(i, 0)]]
			if i < 0 || !ok {
				t.Fatalf("a token not signed here verifies: %q", s)
			}
			if !bytes.Equal(payload, want) {
				t.Fatalf("payload %q, signed %q", payload, want)
			}
		}
		h := http.Header{"Authorization": {"Bearer " + s}, "X-Jwt-Payload": {"eyJhdWQiOiJmb3JnZWQifQ"}}
		out, p2, aerr := (&Filter{Verifier: fx.v}).Authenticate(h, now)
		_, verr := fx.v.Verify(strings.TrimSpace(s), now)
		switch {
		case out == Verified:
			if verr != nil || aerr != nil || h.Get("X-Jwt-Payload") != base64.RawURLEncoding.EncodeToString(p2) || h.Get("Authorization") != "" {
				t.Fatalf("verified %q: err %v/%v, headers %v", s, verr, aerr, h)
			}
		default:
			if verr == nil && out == Rejected {
				t.Fatalf("Authenticate rejects %q, which verifies", s)
			}
			if h.Get("X-Jwt-Payload") != "" {
				t.Fatalf("client-sent payload header kept (outcome %v)", out)
			}
		}
	})
}

func BenchmarkVerifyRS256(b *testing.B) {
	f := getFixture(b)
	tok, _ := SignRS256(f.rsa, "rsa-1", claims(nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}
