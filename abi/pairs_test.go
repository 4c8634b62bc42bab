package abi

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// rawPairs builds a Pairs encoding by hand, independently of AppendPairs.
func rawPairs(h ...Header) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(h)))
	for _, p := range h {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Name)))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Value)))
	}
	for _, p := range h {
		b = append(append(append(append(b, p.Name...), 0), p.Value...), 0)
	}
	return b
}

func TestDecodePairs(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []Header
	}{
		{"empty input is an empty map", nil, nil},
		{"zero count", []byte{0, 0, 0, 0}, nil},
		{"one pair", rawPairs(Header{":path", "/mcp/sse"}), []Header{{":path", "/mcp/sse"}}},
		{"empty name and value", rawPairs(Header{"", ""}), []Header{{"", ""}}},
		{"duplicates kept in order", rawPairs(
			Header{"x-forwarded-for", "1.1.1.1"}, Header{"x-forwarded-for", "2.2.2.2"}, Header{"a", ""}),
			[]Header{{"x-forwarded-for", "1.1.1.1"}, {"x-forwarded-for", "2.2.2.2"}, {"a", ""}}},
		{"binary value", rawPairs(Header{"k", "\xff\x01"}), []Header{{"k", "\xff\x01"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePairs(tt.in, nil)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDecodePairsAppendsToDst(t *testing.T) {
	dst := []Header{{"keep", "me"}}
	got, err := DecodePairs(rawPairs(Header{"a", "b"}), dst)
	require.NoError(t, err)
	require.Equal(t, []Header{{"keep", "me"}, {"a", "b"}}, got)
}

func TestDecodePairsMalformed(t *testing.T) {
	good := rawPairs(Header{"name", "value"}, Header{"n2", "v2"})
	set32 := func(b []byte, off int, v uint32) []byte {
		c := append([]byte(nil), b...)
		binary.LittleEndian.PutUint32(c[off:], v)
		return c
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"short count", []byte{1, 0}, ErrPairsTruncated},
		{"count without size table", []byte{1, 0, 0, 0}, ErrPairsCount},
		{"absurd count", set32(good, 0, math.MaxUint32), ErrPairsCount},
		{"count larger than the input allows", set32(good, 0, 4), ErrPairsCount},
		{"count one too many reads data as sizes", set32(good, 0, 3), ErrPairsNUL},
		{"count one too few leaves trailing bytes", set32(good, 0, 1), ErrPairsNUL},
		{"key length past the end", set32(good, 4, math.MaxUint32), ErrPairsTruncated},
		{"value length past the end", set32(good, 8, math.MaxUint32), ErrPairsTruncated},
		{"key length lands off the NUL", set32(good, 4, 3), ErrPairsNUL},
		{"value length lands off the NUL", set32(good, 8, 4), ErrPairsNUL},
		{"truncated last value", good[:len(good)-2], ErrPairsTruncated},
		{"missing last NUL", good[:len(good)-1], ErrPairsTruncated},
		{"trailing bytes", append(append([]byte(nil), good...), 'x'), ErrPairsTrailing},
		{"NUL replaced", func() []byte { c := append([]byte(nil), good...); c[len(c)-1] = 'x'; return c }(), ErrPairsNUL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []Header{{"keep", "me"}}
			got, err := DecodePairs(tt.in, dst)
			require.ErrorIs(t, err, tt.want)
			require.Equal(t, []Header{{"keep", "me"}}, got, "dst must come back unchanged")
		})
	}
}

// TestDecodePairsNeverPanics feeds every truncation and every single-byte
// corruption of a valid map, and every u32 edge value in each size word.
func TestDecodePairsNeverPanics(t *testing.T) {
	good := rawPairs(Header{"a", "bc"}, Header{"", "x"}, Header{"long-name", ""})
	dst := make([]Header, 0, 8)
	for i := 0; i <= len(good); i++ {
		_, _ = DecodePairs(good[:i], dst)
	}
	for i := range good {
		for _, v := range []byte{0, 1, 0x7f, 0x80, 0xff} {
			c := append([]byte(nil), good...)
			c[i] = v
			_, _ = DecodePairs(c, dst)
		}
	}
	for off := 0; off+4 <= 4+3*8; off += 4 {
		for _, v := range []uint32{0, 1, math.MaxInt32, math.MaxInt32 + 1, math.MaxUint32 - 1, math.MaxUint32} {
			c := append([]byte(nil), good...)
			binary.LittleEndian.PutUint32(c[off:], v)
			_, _ = DecodePairs(c, dst)
		}
	}
}

// FuzzDecodePairs: the guest's decoder of the host's header maps. Whatever
// the bytes (huge counts, lengths past the end, missing NULs, trailing
// bytes): no panic; an error is one of the Pairs errors and leaves dst as it
// was; success appends to dst, and what decodes re-encodes to the same
// bytes (so the count and every length were honoured exactly, duplicate
// names kept in order); decoding into a large enough dst never allocates.
// Seeds: testdata/fuzz/FuzzDecodePairs.
func FuzzDecodePairs(f *testing.F) {
	f.Add(rawPairs(Header{"a", "b"}))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	keep := Header{"keep", "me"}
	f.Fuzz(func(t *testing.T, b []byte) {
		dst := make([]Header, 1, 1+len(b)/pairMinSize+1)
		dst[0] = keep
		got, err := DecodePairs(b, dst)
		if a := testing.AllocsPerRun(1, func() { _, _ = DecodePairs(b, dst[:1]) }); a != 0 {
			t.Fatalf("DecodePairs allocates %v with room in dst", a)
		}
		if err != nil {
			if !errors.Is(err, ErrPairsTruncated) && !errors.Is(err, ErrPairsCount) &&
				!errors.Is(err, ErrPairsNUL) && !errors.Is(err, ErrPairsTrailing) {
				t.Fatalf("unexpected error %v", err)
			}
			require.Equal(t, []Header{keep}, got, "dst must come back unchanged")
			return
		}
		require.Equal(t, keep, got[0])
		got = got[1:]
		// What decodes must re-encode to the same bytes.
		enc, err := AppendPairs(nil, got)
		require.NoError(t, err)
		if len(b) == 0 {
			require.Empty(t, got)
			require.Equal(t, []byte{0, 0, 0, 0}, enc)
			return
		}
		require.Equal(t, b, enc)
		require.Equal(t, len(b), PairsLen(got))
	})
}

func TestDecodePairsZeroAllocs(t *testing.T) {
	in := rawPairs(
		Header{":method", "GET"}, Header{":path", "/mcp/sse"}, Header{":authority", "gw.stoa.dev"},
		Header{"origin", "https://console.stoa.dev"}, Header{"x-forwarded-for", "203.0.113.7, 10.0.0.1"},
		Header{"x-jwt-payload", strings.Repeat("e", 300)}, Header{"accept", "text/event-stream"})
	dst := make([]Header, 0, 16)
	allocs := testing.AllocsPerRun(1000, func() {
		var err error
		dst, err = DecodePairs(in, dst[:0])
		if err != nil || len(dst) != 7 {
			panic("decode")
		}
	})
	require.Zero(t, allocs)
}

func TestDecodePairsAliasesInput(t *testing.T) {
	in := rawPairs(Header{"k", "v"})
	got, err := DecodePairs(in, nil)
	require.NoError(t, err)
	in[len(in)-2] = 'w' // the value byte
	require.Equal(t, "w", got[0].Value)
}

func TestAppendPairs(t *testing.T) {
	h := []Header{{":status", "204"}, {"vary", "Origin"}, {"", ""}}
	require.Equal(t, len(rawPairs(h...)), PairsLen(h))
	enc, err := AppendPairs([]byte("prefix"), h)
	require.NoError(t, err)
	require.Equal(t, append([]byte("prefix"), rawPairs(h...)...), enc)

	enc, err = AppendPairs(nil, nil)
	require.NoError(t, err)
	require.Equal(t, []byte{0, 0, 0, 0}, enc)
	require.Equal(t, 4, PairsLen(nil))
}

func TestAppendPairsZeroAllocs(t *testing.T) {
	h := []Header{{":status", "429"}, {"retry-after", "60"}, {"content-type", "application/json"}}
	buf := make([]byte, 0, PairsLen(h))
	allocs := testing.AllocsPerRun(1000, func() {
		buf, _ = AppendPairs(buf[:0], h)
	})
	require.Zero(t, allocs)
}

func TestAppendPairsTooLarge(t *testing.T) {
	big := strings.Repeat("x", math.MaxInt32/2+1)
	h := []Header{{big, big}}
	require.Equal(t, -1, PairsLen(h))
	dst := []byte("keep")
	got, err := AppendPairs(dst, h)
	require.ErrorIs(t, err, ErrPairsTooLarge)
	require.Equal(t, []byte("keep"), got)
}
