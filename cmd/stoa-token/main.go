// Command stoa-token mints RS256 test tokens signed with the demo key, for
// trying the local proxy and for the tests. The demo key is public: tokens it
// signs prove nothing outside the demo.
//
//	stoa-token                                  # aud stoa-mcp-gateway, tenant acme, 1h
//	stoa-token -aud other-client                # wrong audience -> 401 invalid_audience
//	stoa-token -aud none                        # no aud claim    -> 401 missing_audience
//	stoa-token -aud stoa-mcp-gateway,account    # aud as an array
//	stoa-token -exp -5m                         # expired         -> 401 from jwt_authn
//
// It prints the token alone on stdout.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/stoa-platform/stoa-guard/jwtauthn"
)

// Demo identity defaults (demo/README.md).
const (
	DefaultKey    = "demo/demo-signing-key.pem"
	DefaultKid    = "stoa-demo-1"
	DefaultIssuer = "https://auth.stoa.local/realms/demo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, time.Now))
}

// options are the command's flags.
type options struct {
	aud, tenant, tenantClaim, sub, key, kid, iss string
	exp                                          time.Duration
}

func run(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("stoa-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.aud, "aud", "stoa-mcp-gateway", `audience: one value, a comma list (array claim), or "none" (no aud claim)`)
	fs.StringVar(&o.tenant, "tenant", "acme", `tenant claim value; "" omits it`)
	fs.StringVar(&o.tenantClaim, "tenant-claim", "tenant_id", "name of the tenant claim")
	fs.StringVar(&o.sub, "sub", "demo-user", "subject")
	fs.DurationVar(&o.exp, "exp", time.Hour, "lifetime from now; negative mints an expired token")
	fs.StringVar(&o.key, "key", DefaultKey, "RSA private key (PEM, PKCS#8 or PKCS#1)")
	fs.StringVar(&o.kid, "kid", DefaultKid, "key id put in the header")
	fs.StringVar(&o.iss, "iss", DefaultIssuer, "issuer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "stoa-token: unexpected arguments:", fs.Args())
		return 2
	}
	tok, err := mint(o, now())
	if err != nil {
		fmt.Fprintln(stderr, "stoa-token:", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// Claims builds the claim set for o at now.
func Claims(o options, now time.Time) (map[string]any, error) {
	c := map[string]any{
		"iss": o.iss,
		"sub": o.sub,
		"iat": now.Unix(),
		"exp": now.Add(o.exp).Unix(),
	}
	if o.exp < 0 {
		c["iat"] = now.Add(o.exp).Add(-time.Minute).Unix()
	}
	switch a := strings.TrimSpace(o.aud); {
	case a == "none":
	case strings.Contains(a, ","):
		var list []string
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		c["aud"] = list
	case a == "":
		return nil, errors.New(`-aud is empty; use "none" to omit the claim`)
	default:
		c["aud"] = a
	}
	if o.tenant != "" {
		if o.tenantClaim == "" {
			return nil, errors.New("-tenant-claim is empty")
		}
		c[o.tenantClaim] = o.tenant
	}
	return c, nil
}

func mint(o options, now time.Time) (string, error) {
	c, err := Claims(o, now)
	if err != nil {
		return "", err
	}
	pemb, err := os.ReadFile(o.key)
	if err != nil {
		return "", fmt.Errorf("reading -key: %v (run from the repository root, or pass -key)", err)
	}
	k, err := jwtauthn.ParseRSAPrivateKeyPEM(pemb)
	if err != nil {
		return "", err
	}
	return jwtauthn.SignRS256(k, o.kid, c)
}
