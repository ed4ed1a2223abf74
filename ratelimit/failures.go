// Package ratelimit holds million's limiters: failure counters for logins
// and registrations (user.FailureLimiter) and GCRA request limits with an
// HTTP middleware. Each comes in-process (one instance) and on Redis (every
// instance shares the counters, atomic server-side scripts); the Redis ones
// fall back to the in-process ones when Redis cannot answer.
package ratelimit

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Rule allows Limit failures per Window for keys starting with Prefix.
type Rule struct {
	Prefix string
	Limit  int
	Window time.Duration
}

// Failures counts failures per key in fixed windows. It implements
// user.FailureLimiter for one instance.
type Failures struct {
	rules []Rule
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweeps  int
}

type bucket struct {
	start time.Time
	count int
}

// NewFailures returns a counter applying the first rule whose prefix matches a key.
func NewFailures(now func() time.Time, rules ...Rule) *Failures {
	return &Failures{rules: rules, now: now, buckets: map[string]*bucket{}}
}

func (f *Failures) rule(key string) (Rule, bool) {
	for _, r := range f.rules {
		if strings.HasPrefix(key, r.Prefix) {
			return r, true
		}
	}
	return Rule{}, false
}

// Blocked reports whether key reached its limit in the current window, the
// limit, and how long until the window ends.
func (f *Failures) Blocked(_ context.Context, key string) (bool, int, time.Duration, error) {
	r, ok := f.rule(key)
	if !ok {
		return false, 0, 0, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.buckets[key]
	now := f.now()
	if b == nil || now.Sub(b.start) >= r.Window {
		return false, r.Limit, 0, nil
	}
	if b.count >= r.Limit {
		return true, r.Limit, r.Window - now.Sub(b.start), nil
	}
	return false, r.Limit, 0, nil
}

// Fail records a failure for key.
func (f *Failures) Fail(_ context.Context, key string) error {
	r, ok := f.rule(key)
	if !ok {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	b := f.buckets[key]
	if b == nil || now.Sub(b.start) >= r.Window {
		b = &bucket{start: now}
		f.buckets[key] = b
	}
	b.count++
	f.sweepLocked(now)
	return nil
}

// Reset forgets key.
func (f *Failures) Reset(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.buckets, key)
	return nil
}

// sweepLocked drops expired buckets now and then, so memory stays bounded
// by the keys seen in one window.
func (f *Failures) sweepLocked(now time.Time) {
	f.sweeps++
	if f.sweeps%1024 != 0 {
		return
	}
	for k, b := range f.buckets {
		if r, ok := f.rule(k); ok && now.Sub(b.start) >= r.Window {
			delete(f.buckets, k)
		}
	}
}
