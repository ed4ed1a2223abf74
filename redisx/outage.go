package redisx

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Outage remembers that Redis failed, so that callers with a fallback (the
// database, an in-process counter) skip Redis for a pause instead of paying
// a timeout on every request while it is away. It logs transitions, not
// every failed call, and counts the calls that went to the fallback. The
// zero value is not usable; use NewOutage.
type Outage struct {
	name      string
	pause     time.Duration
	logger    *slog.Logger
	until     atomic.Int64 // unix nanoseconds; 0 while Redis is believed up
	fallbacks atomic.Uint64
}

// NewOutage returns a tracker for the named use of Redis ("sessions",
// "rate limits") that skips Redis for pause after a failure; a nil logger
// discards the transition logs.
func NewOutage(name string, pause time.Duration, logger *slog.Logger) *Outage {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Outage{name: name, pause: pause, logger: logger}
}

// Skip reports whether Redis should be skipped now; when it should, the
// call counts as a fallback.
func (o *Outage) Skip() bool {
	u := o.until.Load()
	if u != 0 && time.Now().UnixNano() < u {
		o.fallbacks.Add(1)
		return true
	}
	return false
}

// Failed records a failed Redis call, which the caller answers from its
// fallback, and starts (or extends) the pause.
func (o *Outage) Failed(err error) {
	o.fallbacks.Add(1)
	if o.until.Swap(time.Now().Add(o.pause).UnixNano()) == 0 {
		o.logger.Warn("redis unavailable; falling back", "use", o.name, "error", err.Error(), "retry_in", o.pause.String())
	}
}

// OK records a successful Redis call, ending an outage.
func (o *Outage) OK() {
	if o.until.Load() != 0 && o.until.Swap(0) != 0 {
		o.logger.Info("redis answers again", "use", o.name)
	}
}

// Fallbacks returns how many calls went to the fallback.
func (o *Outage) Fallbacks() uint64 { return o.fallbacks.Load() }
