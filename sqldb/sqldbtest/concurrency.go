package sqldbtest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
)

// Concurrently calls fn(0) … fn(n-1) from n goroutines released at the same
// moment, so their statements race on the database, and returns how many
// calls reported true (the winners of a race that only some may win). An
// error from any call fails the test once all calls have returned, so no
// goroutine outlives it.
func Concurrently(t testing.TB, n int, fn func(i int) (bool, error)) int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		count int
		errs  []error
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			ok, err := fn(i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				count++
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%d of %d concurrent calls failed: %v", len(errs), n, err)
	}
	return count
}

// Gate returns a wait that holds each caller until n callers have reached it
// or d has passed since the first did. Transactions that wait at a gate
// before they read then read at the same moment, where the engine lets them
// (PostgreSQL): the interleaving a lost update or a double spend needs, so a
// store that forgets to lock fails the test instead of passing by luck.
// SQLite runs one write transaction at a time, so there the later callers
// cannot arrive and the wait ends after d instead.
func Gate(n int, d time.Duration) func() {
	var (
		mu      sync.Mutex
		arrived int
		open    = make(chan struct{})
		timer   *time.Timer
	)
	release := func() {
		select {
		case <-open:
		default:
			close(open)
		}
	}
	return func() {
		mu.Lock()
		arrived++
		if arrived == n {
			release()
		}
		if timer == nil {
			timer = time.AfterFunc(d, func() { mu.Lock(); defer mu.Unlock(); release() })
		}
		mu.Unlock()
		<-open
	}
}

// Stored is t as every store gives it back: the stores keep microseconds
// since the epoch, so a read returns t truncated to the microsecond, in UTC
// whatever zone it was written in.
func Stored(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

// WantFault fails the test now unless err is a *fault.Error of the given
// kind and, when code is not "", with that code ("" accepts any code).
func WantFault(t testing.TB, what string, err error, kind fault.Kind, code string) {
	t.Helper()
	if !fault.Is(err, kind) || (code != "" && !fault.HasCode(err, code)) {
		if code == "" {
			t.Fatalf("%s = %v, want fault %s", what, err, kind)
		}
		t.Fatalf("%s = %v, want fault %s with code %q", what, err, kind, code)
	}
}
