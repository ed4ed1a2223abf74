package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/events"
	"github.com/millionshop/million/events/natstest"
)

// runs records when each instance ran the job.
type runs struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (r *runs) add(who string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at[who] = append(r.at[who], time.Now())
}

func (r *runs) get(who string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at[who]...)
}

// TestExclusiveRunsOnOneInstance: three instances sharing one external
// server run a periodic job one at a time. The holder runs it every
// interval and the others never; when the holder stops, another takes
// over at once; when the holder loses its connection (a dead instance),
// another takes over after the lease expires, and the old holder has
// stopped running it before then.
func TestExclusiveRunsOnOneInstance(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	const ttl = 1500 * time.Millisecond
	r := &runs{at: map[string][]time.Time{}}
	type instance struct {
		b      *events.Broker
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(who string) *instance {
		b, err := events.Open(context.Background(), events.Options{URL: srv.URL(), LeaseTTL: ttl, Timeout: time.Second, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		in := &instance{b: b, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(in.done)
			b.Exclusive(ctx, "job", 50*time.Millisecond, func(context.Context) error { r.add(who); return nil })
		}()
		t.Cleanup(func() { cancel(); <-in.done; b.Close() })
		return in
	}
	a, b := start("a"), start("b")
	eventually(t, 10*time.Second, "one instance runs the job several times", func() bool {
		return len(r.get("a")) >= 5 || len(r.get("b")) >= 5
	})
	holder, other, otherName := a, b, "b"
	if len(r.get("b")) >= 5 {
		holder, other, otherName = b, a, "a"
	}
	if n := len(r.get(otherName)); n != 0 {
		t.Fatalf("both instances ran the job (the other %d times)", n)
	}

	// A clean stop releases the lease: the other takes over well within the TTL.
	holder.cancel()
	<-holder.done
	stopped := time.Now()
	eventually(t, ttl, "the other instance takes over after a clean stop", func() bool { return len(r.get(otherName)) > 0 })
	t.Logf("takeover after a clean stop: %s", time.Since(stopped))

	// A dead holder (connection gone, nothing released): a third instance
	// takes over once the lease expired, after the old holder stopped.
	start("c")
	time.Sleep(300 * time.Millisecond) // c is contending and must not run
	if n := len(r.get("c")); n != 0 {
		t.Fatalf("a contender ran the job %d times while the holder was alive", n)
	}
	other.b.Close()
	died := time.Now()
	eventually(t, 4*ttl, "a contender takes over from a dead holder", func() bool { return len(r.get("c")) > 0 })
	first := r.get("c")[0]
	last := r.get(otherName)
	if lastRun := last[len(last)-1]; !lastRun.Before(first) {
		t.Fatalf("the dead holder ran at %v, after the new holder's first run at %v", lastRun, first)
	}
	t.Logf("takeover from a dead holder: %s", first.Sub(died))
}

// TestExclusiveRunEndsBeforeTheLease: a run that would outlast its lease
// sees its context end before the lease could expire, so that no other
// instance takes over while it still runs.
func TestExclusiveRunEndsBeforeTheLease(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	const ttl = 1500 * time.Millisecond
	b, err := events.Open(context.Background(), events.Options{URL: srv.URL(), LeaseTTL: ttl, Timeout: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan time.Duration, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Exclusive(ctx, "long-job", time.Hour, func(ctx context.Context) error {
			start := time.Now()
			if _, ok := ctx.Deadline(); !ok {
				ran <- -1
				return nil
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * ttl):
			}
			ran <- time.Since(start)
			return ctx.Err()
		})
	}()
	select {
	case took := <-ran:
		if took < 0 || took >= ttl {
			t.Fatalf("a run of a job whose lease lasts %v went on for %v (negative: no deadline)", ttl, took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the job never ran")
	}
	cancel()
	<-done
}
