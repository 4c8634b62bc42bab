package wasmhost

import (
	"sort"
	"sync"
)

// SharedData is Envoy's process-wide shared-data store: one map per vm_id,
// every VM with the same vm_id sees the same keys. Semantics follow
// proxy-wasm-cpp-host src/shared_data.cc exactly:
//   - Set with cas 0 writes unconditionally; with cas != 0 it fails with
//     ErrCasMismatch unless cas equals the key's current CAS; a missing key
//     is created whatever the cas.
//   - Every successful Set gives the key a new CAS from one counter shared by
//     all vm_ids, starting at 1 and skipping 0 when it wraps.
//   - Get on a missing key returns ErrNotFound.
//   - There is no delete: the ABI has none (Envoy drops a vm_id's map only
//     when its last VM goes away; this store keeps it until it is dropped).
//
// SharedData is safe for concurrent use.
type SharedData struct {
	mu   sync.Mutex
	cas  uint32
	data map[string]map[string]*sharedEntry
}

type sharedEntry struct {
	value []byte
	cas   uint32
}

// NewSharedData returns an empty store.
func NewSharedData() *SharedData {
	return &SharedData{cas: 1, data: make(map[string]map[string]*sharedEntry)}
}

func (s *SharedData) nextCas() uint32 {
	c := s.cas
	s.cas++
	if s.cas == 0 {
		s.cas++
	}
	return c
}

// Get appends the value of key in vm_id's map to dst[:0] and returns it with its CAS.
func (s *SharedData) Get(vmID, key string, dst []byte) ([]byte, uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.data[vmID][key]
	if !ok {
		return dst[:0], 0, ErrNotFound
	}
	return append(dst[:0], e.value...), e.cas, nil
}

// get is Get for the host call: it hands the value out under the lock through f.
func (s *SharedData) get(vmID string, key []byte, f func(value []byte, cas uint32) Status) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.data[vmID][string(key)]
	if !ok {
		return StatusNotFound
	}
	return f(e.value, e.cas)
}

// Set writes value under key in vm_id's map with Envoy's CAS rules.
func (s *SharedData) Set(vmID, key string, value []byte, cas uint32) error {
	if st := s.set(vmID, []byte(key), value, cas); st != StatusOK {
		return st
	}
	return nil
}

func (s *SharedData) set(vmID string, key, value []byte, cas uint32) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.data[vmID]
	if m == nil {
		m = make(map[string]*sharedEntry)
		s.data[vmID] = m
	}
	if e, ok := m[string(key)]; ok {
		if cas != 0 && cas != e.cas {
			return StatusCasMismatch
		}
		e.value = append(e.value[:0], value...)
		e.cas = s.nextCas()
		return StatusOK
	}
	m[string(key)] = &sharedEntry{value: append([]byte(nil), value...), cas: s.nextCas()}
	return StatusOK
}

// Keys returns vm_id's keys, sorted.
func (s *SharedData) Keys(vmID string) []string {
	s.mu.Lock()
	out := make([]string, 0, len(s.data[vmID]))
	for k := range s.data[vmID] {
		out = append(out, k)
	}
	s.mu.Unlock()
	sort.Strings(out)
	return out
}

// Len returns the number of keys in vm_id's map.
func (s *SharedData) Len(vmID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data[vmID])
}

// Namespace returns a view of one vm_id's map with the Get/Set shape of a
// key-value store interface (Get(key, dst) / Set(key, value, cas)).
func (s *SharedData) Namespace(vmID string) *SharedNamespace {
	return &SharedNamespace{s: s, vmID: vmID}
}

// SharedNamespace is one vm_id's view of a SharedData.
type SharedNamespace struct {
	s    *SharedData
	vmID string
}

// Get: see SharedData.Get.
func (n *SharedNamespace) Get(key string, dst []byte) ([]byte, uint32, error) {
	return n.s.Get(n.vmID, key, dst)
}

// Set: see SharedData.Set.
func (n *SharedNamespace) Set(key string, value []byte, cas uint32) error {
	return n.s.Set(n.vmID, key, value, cas)
}
