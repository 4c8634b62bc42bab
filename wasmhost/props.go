package wasmhost

import (
	"encoding/binary"
	"math"
	"sort"
	"strings"
	"time"
)

// Properties maps property paths to values. A key is the path's segments
// joined by NUL (use Path), e.g. Path("source", "address") or
// Path("metadata", "filter_metadata", "envoy.filters.http.jwt_authn").
// A lookup for a longer path descends into map values:
// Path("metadata","filter_metadata","envoy.filters.http.jwt_authn","issuer","sub")
// finds the key Path(...,"issuer") or a shorter prefix and walks into maps.
//
// Values are serialised as Envoy serialises CEL values for proxy_get_property:
// string and []byte raw; int, int32, int64, uint32, uint64, time.Duration
// (ns) and time.Time (Unix ns) as 8 bytes little-endian; float64 as 8 bytes;
// bool as 1 byte; map[string]any / map[string]string as Pairs (keys sorted:
// Go maps have no order — use []Header for an ordered map); []string / []any
// as Pairs with keys only (a list). Other types give SerializationFailure.
type Properties map[string]any

// Path joins property path segments with NUL, as the guest sends them.
func Path(segments ...string) string { return strings.Join(segments, "\x00") }

// lookupProperty finds path in the layers, innermost first.
func lookupProperty(path string, layers ...Properties) (any, bool) {
	for _, props := range layers {
		if props == nil {
			continue
		}
		if v, ok := props[path]; ok {
			return v, true
		}
		// Try shorter prefixes and descend.
		end := len(path)
		for {
			i := strings.LastIndexByte(path[:end], 0)
			if i < 0 {
				break
			}
			end = i
			if v, ok := props[path[:end]]; ok {
				return descend(v, path[end+1:])
			}
		}
	}
	return nil, false
}

func descend(v any, rest string) (any, bool) {
	for rest != "" {
		seg := rest
		if i := strings.IndexByte(rest, 0); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		switch m := v.(type) {
		case map[string]any:
			x, ok := m[seg]
			if !ok {
				return nil, false
			}
			v = x
		case map[string]string:
			x, ok := m[seg]
			if !ok {
				return nil, false
			}
			v = x
		case []Header:
			found := false
			for _, h := range m {
				if h.Name == seg {
					v, found = h.Value, true
					break
				}
			}
			if !found {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return v, true
}

// serializeProperty renders v as Envoy does; ok false = SerializationFailure.
func serializeProperty(v any) ([]byte, bool) {
	le := func(u uint64) []byte {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], u)
		return b[:]
	}
	switch x := v.(type) {
	case string:
		return []byte(x), true
	case []byte:
		return x, true
	case int:
		return le(uint64(int64(x))), true
	case int32:
		return le(uint64(int64(x))), true
	case int64:
		return le(uint64(x)), true
	case uint32:
		return le(uint64(x)), true
	case uint64:
		return le(x), true
	case float64:
		return le(math.Float64bits(x)), true
	case time.Duration:
		return le(uint64(int64(x))), true
	case time.Time:
		return le(uint64(x.UnixNano())), true
	case bool:
		if x {
			return []byte{1}, true
		}
		return []byte{0}, true
	case []Header:
		return EncodePairs(x), true
	case map[string]string:
		keys := sortedKeys(x)
		hs := make([]Header, len(keys))
		for i, k := range keys {
			hs[i] = Header{k, x[k]}
		}
		return EncodePairs(hs), true
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		hs := make([]Header, len(keys))
		for i, k := range keys {
			b, ok := serializeProperty(x[k])
			if !ok {
				return nil, false
			}
			hs[i] = Header{k, string(b)}
		}
		return EncodePairs(hs), true
	case []string:
		hs := make([]Header, len(x))
		for i, s := range x {
			hs[i] = Header{Name: s}
		}
		return EncodePairs(hs), true
	case []any:
		hs := make([]Header, len(x))
		for i, e := range x {
			b, ok := serializeProperty(e)
			if !ok {
				return nil, false
			}
			hs[i] = Header{Name: string(b)}
		}
		return EncodePairs(hs), true
	}
	return nil, false
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// EncodePairs renders pairs in proxy-wasm's wire format: u32 count, then
// (u32 key length, u32 value length) per pair, then each key and value
// followed by a NUL. All words little-endian.
func EncodePairs(pairs []Header) []byte {
	return appendPairs(nil, pairs)
}

func pairsSize(pairs []Header) int {
	n := 4 + 8*len(pairs)
	for _, p := range pairs {
		n += len(p.Name) + len(p.Value) + 2
	}
	return n
}

func appendPairs(dst []byte, pairs []Header) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(pairs)))
	for _, p := range pairs {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p.Name)))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p.Value)))
	}
	for _, p := range pairs {
		dst = append(dst, p.Name...)
		dst = append(dst, 0)
		dst = append(dst, p.Value...)
		dst = append(dst, 0)
	}
	return dst
}

// Limits of cpp-host's hardened Pairs parser (include/proxy-wasm/limits.h).
const (
	pairsMaxBytes = 1 << 20
	pairsMaxCount = 1024
)

// DecodePairs parses the wire format. Like cpp-host's PairsUtil::toPairs it
// returns nil (no pairs) for anything malformed, oversized (> 1 MiB) or with
// more than 1024 entries.
func DecodePairs(b []byte) []Header {
	if len(b) < 4 || len(b) > pairsMaxBytes {
		return nil
	}
	n := binary.LittleEndian.Uint32(b)
	if n > pairsMaxCount {
		return nil
	}
	hdr := 4 + 8*int(n)
	if hdr > len(b) {
		return nil
	}
	out := make([]Header, n)
	pos := hdr
	for i := 0; i < int(n); i++ {
		kl := int(binary.LittleEndian.Uint32(b[4+8*i:]))
		vl := int(binary.LittleEndian.Uint32(b[8+8*i:]))
		if kl > len(b) || vl > len(b) || pos+kl+1 > len(b) || b[pos+kl] != 0 {
			return nil
		}
		k := string(b[pos : pos+kl])
		pos += kl + 1
		if pos+vl+1 > len(b) || b[pos+vl] != 0 {
			return nil
		}
		out[i] = Header{k, string(b[pos : pos+vl])}
		pos += vl + 1
	}
	return out
}
