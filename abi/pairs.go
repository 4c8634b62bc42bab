package abi

import (
	"encoding/binary"
	"errors"
	"math"
	"unsafe"
)

// Errors returned by DecodePairs and AppendPairs. Compare with ==.
var (
	// ErrPairsTruncated: the input ends inside the count, the size table or an entry.
	ErrPairsTruncated = errors.New("abi: pairs: truncated")
	// ErrPairsCount: the count cannot fit in the input (each pair needs at least 10 bytes).
	ErrPairsCount = errors.New("abi: pairs: count larger than the input")
	// ErrPairsNUL: a key or value is not followed by its NUL terminator.
	ErrPairsNUL = errors.New("abi: pairs: missing NUL terminator")
	// ErrPairsTrailing: bytes remain after the last entry.
	ErrPairsTrailing = errors.New("abi: pairs: trailing bytes")
	// ErrPairsTooLarge: a count or length does not fit the 32-bit wire format.
	ErrPairsTooLarge = errors.New("abi: pairs: too large to encode")
)

// pairMinSize is the smallest encoding of one pair: two u32 sizes and two NULs.
const pairMinSize = 10

// DecodePairs decodes the proxy-wasm Pairs encoding in b and appends one
// Header per pair, in wire order, to dst; it returns the extended slice.
//
// Wire format (little-endian): u32 count, then count × (u32 key_len,
// u32 value_len), then for each pair key bytes, NUL, value bytes, NUL.
// An empty b decodes as zero pairs (hosts send that for an empty map).
//
// The strings alias b (no copy): they are valid only as long as b is. It
// does not allocate when dst has room for the pairs. Every malformed input
// (truncated, count larger than the input allows, lengths past the end,
// missing NUL, trailing bytes) returns dst unchanged and one of the
// ErrPairs* errors; it never panics.
func DecodePairs(b []byte, dst []Header) ([]Header, error) {
	if len(b) == 0 {
		return dst, nil
	}
	if len(b) < 4 {
		return dst, ErrPairsTruncated
	}
	n := uint64(binary.LittleEndian.Uint32(b))
	total := uint64(len(b))
	if n > (total-4)/pairMinSize {
		return dst, ErrPairsCount
	}
	// The size table fits: n*8 + 4 <= total by the check above.
	data := 4 + n*8
	orig := len(dst)
	for i := uint64(0); i < n; i++ {
		e := 4 + i*8
		kl := uint64(binary.LittleEndian.Uint32(b[e:]))
		vl := uint64(binary.LittleEndian.Uint32(b[e+4:]))
		// All values stay below 2^34: no overflow in uint64.
		kEnd := data + kl
		if kEnd >= total {
			return dst[:orig], ErrPairsTruncated
		}
		if b[kEnd] != 0 {
			return dst[:orig], ErrPairsNUL
		}
		vStart := kEnd + 1
		vEnd := vStart + vl
		if vEnd >= total {
			return dst[:orig], ErrPairsTruncated
		}
		if b[vEnd] != 0 {
			return dst[:orig], ErrPairsNUL
		}
		dst = append(dst, Header{
			Name:  aliasString(b[data:kEnd]),
			Value: aliasString(b[vStart:vEnd]),
		})
		data = vEnd + 1
	}
	if data != total {
		return dst[:orig], ErrPairsTrailing
	}
	return dst, nil
}

// aliasString returns a string sharing b's bytes (no copy, no allocation).
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// PairsLen returns the size of the Pairs encoding of h, or -1 when h cannot
// be encoded (a count or length above 2^32-1, or a total above 2^31-1,
// more than a 32-bit guest could hold).
func PairsLen(h []Header) int {
	if uint64(len(h)) > math.MaxUint32 {
		return -1
	}
	size := uint64(4)
	for i := range h {
		kl, vl := uint64(len(h[i].Name)), uint64(len(h[i].Value))
		if kl > math.MaxUint32 || vl > math.MaxUint32 {
			return -1
		}
		size += 8 + kl + vl + 2
		if size > math.MaxInt32 {
			return -1
		}
	}
	return int(size)
}

// AppendPairs appends the Pairs encoding of h to dst and returns the
// extended slice. It allocates only when dst lacks capacity (size it with
// PairsLen). It returns dst unchanged and ErrPairsTooLarge when PairsLen(h)
// is -1. Names and values are copied as they are: a NUL inside one is not
// rejected but makes the host read a shorter string.
func AppendPairs(dst []byte, h []Header) ([]byte, error) {
	size := PairsLen(h)
	if size < 0 {
		return dst, ErrPairsTooLarge
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h)))
	for i := range h {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h[i].Name)))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h[i].Value)))
	}
	for i := range h {
		dst = append(dst, h[i].Name...)
		dst = append(dst, 0)
		dst = append(dst, h[i].Value...)
		dst = append(dst, 0)
	}
	return dst, nil
}
