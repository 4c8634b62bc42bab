package abi

import "unsafe"

// Arena sizes used by the module's allocator (see Arena).
const (
	// ArenaInitialSize is the arena's first chunk.
	ArenaInitialSize = 64 << 10
	// ArenaMaxSize is the size the arena grows to, once, after a callback
	// whose allocations did not fit the first chunk.
	ArenaMaxSize = 1 << 20
	// ArenaAlign is the alignment of every block the arena hands out.
	ArenaAlign = 16
	// MaxAllocSize is the largest single request served; larger ones fail
	// (Alloc returns nil, the module returns 0, the host call fails cleanly)
	// instead of letting the Go runtime die out of memory.
	MaxAllocSize = 64 << 20
)

// Arena is a reusable bump allocator serving the host's
// proxy_on_memory_allocate calls, so that the common case allocates no Go
// memory (the host allows almost no calls while it is inside the allocator,
// and per-request garbage piles up in a reactor module: see HOST.md).
//
// Blocks are valid until the next Reset, which the dispatcher does at the
// entry of every top-level callback. A request that does not fit the rest
// of the current chunk (or is larger than it) is served by a fresh Go slice
// kept alive until the next Reset: that rare case is the only one that makes
// garbage. After a callback that needed such a fallback, Reset replaces the
// first chunk once by one of the maximum size.
//
// An Arena is not safe for concurrent use (a Wasm VM is single-threaded).
// The zero value is usable; Init preallocates the first chunk.
type Arena struct {
	buf     []byte
	off     int
	extra   [][]byte
	initial int
	max     int
	grow    bool
	grown   bool
	// Fallbacks counts the requests served outside the chunk since Init.
	Fallbacks int
}

// Init allocates the first chunk of initial bytes; the chunk may later grow
// once to max bytes. Non-positive sizes take the defaults
// (ArenaInitialSize, ArenaMaxSize); max is raised to initial if smaller. Call it outside the allocator callback
// (e.g. from init), so that the allocator itself never allocates.
func (a *Arena) Init(initial, max int) {
	if initial <= 0 {
		initial = ArenaInitialSize
	}
	if max <= 0 {
		max = ArenaMaxSize
	}
	if max < initial {
		max = initial
	}
	a.initial, a.max = initial, max
	a.buf = make([]byte, initial)
	a.off = 0
	a.grown = initial >= max
}

// Alloc returns a block of n bytes aligned to ArenaAlign, valid until the
// next Reset. n == 0 is served as 1 byte, so the block always has a valid,
// non-zero address. It returns nil when n > MaxAllocSize. The block's
// contents are unspecified (not zeroed).
func (a *Arena) Alloc(n uint32) []byte {
	if n > MaxAllocSize {
		return nil
	}
	if n == 0 {
		n = 1
	}
	if a.buf == nil {
		a.Init(a.initial, a.max)
	}
	size := int(n)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(a.buf)))
	start := int(alignUp(base+uintptr(a.off)) - base)
	if start <= len(a.buf) && size <= len(a.buf)-start {
		a.off = start + size
		return a.buf[start:a.off:a.off]
	}
	// Fallback: a fresh slice, over-allocated to be aligned.
	if size <= a.max {
		a.grow = true
	}
	a.Fallbacks++
	raw := make([]byte, size+ArenaAlign-1)
	rb := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	s := int(alignUp(rb) - rb)
	blk := raw[s : s+size : s+size]
	a.extra = append(a.extra, blk)
	return blk
}

// Reset makes every block handed out since the last Reset free for reuse
// and drops the fallback slices. It grows the chunk (once) when the last
// cycle needed a fallback that the larger chunk would have served.
func (a *Arena) Reset() {
	a.off = 0
	if len(a.extra) > 0 {
		clear(a.extra)
		a.extra = a.extra[:0]
	}
	if a.grow && !a.grown {
		a.buf = make([]byte, a.max)
		a.grown = true
	}
	a.grow = false
}

// Lookup returns the n bytes at address addr when they lie inside a block
// handed out since the last Reset, so that a pointer written by the host
// is turned back into a slice without trusting it. n == 0 yields an empty
// slice whatever addr is. ok is false when the range is not ours.
func (a *Arena) Lookup(addr uintptr, n uint32) (b []byte, ok bool) {
	if n == 0 {
		return nil, true
	}
	if b, ok = within(a.buf[:a.off], addr, n); ok {
		return b, true
	}
	for _, blk := range a.extra {
		if b, ok = within(blk, addr, n); ok {
			return b, true
		}
	}
	return nil, false
}

// Len reports the chunk size (for tests and measurements).
func (a *Arena) Len() int { return len(a.buf) }

// within returns blk[addr-base : +n] when that range lies inside blk.
func within(blk []byte, addr uintptr, n uint32) ([]byte, bool) {
	if len(blk) == 0 {
		return nil, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(blk)))
	if addr < base {
		return nil, false
	}
	off := addr - base
	if off > uintptr(len(blk)) || uintptr(n) > uintptr(len(blk))-off {
		return nil, false
	}
	end := int(off) + int(n)
	return blk[int(off):end:end], true
}

func alignUp(p uintptr) uintptr {
	return (p + ArenaAlign - 1) &^ (ArenaAlign - 1)
}
