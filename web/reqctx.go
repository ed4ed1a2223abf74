package web

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// requestContext is the context the middleware gives each request: the
// connection's context plus the request ID, the client IP and the request
// deadline, in one allocation. The deadline's timer is only started when
// something asks for Done or Err (a database call, a wait): a request
// answered from memory never needs it, and arming and stopping a timer was
// about 5 % of a cached product GET's CPU.
type requestContext struct {
	context.Context // the connection's context
	id, clientIP    string
	start           time.Time    // when the middleware took the request
	deadline        time.Time    // zero: none beyond the parent's
	writer          statusWriter // the response's, in the same allocation
	idHeader        [1]string    // the X-Request-Id header's value, in the same allocation

	once   sync.Once
	timed  context.Context // the parent with the deadline, made on first need
	cancel context.CancelFunc
}

var _ interface {
	AfterFunc(func()) func() bool
} = (*requestContext)(nil)

// endedContext stands for a request's context once the request is over:
// cancelled, as a context from WithTimeout is after its cancel function.
var endedContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Value implements context.Context.
func (c *requestContext) Value(key any) any {
	switch key {
	case requestIDKey:
		return c.id
	case clientIPKey:
		return c.clientIP
	}
	return c.Context.Value(key)
}

// Deadline implements context.Context.
func (c *requestContext) Deadline() (time.Time, bool) {
	parent, ok := c.Context.Deadline()
	if c.deadline.IsZero() || ok && parent.Before(c.deadline) {
		return parent, ok
	}
	return c.deadline, true
}

// signal is the context whose Done and Err are this one's.
func (c *requestContext) signal() context.Context {
	if c.deadline.IsZero() {
		return c.Context
	}
	c.once.Do(func() { c.timed, c.cancel = context.WithDeadline(c.Context, c.deadline) })
	return c.timed
}

// Done implements context.Context.
func (c *requestContext) Done() <-chan struct{} { return c.signal().Done() }

// Err implements context.Context.
func (c *requestContext) Err() error { return c.signal().Err() }

// AfterFunc lets context.WithCancel and its kin register children without
// a goroutine each, as they do under the standard contexts.
func (c *requestContext) AfterFunc(f func()) func() bool { return context.AfterFunc(c.signal(), f) }

// end releases the deadline's timer; afterwards the context is cancelled.
func (c *requestContext) end() {
	c.once.Do(func() { c.timed = endedContext })
	if c.cancel != nil {
		c.cancel()
	}
}

// requestStart is when the middleware took r, or now for a request that
// did not pass through it: one clock read serves the access log and the
// route's latency.
func requestStart(r *http.Request) time.Time {
	if rc, ok := r.Context().(*requestContext); ok {
		return rc.start
	}
	return time.Now()
}
