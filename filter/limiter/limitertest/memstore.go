// Package limitertest provides MemStore, an in-memory proxy-wasm shared-data
// store with Envoy's exact semantics, for tests and benchmarks of the
// limiter (and anything else that speaks limiter.Store).
package limitertest

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/stoa-platform/stoa-guard/abi"
)

// MemStore behaves like proxy-wasm-cpp-host's SharedData for one vm_id:
//   - Get copies the value into dst[:0] and returns it with its CAS, or
//     abi.ErrNotFound;
//   - Set with cas 0 writes unconditionally; with cas != 0 on an existing
//     key it fails with abi.ErrCasMismatch unless cas equals the current CAS;
//     a missing key is created whatever the cas;
//   - every successful Set takes the next value of ONE counter shared by all
//     keys, which never yields 0 (it wraps from 2^32-1 to 1);
//   - there is no delete.
//
// It is safe for concurrent use and counts calls. The zero value is not
// usable: call NewMemStore.
type MemStore struct {
	mu   sync.Mutex
	m    map[string]*item
	next uint32

	gets, sets, mismatches atomic.Uint64

	// BeforeSet, when set, runs before every Set (outside the lock): tests
	// use it to interleave a rival writer. It must not be changed while
	// the store is in use concurrently.
	BeforeSet func(key string)
}

type item struct {
	val []byte
	cas uint32
}

// NewMemStore returns an empty store whose first CAS is 1 (as Envoy's).
func NewMemStore() *MemStore {
	return &MemStore{m: make(map[string]*item), next: 1}
}

// SetNextCas sets the value the next successful Set will take (0 means 1),
// to test counter wrap-around.
func (s *MemStore) SetNextCas(c uint32) {
	s.mu.Lock()
	s.next = c
	s.mu.Unlock()
}

func (s *MemStore) nextCas() uint32 {
	c := s.next
	s.next++
	if c == 0 {
		c = s.next
		s.next++
	}
	return c
}

// Get implements limiter.Store. No allocation when dst is large enough.
func (s *MemStore) Get(key string, dst []byte) ([]byte, uint32, error) {
	s.gets.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.m[key]
	if !ok {
		return dst[:0], 0, abi.ErrNotFound
	}
	return append(dst[:0], it.val...), it.cas, nil
}

// Set implements limiter.Store. No allocation when overwriting a key with a
// value no longer than its largest value so far.
func (s *MemStore) Set(key string, value []byte, cas uint32) error {
	s.sets.Add(1)
	if f := s.BeforeSet; f != nil {
		f(key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.m[key]
	if !ok {
		s.m[key] = &item{val: append([]byte(nil), value...), cas: s.nextCas()}
		return nil
	}
	if cas != 0 && cas != it.cas {
		s.mismatches.Add(1)
		return abi.ErrCasMismatch
	}
	it.val = append(it.val[:0], value...)
	it.cas = s.nextCas()
	return nil
}

// Put writes value unconditionally without counting a call (test setup).
func (s *MemStore) Put(key string, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.m[key]; ok {
		it.val = append(it.val[:0], value...)
		it.cas = s.nextCas()
		return
	}
	s.m[key] = &item{val: append([]byte(nil), value...), cas: s.nextCas()}
}

// Value returns a copy of key's value and CAS without counting a call.
func (s *MemStore) Value(key string) ([]byte, uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.m[key]
	if !ok {
		return nil, 0, false
	}
	return append([]byte(nil), it.val...), it.cas, true
}

// Calls returns the number of Get and Set calls so far.
func (s *MemStore) Calls() (gets, sets uint64) { return s.gets.Load(), s.sets.Load() }

// Mismatches returns the number of Sets refused with ErrCasMismatch.
func (s *MemStore) Mismatches() uint64 { return s.mismatches.Load() }

// ResetCalls zeroes the call counters.
func (s *MemStore) ResetCalls() {
	s.gets.Store(0)
	s.sets.Store(0)
	s.mismatches.Store(0)
}

// Keys returns the stored keys, sorted.
func (s *MemStore) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := make([]string, 0, len(s.m))
	for k := range s.m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Bytes returns the total size of keys and values stored.
func (s *MemStore) Bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, it := range s.m {
		n += len(k) + len(it.val)
	}
	return n
}
