// Package limiter admits and releases SSE streams against three concurrency
// limits (per client key, per tenant, global) and a rolling-minute rate per
// client key, with the counts kept in proxy-wasm shared data so every worker
// VM of an Envoy process sees the same numbers. It is pure: it reaches the
// host only through Store and takes the time as an argument.
//
// # Layout
//
// Every key starts with "stoa.sse/<scope>/" (Istio shares one shared-data map
// across plugins). Keys are fixed by the configuration, never by traffic
// (Keys lists them: 2 + TenantBuckets + IPBuckets):
//
//	g          the global record: one entry
//	t/<n>      tenant bucket n = FNV-1a64(tenant) mod TenantBuckets;
//	           entries keyed by the 64-bit tenant hash
//	c/<n>      client bucket n = FNV-1a64(key) mod IPBuckets;
//	           entries keyed by the full 16-byte identity.Key
//	anchor     written only to obtain a creation CAS (below); content unused
//
// An entry holds leases, not a counter: a list of cohorts (exp, count), where
// exp = start + ceil(MaxDuration+Tick) and start is the admission second
// rounded down to the grain (MaxDuration/60, at least 1 s). A cohort counts
// while now < exp. A lease remembers its exp, and Release decrements exactly
// that cohort in each of the three records; the filter closes the stream at
// Deadline = start + MaxDuration (so MaxDuration - grain < lifetime <=
// MaxDuration), on the tick after it. Client entries also keep the admission
// seconds of their newest RatePerMin admissions; those in (now-60, now]
// are the rate (AdmitUnrated, for message POSTs, neither checks nor adds
// one). Every write prunes expired cohorts, rate times out of the
// window and entries left with neither. Bucket records hold at most
// BucketEntries live entries: a new client evicts the rate-only entry with
// the oldest admission (its rate history is lost: a bounded-memory trade),
// and when every entry holds a live lease the newcomer is refused (ip_limit,
// or tenant_limit for tenant buckets).
//
// Encoding (record.go): version<<4|kind byte, the writer's clock as u32
// seconds (the "stamp"), then entries with ids in increasing order and times
// as zigzag varints relative to the stamp; typically 20-200 bytes. Anything
// that fails to decode strictly (other version or kind, truncation, trailing
// bytes, disorder, absurd counts) is treated as empty and overwritten with a
// CAS-conditioned write; it never panics (FuzzRecordDecode).
//
// # Correctness
//
// Limits. Admit writes the records in the order global, tenant, client. Each
// write is a read-modify-write made atomic by CAS: it succeeds only if the
// record is unchanged since the value the decision was computed from, and
// the decision refuses at >= limit. So after any successful write the record
// holds at most its limit, whatever other VMs do concurrently. A refusal at
// a later record rolls the earlier ones back (decrement the same cohort).
// Transient reservations can make a concurrent admission refuse needlessly,
// never admit too many. Reasons follow SPEC order: global_limit (first
// record), then, when the tenant refuses, a fresh read of the client record
// says whether ip_limit outranks it; the client record decides ip_limit
// before rate_limit. Refused admissions add no rate time.
//
// Recovery. A lease that is never released (dead VM, lost callback, failed
// release) stops counting at its exp and is pruned by the next write of its
// record: slots come back within MaxDuration + Tick, with no operator action.
// Release is a no-op on a lease already released, never admitted, or past
// its exp; the lease is marked released before any store call, so it runs
// at most once even when the store fails.
//
// Creation. Envoy creates a missing key whatever the cas, so two VMs that
// both saw ErrNotFound could both "create" and one would silently overwrite
// the other. We never create with cas 0. Before creating, the limiter writes
// the anchor key unconditionally and reads its CAS a: a value the
// process-wide counter gave to a write of the anchor, so it is not the
// current CAS of any other key (short of 2^32 writes in between). Set(k, v,
// a) therefore creates k if it is still missing and fails with
// ErrCasMismatch if a rival created it first; we then read and retry
// (TestCreationRace). At most once per key per process: 2 extra calls.
//
// # Host-call economy: the per-VM cache and CAS prediction
//
// Each Limiter (one per VM) caches, per key (direct-mapped: 1 global, 63
// tenant, 64 client slots), the last value it read or wrote. Set does not
// return the new CAS, so after our own write the CAS is predicted: the
// limiter keeps lb, a lower bound of the store's next CAS (one more than
// any CAS it has read, plus one per successful Set of its own). Our write
// took a CAS c >= lb, so lb is recorded as the slot's prediction. Setting
// later with it is safe: it succeeds only if the current CAS equals lb;
// every write of that key after ours has a CAS > c >= lb, so success means
// the current value is ours, exactly what the decision was computed from;
// a wrong prediction is just ErrCasMismatch, then a Get and a retry. This
// holds while fewer than 2^32 shared-data writes happen between lb's
// anchoring and the prediction's use, which the limiter bounds in time:
// lb counts as anchored only when read from a record stamped within 20 s,
// or from the anchor; predictions are recorded only while lb is anchored
// and used for at most 20 s (so, ~60 s in all: safe below ~70 million
// writes a second).
//
// Predictions pay off when one VM does most writes; with several busy VMs
// they mostly miss. A per-VM score (hits minus misses, also learned for free
// by comparing each Get's CAS with the prediction the slot held) turns them
// off while they miss and back on when they would hit. Before its first
// write an operation reads every key it cannot use from cache (so lb is as
// recent as possible). A refusal, or a release with nothing to release, is
// never decided on cached data alone: it is confirmed with a Get.
//
// Measured with limitertest.MemStore (TestCallsPerAdmissionAndRelease,
// BenchmarkAdmitRelease): warm single VM, admission 3 Sets and release 3
// Sets; a VM with an empty cache, 3 Gets + 3 Sets; first admission in a
// fresh process (creating the keys) 4 Gets + 4 Sets; several VMs writing
// the same records, about 2 calls per record (Get + Set).
//
// Retries. Each record gets at most MaxRetries Sets. When they run out, or
// the store fails, Admit returns Busy (with the store error, if any) after
// rolling back, so nothing stays held; the filter answers 429 like
// global_limit. A rollback or release that cannot be written leaks its slot
// until exp (counted in Stats.LeakedRelease).
//
// Known limit: bucket indexes come from an unkeyed hash (VMs must agree and
// have no shared secret at configure time), so a client controlling many
// keys (e.g. many IPv6 /64s) can aim BucketEntries live streams at one
// bucket and have newcomers to it refused with ip_limit until those streams
// end; it still costs the attacker BucketEntries concurrent streams, all
// counted against the global limit.
//
// A Limiter is not safe for concurrent use (a VM is single-threaded); any
// number of Limiters may share a Store. Admit and Release allocate nothing
// in steady state (TestAdmitReleaseZeroAllocs).
package limiter
