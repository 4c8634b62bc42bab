package limiter

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/stoa-platform/stoa-guard/abi"
	"github.com/stoa-platform/stoa-guard/filter/identity"
)

// Store is proxy-wasm shared data (filter.Host's SharedGet/SharedSet).
//
// Get copies the value of key into dst[:0] and returns it with its CAS;
// ErrNotFound when the key does not exist. Set follows Envoy exactly: cas 0
// writes unconditionally; any other cas must equal the current CAS of an
// existing key (else ErrCasMismatch); a missing key is created whatever the
// cas. CAS values come from one process-wide counter (all keys) that never
// yields 0.
type Store interface {
	Get(key string, dst []byte) (value []byte, cas uint32, err error)
	Set(key string, value []byte, cas uint32) error
}

// Store errors the limiter branches on (compared with ==).
var (
	ErrNotFound    = abi.ErrNotFound
	ErrCasMismatch = abi.ErrCasMismatch
)

// Errors returned by the limiter itself.
var (
	ErrLeaseInUse   = errors.New("limiter: lease is already admitted and not released")
	ErrForeignLease = errors.New("limiter: lease was admitted by a limiter with another key layout")
	ErrClock        = errors.New("limiter: time outside the supported range")
)

// Config sizes the limiter. Limits count concurrent admitted streams; each
// check refuses at >= its limit, so a limit of 0 refuses every stream.
type Config struct {
	MaxPerIP, MaxPerTenant, MaxTotal int // concurrent streams per client key / tenant / in total
	RatePerMin                       int // new admitted streams per client key per rolling minute

	MaxDuration time.Duration // stream lifetime; >= 1s
	Tick        time.Duration // the filter's tick period (closing delay); default 1s

	IPBuckets     int    // client bucket records; default 4096
	TenantBuckets int    // tenant bucket records; default 256
	BucketEntries int    // entries per bucket record; default 64
	Scope         string // key namespace: [A-Za-z0-9._-]{1,64}; default "default"
	MaxRetries    int    // attempts per record before giving up (Busy); default 16
}

// Defaults for the tuning fields left zero in Config.
const (
	DefaultIPBuckets     = 4096
	DefaultTenantBuckets = 256
	DefaultBucketEntries = 64
	DefaultScope         = "default"
	DefaultMaxRetries    = 16
	DefaultTick          = time.Second
)

// KeyPrefix starts every shared-data key the limiter writes
// ("stoa.sse/<scope>/..."): Istio leaves vm_id empty, so all plugins share
// one map.
const KeyPrefix = "stoa.sse/"

// cacheTTL bounds how long (seconds) a cached value or CAS is trusted, and
// how old the observation behind a predicted CAS may be (doc.go).
const cacheTTL = 20

// Reason is the outcome of Admit. Checks run in the order global_limit,
// ip_limit, tenant_limit, rate_limit; the first failing one is reported.
type Reason uint8

const (
	None        Reason = iota // admitted
	GlobalLimit               // MaxTotal streams are open
	IPLimit                   // the client key holds MaxPerIP streams, or its bucket is full of live clients
	TenantLimit               // the tenant holds MaxPerTenant streams, or its bucket is full of live tenants
	RateLimit                 // the client key was admitted RatePerMin times in the last 60 s
	// Busy: the store kept changing under us for MaxRetries attempts, or
	// failed (then Admit also returns the error). Nothing stays reserved.
	// The filter answers it like global_limit (429) and counts it as such.
	Busy
)

var reasonNames = [...]string{"", "global_limit", "ip_limit", "tenant_limit", "rate_limit", "busy"}

// String returns the reason as used in responses and metric labels.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

const (
	leaseNone uint8 = iota
	leaseAdmitted
	leaseReleased
)

// Lease records one admission: a fixed-size value kept in the stream state.
// The zero value is "not admitted". Release it with the Limiter that admitted it.
type Lease struct {
	ip       identity.Key
	tenant   uint64
	deadline int64 // Unix nanoseconds
	exp      uint32
	tb, cb   uint32 // key indexes
	layout   uint32
	state    uint8
}

// Admitted reports whether the lease holds slots (admitted, not yet released).
func (lease *Lease) Admitted() bool { return lease.state == leaseAdmitted }

// Deadline is when the filter must close the stream: the start of its
// admission cohort plus MaxDuration, so a stream lives at most MaxDuration
// and more than MaxDuration minus the cohort grain. Zero for a lease that
// was never admitted.
func (lease *Lease) Deadline() time.Time {
	if lease.state == leaseNone {
		return time.Time{}
	}
	return time.Unix(0, lease.deadline)
}

// Expiry is when the lease's slots stop counting by themselves even if
// Release never comes: Deadline plus Tick, rounded up to the second.
func (lease *Lease) Expiry() time.Time {
	if lease.state == leaseNone {
		return time.Time{}
	}
	return time.Unix(int64(lease.exp), 0)
}

// Stats counts the limiter's store calls and notable events since New.
type Stats struct {
	Gets, Sets    uint64 // store calls (including the creation anchor)
	Mismatches    uint64 // Sets refused with ErrCasMismatch
	GuessMisses   uint64 // of which with a predicted CAS
	Creates       uint64 // records created (key was missing)
	Corrupt       uint64 // stored values that failed to decode (treated as empty)
	Exhausted     uint64 // operations that ran out of retries
	LeakedRelease uint64 // releases or rollbacks that could not be written (slots expire by themselves)
}

// slot caches one key's last value seen or written, with its CAS.
type slot struct {
	key     int32 // key index + 1; 0 = empty
	exact   bool  // cas came from a Get (else it is a prediction, doc.go)
	missing bool  // the Get said ErrNotFound (exact, val empty)
	cas     uint32
	at      uint32 // second the value and CAS were learned
	seq     uint32 // operation that fetched it
	val     []byte
}

// The cache is direct-mapped: slot 0 holds the global record, the next 63
// tenant buckets, the last 64 client buckets (so one admission's three keys
// never evict each other).
const cacheSlots = 128

// Limiter admits and releases SSE streams over a Store. One Limiter per VM:
// it is not safe for concurrent use (a proxy-wasm VM is single-threaded),
// and several Limiters (VMs) may share one Store.
type Limiter struct {
	cfg    Config
	s      Store
	keys   []string // 0 global, 1..T tenant buckets, T+1..T+I client buckets, last the anchor
	grain  uint32   // cohort grain, seconds
	span   uint32   // cohort start to expiry, seconds
	layout uint32

	in, out record
	getBuf  []byte
	encBuf  []byte
	cache   [cacheSlots]slot

	lb     uint32 // lower bound of the store's next CAS (doc.go)
	lbAt   uint32 // second lb was last anchored to a recent write
	lbOK   bool
	score  int8   // prediction hits minus misses, clamped; predict when > 0
	missed bool   // a prediction failed in the current operation: stop predicting in it
	seq    uint32 // operation counter
	anchor uint32 // creation CAS for the current operation, 0 if none yet

	stats Stats
}

// New validates c, applies defaults to the tuning fields and precomputes
// every key. It makes no store call.
func New(c Config, s Store) (*Limiter, error) {
	if s == nil {
		return nil, errors.New("limiter: nil store")
	}
	if c.IPBuckets == 0 {
		c.IPBuckets = DefaultIPBuckets
	}
	if c.TenantBuckets == 0 {
		c.TenantBuckets = DefaultTenantBuckets
	}
	if c.BucketEntries == 0 {
		c.BucketEntries = DefaultBucketEntries
	}
	if c.Scope == "" {
		c.Scope = DefaultScope
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.Tick == 0 {
		c.Tick = DefaultTick
	}
	switch {
	case c.MaxPerIP < 0 || c.MaxPerIP > maxCount:
		return nil, errors.New("limiter: MaxPerIP must be in 0..16777216")
	case c.MaxPerTenant < 0 || c.MaxPerTenant > maxCount:
		return nil, errors.New("limiter: MaxPerTenant must be in 0..16777216")
	case c.MaxTotal < 0 || c.MaxTotal > maxCount:
		return nil, errors.New("limiter: MaxTotal must be in 0..16777216")
	case c.RatePerMin < 0 || c.RatePerMin > 1000:
		return nil, errors.New("limiter: RatePerMin must be in 0..1000")
	case c.MaxDuration < time.Second || c.MaxDuration > 30*24*time.Hour:
		return nil, errors.New("limiter: MaxDuration must be between 1s and 720h")
	case c.Tick < 0 || c.Tick > time.Hour:
		return nil, errors.New("limiter: Tick must be between 0 and 1h")
	case c.IPBuckets < 1 || c.IPBuckets > 1<<20:
		return nil, errors.New("limiter: IPBuckets must be in 1..1048576")
	case c.TenantBuckets < 1 || c.TenantBuckets > 1<<16:
		return nil, errors.New("limiter: TenantBuckets must be in 1..65536")
	case c.BucketEntries < 1 || c.BucketEntries > 1024:
		return nil, errors.New("limiter: BucketEntries must be in 1..1024")
	case c.MaxRetries < 1 || c.MaxRetries > 1000:
		return nil, errors.New("limiter: MaxRetries must be in 1..1000")
	case !validScope(c.Scope):
		return nil, errors.New("limiter: Scope must match [A-Za-z0-9._-]{1,64}")
	}
	l := &Limiter{cfg: c, s: s, score: 1}
	grain := c.MaxDuration / 60
	l.grain = uint32(max(grain/time.Second, 1))
	l.span = uint32((c.MaxDuration + c.Tick + time.Second - 1) / time.Second)

	p := KeyPrefix + c.Scope + "/"
	l.keys = make([]string, 0, 2+c.TenantBuckets+c.IPBuckets)
	l.keys = append(l.keys, p+"g")
	for i := 0; i < c.TenantBuckets; i++ {
		l.keys = append(l.keys, p+"t/"+strconv.Itoa(i))
	}
	for i := 0; i < c.IPBuckets; i++ {
		l.keys = append(l.keys, p+"c/"+strconv.Itoa(i))
	}
	l.keys = append(l.keys, p+"anchor")
	h := fnvString(fnvOffset, p)
	h = fnvUint(h, uint64(c.TenantBuckets))
	h = fnvUint(h, uint64(c.IPBuckets))
	l.layout = uint32(h) | 1
	return l, nil
}

func validScope(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Config returns the configuration in use (defaults applied).
func (l *Limiter) Config() Config { return l.cfg }

// Keys returns every shared-data key the limiter may ever create:
// 2 + TenantBuckets + IPBuckets, whatever the traffic. (Allocates a copy.)
func (l *Limiter) Keys() []string { return append([]string(nil), l.keys...) }

// Stats returns the counters since New.
func (l *Limiter) Stats() Stats { return l.stats }

// Admit decides whether a new SSE stream from client ip for tenant may open
// at now. On None the slots are held and lease records them; on any other
// reason nothing is held and lease is zero. A non-nil error (store failure,
// clock out of range, lease already in use) comes with Busy. Admit never
// lets concurrent admissions, from any VM sharing the store, exceed a limit.
// Zero allocations in steady state.
func (l *Limiter) Admit(now time.Time, ip identity.Key, tenant string, lease *Lease) (Reason, error) {
	return l.admit(now, ip, tenant, lease, false)
}

// AdmitUnrated is Admit for a stream that holds slots under the three
// concurrency limits but is neither checked against nor recorded in the
// client's new-stream rate (a Streamable HTTP message POST, which the client
// repeats for every call).
func (l *Limiter) AdmitUnrated(now time.Time, ip identity.Key, tenant string, lease *Lease) (Reason, error) {
	return l.admit(now, ip, tenant, lease, true)
}

func (l *Limiter) admit(now time.Time, ip identity.Key, tenant string, lease *Lease, noRate bool) (Reason, error) {
	if lease == nil {
		return Busy, errNilLease
	}
	if lease.state == leaseAdmitted {
		return Busy, ErrLeaseInUse
	}
	*lease = Lease{}
	sec, ok := seconds(now)
	if !ok || uint64(sec)+uint64(l.span) > math.MaxUint32 {
		return Busy, ErrClock
	}
	l.begin()
	start := sec - sec%l.grain
	th := fnvString(fnvOffset, tenant)
	tb := l.tenantBucket(th)
	cb := 1 + uint32(l.cfg.TenantBuckets) + uint32(fnvBytes(fnvOffset, ip[:])%uint64(l.cfg.IPBuckets))
	var ch change
	ch.exp, ch.now, ch.add, ch.maxRate, ch.noRate = start+l.span, sec, true, l.cfg.RatePerMin, noRate
	if err := l.prefetch(0, int(tb), int(cb), sec); err != nil {
		return Busy, err
	}

	// 1. global
	if r, err := l.apply(0, kindGlobal, &ch); r != None {
		return r, err
	}
	// 2. tenant
	ch.id = tenantID(th)
	if r, err := l.apply(int(tb), kindTenant, &ch); r != None {
		l.rollback(0, kindGlobal, &ch)
		if r == TenantLimit && l.clientRefuses(int(cb), ip, sec) {
			r = IPLimit // ip_limit is checked before tenant_limit
		}
		return r, err
	}
	// 3. client: ip_limit, then rate_limit
	ch.id = [16]byte(ip)
	if r, err := l.apply(int(cb), kindClient, &ch); r != None {
		ch.id = tenantID(th)
		l.rollback(int(tb), kindTenant, &ch)
		l.rollback(0, kindGlobal, &ch)
		return r, err
	}
	*lease = Lease{
		ip: ip, tenant: th, exp: ch.exp, tb: tb, cb: cb, layout: l.layout, state: leaseAdmitted,
		deadline: int64(start)*int64(time.Second) + int64(l.cfg.MaxDuration),
	}
	return None, nil
}

// TenantLeases reads tenant's bucket from the store (one Get) and returns
// the tenant's live leases at now: the concurrent streams every VM holds for
// it, those of dead VMs included until their leases expire. The filter sets
// its per-tenant gauges from it on each tick, so a gauge heals when a VM
// dies with streams open. A record that does not decode counts 0. Zero
// allocations in steady state.
func (l *Limiter) TenantLeases(now time.Time, tenant string) (uint64, error) {
	sec, ok := seconds(now)
	if !ok {
		return 0, ErrClock
	}
	l.begin()
	th := fnvString(fnvOffset, tenant)
	id := tenantID(th)
	v, err := l.read(int(l.tenantBucket(th)), kindTenant, &id, sec)
	return v.leases, err
}

// tenantBucket is the key index of the bucket holding tenant hash th.
func (l *Limiter) tenantBucket(th uint64) uint32 {
	return 1 + uint32(th%uint64(l.cfg.TenantBuckets))
}

// read returns what key idx holds for entry id at now, from a Get made in
// the current operation (a record that does not decode counts as empty).
func (l *Limiter) read(idx int, kind uint8, id *[16]byte, now uint32) (view, error) {
	sl := &l.cache[l.slotOf(idx)]
	if !l.fresh(sl, idx) {
		if err := l.fetch(idx, now); err != nil {
			return view{}, err
		}
	}
	if decode(sl.val, kind, &l.in) != nil && !sl.missing {
		l.stats.Corrupt++
	}
	return look(&l.in, id, now), nil
}

// Release gives back the lease's slots, exactly once: a second call, a call
// on a lease never admitted, or a call at or after the lease's Expiry (its
// slots no longer count) is a no-op. The lease is marked released even when
// the store fails (the error is returned; the slots then expire by
// themselves at Expiry). Zero allocations in steady state.
func (l *Limiter) Release(now time.Time, lease *Lease) error {
	if lease == nil || lease.state != leaseAdmitted {
		return nil
	}
	lease.state = leaseReleased
	if lease.layout != l.layout || int(lease.cb) >= len(l.keys)-1 || int(lease.tb) >= len(l.keys)-1 {
		return ErrForeignLease
	}
	sec, ok := seconds(now)
	if !ok {
		return ErrClock
	}
	if sec >= lease.exp {
		return nil
	}
	l.begin()
	if err := l.prefetch(int(lease.cb), int(lease.tb), 0, sec); err != nil {
		l.stats.LeakedRelease++
		return err
	}
	ch := change{exp: lease.exp, now: sec, maxRate: l.cfg.RatePerMin, id: [16]byte(lease.ip)}
	err := l.rollback(int(lease.cb), kindClient, &ch)
	ch.id = tenantID(lease.tenant)
	if e := l.rollback(int(lease.tb), kindTenant, &ch); err == nil {
		err = e
	}
	ch.id = [16]byte{}
	if e := l.rollback(0, kindGlobal, &ch); err == nil {
		err = e
	}
	return err
}

func seconds(now time.Time) (uint32, bool) {
	u := now.Unix()
	if u <= 0 || u >= math.MaxUint32 {
		return 0, false
	}
	return uint32(u), true
}

func tenantID(h uint64) (id [16]byte) {
	for i := 0; i < 8; i++ {
		id[i] = byte(h >> (56 - 8*i))
	}
	return id
}

// rollback removes one lease of cohort ch.exp from the target entry of key
// idx (ch.add is ignored). A failure leaks the slot until its expiry.
func (l *Limiter) rollback(idx int, kind uint8, ch *change) error {
	rc := *ch
	rc.add = false
	rc.evict = -1
	r, err := l.apply(idx, kind, &rc)
	if r != None || err != nil {
		l.stats.LeakedRelease++
		if err == nil {
			err = errExhausted
		}
	}
	return err
}

var errNilLease = errors.New("limiter: nil lease")

var errExhausted = errors.New("limiter: store contention: retries exhausted")

// clientRefuses reports, from a fresh read, whether the client record would
// refuse ip (ip_limit); used only to order the reason of a refusal.
func (l *Limiter) clientRefuses(idx int, ip identity.Key, now uint32) bool {
	id := [16]byte(ip)
	w, err := l.read(idx, kindClient, &id, now)
	if err != nil {
		return false
	}
	return w.leases >= uint64(l.cfg.MaxPerIP) ||
		!w.found && w.entries >= l.cfg.BucketEntries && w.evict < 0
}

// decide applies the limit of kind to the target's view; for clients it
// may choose an entry to evict (ch.evict).
func (l *Limiter) decide(kind uint8, v *view, ch *change) Reason {
	ch.evict = -1
	switch kind {
	case kindGlobal:
		if v.leases >= uint64(l.cfg.MaxTotal) {
			return GlobalLimit
		}
	case kindTenant:
		if v.leases >= uint64(l.cfg.MaxPerTenant) || !v.found && v.entries >= l.cfg.BucketEntries {
			return TenantLimit
		}
	case kindClient:
		if v.leases >= uint64(l.cfg.MaxPerIP) {
			return IPLimit
		}
		if !ch.noRate && v.rate >= l.cfg.RatePerMin {
			return RateLimit
		}
		if !v.found && v.entries >= l.cfg.BucketEntries {
			if v.evict < 0 {
				return IPLimit
			}
			ch.evict = v.evict
		}
	}
	return None
}

// apply runs one read-modify-CAS-write of key idx: admit (ch.add) or release
// one lease of cohort ch.exp for entry ch.id. It returns None when written
// (or, releasing, when there was nothing to release), the refusing reason,
// or Busy (with the store error, if any) after MaxRetries Sets.
//
// Cached data is only used to attempt a write: a refusal, or a release with
// nothing to release, is always confirmed with a Get made in this operation.
func (l *Limiter) apply(idx int, kind uint8, ch *change) (Reason, error) {
	sl := &l.cache[l.slotOf(idx)]
	now := ch.now
	forceGet := false
	for sets := 0; sets < l.cfg.MaxRetries; {
		fresh := l.fresh(sl, idx)
		if !fresh && (forceGet || !l.usable(sl, idx, now)) {
			if err := l.fetch(idx, now); err != nil {
				return Busy, err
			}
			fresh = true
		}
		missing, guessed, cas := sl.missing, !sl.exact, sl.cas
		if decode(sl.val, kind, &l.in) != nil && !missing && fresh {
			l.stats.Corrupt++ // treated as empty, overwritten below (CAS-conditioned)
		}
		if ch.add {
			v := look(&l.in, &ch.id, now)
			if r := l.decide(kind, &v, ch); r != None {
				if !fresh {
					forceGet = true
					continue
				}
				return r, nil
			}
			rebuild(&l.in, &l.out, ch)
		} else if !rebuild(&l.in, &l.out, ch) {
			if !fresh {
				forceGet = true
				continue
			}
			return None, nil // nothing to release (expired, pruned or reset)
		}
		l.encBuf = encode(&l.out, now, l.encBuf)
		if missing {
			var err error
			if cas, err = l.createCas(now); err != nil {
				return Busy, err
			}
		}
		err := l.s.Set(l.keys[idx], l.encBuf, cas)
		l.stats.Sets++
		sets++
		switch err {
		case nil:
			if missing {
				l.stats.Creates++
			}
			if guessed {
				l.scoreHit(true)
			}
			l.wrote(sl, idx, now)
			return None, nil
		case ErrCasMismatch:
			l.stats.Mismatches++
			if guessed {
				l.stats.GuessMisses++
				l.scoreHit(false)
				l.missed = true
			}
			sl.key = 0
			forceGet = true
		default:
			sl.key = 0
			return Busy, err
		}
	}
	l.stats.Exhausted++
	return Busy, nil
}

// begin starts an Admit or Release.
func (l *Limiter) begin() {
	l.anchor = 0
	l.missed = false
	l.seq++
	if l.seq == 0 {
		l.seq = 1
	}
}

// prefetch reads, before any write, the keys whose cache cannot be used
// for writing, so the CAS lower bound is as recent as possible before the
// first Set (doc.go). A missing key is fine; another error is returned.
func (l *Limiter) prefetch(a, b, c int, now uint32) error {
	for _, idx := range [3]int{a, b, c} {
		sl := &l.cache[l.slotOf(idx)]
		if !l.fresh(sl, idx) && !l.usable(sl, idx, now) {
			if err := l.fetch(idx, now); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Limiter) slotOf(idx int) int {
	switch {
	case idx == 0:
		return 0
	case idx <= l.cfg.TenantBuckets:
		return 1 + (idx-1)%(cacheSlots/2-1)
	}
	return cacheSlots/2 + (idx-1-l.cfg.TenantBuckets)%(cacheSlots/2)
}

// fresh: the slot holds key idx as read by a Get in this operation.
func (l *Limiter) fresh(sl *slot, idx int) bool {
	return sl.key == int32(idx+1) && sl.exact && sl.seq == l.seq
}

// usable: the slot holds key idx, recent enough to attempt a write with;
// a predicted CAS only while predictions have been paying off.
func (l *Limiter) usable(sl *slot, idx int, now uint32) bool {
	return sl.key == int32(idx+1) && !sl.missing && now >= sl.at && now-sl.at <= cacheTTL &&
		(sl.exact || l.score > 0 && !l.missed)
}

func (l *Limiter) scoreHit(hit bool) {
	switch {
	case hit && l.score < 4:
		l.score++
	case !hit && l.score > -4:
		l.score--
	}
}

// fetch reads key idx into its cache slot (exact CAS, or missing).
func (l *Limiter) fetch(idx int, now uint32) error {
	sl := &l.cache[l.slotOf(idx)]
	v, c, err := l.s.Get(l.keys[idx], l.getBuf[:0])
	l.stats.Gets++
	if cap(v) > cap(l.getBuf) {
		l.getBuf = v[:0]
	}
	switch err {
	case nil:
	case ErrNotFound:
		sl.key, sl.exact, sl.missing, sl.cas, sl.at, sl.seq = int32(idx+1), true, true, 0, now, l.seq
		sl.val = sl.val[:0]
		return nil
	default:
		sl.key = 0
		return err
	}
	if sl.key == int32(idx+1) && !sl.exact && now >= sl.at && now-sl.at <= cacheTTL {
		l.scoreHit(c == sl.cas) // would the prediction have been right?
	}
	l.observe(c, now, len(v) >= 5 && recentStamp(v, now))
	sl.key, sl.exact, sl.missing, sl.cas, sl.at, sl.seq = int32(idx+1), true, false, c, now, l.seq
	sl.val = append(sl.val[:0], v...)
	return nil
}

// recentStamp reports whether the record's write stamp is within cacheTTL
// of now (then its CAS was assigned recently).
func recentStamp(v []byte, now uint32) bool {
	w := uint32(v[1]) | uint32(v[2])<<8 | uint32(v[3])<<16 | uint32(v[4])<<24
	return w <= now+1 && now-w <= cacheTTL
}

// observe raises the CAS lower bound with a CAS seen on a stored value;
// fresh says that value was written within cacheTTL.
func (l *Limiter) observe(c uint32, now uint32, fresh bool) {
	n := nextCas(c)
	if !l.lbOK || int32(n-l.lb) > 0 {
		l.lb, l.lbOK = n, true
	}
	if fresh {
		l.lbAt = now
	}
}

// wrote caches the value just written by a successful Set. Its CAS is
// unknown; while lb was anchored to a recent write, lb is a safe prediction
// (doc.go), otherwise the slot is dropped.
func (l *Limiter) wrote(sl *slot, idx int, now uint32) {
	if !l.lbOK || now < l.lbAt || now-l.lbAt > cacheTTL {
		sl.key = 0
	} else {
		sl.key, sl.exact, sl.missing, sl.cas, sl.at = int32(idx+1), false, false, l.lb, now
		sl.val = append(sl.val[:0], l.encBuf...)
	}
	if l.lbOK {
		l.lb = nextCas(l.lb) // our write took a CAS >= lb
	}
}

// createCas returns a CAS that cannot be the current CAS of any of our
// keys: that of a fresh write to the anchor key. A Set with it creates a
// missing key and fails with ErrCasMismatch if a rival created it first.
func (l *Limiter) createCas(now uint32) (uint32, error) {
	if l.anchor != 0 {
		return l.anchor, nil
	}
	k := len(l.keys) - 1
	err := l.s.Set(l.keys[k], anchorValue[:], 0)
	l.stats.Sets++
	if err != nil {
		return 0, err
	}
	_, c, err := l.s.Get(l.keys[k], l.getBuf[:0])
	l.stats.Gets++
	if err != nil {
		return 0, err
	}
	l.observe(c, now, true)
	l.anchor = c
	return c, nil
}

var anchorValue = [1]byte{formatVersion << 4}

func nextCas(c uint32) uint32 {
	c++
	if c == 0 {
		c = 1
	}
	return c
}

// FNV-1a 64: stable across VMs and processes (bucket choice must agree).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

func fnvUint(h uint64, v uint64) uint64 {
	for i := 0; i < 8; i++ {
		h ^= v & 0xff
		h *= fnvPrime
		v >>= 8
	}
	return h
}
