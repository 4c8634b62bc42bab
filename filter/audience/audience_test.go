package audience

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func jsonQuote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func enc(json string) string    { return base64.RawURLEncoding.EncodeToString([]byte(json)) }
func encPad(json string) string { return base64.URLEncoding.EncodeToString([]byte(json)) }

var defaultChecker = NewChecker([]string{"stoa-mcp-gateway", "account"}, false)

func decode(t *testing.T, json string) (Claims, Reason) {
	t.Helper()
	var c Claims
	r := NewDecoder("").DecodeHeader(enc(json), &c)
	return c, r
}

func TestReasonTexts(t *testing.T) {
	for _, tc := range []struct {
		r          Reason
		str, descr string
	}{
		{None, "", ""},
		{MissingToken, "missing_token", "Missing token"},
		{Malformed, "malformed", "Malformed token payload"},
		{MissingAudience, "missing_audience", "Token has no audience"},
		{InvalidAudience, "invalid_audience", "Invalid audience"},
		{Reason(99), "unknown", "Invalid token"},
	} {
		assert.Equal(t, tc.str, tc.r.String())
		assert.Equal(t, tc.descr, tc.r.Description())
	}
}

func TestDecodeHeaderEncoding(t *testing.T) {
	const js = `{"aud":"stoa-mcp-gateway","sub":"x?>"}` // '?>' makes '_'/'-' or '+'/'/' appear
	std := base64.StdEncoding.EncodeToString([]byte(js))
	require.True(t, strings.ContainsAny(std, "+/"), std)
	tests := []struct {
		name string
		in   string
		want Reason
	}{
		{"unpadded", enc(js), None},
		{"padded", encPad(js), None},
		{"padded 1", encPad(`{"aud":"a"}`), None},
		{"padded 2", encPad(`{"aud":"ab"}`), None},
		{"empty", "", MissingToken},
		{"standard alphabet", std, Malformed},
		{"standard alphabet unpadded", strings.TrimRight(std, "="), Malformed},
		{"whitespace inside", enc(js)[:8] + " " + enc(js)[8:], Malformed},
		{"newline inside", enc(js)[:8] + "\n" + enc(js)[8:], Malformed},
		{"CR LF at end", enc(js) + "\r\n", Malformed},
		{"leading space", " " + enc(js), Malformed},
		{"three pads", enc(`{"aud":"a"}`) + "===", Malformed},
		{"pad in middle", "eyJh=ZCI6ImEifQ", Malformed},
		{"wrong pad length", enc(`{"aud":"ab"}`) + "=", Malformed},
		{"only pads", "====", Malformed},
		{"length mod 4 == 1", enc(js) + "A", Malformed},
		{"NUL", enc(js) + "\x00", Malformed},
		{"bearer prefix", "Bearer " + enc(js), Malformed},
		{"full JWT", enc(`{"alg":"none"}`) + "." + enc(js) + ".", Malformed},
		{"not json", enc("hello"), Malformed},
		{"utf8 invalid", enc("{\"aud\":\"a\xff\"}"), Malformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Claims
			assert.Equal(t, tc.want, NewDecoder("").DecodeHeader(tc.in, &c))
		})
	}
	// Non-canonical trailing bits: "e31" decodes like "e30" leniently.
	var c Claims
	assert.Equal(t, Malformed, NewDecoder("").DecodeHeader("e31", &c))
	assert.Equal(t, None, NewDecoder("").DecodeHeader("e30", &c))
}

func TestDecodeAud(t *testing.T) {
	eight := `["a1","a2","a3","a4","a5","a6","a7","a8","a9","a10"]`
	tests := []struct {
		name    string
		json    string
		want    Reason
		present bool
		aud     []string
	}{
		{"string", `{"aud":"stoa-mcp-gateway"}`, None, true, []string{"stoa-mcp-gateway"}},
		{"array", `{"aud":["x","account"]}`, None, true, []string{"x", "account"}},
		{"array keeps 8", `{"aud":` + eight + `}`, None, true, []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"}},
		{"missing", `{"sub":"u"}`, None, false, nil},
		{"empty object", `{}`, None, false, nil},
		{"empty string", `{"aud":""}`, None, true, []string{""}},
		{"empty array", `{"aud":[]}`, None, true, nil},
		{"number", `{"aud":1}`, Malformed, false, nil},
		{"null", `{"aud":null}`, Malformed, false, nil},
		{"bool", `{"aud":true}`, Malformed, false, nil},
		{"object", `{"aud":{"a":"b"}}`, Malformed, false, nil},
		{"array with number", `{"aud":["a",1]}`, Malformed, false, nil},
		{"array with null", `{"aud":["a",null]}`, Malformed, false, nil},
		{"nested array", `{"aud":[["a"]]}`, Malformed, false, nil},
		{"array of 64", `{"aud":[` + strings.Repeat(`"x",`, 63) + `"x"]}`, None, true, []string{"x", "x", "x", "x", "x", "x", "x", "x"}},
		{"array of 65", `{"aud":[` + strings.Repeat(`"x",`, 64) + `"x"]}`, Malformed, false, nil},
		{"unicode escape", `{"aud":"\u0073toa-mcp-gateway"}`, None, true, []string{"stoa-mcp-gateway"}},
		{"unicode non-ascii", `{"aud":"caf\u00e9"}`, None, true, []string{"café"}},
		{"escaped quote", `{"aud":"a\"b"}`, None, true, []string{`a"b`}},
		{"nested aud is not aud", `{"x":{"aud":"stoa-mcp-gateway"}}`, None, false, nil},
		{"nested objects elsewhere", `{"aud":"a","ctx":{"a":[1,{"b":null}],"aud":5}}`, None, true, []string{"a"}},
		{"whitespace around", " \n\t{ \"aud\" : \"a\" } \n", None, true, []string{"a"}},
		{"top-level array", `[{"aud":"a"}]`, Malformed, false, nil},
		{"top-level string", `"aud"`, Malformed, false, nil},
		{"top-level number", `1`, Malformed, false, nil},
		{"invalid json", `{"aud":"a"`, Malformed, false, nil},
		{"trailing garbage", `{"aud":"a"}x`, Malformed, false, nil},
		{"two objects", `{"aud":"a"}{"aud":"b"}`, Malformed, false, nil},
		{"control char in string", "{\"aud\":\"a\x01\"}", Malformed, false, nil},
		{"single quotes", `{'aud':'a'}`, Malformed, false, nil},
		{"comment", `{"aud":"a" /* x */}`, Malformed, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, r := decode(t, tc.json)
			require.Equal(t, tc.want, r)
			assert.Equal(t, tc.present, c.AudPresent)
			assert.Equal(t, len(tc.aud), c.NAud)
			for i, a := range tc.aud {
				assert.Equal(t, a, c.Aud[i])
			}
		})
	}
}

func TestDuplicateAudClaim(t *testing.T) {
	for _, js := range []string{
		`{"aud":"evil","aud":"stoa-mcp-gateway"}`,
		`{"aud":"stoa-mcp-gateway","aud":"evil"}`,
		`{"aud":["a"],"sub":"x","aud":"b"}`,
		`{"aud":"a","\u0061ud":"b"}`, // the same name spelled with an escape
		`{"tenant_id":"a","tenant_id":"b","aud":"stoa-mcp-gateway"}`,
	} {
		c, r := decode(t, js)
		assert.Equal(t, Malformed, r, js)
		assert.Equal(t, Claims{}, c, js)
	}
}

func TestDecodeTenant(t *testing.T) {
	long := strings.Repeat("t", MaxTenantLen)
	tests := []struct {
		name, claim, json, want string
	}{
		{"string", "", `{"tenant_id":"acme"}`, "acme"},
		{"array first string", "", `{"tenant_id":["acme","other"]}`, "acme"},
		{"array skips non-string", "", `{"tenant_id":[1,null,"acme"]}`, "acme"},
		{"array no string", "", `{"tenant_id":[1,2]}`, ""},
		{"empty array", "", `{"tenant_id":[]}`, ""},
		{"number", "", `{"tenant_id":42}`, ""},
		{"null", "", `{"tenant_id":null}`, ""},
		{"object", "", `{"tenant_id":{"id":"acme"}}`, ""},
		{"missing", "", `{"sub":"acme"}`, ""},
		{"empty", "", `{"tenant_id":""}`, ""},
		{"max length", "", `{"tenant_id":"` + long + `"}`, long},
		{"too long", "", `{"tenant_id":"` + long + `x"}`, ""},
		{"control char via escape", "", `{"tenant_id":"a\u0000b"}`, ""},
		{"newline via escape", "", `{"tenant_id":"a\nb"}`, ""},
		{"unicode escape", "", `{"tenant_id":"\u0061cme"}`, "acme"},
		{"custom claim", "org", `{"org":"acme","tenant_id":"no"}`, "acme"},
		{"custom claim with dot is literal", "a.b", `{"a":{"b":"no"},"a.b":"acme"}`, "acme"},
		{"custom claim with wildcard is literal", "t*", `{"tenant":"no"}`, ""},
		{"nested not read", "", `{"x":{"tenant_id":"acme"}}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Claims
			require.Equal(t, None, NewDecoder(tc.claim).DecodeHeader(enc(tc.json), &c))
			assert.Equal(t, tc.want, c.Tenant)
		})
	}
}

func TestHugePayload(t *testing.T) {
	pad := strings.Repeat("x", MaxPayloadSize)
	_, r := decode(t, `{"aud":"a","p":"`+pad+`"}`)
	assert.Equal(t, Malformed, r)
	// Exactly at the cap is fine.
	js := `{"aud":"a","p":"` + pad[:MaxPayloadSize-len(`{"aud":"a","p":""}`)] + `"}`
	require.Len(t, js, MaxPayloadSize)
	_, r = decode(t, js)
	assert.Equal(t, None, r)
	// 1 MiB of base64 is refused before decoding.
	var c Claims
	d := NewDecoder("")
	assert.Equal(t, Malformed, d.DecodeHeader(strings.Repeat("A", 1<<20), &c))
	assert.LessOrEqual(t, cap(d.buf), MaxPayloadSize)
	// Deep nesting within the cap.
	deep := `{"aud":"a","x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`
	_, r = decode(t, deep)
	assert.Equal(t, None, r)
}

func TestCheck(t *testing.T) {
	mk := func(present bool, aud ...string) *Claims {
		c := &Claims{AudPresent: present}
		for _, a := range aud {
			c.AddAud(a)
		}
		c.AudPresent = present
		return c
	}
	strict := defaultChecker
	lax := NewChecker([]string{"stoa-mcp-gateway"}, true)
	tests := []struct {
		name string
		c    *Checker
		cl   *Claims
		want Reason
	}{
		{"match string", strict, mk(true, "stoa-mcp-gateway"), None},
		{"match second allowed", strict, mk(true, "account"), None},
		{"match in array", strict, mk(true, "x", "y", "account"), None},
		{"no match", strict, mk(true, "other"), InvalidAudience},
		{"missing", strict, mk(false), MissingAudience},
		{"missing allowed", lax, mk(false), None},
		{"empty array not covered by allowMissing", lax, mk(true), InvalidAudience},
		{"empty string not covered by allowMissing", lax, mk(true, ""), InvalidAudience},
		{"nil claims", strict, nil, MissingToken},
		{"corrupt NAud", strict, &Claims{AudPresent: true, NAud: 99}, InvalidAudience},
		{"negative NAud", strict, &Claims{AudPresent: true, NAud: -1}, InvalidAudience},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.c.Check(tc.cl))
		})
	}
	// Disabled.
	for _, c := range []*Checker{NewChecker(nil, false), NewChecker([]string{""}, false), nil} {
		assert.False(t, c.Enabled())
		assert.Equal(t, None, c.Check(mk(true, "anything")))
		assert.Equal(t, None, c.Check(nil))
	}
	assert.True(t, strict.Enabled())
	// An empty allowed entry never matches an empty aud.
	assert.Equal(t, InvalidAudience, NewChecker([]string{"", "a"}, false).Check(mk(true, "")))
}

func TestAudienceSubstringAttack(t *testing.T) {
	for _, aud := range []string{
		"stoa-mcp-gateway-evil", "evil-stoa-mcp-gateway", "stoa-mcp-gatewa", "stoa-mcp-gateway ", " stoa-mcp-gateway",
		"stoa-mcp-gateway\u0000", "stoa-mcp-gateway,account", "accounts", "xaccount", "stoa-mcp-gateway/", "stoa",
	} {
		for _, js := range []string{
			`{"aud":` + jsonQuote(aud) + `}`,
			`{"aud":[` + jsonQuote(aud) + `]}`,
		} {
			c, r := decode(t, js)
			require.Equal(t, None, r, js)
			assert.Equal(t, InvalidAudience, defaultChecker.Check(&c), js)
		}
	}
}

func TestAudienceCaseAttack(t *testing.T) {
	for _, aud := range []string{"STOA-MCP-GATEWAY", "Stoa-Mcp-Gateway", "Account", "ACCOUNT", "ſtoa-mcp-gateway", "stoa‐mcp‐gateway"} {
		c, r := decode(t, `{"aud":`+jsonQuote(aud)+`}`)
		require.Equal(t, None, r)
		assert.Equal(t, InvalidAudience, defaultChecker.Check(&c), aud)
	}
}

// Audience array longer than MaxAud: the allowed value in 9th position is
// not compared (documented limit), so the token is refused, never accepted.
func TestAudienceBeyondKeptValuesRefused(t *testing.T) {
	c, r := decode(t, `{"aud":["1","2","3","4","5","6","7","8","stoa-mcp-gateway"]}`)
	require.Equal(t, None, r)
	assert.Equal(t, InvalidAudience, defaultChecker.Check(&c))
}

func TestEndToEndHeader(t *testing.T) {
	d := NewDecoder("tenant_id")
	var c Claims
	for _, tc := range []struct {
		hdr  string
		want Reason
	}{
		{enc(`{"iss":"https://auth","aud":["account","stoa-mcp-gateway"],"tenant_id":"acme"}`), None},
		{encPad(`{"aud":"stoa-mcp-gateway"}`), None},
		{enc(`{"aud":"other"}`), InvalidAudience},
		{enc(`{"sub":"x"}`), MissingAudience},
		{enc(`{"aud":5}`), Malformed},
		{"", MissingToken},
	} {
		r := d.DecodeHeader(tc.hdr, &c)
		if r == None {
			r = defaultChecker.Check(&c)
		}
		assert.Equal(t, tc.want, r)
	}
}

// Reasons never carry request data: texts are fixed.
func TestNoEcho(t *testing.T) {
	secret := "s3cr3t-aud-value"
	c, _ := decode(t, `{"aud":"`+secret+`"}`)
	r := defaultChecker.Check(&c)
	assert.NotContains(t, r.String()+r.Description(), secret)
	assert.NotContains(t, ErrExemptPath.Error(), "/.well-known")
}

func pairs(kv ...string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(kv)/2))
	for i := 0; i < len(kv); i += 2 {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[i])))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[i+1])))
	}
	for _, s := range kv {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

func list(items ...string) []byte {
	kv := make([]string, 0, 2*len(items))
	for _, it := range items {
		kv = append(kv, it, "")
	}
	return pairs(kv...)
}

func TestSetAudFromProperty(t *testing.T) {
	num := binary.LittleEndian.AppendUint64(nil, 0x3ff0000000000000) // 1.0
	tests := []struct {
		name    string
		b       []byte
		want    Reason
		present bool
		aud     []string
	}{
		{"raw string", []byte("stoa-mcp-gateway"), None, true, []string{"stoa-mcp-gateway"}},
		{"empty string", []byte{}, None, true, []string{""}},
		{"list", list("x", "account"), None, true, []string{"x", "account"}},
		{"empty list", list(), None, true, nil},
		{"list of 10 keeps 8", list("1", "2", "3", "4", "5", "6", "7", "8", "9", "10"), None, true, []string{"1", "2", "3", "4", "5", "6", "7", "8"}},
		{"list of 65", list(strings.Split(strings.Repeat("x,", 64)+"x", ",")...), Malformed, true, nil},
		{"list with binary element", list("a", string(num)), Malformed, true, nil},
		{"map is not a list", pairs("a", "b"), Malformed, false, nil},
		{"number", num, Malformed, false, nil},
		{"bool", []byte{1}, Malformed, false, nil},
		{"truncated pairs", list("account")[:10], Malformed, false, nil},
		{"invalid utf8", []byte("a\xff"), Malformed, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Claims
			require.Equal(t, tc.want, c.SetAudFromProperty(tc.b))
			assert.Equal(t, tc.present, c.AudPresent)
			require.Equal(t, len(tc.aud), c.NAud)
			for i, a := range tc.aud {
				assert.Equal(t, a, c.Aud[i])
			}
		})
	}
	var c Claims
	require.Equal(t, None, c.SetAudFromProperty(list("stoa-mcp-gateway-evil", "STOA-MCP-GATEWAY")))
	assert.Equal(t, InvalidAudience, defaultChecker.Check(&c))
}

func TestSetTenantFromProperty(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"string", []byte("acme"), "acme"},
		{"list", list("acme", "b"), "acme"},
		{"list skips binary", list("\x00\x01", "acme"), "acme"},
		{"empty list", list(), ""},
		{"too long", []byte(strings.Repeat("a", MaxTenantLen+1)), ""},
		{"control", []byte("a\nb"), ""},
		{"number", binary.LittleEndian.AppendUint64(nil, 42), ""},
		{"empty", nil, ""},
	} {
		var c Claims
		c.Tenant = "stale"
		c.SetTenantFromProperty(tc.b)
		assert.Equal(t, tc.want, c.Tenant, tc.name)
	}
}

func TestDecodeMetadata(t *testing.T) {
	d := NewDecoder("")
	var c Claims
	exp := string(binary.LittleEndian.AppendUint64(nil, 0x41d9000000000000))
	b := pairs("iss", "https://auth", "aud", string(list("x", "stoa-mcp-gateway")), "exp", exp, "tenant_id", "acme")
	require.Equal(t, None, d.DecodeMetadata(b, &c))
	assert.Equal(t, 2, c.NAud)
	assert.Equal(t, "acme", c.Tenant)
	assert.Equal(t, None, defaultChecker.Check(&c))

	require.Equal(t, None, d.DecodeMetadata(pairs("aud", "stoa-mcp-gateway"), &c))
	assert.Equal(t, None, defaultChecker.Check(&c))
	require.Equal(t, None, d.DecodeMetadata(pairs("sub", "x"), &c))
	assert.Equal(t, MissingAudience, defaultChecker.Check(&c))

	assert.Equal(t, MissingToken, d.DecodeMetadata(nil, &c))
	assert.Equal(t, Malformed, d.DecodeMetadata([]byte("stoa-mcp-gateway"), &c))
	assert.Equal(t, Malformed, d.DecodeMetadata(pairs("aud", exp), &c))
	assert.Equal(t, Malformed, d.DecodeMetadata(pairs("aud", "a", "aud", "stoa-mcp-gateway"), &c))
	assert.Equal(t, Claims{}, c)
}

func TestAllocs(t *testing.T) {
	d := NewDecoder("tenant_id")
	var c Claims
	typical := enc(`{"iss":"https://auth.gostoa.dev/realms/stoa","sub":"1b2c","aud":["account","stoa-mcp-gateway"],"exp":1767225600,"iat":1767222000,"azp":"mcp","scope":"openid profile","realm_access":{"roles":["a","b"]},"tenant_id":"acme"}`)
	malformed := enc(`{"aud":5}`)
	d.DecodeHeader(typical, &c) // grow the buffer once
	n := testing.AllocsPerRun(500, func() {
		if d.DecodeHeader(typical, &c) != None || defaultChecker.Check(&c) != None {
			panic("unexpected")
		}
	})
	assert.Zero(t, n, "typical token")
	assert.Zero(t, testing.AllocsPerRun(200, func() { d.DecodeHeader(malformed, &c) }), "malformed")
	assert.Zero(t, testing.AllocsPerRun(200, func() { d.DecodeHeader("!!!", &c) }), "bad base64")
	escaped := enc(`{"aud":"\u0073toa-mcp-gateway","tenant_id":"acme"}`)
	t.Logf("escaped aud allocs/op: %.0f", testing.AllocsPerRun(200, func() { d.DecodeHeader(escaped, &c) }))

	meta := pairs("aud", string(list("x", "stoa-mcp-gateway")), "tenant_id", "acme")
	assert.Zero(t, testing.AllocsPerRun(200, func() { d.DecodeMetadata(meta, &c) }), "metadata")

	e := NewExempt([]string{"/.well-known/", "/health"})
	assert.Zero(t, testing.AllocsPerRun(200, func() { e.Match("/.well-known/jwks.json?x=1"); e.Match("/mcp/sse") }), "exempt")
}

func BenchmarkDecodeHeader(b *testing.B) {
	d := NewDecoder("tenant_id")
	var c Claims
	typical := enc(`{"iss":"https://auth.gostoa.dev/realms/stoa","sub":"1b2c","aud":["account","stoa-mcp-gateway"],"exp":1767225600,"iat":1767222000,"azp":"mcp","scope":"openid profile","tenant_id":"acme"}`)
	b.ReportAllocs()
	for b.Loop() {
		d.DecodeHeader(typical, &c)
		defaultChecker.Check(&c)
	}
}
