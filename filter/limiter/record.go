package limiter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
)

// Record kinds. The first byte of every stored record is version<<4 | kind,
// so a value written for another kind (or by a future format) is refused by
// decode and treated as empty.
const (
	kindGlobal uint8 = 1 // one entry, empty id
	kindTenant uint8 = 2 // entries keyed by an 8-byte tenant hash
	kindClient uint8 = 3 // entries keyed by the 16-byte identity.Key, with rate times

	formatVersion uint8 = 1
)

// Decoding sanity bounds. They are independent of the configuration so a
// record written by a VM with larger limits (during a configuration rollout)
// still decodes; they only stop a hostile or broken value from making the
// decoder do unbounded work.
const (
	maxRecordBytes = 1 << 16
	maxEntries     = 1 << 12
	maxCohorts     = 1 << 12
	maxRates       = 1 << 12
	maxCount       = 1 << 24
)

// rateWindow is the rolling window of the rate limit, in seconds.
const rateWindow = 60

var errCorrupt = errors.New("limiter: corrupt record")

func header(kind uint8) byte { return formatVersion<<4 | kind }

func idLen(kind uint8) int {
	switch kind {
	case kindTenant:
		return 8
	case kindClient:
		return 16
	}
	return 0
}

// cohort is the number of live leases admitted in one cohort, identified by
// the cohort's expiry (Unix seconds): after exp the leases no longer count.
type cohort struct {
	exp uint32
	n   uint32
}

// entry is one client, one tenant, or the single global entry. Its cohorts
// and rate times are ranges of the record's flat slices.
type entry struct {
	id     [16]byte
	c0, c1 int // cohorts[c0:c1], strictly increasing exp
	r0, r1 int // rates[r0:r1], non-decreasing admission seconds
}

// record is a decoded shared-data value. Its slices are reused between
// operations (reset keeps capacity), so steady-state work allocates nothing.
type record struct {
	kind    uint8
	stamp   uint32 // when it was written (writer's clock, seconds)
	ents    []entry
	cohorts []cohort
	rates   []uint32
}

func (r *record) reset(kind uint8) {
	r.kind = kind
	r.stamp = 0
	r.ents = r.ents[:0]
	r.cohorts = r.cohorts[:0]
	r.rates = r.rates[:0]
}

func uvarint32(b []byte, p int) (uint32, int, bool) {
	if p >= len(b) {
		return 0, p, false
	}
	v, n := binary.Uvarint(b[p:])
	if n <= 0 || v > math.MaxUint32 {
		return 0, p, false
	}
	return uint32(v), p + n, true
}

// decode parses b as a record of the given kind into r. Any malformation
// (wrong header, truncation, trailing bytes, unsorted or duplicate ids,
// cohorts or times out of order, counts out of range) returns errCorrupt and
// leaves r empty. It never panics, whatever b holds.
func decode(b []byte, kind uint8, r *record) error {
	r.reset(kind)
	if err := decodeInto(b, kind, r); err != nil {
		r.reset(kind)
		return err
	}
	return nil
}

func decodeInto(b []byte, kind uint8, r *record) error {
	if len(b) < 5 || len(b) > maxRecordBytes || b[0] != header(kind) {
		return errCorrupt
	}
	r.stamp = binary.LittleEndian.Uint32(b[1:5])
	base := int64(r.stamp)
	p := 5
	n, p, ok := uvarint32(b, p)
	if !ok || n > maxEntries {
		return errCorrupt
	}
	il := idLen(kind)
	for i := uint32(0); i < n; i++ {
		var e entry
		if len(b)-p < il {
			return errCorrupt
		}
		copy(e.id[:il], b[p:p+il])
		p += il
		if i > 0 && bytes.Compare(r.ents[i-1].id[:il], e.id[:il]) >= 0 {
			return errCorrupt // ids strictly increasing (also: one global entry)
		}
		var nc uint32
		if nc, p, ok = uvarint32(b, p); !ok || nc > maxCohorts {
			return errCorrupt
		}
		e.c0 = len(r.cohorts)
		for j := uint32(0); j < nc; j++ {
			var exp, cnt uint32
			if exp, p, ok = timeAt(b, p, base); !ok {
				return errCorrupt
			}
			if cnt, p, ok = uvarint32(b, p); !ok || cnt == 0 || cnt > maxCount {
				return errCorrupt
			}
			if j > 0 && exp <= r.cohorts[len(r.cohorts)-1].exp {
				return errCorrupt
			}
			r.cohorts = append(r.cohorts, cohort{exp: exp, n: cnt})
		}
		e.c1 = len(r.cohorts)
		e.r0 = len(r.rates)
		if kind == kindClient {
			var nr uint32
			if nr, p, ok = uvarint32(b, p); !ok || nr > maxRates {
				return errCorrupt
			}
			for j := uint32(0); j < nr; j++ {
				var t uint32
				if t, p, ok = timeAt(b, p, base); !ok {
					return errCorrupt
				}
				if j > 0 && t < r.rates[len(r.rates)-1] {
					return errCorrupt
				}
				r.rates = append(r.rates, t)
			}
		}
		e.r1 = len(r.rates)
		r.ents = append(r.ents, e)
	}
	if p != len(b) {
		return errCorrupt
	}
	return nil
}

// timeAt reads a zigzag varint offset from base and checks the time fits.
func timeAt(b []byte, p int, base int64) (uint32, int, bool) {
	if p >= len(b) {
		return 0, p, false
	}
	off, n := binary.Varint(b[p:])
	if n <= 0 || off < -math.MaxUint32 || off > math.MaxUint32 {
		return 0, p, false
	}
	t := base + off
	if t < 0 || t > math.MaxUint32 {
		return 0, p, false
	}
	return uint32(t), p + n, true
}

// encode appends the canonical encoding of r, written at second now, to
// buf[:0]:
//
//	byte    version<<4 | kind
//	u32 LE  stamp = the writer's clock (seconds); every time is relative to it
//	uvarint number of entries, then per entry (ids strictly increasing):
//	  id (0, 8 or 16 bytes by kind)
//	  uvarint cohorts, then per cohort: varint exp-stamp, uvarint count>=1
//	  client kind only: uvarint rate times, then per time: varint t-stamp
//
// Offsets are zigzag varints: expiries lie up to max_duration ahead (2
// bytes), rate times up to a minute behind (1 byte).
func encode(r *record, now uint32, buf []byte) []byte {
	base := int64(now)
	buf = append(buf[:0], header(r.kind))
	buf = binary.LittleEndian.AppendUint32(buf, now)
	buf = binary.AppendUvarint(buf, uint64(len(r.ents)))
	il := idLen(r.kind)
	for i := range r.ents {
		e := &r.ents[i]
		buf = append(buf, e.id[:il]...)
		buf = binary.AppendUvarint(buf, uint64(e.c1-e.c0))
		for _, c := range r.cohorts[e.c0:e.c1] {
			buf = binary.AppendVarint(buf, int64(c.exp)-base)
			buf = binary.AppendUvarint(buf, uint64(c.n))
		}
		if r.kind == kindClient {
			buf = binary.AppendUvarint(buf, uint64(e.r1-e.r0))
			for _, t := range r.rates[e.r0:e.r1] {
				buf = binary.AppendVarint(buf, int64(t)-base)
			}
		}
	}
	return buf
}

// inWindow reports whether an admission at second t counts toward the rate
// at second now (t in (now-60, now], or later if the clock stepped back).
func inWindow(t, now uint32) bool { return int64(now)-int64(t) < rateWindow }

// view is what one entry looks like at second now, after pruning.
type view struct {
	found   bool
	idx     int    // index in ents (when found)
	leases  uint64 // live leases of the entry
	rate    int    // rate times in the window
	entries int    // entries of the record still alive at now
	evict   int    // oldest rate-only live entry other than the target, -1 if none
}

// counts returns entry e's live leases (cohorts with exp > now), its rate
// times in the window and the newest of them.
func (r *record) counts(e *entry, now uint32) (live uint64, rate int, last uint32) {
	for _, c := range r.cohorts[e.c0:e.c1] {
		if c.exp > now {
			live += uint64(c.n)
		}
	}
	for _, t := range r.rates[e.r0:e.r1] {
		if inWindow(t, now) {
			rate++
			last = t
		}
	}
	return live, rate, last
}

// look scans r at second now for the entry id.
func look(r *record, id *[16]byte, now uint32) view {
	v := view{evict: -1}
	il := idLen(r.kind)
	var evictAt uint32
	for i := range r.ents {
		e := &r.ents[i]
		live, rate, last := r.counts(e, now)
		if live == 0 && rate == 0 {
			continue // dead: pruned on the next write
		}
		v.entries++
		if bytes.Equal(e.id[:il], id[:il]) {
			v.found, v.idx, v.leases, v.rate = true, i, live, rate
			continue
		}
		if live == 0 && (v.evict < 0 || last < evictAt) {
			v.evict, evictAt = i, last
		}
	}
	return v
}

// change describes the edit rebuild applies to the target entry.
type change struct {
	id      [16]byte
	exp     uint32 // the cohort to add to or release from
	now     uint32
	add     bool // add one lease to cohort exp (and a rate time for clients)
	noRate  bool // adding: neither check nor record a rate time
	maxRate int  // rate times kept per client entry (newest)
	evict   int  // index of an entry to drop, -1 for none
}

// rebuild writes into out the record in, pruned at ch.now (expired cohorts,
// rate times out of the window, empty entries dropped), with ch applied to
// the target entry. It reports whether the target's cohort was found when
// releasing (false: nothing to release).
func rebuild(in, out *record, ch *change) (released bool) {
	out.reset(in.kind)
	il := idLen(in.kind)
	inserted := false
	for i := range in.ents {
		if i == ch.evict {
			continue
		}
		e := &in.ents[i]
		cmp := bytes.Compare(e.id[:il], ch.id[:il])
		if ch.add && !inserted && cmp > 0 {
			appendNew(out, ch)
			inserted = true
		}
		target := cmp == 0
		ne := entry{id: e.id, c0: len(out.cohorts)}
		added := !(target && ch.add)
		for _, c := range in.cohorts[e.c0:e.c1] {
			if !added && c.exp >= ch.exp {
				if c.exp == ch.exp {
					c.n++
				} else {
					out.cohorts = append(out.cohorts, cohort{exp: ch.exp, n: 1})
				}
				added = true
			}
			if target && !ch.add && c.exp == ch.exp && !released {
				released = true
				c.n--
			}
			if c.exp > ch.now && c.n > 0 {
				out.cohorts = append(out.cohorts, c)
			}
		}
		if !added {
			out.cohorts = append(out.cohorts, cohort{exp: ch.exp, n: 1})
		}
		ne.c1 = len(out.cohorts)
		ne.r0 = len(out.rates)
		rs := in.rates[e.r0:e.r1]
		if target && ch.add && !ch.noRate && in.kind == kindClient {
			// Insert now in order, then keep the newest maxRate in the window.
			k := len(rs)
			for k > 0 && rs[k-1] > ch.now {
				k--
			}
			appendRates(out, rs[:k], ch.now)
			out.rates = append(out.rates, ch.now)
			appendRates(out, rs[k:], ch.now)
		} else {
			appendRates(out, rs, ch.now)
		}
		if n := len(out.rates) - ne.r0; in.kind == kindClient && n > ch.maxRate {
			drop := n - ch.maxRate
			copy(out.rates[ne.r0:], out.rates[ne.r0+drop:])
			out.rates = out.rates[:len(out.rates)-drop]
		}
		ne.r1 = len(out.rates)
		if target {
			inserted = true
		}
		if ne.c1 == ne.c0 && ne.r1 == ne.r0 {
			continue // dead entry
		}
		out.ents = append(out.ents, ne)
	}
	if ch.add && !inserted {
		appendNew(out, ch)
	}
	return released
}

func appendRates(out *record, rs []uint32, now uint32) {
	for _, t := range rs {
		if inWindow(t, now) {
			out.rates = append(out.rates, t)
		}
	}
}

func appendNew(out *record, ch *change) {
	e := entry{id: ch.id, c0: len(out.cohorts)}
	out.cohorts = append(out.cohorts, cohort{exp: ch.exp, n: 1})
	e.c1 = len(out.cohorts)
	e.r0 = len(out.rates)
	if out.kind == kindClient && ch.maxRate > 0 && !ch.noRate {
		out.rates = append(out.rates, ch.now)
	}
	e.r1 = len(out.rates)
	out.ents = append(out.ents, e)
}
