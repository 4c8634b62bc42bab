package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// SignRS256 returns a JWS compact token over claims (JSON-encoded) signed with
// key, header {"alg":"RS256","typ":"JWT","kid":kid}. For test tokens and the
// stoa-token command.
func SignRS256(key *rsa.PrivateKey, kid string, claims any) (string, error) {
	return sign("RS256", kid, claims, func(d []byte) ([]byte, error) {
		return rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d)
	})
}

// SignES256 is SignRS256 for a P-256 key (signature r||s, 64 bytes).
func SignES256(key *ecdsa.PrivateKey, kid string, claims any) (string, error) {
	return sign("ES256", kid, claims, func(d []byte) ([]byte, error) {
		r, s, err := ecdsa.Sign(rand.Reader, key, d)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out, nil
	})
}

func sign(alg, kid string, claims any, f func([]byte) ([]byte, error)) (string, error) {
	hd := map[string]string{"alg": alg, "typ": "JWT"}
	if kid != "" {
		hd["kid"] = kid
	}
	hb, err := json.Marshal(hd)
	if err != nil {
		return "", err
	}
	pb, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(pb)
	d := sha256.Sum256([]byte(input))
	sig, err := f(d[:])
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// ParseRSAPrivateKeyPEM reads an RSA private key in PKCS#8 ("PRIVATE KEY") or
// PKCS#1 ("RSA PRIVATE KEY") PEM.
func ParseRSAPrivateKeyPEM(b []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("key: no PEM block")
	}
	switch blk.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key: %v", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("key: not an RSA key")
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key: %v", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("key: PEM type %q, want PRIVATE KEY or RSA PRIVATE KEY", blk.Type)
}

// JWK returns the public JWK of key (kty RSA or EC) with kid and alg, as a
// JSON object suitable for a JWKS's "keys".
func JWK(pub crypto.PublicKey, kid, alg string) (map[string]string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		e := make([]byte, 0, 4)
		for v := k.E; v > 0; v >>= 8 {
			e = append([]byte{byte(v)}, e...)
		}
		return map[string]string{"kty": "RSA", "kid": kid, "alg": alg, "use": "sig",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(e)}, nil
	case *ecdsa.PublicKey:
		b, err := k.Bytes()
		if err != nil || len(b) != 65 {
			return nil, errors.New("jwk: not a P-256 key")
		}
		return map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "alg": alg, "use": "sig",
			"x": base64.RawURLEncoding.EncodeToString(b[1:33]), "y": base64.RawURLEncoding.EncodeToString(b[33:])}, nil
	}
	return nil, errors.New("jwk: unsupported key type")
}
