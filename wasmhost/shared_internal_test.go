package wasmhost

import (
	"math"
	"testing"
)

// The CAS counter wraps from 2^32-1 to 1: 0 means "unconditional" to
// set and must never be a key's CAS (cpp-host SharedData::nextCas).
func TestSharedDataCASNeverZeroAcrossWrap(t *testing.T) {
	s := NewSharedData()
	s.cas = math.MaxUint32
	if err := s.Set("vm", "a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	_, ca, _ := s.Get("vm", "a", nil)
	if err := s.Set("vm", "b", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	_, cb, _ := s.Get("vm", "b", nil)
	if ca != math.MaxUint32 || cb != 1 {
		t.Fatalf("cas across the wrap: %d then %d, want %d then 1", ca, cb, uint32(math.MaxUint32))
	}
	// A guest holding cas 0 for a key always writes; one holding the wrapped
	// key's cas writes once.
	if err := s.Set("vm", "b", []byte("3"), 1); err != nil {
		t.Fatalf("Set with the wrapped cas: %v", err)
	}
	if err := s.Set("vm", "b", []byte("4"), 1); err != ErrCasMismatch {
		t.Fatalf("second Set with the same cas: %v", err)
	}
}
