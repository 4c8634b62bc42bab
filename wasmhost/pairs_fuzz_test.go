package wasmhost_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/wasmhost"
)

// FuzzHostDecodePairs fuzzes the host side's Pairs decoder (what the host
// reads from a guest: set_header_map_pairs, send_local_response headers)
// against the guest's codec (package abi): whatever the bytes, no panic; a
// result re-encodes to the start of the input (like cpp-host, the host
// ignores bytes after the last pair, the stricter guest refuses them); and
// whatever the guest's decoder accepts, the host reads the same pairs.
func FuzzHostDecodePairs(f *testing.F) {
	f.Add(wasmhost.EncodePairs([]wasmhost.Header{{Name: ":status", Value: "403"}, {Name: "content-type", Value: "application/json"}}))
	f.Add(wasmhost.EncodePairs(nil))
	f.Add(wasmhost.EncodePairs([]wasmhost.Header{{Name: "", Value: ""}}))
	huge := binary.LittleEndian.AppendUint32(nil, 0xFFFFFFFF) // count overflow attack
	f.Add(huge)
	lying := wasmhost.EncodePairs([]wasmhost.Header{{Name: "a", Value: "b"}})
	binary.LittleEndian.PutUint32(lying[4:], 1<<31) // key length far past the end
	f.Add(lying)
	noNUL := wasmhost.EncodePairs([]wasmhost.Header{{Name: "k", Value: "v"}})
	noNUL[len(noNUL)-1] = 'x' // missing terminator
	f.Add(noNUL)
	f.Fuzz(func(t *testing.T, b []byte) {
		got := wasmhost.DecodePairs(b)
		if got != nil {
			if again := wasmhost.EncodePairs(got); !bytes.HasPrefix(b, again) {
				t.Fatalf("decoded pairs re-encode differently:\n in  %x\n out %x", b, again)
			}
		}
		guest, err := abi.DecodePairs(b, nil)
		if err != nil || len(b) > 1<<20 || len(guest) > 1024 {
			return // the host's limits (cpp-host's) are its own
		}
		if len(got) != len(guest) {
			t.Fatalf("guest decodes %d pairs, host %d: %x", len(guest), len(got), b)
		}
		for i := range got {
			if got[i].Name != guest[i].Name || got[i].Value != guest[i].Value {
				t.Fatalf("pair %d differs: host %q, guest %q", i, got[i], guest[i])
			}
		}
	})
}
