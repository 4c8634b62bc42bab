package abi

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func TestArenaAlignmentAndNoOverlap(t *testing.T) {
	var a Arena
	a.Init(4096, 8192)
	var blocks [][]byte
	for _, n := range []uint32{1, 3, 16, 17, 0, 100, 7, 64} {
		b := a.Alloc(n)
		require.NotNil(t, b)
		want := int(n)
		if n == 0 {
			want = 1
		}
		require.Len(t, b, want)
		require.Equal(t, want, cap(b), "cap is clipped so an append cannot spill into the next block")
		require.Zero(t, addr(b)%ArenaAlign, "block of %d bytes misaligned", n)
		blocks = append(blocks, b)
	}
	for i := range blocks {
		for j := range blocks {
			if i == j {
				continue
			}
			ai, aj := addr(blocks[i]), addr(blocks[j])
			require.False(t, ai < aj+uintptr(len(blocks[j])) && aj < ai+uintptr(len(blocks[i])), "blocks %d and %d overlap", i, j)
		}
	}
	require.Zero(t, a.Fallbacks)
}

func TestArenaResetReuses(t *testing.T) {
	var a Arena
	a.Init(4096, 8192)
	first := addr(a.Alloc(100))
	a.Alloc(200)
	a.Reset()
	require.Equal(t, first, addr(a.Alloc(50)), "after Reset the arena starts over")
}

func TestArenaOverflowFallback(t *testing.T) {
	var a Arena
	a.Init(1024, 4096)
	in := a.Alloc(1000)
	big := a.Alloc(2000) // does not fit the rest of the chunk
	require.Len(t, big, 2000)
	require.Zero(t, addr(big)%ArenaAlign)
	require.Equal(t, 1, a.Fallbacks)
	// Both stay resolvable until Reset.
	b, ok := a.Lookup(addr(in)+10, 20)
	require.True(t, ok)
	require.Equal(t, addr(in)+10, addr(b))
	b, ok = a.Lookup(addr(big), 2000)
	require.True(t, ok)
	require.Len(t, b, 2000)

	// Reset grows the chunk once to the max, then the same load fits.
	a.Reset()
	require.Equal(t, 4096, a.Len())
	_, ok = a.Lookup(addr(big), 1)
	require.False(t, ok, "fallback blocks are dropped on Reset")
	a.Alloc(1000)
	a.Alloc(2000)
	require.Equal(t, 1, a.Fallbacks)

	// Larger than the max: fallback again, but no further growth.
	require.Len(t, a.Alloc(10000), 10000)
	a.Reset()
	require.Equal(t, 4096, a.Len())
}

func TestArenaRefusesAbsurdSizes(t *testing.T) {
	var a Arena
	a.Init(0, 0)
	require.Nil(t, a.Alloc(MaxAllocSize+1))
	require.Nil(t, a.Alloc(^uint32(0)))
	require.Equal(t, ArenaInitialSize, a.Len())
}

func TestArenaZeroValueUsable(t *testing.T) {
	var a Arena
	b := a.Alloc(10)
	require.Len(t, b, 10)
	require.Equal(t, ArenaInitialSize, a.Len())
}

// TestArenaLookupRejectsForeignPointers pins that a pointer written by the
// host is never trusted: outside what was handed out, past the allocated
// part of the chunk, or wrapping around, it is refused.
func TestArenaLookupRejectsForeignPointers(t *testing.T) {
	var a Arena
	a.Init(4096, 4096)
	b := a.Alloc(64)
	base := addr(b)
	tests := []struct {
		name string
		addr uintptr
		n    uint32
	}{
		{"below the chunk", base - 1, 1},
		{"past the allocated part", base + 64, 1},
		{"range runs past the allocated part", base + 60, 8},
		{"size wraps", base + 1, ^uint32(0)},
		{"null", 0, 4},
		{"far away", ^uintptr(0) - 2, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok := a.Lookup(tt.addr, tt.n)
			require.False(t, ok)
		})
	}
	got, ok := a.Lookup(0, 0)
	require.True(t, ok, "an empty result needs no memory")
	require.Empty(t, got)
	got, ok = a.Lookup(base, 64)
	require.True(t, ok)
	require.Len(t, got, 64)
}

func TestArenaZeroAllocs(t *testing.T) {
	var a Arena
	a.Init(0, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		a.Reset()
		for i := 0; i < 20; i++ {
			if a.Alloc(512) == nil {
				panic("alloc")
			}
		}
	})
	require.Zero(t, allocs)
	require.Zero(t, a.Fallbacks)
}
