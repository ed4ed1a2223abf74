package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

type otherKey struct{}

func newRequestContext(parent context.Context, timeout time.Duration) *requestContext {
	c := &requestContext{Context: parent, id: "req-1", clientIP: "192.0.2.7"}
	if timeout > 0 {
		c.deadline = time.Now().Add(timeout)
	}
	return c
}

func TestRequestContextValues(t *testing.T) {
	t.Parallel()
	parent := context.WithValue(context.Background(), otherKey{}, "kept")
	c := newRequestContext(parent, time.Minute)
	defer c.end()
	if got := RequestIDFrom(c); got != "req-1" {
		t.Errorf("request ID %q", got)
	}
	if got := ClientIPFrom(c); got != "192.0.2.7" {
		t.Errorf("client IP %q", got)
	}
	if got := c.Value(otherKey{}); got != "kept" {
		t.Errorf("a parent's value reads %v", got)
	}
	if _, ok := PrincipalFrom(c); ok {
		t.Error("a principal appeared from nowhere")
	}
}

func TestRequestContextDeadlineIsTheEarlier(t *testing.T) {
	t.Parallel()
	c := newRequestContext(context.Background(), time.Minute)
	if d, ok := c.Deadline(); !ok || time.Until(d) < 59*time.Second {
		t.Errorf("deadline %v %v, want a minute from now", d, ok)
	}
	parent, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	want, _ := parent.Deadline()
	c = newRequestContext(parent, time.Minute)
	if d, ok := c.Deadline(); !ok || !d.Equal(want) {
		t.Errorf("deadline %v %v, want the parent's %v", d, ok, want)
	}
	c = newRequestContext(context.Background(), 0)
	if _, ok := c.Deadline(); ok {
		t.Error("a context without a timeout has a deadline")
	}
	if c.Done() != nil || c.Err() != nil {
		t.Error("a context without a timeout or parent signal is done")
	}
}

func TestRequestContextExpires(t *testing.T) {
	t.Parallel()
	c := newRequestContext(context.Background(), 20*time.Millisecond)
	defer c.end()
	if c.Err() != nil {
		t.Fatal("done before its deadline")
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline never fired")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(c), context.DeadlineExceeded) {
		t.Errorf("Err %v, Cause %v; want deadline exceeded", c.Err(), context.Cause(c))
	}
	// Asked only after its deadline, it is already expired.
	late := newRequestContext(context.Background(), time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if !errors.Is(late.Err(), context.DeadlineExceeded) {
		t.Errorf("past its deadline, Err is %v", late.Err())
	}
}

func TestRequestContextFollowsItsParentAndEnds(t *testing.T) {
	t.Parallel()
	parent, cancel := context.WithCancel(context.Background())
	c := newRequestContext(parent, time.Minute)
	done := c.Done()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the parent's cancellation did not reach the request")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Errorf("Err %v, want canceled", c.Err())
	}
	c.end()

	// A request that never needed its deadline is cancelled once it ends,
	// and so is one that did.
	for _, arm := range []bool{false, true} {
		c := newRequestContext(context.Background(), time.Minute)
		if arm {
			_ = c.Done()
		}
		c.end()
		select {
		case <-c.Done():
		default:
			t.Fatalf("armed %v: not done after end", arm)
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Errorf("armed %v: Err %v after end, want canceled", arm, c.Err())
		}
	}
}

func TestRequestContextChildrenNeedNoGoroutine(t *testing.T) {
	c := newRequestContext(context.Background(), 50*time.Millisecond)
	defer c.end()
	before := runtime.NumGoroutine()
	children := make([]context.Context, 200)
	for i := range children {
		child, cancel := context.WithCancel(c)
		defer cancel()
		children[i] = child
	}
	if n := runtime.NumGoroutine() - before; n > 10 {
		t.Errorf("200 children started %d goroutines", n)
	}
	for _, child := range children {
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a child outlived the request's deadline")
		}
		if !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Fatalf("child Err %v, want deadline exceeded", child.Err())
		}
	}
}

func TestRequestContextConcurrentUse(t *testing.T) {
	t.Parallel()
	for range 50 {
		c := newRequestContext(context.Background(), time.Minute)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				_ = c.Done()
				_ = c.Err()
				_, _ = c.Deadline()
			})
		}
		wg.Go(c.end)
		wg.Wait()
		c.end()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err %v after end, want canceled", c.Err())
		}
	}
}

func TestMiddlewareSetsTheRequestDeadline(t *testing.T) {
	t.Parallel()
	var deadline time.Time
	var ok bool
	var during error
	var ctx context.Context
	h := Middleware(nil, MiddlewareOptions{Timeout: 3 * time.Second}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx = r.Context()
		deadline, ok = ctx.Deadline()
		during = ctx.Err()
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if left := time.Until(deadline); !ok || left <= 2*time.Second || left > 3*time.Second {
		t.Errorf("deadline in %v (%v), want about 3 s", left, ok)
	}
	if during != nil {
		t.Errorf("Err during the request: %v", during)
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("after the request its context is %v, want canceled", ctx.Err())
	}
}
