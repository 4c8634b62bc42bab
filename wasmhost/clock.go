package wasmhost

import (
	"sync"
	"time"
)

// Clock is a manual clock shared by a Host and its VMs: proxy time
// (proxy_get_current_time_nanoseconds), tick scheduling and — with
// WASIClockFollow — the guest's WASI clocks. Safe for concurrent use.
type Clock struct {
	mu   sync.Mutex
	now  time.Time
	real bool
}

// NewClock returns a clock stopped at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// RealClock returns a clock that follows real time (for serving, as in
// Envoy): Now is time.Now; Advance and Set do nothing.
func RealClock() *Clock { return &Clock{real: true} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	if c.real {
		return time.Now()
	}
	c.mu.Lock()
	t := c.now
	c.mu.Unlock()
	return t
}

// Advance moves the clock forward by d (negative d is ignored).
func (c *Clock) Advance(d time.Duration) {
	if d <= 0 || c.real {
		return
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t (backwards too; WASI monotonic time never goes back).
func (c *Clock) Set(t time.Time) {
	if c.real {
		return
	}
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// WASIClockMode chooses what the guest's WASI clock_time_get reports.
type WASIClockMode int

const (
	// WASIClockHost (default): realtime and monotonic come from the host's
	// real clocks, as in Envoy. The guest's time.Now does not follow a
	// controlled Clock.
	WASIClockHost WASIClockMode = iota
	// WASIClockFollow: realtime is the controlled Clock; monotonic is the
	// Clock's time since the VM started (never decreasing), so the guest's
	// time.Now and time.Since follow the test's clock. Emulator-only: Envoy
	// has no such mode.
	WASIClockFollow
)
