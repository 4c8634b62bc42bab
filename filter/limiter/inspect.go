package limiter

import "time"

// RecordStats is what one stored record counts at a given time.
type RecordStats struct {
	Leases  uint64 // live leases: the sum of the cohorts with exp > now
	Entries int    // entries still alive (a live lease or a rate time in the window)
}

// Inspect decodes a value the limiter stored under one of Keys() (the anchor
// excepted) and returns what it counts at now. It is for tests, diagnostics
// and operators reading shared data from outside the VMs (the filter never
// calls it). ok is false when value is not a record in the current format,
// which Admit would treat as empty. It never panics.
func Inspect(value []byte, now time.Time) (st RecordStats, ok bool) {
	if len(value) == 0 || value[0]>>4 != formatVersion {
		return st, false
	}
	kind := value[0] & 0x0f
	if kind != kindGlobal && kind != kindTenant && kind != kindClient {
		return st, false
	}
	sec, fits := seconds(now)
	if !fits {
		return st, false
	}
	var r record
	if decode(value, kind, &r) != nil {
		return st, false
	}
	for i := range r.ents {
		live, rate, _ := r.counts(&r.ents[i], sec)
		if live > 0 || rate > 0 {
			st.Entries++
		}
		st.Leases += live
	}
	return st, true
}
