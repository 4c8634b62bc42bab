package config

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/stoa-platform/stoa-guard/filter/cors"
)

// Error is a configuration error. Key is the JSON path ("sse.max_per_ip"),
// the environment variable name, or "plugin configuration" for the document
// as a whole; Error() is the full single-line message.
type Error struct {
	Key string
	msg string
}

func (e *Error) Error() string { return e.msg }

// errKV is `key: "value": what is expected`.
func errKV(key, value, expected string) *Error {
	return &Error{Key: key, msg: key + ": " + quote(value) + ": " + expected}
}

// errK is `key: message`.
func errK(key, msg string) *Error { return &Error{Key: key, msg: key + ": " + msg} }

func quote(s string) string { return cors.Quote(s) }

// input is one value to decode: from the plugin JSON (json set) or from an
// environment variable (env).
type input struct {
	key    string // JSON path or variable name
	isJSON bool
	json   gjson.Result
	env    string
}

// field is one configuration key.
type field struct {
	name  string // key inside its section
	env   string // environment variable, "" for JSON only
	apply func(c *Config, in input) error
}

type section struct {
	name   string
	fields []field
}

// schema is the configuration schema, in SPEC.md order (the order
// environment variables are read in).
var schema = []section{
	{"audience", []field{
		{"allowed", EnvAllowedAudiences, func(c *Config, in input) (err error) {
			c.Audience.Allowed, err = decodeList(in, checkAudience)
			return err
		}},
		{"allow_missing", "", func(c *Config, in input) (err error) {
			c.Audience.AllowMissing, err = decodeBool(in)
			return err
		}},
		{"payload_header", "", func(c *Config, in input) error {
			s, err := decodeString(in)
			if err != nil {
				return err
			}
			if s != "" && (!isToken(s) || len(s) > 256) {
				return errKV(in.key, s, "expected an HTTP header name, like x-jwt-payload (or \"\" with audience.payload_metadata_key set)")
			}
			c.Audience.PayloadHeader = strings.ToLower(s)
			return nil
		}},
		{"payload_metadata_key", "", func(c *Config, in input) error {
			s, err := decodeString(in)
			if err != nil {
				return err
			}
			if s != "" && !printable(s, 256) {
				return errKV(in.key, s, "expected the jwt_authn payload_in_metadata name, printable, at most 256 bytes, or \"\"")
			}
			c.Audience.PayloadMetadataKey = s
			return nil
		}},
		{"tenant_claim", "", func(c *Config, in input) error {
			s, err := decodeString(in)
			if err != nil {
				return err
			}
			if s == "" || !printable(s, 256) {
				return errKV(in.key, s, "expected a claim name, like tenant_id")
			}
			c.Audience.TenantClaim = s
			return nil
		}},
		{"exempt_paths", "", func(c *Config, in input) (err error) {
			c.Audience.ExemptPaths, err = decodeList(in, checkPath)
			return err
		}},
	}},
	{"cors", []field{
		{"origins", EnvCORSOrigins, func(c *Config, in input) error {
			l, err := decodeList(in, nil)
			if err != nil {
				return err
			}
			if err := cors.CheckOrigins(l); err != nil {
				return errK(in.key, err.Error())
			}
			c.CORS.Config.Origins = l
			return nil
		}},
		{"allow_methods", EnvCORSAllowMethods, func(c *Config, in input) error {
			l, err := decodeList(in, cors.CheckMethod)
			if err != nil {
				return err
			}
			if len(l) == 0 {
				return errKV(in.key, in.raw(), "empty; expected at least one method, like GET,POST")
			}
			c.CORS.Config.AllowMethods = l
			return nil
		}},
		{"allow_headers", EnvCORSAllowHeaders, func(c *Config, in input) (err error) {
			c.CORS.Config.AllowHeaders, err = decodeList(in, cors.CheckHeaderName)
			return err
		}},
		{"expose_headers", EnvCORSExposeHeaders, func(c *Config, in input) (err error) {
			c.CORS.Config.ExposeHeaders, err = decodeList(in, cors.CheckHeaderName)
			return err
		}},
		{"max_age", EnvCORSMaxAge, func(c *Config, in input) (err error) {
			c.CORS.Config.MaxAge, err = decodeInt(in, 0, cors.MaxMaxAge, "seconds")
			return err
		}},
	}},
	{"sse", []field{
		{"enabled", EnvSSEEnabled, func(c *Config, in input) (err error) {
			c.SSE.Enabled, err = decodeBool(in)
			return err
		}},
		{"max_per_ip", "", intField(func(c *Config) *int { return &c.SSE.MaxPerIP }, 1, maxLimit, "connections")},
		{"max_per_tenant", "", intField(func(c *Config) *int { return &c.SSE.MaxPerTenant }, 1, maxLimit, "connections")},
		{"max_total", "", intField(func(c *Config) *int { return &c.SSE.MaxTotal }, 1, maxLimit, "connections")},
		{"idle_timeout", "", durField(func(c *Config) *time.Duration { return &c.SSE.IdleTimeout })},
		{"max_duration", "", durField(func(c *Config) *time.Duration { return &c.SSE.MaxDuration })},
		{"rate_limit_per_min", "", intField(func(c *Config) *int { return &c.SSE.RateLimitPerMin }, 1, maxRate, "new streams per minute")},
		{"rate_limit_message_posts", "", func(c *Config, in input) (err error) {
			c.SSE.RateLimitMessagePosts, err = decodeBool(in)
			return err
		}},
		{"retry_after", "", intField(func(c *Config) *int { return &c.SSE.RetryAfter }, 1, maxRetryAfter, "seconds")},
		{"paths", "", func(c *Config, in input) (err error) {
			c.SSE.Paths, err = decodeList(in, checkPath)
			return err
		}},
		{"scope", "", func(c *Config, in input) error {
			s, err := decodeString(in)
			if err != nil {
				return err
			}
			if !isScope(s) {
				return errKV(in.key, s, "expected 1 to 64 characters from A-Z a-z 0-9 _ . -, like default")
			}
			c.SSE.Scope = s
			return nil
		}},
		{"ip_buckets", "", intField(func(c *Config) *int { return &c.SSE.IPBuckets }, minBuckets, maxBuckets, "buckets")},
		{"tenant_buckets", "", intField(func(c *Config) *int { return &c.SSE.TenantBuckets }, minBuckets, maxBuckets, "buckets")},
		{"tick", "", durField(func(c *Config) *time.Duration { return &c.SSE.Tick })},
	}},
	{"client_ip", []field{
		{"trusted_proxies", EnvTrustedProxies, func(c *Config, in input) error {
			l, err := decodeList(in, nil)
			if err != nil {
				return err
			}
			c.ClientIP.TrustedProxies, err = parsePrefixes(in.key, l)
			return err
		}},
		{"ipv6_prefix", "", intField(func(c *Config) *int { return &c.ClientIP.IPv6Prefix }, minIPv6Prefix, maxIPv6Prefix, "bits")},
	}},
	{"metrics", []field{
		{"max_tenant_labels", "", intField(func(c *Config) *int { return &c.Metrics.MaxTenantLabels }, 0, maxTenantLabels, "labels")},
	}},
	{"mode", []field{
		{"audience", "", modeField(func(c *Config) *bool { return &c.Mode.AudienceDryRun })},
		{"cors", "", modeField(func(c *Config) *bool { return &c.Mode.CORSDryRun })},
		{"sse", "", modeField(func(c *Config) *bool { return &c.Mode.SSEDryRun })},
	}},
}

func intField(p func(*Config) *int, min, max int, unit string) func(*Config, input) error {
	return func(c *Config, in input) (err error) {
		*p(c), err = decodeInt(in, min, max, unit)
		return err
	}
}

func durField(p func(*Config) *time.Duration) func(*Config, input) error {
	return func(c *Config, in input) (err error) {
		*p(c), err = decodeDuration(in)
		return err
	}
}

func modeField(p func(*Config) *bool) func(*Config, input) error {
	return func(c *Config, in input) error {
		s, err := decodeString(in)
		if err != nil {
			return err
		}
		switch s {
		case "enforce":
			*p(c) = false
		case "dry_run":
			*p(c) = true
		default:
			return errKV(in.key, s, `expected "enforce" or "dry_run"`)
		}
		return nil
	}
}

// recoverPanics is switched off by the fuzz test, so that a panic shows.
var recoverPanics = true

// Parse merges the plugin JSON (may be empty or all whitespace: no plugin
// configuration) with the environment (env looks a variable up; nil means an
// empty environment) and the defaults, per key, plugin JSON first, and
// validates the result. It returns one error, the first problem found.
func Parse(pluginJSON []byte, env func(string) (string, bool)) (cfg *Config, err error) {
	defer func() { // belt and braces: a panic here would kill the VM
		if !recoverPanics {
			return
		}
		if r := recover(); r != nil {
			cfg, err = nil, errK("plugin configuration", "internal error while parsing")
		}
	}()
	c := defaults()
	set := map[string]bool{}
	if err := parseJSON(c, pluginJSON, set); err != nil {
		return nil, err
	}
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	for _, s := range schema {
		for _, f := range s.fields {
			if f.env == "" {
				continue
			}
			v, ok := env(f.env)
			if !ok {
				continue
			}
			path := s.name + "." + f.name
			if set[path] {
				c.warnings = append(c.warnings, f.env+" is ignored: the plugin configuration sets "+path)
				continue
			}
			if err := f.apply(c, input{key: f.env, env: v}); err != nil {
				return nil, err
			}
		}
	}
	if err := finish(c); err != nil {
		return nil, err
	}
	return c, nil
}

func parseJSON(c *Config, raw []byte, set map[string]bool) error {
	const doc = "plugin configuration"
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "" {
		return nil
	}
	if len(raw) > MaxConfigBytes {
		return errK(doc, strconv.Itoa(len(raw))+" bytes; expected at most "+strconv.Itoa(MaxConfigBytes))
	}
	if !utf8.ValidString(trimmed) {
		return errK(doc, "invalid UTF-8 at byte "+strconv.Itoa(invalidUTF8At(string(raw)))+"; expected a UTF-8 JSON object")
	}
	if d := depth(trimmed); d > maxDepth {
		return errK(doc, "nested "+strconv.Itoa(d)+" levels deep; expected a JSON object of sections (at most "+strconv.Itoa(maxDepth)+" levels)")
	}
	if !gjson.Valid(trimmed) {
		return errK(doc, "not valid JSON; expected a JSON object like {\"sse\": {\"max_per_ip\": 10}}")
	}
	root := gjson.Parse(trimmed)
	if !root.IsObject() {
		return errK(doc, "got "+describe(root)+", expected a JSON object like {\"sse\": {\"max_per_ip\": 10}}")
	}
	var err error
	seen := map[string]bool{}
	root.ForEach(func(k, v gjson.Result) bool {
		name := k.String()
		if seen[name] {
			err = &Error{Key: name, msg: "duplicate key " + quote(name) + ": each key may appear once"}
			return false
		}
		seen[name] = true
		sec := findSection(name)
		if sec == nil {
			err = &Error{Key: name, msg: "unknown key " + quote(name) + "; expected one of " + sectionNames()}
			return false
		}
		if !v.IsObject() {
			err = errK(name, "got "+describe(v)+", expected an object")
			return false
		}
		err = parseSection(c, sec, v, set)
		return err == nil
	})
	return err
}

func parseSection(c *Config, sec *section, obj gjson.Result, set map[string]bool) error {
	var err error
	seen := map[string]bool{}
	obj.ForEach(func(k, v gjson.Result) bool {
		name := k.String()
		path := sec.name + "." + name
		if seen[name] {
			err = &Error{Key: path, msg: "duplicate key " + quote(path) + ": each key may appear once"}
			return false
		}
		seen[name] = true
		f := findField(sec, name)
		if f == nil {
			err = &Error{Key: path, msg: "unknown key " + quote(path) + "; expected one of " + fieldNames(sec)}
			return false
		}
		if err = f.apply(c, input{key: path, isJSON: true, json: v}); err != nil {
			return false
		}
		set[path] = true
		return true
	})
	return err
}

func findSection(name string) *section {
	for i := range schema {
		if schema[i].name == name {
			return &schema[i]
		}
	}
	return nil
}

func findField(s *section, name string) *field {
	for i := range s.fields {
		if s.fields[i].name == name {
			return &s.fields[i]
		}
	}
	return nil
}

func sectionNames() string {
	n := make([]string, len(schema))
	for i, s := range schema {
		n[i] = s.name
	}
	return strings.Join(n, ", ")
}

func fieldNames(s *section) string {
	n := make([]string, len(s.fields))
	for i, f := range s.fields {
		n[i] = f.name
	}
	return strings.Join(n, ", ")
}

// finish runs the checks involving several keys, compiles and warns.
func finish(c *Config) error {
	a := &c.Audience
	if a.PayloadHeader == "" && a.PayloadMetadataKey == "" {
		return errK("audience.payload_header", `"" with audience.payload_metadata_key "": expected at least one payload source, like x-jwt-payload`)
	}
	s := &c.SSE
	if s.MaxDuration < minMaxDuration || s.MaxDuration > maxMaxDuration {
		return errKV("sse.max_duration", s.MaxDuration.String(), "expected between 1s and 24h")
	}
	if s.IdleTimeout > s.MaxDuration {
		return errKV("sse.idle_timeout", s.IdleTimeout.String(), "must not exceed sse.max_duration ("+s.MaxDuration.String()+")")
	}
	if s.Tick < minTick || s.Tick > s.IdleTimeout || s.Tick > maxTick {
		return errKV("sse.tick", s.Tick.String(), "expected a duration between 100ms and sse.idle_timeout ("+s.IdleTimeout.String()+"), at most 1h")
	}
	p, err := cors.NewPolicy(c.CORS.Config)
	if err != nil { // unreachable: every field was checked when read
		return errK("cors", err.Error())
	}
	c.CORS.Policy = p

	w := c.warnings
	c.warnings = nil
	if !a.Enabled() {
		c.warn("audience check DISABLED: the audience allow list is empty (ALLOWED_AUDIENCES=\"\" or audience.allowed); tokens for any audience are accepted")
	} else if a.AllowMissing {
		c.warn("audience.allow_missing is true: tokens without an aud claim are accepted")
	}
	if p.Wildcard() {
		c.warn("CORS wildcard mode: cors.origins is \"*\"; any origin is allowed (never with credentials); do not use in production")
	} else if len(p.Patterns()) == 0 {
		c.warn("cors.origins is empty: every cross-origin request is refused")
	}
	if !s.Enabled {
		c.warn("SSE limiter DISABLED (SSE_LIMITER_ENABLED=false or sse.enabled false): SSE connections are not limited")
	}
	for _, m := range []struct {
		on   bool
		name string
	}{{c.Mode.AudienceDryRun, "audience"}, {c.Mode.CORSDryRun, "cors"}, {c.Mode.SSEDryRun, "sse"}} {
		if m.on {
			c.warn("mode." + m.name + " is dry_run: " + m.name + " refusals are counted but not enforced")
		}
	}
	for _, pfx := range c.ClientIP.TrustedProxies {
		if pfx.Bits() == 0 {
			c.warn("client_ip.trusted_proxies contains a /0 prefix: every peer may set X-Forwarded-For (client IPs can be spoofed)")
			break
		}
	}
	c.warnings = append(c.warnings, w...)
	return nil
}

func (c *Config) warn(s string) { c.warnings = append(c.warnings, s) }

// raw is the value as written, for error messages.
func (in input) raw() string {
	if in.isJSON {
		if in.json.Type == gjson.String {
			return in.json.Str
		}
		return in.json.Raw
	}
	return in.env
}

// describe names a JSON value's type, with the value for scalars.
func describe(v gjson.Result) string {
	switch v.Type {
	case gjson.Null:
		return "null"
	case gjson.False, gjson.True:
		return "a boolean " + v.Raw
	case gjson.Number:
		return "a number " + quoteRaw(v.Raw)
	case gjson.String:
		return "a string " + quote(v.Str)
	}
	if v.IsArray() {
		return "an array"
	}
	return "an object"
}

// quoteRaw cuts a raw JSON token for a message, without adding quotes.
func quoteRaw(s string) string {
	q := quote(s)
	if strings.HasSuffix(q, `"...`) {
		return q[1:len(q)-4] + "..."
	}
	return q[1 : len(q)-1]
}

func typeErr(in input, index int, got gjson.Result, expected string) error {
	key := in.key
	if index >= 0 {
		key += "[" + strconv.Itoa(index) + "]"
	}
	return errK(key, "got "+describe(got)+", expected "+expected)
}

func decodeBool(in input) (bool, error) {
	if in.isJSON {
		switch in.json.Type {
		case gjson.True:
			return true, nil
		case gjson.False:
			return false, nil
		}
		return false, typeErr(in, -1, in.json, "true or false")
	}
	switch strings.ToLower(strings.TrimSpace(in.env)) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, errKV(in.key, in.env, "expected true, false, 1 or 0")
}

func decodeInt(in input, min, max int, unit string) (int, error) {
	expected := "expected an integer between " + strconv.Itoa(min) + " and " + strconv.Itoa(max) + " (" + unit + ")"
	s := strings.TrimSpace(in.env)
	if in.isJSON {
		if in.json.Type != gjson.Number {
			return 0, typeErr(in, -1, in.json, "an integer between "+strconv.Itoa(min)+" and "+strconv.Itoa(max)+" ("+unit+")")
		}
		s = in.json.Raw
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, errKV(in.key, s, expected)
	}
	return n, nil
}

func decodeString(in input) (string, error) {
	if !in.isJSON {
		return in.env, nil
	}
	if in.json.Type != gjson.String {
		return "", typeErr(in, -1, in.json, "a string")
	}
	return in.json.Str, nil
}

func decodeDuration(in input) (time.Duration, error) {
	s, err := decodeString(in)
	if err != nil {
		return 0, typeErr(in, -1, in.json, `a duration string like "30s" or "1h"`)
	}
	d, perr := time.ParseDuration(s)
	if perr != nil || d <= 0 {
		return 0, errKV(in.key, s, `expected a positive duration like "30s" or "1h"`)
	}
	return d, nil
}

// decodeList reads a JSON array of strings or one comma-separated string
// (JSON or environment). Items are trimmed and empty items dropped; check, if
// not nil, validates each item (its error is prefixed with the key).
func decodeList(in input, check func(string) error) ([]string, error) {
	var items []string
	if in.isJSON {
		switch {
		case in.json.Type == gjson.String:
			items = strings.Split(in.json.Str, ",")
		case in.json.IsArray():
			var err error
			i := 0
			in.json.ForEach(func(_, v gjson.Result) bool {
				if v.Type != gjson.String {
					err = typeErr(in, i, v, "a string")
					return false
				}
				items = append(items, v.Str)
				i++
				return true
			})
			if err != nil {
				return nil, err
			}
		default:
			return nil, typeErr(in, -1, in.json, "an array of strings or a comma-separated string")
		}
	} else {
		items = strings.Split(in.env, ",")
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		if check != nil {
			if err := check(it); err != nil {
				return nil, errK(in.key, err.Error())
			}
		}
		out = append(out, it)
	}
	if len(out) > maxListItems {
		return nil, errK(in.key, strconv.Itoa(len(out))+" items; expected at most "+strconv.Itoa(maxListItems))
	}
	return out, nil
}

func checkAudience(s string) error {
	if !printable(s, maxStringLen) {
		return errors.New(quote(s) + ": expected an audience without control characters, at most 1024 bytes")
	}
	return nil
}

func checkPath(s string) error {
	if s[0] != '/' || !printable(s, maxStringLen) || strings.ContainsAny(s, " ?#") {
		return errors.New(quote(s) + ": expected a path starting with \"/\", without spaces, query or fragment, like /health or /.well-known/")
	}
	return nil
}

// printable: non-empty-or-not, at most max bytes, no control characters
// (valid UTF-8 is guaranteed by the caller's input checks).
func printable(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func isScope(s string) bool {
	if s == "" || len(s) > maxScopeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func invalidUTF8At(s string) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// depth returns the maximum nesting of arrays and objects, outside strings.
func depth(s string) int {
	d, max, inStr := 0, 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inStr {
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			d++
			if d > max {
				max = d
			}
		case '}', ']':
			d--
		}
	}
	return max
}
