// Package jwtauthn is a small stand-in for Envoy's jwt_authn HTTP filter, for
// the local proxy and the tests: it verifies a bearer JWT (JWS compact, RS256,
// RS384, RS512 or ES256) against a JWKS, checks the issuer and the validity
// window, and forwards the verified payload the way jwt_authn's
// forward_payload_header does (base64url, no padding).
//
// Like Envoy, it ALWAYS removes a client-sent payload header before anything
// else, so the header the filter reads only ever carries a payload this
// package verified. A request without a token passes without payload (the
// filter then answers missing_token); a request with a token that fails
// verification is answered 401 here, as jwt_authn does. Audiences are NOT
// checked: that is the filter's job.
//
// It uses the standard library's crypto only. Tokens, payloads and keys never
// appear in errors or logs.
package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// MinRSABits is the smallest RSA modulus a JWKS key may have.
const MinRSABits = 2048

// maxJWKS bounds the JWKS document read.
const maxJWKS = 1 << 20

// Key is one verification key from a JWKS.
type Key struct {
	ID  string // kid, may be empty
	Alg string // alg pinned by the JWKS, may be empty (then any alg of the key's type)
	Pub crypto.PublicKey
}

// KeySet is a parsed JWKS.
type KeySet struct {
	keys []Key
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS parses a JSON Web Key Set ({"keys":[...]}). Keys for encryption
// (use "enc") and of unsupported types are skipped; a malformed RSA or EC key,
// an RSA key under MinRSABits, or a set with no usable key is an error.
func ParseJWKS(doc []byte) (*KeySet, error) {
	if len(doc) > maxJWKS {
		return nil, fmt.Errorf("jwks: larger than %d bytes", maxJWKS)
	}
	var raw struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, fmt.Errorf("jwks: not a JSON key set: %v", err)
	}
	ks := &KeySet{}
	for i, k := range raw.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var pub crypto.PublicKey
		var err error
		switch k.Kty {
		case "RSA":
			pub, err = rsaKey(k)
		case "EC":
			pub, err = ecKey(k)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("jwks: key %d (kid %q): %v", i, k.Kid, err)
		}
		if k.Alg != "" {
			if _, ok := algs[k.Alg]; !ok {
				return nil, fmt.Errorf("jwks: key %d (kid %q): alg %q not supported (want one of RS256, RS384, RS512, ES256)", i, k.Kid, k.Alg)
			}
			if !algs[k.Alg].fits(pub) {
				return nil, fmt.Errorf("jwks: key %d (kid %q): alg %q does not fit kty %q", i, k.Kid, k.Alg, k.Kty)
			}
		}
		ks.keys = append(ks.keys, Key{ID: k.Kid, Alg: k.Alg, Pub: pub})
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("jwks: no usable signing key (RSA >= 2048 bits or EC P-256)")
	}
	return ks, nil
}

// Len is the number of usable keys.
func (ks *KeySet) Len() int { return len(ks.keys) }

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}

func rsaKey(k jwk) (*rsa.PublicKey, error) {
	n, err := b64int(k.N)
	if err != nil {
		return nil, fmt.Errorf("n: %v", err)
	}
	e, err := b64int(k.E)
	if err != nil {
		return nil, fmt.Errorf("e: %v", err)
	}
	if n.BitLen() < MinRSABits {
		return nil, fmt.Errorf("RSA modulus of %d bits, want >= %d", n.BitLen(), MinRSABits)
	}
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
		return nil, errors.New("unusable RSA exponent")
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

func ecKey(k jwk) (*ecdsa.PublicKey, error) {
	if k.Crv != "P-256" {
		return nil, fmt.Errorf("curve %q not supported (want P-256)", k.Crv)
	}
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(x) != 32 {
		return nil, errors.New("x: want 32 bytes base64url")
	}
	y, err := base64.RawURLEncoding.DecodeString(k.Y)
	if err != nil || len(y) != 32 {
		return nil, errors.New("y: want 32 bytes base64url")
	}
	// Uncompressed point; ParseUncompressedPublicKey checks it is on the curve.
	pt := append(append([]byte{4}, x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
	if err != nil {
		return nil, errors.New("point not on P-256")
	}
	return pub, nil
}
