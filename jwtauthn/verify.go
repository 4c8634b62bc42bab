package jwtauthn

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"math"
	"math/big"
	"strings"
	"time"
)

// Verification errors. They name what failed, never the token's content.
var (
	ErrMalformed    = errors.New("jwt: malformed")
	ErrTooLarge     = errors.New("jwt: too large")
	ErrAlgorithm    = errors.New("jwt: algorithm not allowed")
	ErrUnknownKey   = errors.New("jwt: no key for kid")
	ErrSignature    = errors.New("jwt: signature invalid")
	ErrIssuer       = errors.New("jwt: issuer not accepted")
	ErrExpired      = errors.New("jwt: expired")
	ErrNotYetValid  = errors.New("jwt: not yet valid")
	ErrMissingExp   = errors.New("jwt: exp claim required")
	ErrCritical     = errors.New("jwt: unsupported crit header")
	ErrBadTimeClaim = errors.New("jwt: exp/nbf/iat not a number")
)

// alg is one allowed signature algorithm.
type alg struct {
	hash crypto.Hash
	new  func() hash.Hash
	ec   bool
}

func (a alg) fits(pub crypto.PublicKey) bool {
	switch pub.(type) {
	case *rsa.PublicKey:
		return !a.ec
	case *ecdsa.PublicKey:
		return a.ec
	}
	return false
}

// algs is the allow-list. "none" and every HMAC alg are absent on purpose:
// a JWKS holds public keys, and HS* with a public key as the secret is the
// classic confusion attack.
var algs = map[string]alg{
	"RS256": {crypto.SHA256, sha256.New, false},
	"RS384": {crypto.SHA384, sha512.New384, false},
	"RS512": {crypto.SHA512, sha512.New, false},
	"ES256": {crypto.SHA256, sha256.New, true},
}

// DefaultLeeway is jwt_authn's default clock_skew_seconds.
const DefaultLeeway = 60 * time.Second

// MaxTokenBytes bounds the token accepted.
const MaxTokenBytes = 16 << 10

// Config configures a Verifier.
type Config struct {
	// Issuer the token's iss must equal exactly (required).
	Issuer string
	// Keys verify the signature (required).
	Keys *KeySet
	// Leeway tolerated on exp and nbf; 0 means DefaultLeeway, negative means none.
	Leeway time.Duration
	// AllowMissingExp accepts tokens without exp (jwt_authn's default); false
	// requires it (require_expiration: true).
	AllowMissingExp bool
}

// Verifier verifies tokens of one provider. It is safe for concurrent use.
type Verifier struct {
	issuer     string
	keys       *KeySet
	leeway     time.Duration
	missingExp bool
}

// NewVerifier checks c and returns a Verifier.
func NewVerifier(c Config) (*Verifier, error) {
	if c.Issuer == "" {
		return nil, errors.New("jwtauthn: issuer required")
	}
	if c.Keys == nil || c.Keys.Len() == 0 {
		return nil, errors.New("jwtauthn: keys required")
	}
	l := c.Leeway
	if l == 0 {
		l = DefaultLeeway
	} else if l < 0 {
		l = 0
	}
	return &Verifier{issuer: c.Issuer, keys: c.Keys, leeway: l, missingExp: c.AllowMissingExp}, nil
}

type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

// Verify checks token (JWS compact serialization) at time now and returns its
// decoded payload (JSON) on success. Errors wrap the package's sentinels.
func (v *Verifier) Verify(token string, now time.Time) ([]byte, error) {
	if len(token) > MaxTokenBytes {
		return nil, ErrTooLarge
	}
	h64, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, ErrMalformed
	}
	p64, s64, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(s64, ".") || h64 == "" || p64 == "" || s64 == "" {
		return nil, ErrMalformed
	}
	hb, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return nil, ErrMalformed
	}
	var hd header
	if err := strictObject(hb, &hd); err != nil {
		return nil, ErrMalformed
	}
	if len(hd.Crit) > 0 {
		return nil, ErrCritical
	}
	a, ok := algs[hd.Alg]
	if !ok {
		return nil, ErrAlgorithm
	}
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return nil, ErrMalformed
	}
	hh := a.new()
	hh.Write([]byte(token[:len(h64)+1+len(p64)]))
	digest := hh.Sum(nil)

	found := false
	verified := false
	for _, k := range v.keys.keys {
		if hd.Kid != "" && k.ID != hd.Kid {
			continue
		}
		if k.Alg != "" && k.Alg != hd.Alg {
			continue
		}
		if !a.fits(k.Pub) {
			continue
		}
		found = true
		if verifySig(a, k.Pub, digest, sig) {
			verified = true
			break
		}
	}
	if !found {
		return nil, ErrUnknownKey
	}
	if !verified {
		return nil, ErrSignature
	}

	payload, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		return nil, ErrMalformed
	}
	if err := v.checkClaims(payload, now); err != nil {
		return nil, err
	}
	return payload, nil
}

func verifySig(a alg, pub crypto.PublicKey, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, a.hash, digest, sig) == nil
	case *ecdsa.PublicKey:
		if len(sig) != 64 {
			return false
		}
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

// strictObject decodes a JSON object into v; anything else is an error.
func strictObject(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return ErrMalformed
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return ErrMalformed
	}
	return nil
}

func (v *Verifier) checkClaims(payload []byte, now time.Time) error {
	var raw map[string]json.RawMessage
	if err := strictObject(payload, &raw); err != nil {
		return ErrMalformed
	}
	var iss string
	if r, ok := raw["iss"]; !ok || json.Unmarshal(r, &iss) != nil || iss != v.issuer {
		return ErrIssuer
	}
	n := now.Unix()
	leeway := int64(v.leeway / time.Second)
	if r, ok := raw["exp"]; ok {
		exp, err := numericDate(r)
		if err != nil {
			return err
		}
		if n > exp+leeway {
			return ErrExpired
		}
	} else if !v.missingExp {
		return ErrMissingExp
	}
	if r, ok := raw["nbf"]; ok {
		nbf, err := numericDate(r)
		if err != nil {
			return err
		}
		if n+leeway < nbf {
			return ErrNotYetValid
		}
	}
	return nil
}

// numericDate reads a JSON number (not a string) as whole seconds, fractions
// truncated.
func numericDate(r json.RawMessage) (int64, error) {
	r = bytes.TrimSpace(r)
	if len(r) == 0 || (r[0] != '-' && (r[0] < '0' || r[0] > '9')) {
		return 0, ErrBadTimeClaim
	}
	n := json.Number(r)
	if i, err := n.Int64(); err == nil {
		return i, nil
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f > math.MaxInt64/2 || f < math.MinInt64/2 {
		return 0, ErrBadTimeClaim
	}
	return int64(f), nil
}
