package wasmhost_test

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// Envoy's shared-data rules (proxy-wasm-cpp-host src/shared_data.cc).
func TestSharedDataCASRules(t *testing.T) {
	s := wasmhost.NewSharedData()
	if _, _, err := s.Get("vm", "k", nil); !errors.Is(err, wasmhost.ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	// A missing key is created whatever the cas.
	if err := s.Set("vm", "k", []byte("v1"), 12345); err != nil {
		t.Fatalf("Set new key with a stale cas: %v", err)
	}
	v, c1, err := s.Get("vm", "k", nil)
	if err != nil || string(v) != "v1" || c1 == 0 {
		t.Fatalf("Get = %q, %d, %v", v, c1, err)
	}
	// A mismatched cas is refused and changes nothing.
	if err := s.Set("vm", "k", []byte("bad"), c1+1); !errors.Is(err, wasmhost.ErrCasMismatch) || err != wasmhost.StatusCasMismatch {
		t.Fatalf("Set with a wrong cas: %v", err)
	}
	if v, c, _ := s.Get("vm", "k", nil); string(v) != "v1" || c != c1 {
		t.Fatalf("after a refused Set: %q, %d", v, c)
	}
	// The current cas wins once and gives a new cas.
	if err := s.Set("vm", "k", []byte("v2"), c1); err != nil {
		t.Fatalf("Set with the current cas: %v", err)
	}
	_, c2, _ := s.Get("vm", "k", nil)
	if c2 == c1 || c2 == 0 {
		t.Fatalf("cas after Set: %d (was %d)", c2, c1)
	}
	if err := s.Set("vm", "k", []byte("lost update"), c1); !errors.Is(err, wasmhost.ErrCasMismatch) {
		t.Fatalf("Set with the previous cas: %v", err)
	}
	// cas 0 writes unconditionally.
	if err := s.Set("vm", "k", []byte("v3"), 0); err != nil {
		t.Fatalf("Set with cas 0: %v", err)
	}
	if v, c3, _ := s.Get("vm", "k", nil); string(v) != "v3" || c3 == c2 || c3 == 0 {
		t.Fatalf("after cas-0 Set: %q, %d", v, c3)
	}
	// Empty values are values.
	if err := s.Set("vm", "empty", nil, 0); err != nil {
		t.Fatal(err)
	}
	if v, _, err := s.Get("vm", "empty", []byte("junk")); err != nil || len(v) != 0 {
		t.Fatalf("empty value: %q, %v", v, err)
	}
}

func TestSharedDataNamespacesShareOneCASCounter(t *testing.T) {
	s := wasmhost.NewSharedData()
	must(t, s.Set("a", "k", []byte("in a"), 0))
	must(t, s.Set("", "k", []byte("istio: empty vm_id"), 0))
	must(t, s.Set("b", "other", []byte("in b"), 0))
	va, ca, _ := s.Get("a", "k", nil)
	ve, ce, _ := s.Get("", "k", nil)
	if string(va) != "in a" || string(ve) != "istio: empty vm_id" {
		t.Fatalf("values %q %q", va, ve)
	}
	if ca == ce {
		t.Fatalf("two vm_ids got the same cas %d: the counter is process-wide", ca)
	}
	if _, _, err := s.Get("b", "k", nil); !errors.Is(err, wasmhost.ErrNotFound) {
		t.Fatalf("key leaked across vm_ids: %v", err)
	}
	if got := s.Keys("a"); !slices.Equal(got, []string{"k"}) || s.Len("b") != 1 || s.Len("none") != 0 {
		t.Fatalf("Keys(a) = %q, Len(b) = %d", got, s.Len("b"))
	}
	ns := s.Namespace("a")
	v, c, err := ns.Get("k", nil)
	if err != nil || string(v) != "in a" || c != ca {
		t.Fatalf("Namespace Get = %q, %d, %v", v, c, err)
	}
	if err := ns.Set("k", []byte("x"), ce); !errors.Is(err, wasmhost.ErrCasMismatch) {
		t.Fatalf("another key's cas accepted: %v", err)
	}
}

func TestSharedDataCopiesValues(t *testing.T) {
	s := wasmhost.NewSharedData()
	in := []byte("original")
	must(t, s.Set("vm", "k", in, 0))
	in[0] = 'X'
	out, _, _ := s.Get("vm", "k", make([]byte, 0, 64))
	if string(out) != "original" {
		t.Fatalf("Set kept the caller's slice: %q", out)
	}
	out[0] = 'Y'
	if again, _, _ := s.Get("vm", "k", nil); string(again) != "original" {
		t.Fatalf("Get returned the store's slice: %q", again)
	}
	// dst is reused from its start.
	dst := append(make([]byte, 0, 64), "prefix-"...)
	got, _, _ := s.Get("vm", "k", dst)
	if string(got) != "original" || &got[0] != &dst[0] {
		t.Fatalf("Get(dst) = %q", got)
	}
}

// Many goroutines increment one counter with CAS retries (as every worker's
// filter does with leases): no update is lost, every cas is distinct and
// non-zero. Run under -race.
func TestSharedDataConcurrentCASIncrements(t *testing.T) {
	s := wasmhost.NewSharedData()
	const workers, each = 16, 200
	var wg sync.WaitGroup
	seen := make([]map[uint32]bool, workers)
	for w := range workers {
		seen[w] = map[uint32]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 16)
			for range each {
				for {
					v, cas, err := s.Get("vm", "counter", buf)
					n := 0
					if err == nil {
						n, _ = strconv.Atoi(string(v))
					} else if !errors.Is(err, wasmhost.ErrNotFound) {
						t.Error(err)
						return
					}
					err = s.Set("vm", "counter", strconv.AppendInt(buf[:0], int64(n+1), 10), cas)
					if err == nil {
						break
					}
					if !errors.Is(err, wasmhost.ErrCasMismatch) {
						t.Error(err)
						return
					}
				}
				_, cas, _ := s.Get("vm", "counter", buf)
				seen[w][cas] = true
				// Readers and writers of other keys in between.
				_ = s.Set("vm", "w"+strconv.Itoa(w), buf, 0)
				_ = s.Keys("vm")
			}
		}()
	}
	wg.Wait()
	v, _, err := s.Get("vm", "counter", nil)
	if err != nil || string(v) != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %q, %v; want %d", v, err, workers*each)
	}
	for _, m := range seen {
		if m[0] {
			t.Fatal("cas 0 handed out")
		}
	}
	if s.Len("vm") != workers+1 {
		t.Fatalf("Len = %d", s.Len("vm"))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
