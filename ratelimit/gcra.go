package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate is a request rate: Limit requests per Period on average, and up to
// Burst at once after a quiet spell. The zero Rate (or Limit 0) disables
// limiting.
type Rate struct {
	Limit  int
	Period time.Duration
	Burst  int // bucket capacity; 0 means Limit
}

// PerSecond is Rate{Limit: n, Period: time.Second}.
func PerSecond(n int) Rate { return Rate{Limit: n, Period: time.Second} }

// Enabled reports whether r limits anything.
func (r Rate) Enabled() bool { return r.Limit > 0 && r.Period > 0 }

// burst is the bucket capacity, at least 1.
func (r Rate) burst() int {
	if r.Burst > 0 {
		return r.Burst
	}
	return max(r.Limit, 1)
}

// interval is the time one request "costs": the emission interval of GCRA,
// at least the microsecond both implementations count in (a zero interval
// would divide by zero in them).
func (r Rate) interval() time.Duration {
	return max(r.Period/time.Duration(r.Limit), time.Microsecond)
}

// String formats r the way ParseRate reads it ("200/s", "600/m:50", "0").
func (r Rate) String() string {
	if !r.Enabled() {
		return "0"
	}
	unit := r.Period.String()
	switch r.Period {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	}
	s := strconv.Itoa(r.Limit) + "/" + unit
	if r.Burst > 0 && r.Burst != r.Limit {
		s += ":" + strconv.Itoa(r.Burst)
	}
	return s
}

// ParseRate reads "N/s", "N/m", "N/h" or "N/<duration>" ("N/10s"), with an
// optional ":B" burst ("200/s:400"); "0", "off" and "" disable limiting.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || s == "off" {
		return Rate{}, nil
	}
	spec, burstText, hasBurst := strings.Cut(s, ":")
	n, unit, ok := strings.Cut(spec, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/s, N/m, N/h or N/<duration>, optionally :burst", s)
	}
	limit, err := strconv.Atoi(n)
	if err != nil || limit < 0 {
		return Rate{}, fmt.Errorf("rate %q: %q is not a request count", s, n)
	}
	var period time.Duration
	switch unit {
	case "s":
		period = time.Second
	case "m":
		period = time.Minute
	case "h":
		period = time.Hour
	default:
		if period, err = time.ParseDuration(unit); err != nil || period <= 0 {
			return Rate{}, fmt.Errorf("rate %q: %q is not a period", s, unit)
		}
	}
	r := Rate{Limit: limit, Period: period}
	if hasBurst {
		if r.Burst, err = strconv.Atoi(burstText); err != nil || r.Burst < 1 {
			return Rate{}, fmt.Errorf("rate %q: burst %q is not a positive count", s, burstText)
		}
	}
	if limit == 0 {
		return Rate{}, nil
	}
	if period/time.Duration(limit) < time.Microsecond {
		return Rate{}, fmt.Errorf("rate %q is too fast to measure: at most 1,000,000 per second", s)
	}
	return r, nil
}

// Decision is a limiter's answer for one request.
type Decision struct {
	Allowed bool
	// Limit is the bucket capacity (the burst), the figure of RateLimit-Limit.
	Limit int
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// ResetAfter is how long until the bucket is full again.
	ResetAfter time.Duration
	// RetryAfter is how long until the next request would be allowed; 0
	// when this one was.
	RetryAfter time.Duration
}

// Limiter decides whether a request under key may proceed at rate. Every
// implementation applies the same GCRA arithmetic, so an in-process limiter
// and a Redis one answer alike for the same history.
type Limiter interface {
	// Allow counts one request for key when it is allowed; a refused request
	// costs nothing. A disabled rate always allows.
	Allow(ctx context.Context, key string, rate Rate) (Decision, error)
}

// gcra is the arithmetic both implementations share, on microseconds: tat
// is the key's theoretical arrival time (0 for an unknown key). It returns
// the decision and the new tat to store (unchanged when refused).
func gcra(now, tat int64, rate Rate) (Decision, int64) {
	interval := rate.interval().Microseconds()
	burst := int64(rate.burst())
	tolerance := interval * burst
	tat = max(tat, now)
	next := tat + interval
	allowAt := next - tolerance
	d := Decision{Limit: int(burst)}
	if now < allowAt {
		d.RetryAfter = time.Duration(allowAt-now) * time.Microsecond
		d.ResetAfter = time.Duration(tat-now) * time.Microsecond
		return d, tat
	}
	d.Allowed = true
	d.Remaining = int((tolerance - (next - now)) / interval)
	d.ResetAfter = time.Duration(next-now) * time.Microsecond
	return d, next
}

// Memory is the in-process GCRA limiter: exact for one instance, and the
// fallback of the Redis limiter when Redis cannot answer.
type Memory struct {
	now func() time.Time

	mu     sync.Mutex
	tats   map[string]int64 // key → theoretical arrival time, µs since the epoch
	sweeps int
}

var _ Limiter = (*Memory)(nil)

// NewMemory returns an in-process limiter reading the clock now.
func NewMemory(now func() time.Time) *Memory {
	return &Memory{now: now, tats: map[string]int64{}}
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, rate Rate) (Decision, error) {
	if !rate.Enabled() {
		return Decision{Allowed: true}, nil
	}
	now := m.now().UnixMicro()
	m.mu.Lock()
	defer m.mu.Unlock()
	d, tat := gcra(now, m.tats[key], rate)
	m.tats[key] = tat
	m.sweepLocked(now)
	return d, nil
}

// sweepLocked forgets, now and then, keys whose bucket has refilled: their
// state equals a new key's, so memory is bounded by the keys active within
// one burst window.
func (m *Memory) sweepLocked(now int64) {
	m.sweeps++
	if m.sweeps%4096 != 0 {
		return
	}
	for k, tat := range m.tats {
		if tat <= now {
			delete(m.tats, k)
		}
	}
}

// Len returns how many keys the limiter holds (for tests and metrics).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tats)
}
