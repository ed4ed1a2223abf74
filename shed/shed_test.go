package shed

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a manual clock and CPU meter for deterministic decisions.
type clock struct {
	mu  sync.Mutex
	now time.Time
	cpu time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) CPU() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cpu
}

// advance moves wall time by d while the process uses share of its CPUs.
func (c *clock) advance(d time.Duration, share float64, procs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.cpu += time.Duration(float64(d) * share * float64(procs))
}

func newTestShedder(t *testing.T) (*Shedder, *clock, *cpuSampler) {
	t.Helper()
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	s := New(Options{Now: c.Now, CPU: c.CPU})
	return s, c, &cpuSampler{}
}

// fill records, for each 100 ms bucket of a second, perBucket finished
// requests that took rt each.
func fill(s *Shedder, c *clock, perBucket int, rt time.Duration) {
	for range 10 {
		end := c.Now().Add(50 * time.Millisecond)
		for range perBucket {
			s.record(end.Add(-rt), end)
		}
		c.advance(100*time.Millisecond, 0, 1)
	}
}

func TestMaxInFlightIsLittlesLaw(t *testing.T) {
	s, c, _ := newTestShedder(t)
	if _, known := s.MaxInFlight(); known {
		t.Fatal("a limit before any request finished")
	}
	// 100 requests per 100 ms bucket (1,000/s) at 20 ms each: 20 in flight.
	fill(s, c, 100, 20*time.Millisecond)
	limit, known := s.MaxInFlight()
	if !known || limit != 20 {
		t.Fatalf("MaxInFlight = %v, %v; want 20", limit, known)
	}
	// Buckets older than the window are forgotten.
	c.advance(6*time.Second, 0, 1)
	if _, known := s.MaxInFlight(); known {
		t.Fatal("a limit from buckets older than the window")
	}
}

func TestShedsOnlyWhenCPUBoundAndOverLimit(t *testing.T) {
	s, c, sampler := newTestShedder(t)
	fill(s, c, 100, 20*time.Millisecond)
	// 30 requests in flight, over the limit of 20, but the CPU is idle: a
	// slow dependency, not an overloaded instance. Everything passes.
	var dones []func(bool)
	for range 30 {
		done, err := s.Allow()
		if err != nil {
			t.Fatalf("refused with an idle CPU: %v", err)
		}
		dones = append(dones, done)
	}

	// The CPU saturates: requests beyond the limit are refused.
	for range 30 {
		c.advance(100*time.Millisecond, 1, gomaxprocs())
		s.sample(sampler)
	}
	if u := s.CPUUsage(); u < 0.9 {
		t.Fatalf("CPU usage %v after a saturated second", u)
	}
	if _, err := s.Allow(); err != ErrOverloaded {
		t.Fatalf("Allow at 30 in flight over a limit of 20 with the CPU saturated: %v", err)
	}
	if s.Dropped() != 1 {
		t.Fatalf("Dropped = %d", s.Dropped())
	}

	// Below the limit requests pass again even while hot.
	for _, d := range dones[:15] {
		d(true)
	}
	done, err := s.Allow()
	if err != nil {
		t.Fatalf("refused at %d in flight under a limit of 20: %v", s.InFlight(), err)
	}
	done(true)
	done(true) // a second call must not free another slot
	if got := s.InFlight(); got != 15 {
		t.Fatalf("InFlight = %d after a double done", got)
	}

	// After the CPU cools and the cool-off passes, nothing is refused even
	// over the limit.
	for range 40 {
		c.advance(100*time.Millisecond, 0, gomaxprocs())
		s.sample(sampler)
	}
	for range 20 {
		d, err := s.Allow()
		if err != nil {
			t.Fatalf("refused after the CPU cooled: %v", err)
		}
		defer d(true)
	}
}

func TestCoolOffKeepsSheddingThroughADip(t *testing.T) {
	s, c, sampler := newTestShedder(t)
	fill(s, c, 100, 20*time.Millisecond)
	for range 30 {
		c.advance(100*time.Millisecond, 1, gomaxprocs())
		s.sample(sampler)
	}
	for range 25 {
		if d, err := s.Allow(); err == nil {
			defer d(true)
		}
	}
	if s.Dropped() == 0 {
		t.Fatal("nothing refused over the limit with the CPU saturated")
	}
	// One idle sample drops the smoothed CPU below the threshold, but the
	// last refusal was just now: still shedding.
	c.advance(100*time.Millisecond, 0, gomaxprocs())
	s.sample(sampler)
	if s.CPUUsage() >= 0.9 {
		t.Fatalf("CPU usage %v did not dip", s.CPUUsage())
	}
	if _, err := s.Allow(); err != ErrOverloaded {
		t.Fatalf("not shedding within the cool-off: %v", err)
	}
	// Refusals within the cool-off do not extend it: once it has passed
	// since the last refusal made while overloaded, requests pass.
	for range 9 {
		c.advance(100*time.Millisecond, 0, gomaxprocs())
		s.sample(sampler)
		_, _ = s.Allow() // still within the cool-off: refused, or not
	}
	c.advance(150*time.Millisecond, 0, gomaxprocs())
	s.sample(sampler)
	if d, err := s.Allow(); err != nil {
		t.Fatalf("still shedding %v after the last refusal made while overloaded, with the CPU calm", time.Second)
	} else {
		d(true)
	}
}

func TestHandlerExemptsAndRefuses(t *testing.T) {
	s, c, sampler := newTestShedder(t)
	fill(s, c, 10, 10*time.Millisecond) // limit: 100/s × 10 ms = 1
	for range 30 {
		c.advance(100*time.Millisecond, 1, gomaxprocs())
		s.sample(sampler)
	}
	block := make(chan struct{})
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-block
		}
		w.WriteHeader(http.StatusNoContent)
	})
	refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	h := s.Handler(next, func(r *http.Request) bool { return r.URL.Path == "/readyz" }, refuse)

	// Slow requests fill the instance: a limit of 1, raised to one more
	// than the CPUs so that none idles.
	slots := gomaxprocs() + 1
	var wg sync.WaitGroup
	for range slots {
		wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/slow", nil)) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.InFlight() < int64(slots) {
		if time.Now().After(deadline) {
			t.Fatal("slow requests never got in flight")
		}
		time.Sleep(time.Millisecond)
	}
	// Over the limit, a request waits its MaxQueueDelay for a slot, and is
	// refused when none frees.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/fast", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("over the limit: %d %v", rec.Code, rec.Header())
	}
	// A request whose client has gone is dropped without an answer.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/fast", nil).WithContext(ctx))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || s.Abandoned() != 1 {
		t.Fatalf("a request of a client that left: %d %q, %d abandoned", rec.Code, rec.Body, s.Abandoned())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("health probe shed: %d", rec.Code)
	}
	close(block)
	wg.Wait()
	if s.InFlight() != 0 {
		t.Fatalf("InFlight = %d after all finished", s.InFlight())
	}
}

func TestHandlerFreesSlotOnPanic(t *testing.T) {
	s := New(Options{})
	h := s.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }), nil,
		http.NotFoundHandler())
	func() {
		defer func() { _ = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	if s.InFlight() != 0 {
		t.Fatalf("InFlight = %d after a panic", s.InFlight())
	}
}

func TestProcessCPUAdvances(t *testing.T) {
	start := processCPU()
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	if processCPU() <= start {
		t.Fatalf("process CPU did not advance over 50 ms of spinning (%d loops)", x)
	}
}

func gomaxprocs() int { return runtime.GOMAXPROCS(0) }

// TestSchedulerLatencyTriggersWhenCPUIsStolen: an instance that gets less
// CPU than GOMAXPROCS promises never shows 90 % CPU time, but its
// goroutines wait to run; that alone must let it shed, once the waits last.
func TestSchedulerLatencyTriggersWhenCPUIsStolen(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	var wait atomic.Int64
	s := New(Options{Now: c.Now, CPU: c.CPU, SchedLatencies: func() time.Duration { return time.Duration(wait.Load()) }})
	sampler := &cpuSampler{}
	fill(s, c, 100, 20*time.Millisecond)
	var dones []func(bool)
	for range 25 {
		d, err := s.Allow()
		if err != nil {
			t.Fatalf("refused before any wait: %v", err)
		}
		dones = append(dones, d)
	}
	defer func() {
		for _, d := range dones {
			d(true)
		}
	}()

	// One long wait is smoothed away: not yet overloaded.
	wait.Store(int64(40 * time.Millisecond))
	c.advance(100*time.Millisecond, 0.5, gomaxprocs())
	s.sample(sampler)
	if _, err := s.Allow(); err != nil {
		t.Fatalf("one slow sample shed requests (smoothed wait %v)", s.SchedLatencyP90())
	} else {
		s.inFlight.Add(-1)
	}
	// Lasting waits at half the CPU: shedding over the limit.
	for range 10 {
		c.advance(100*time.Millisecond, 0.5, gomaxprocs())
		s.sample(sampler)
	}
	if s.CPUUsage() >= 0.9 {
		t.Fatalf("CPU usage %v; the test wants it under the threshold", s.CPUUsage())
	}
	if _, err := s.Allow(); err != ErrOverloaded {
		t.Fatalf("not shedding with goroutines waiting %v to run: %v", s.SchedLatencyP90(), err)
	}
}

func TestSchedLatencyP90ReadsTheRuntime(t *testing.T) {
	var c cpuSampler
	if got := c.schedLatencyP90(); got != 0 {
		t.Fatalf("first reading %v; want 0 (no interval yet)", got)
	}
	// Goroutines spun longer than a time slice with more of them than
	// CPUs: some waited, so the interval has a non-zero percentile. Other
	// goroutines of the test binary (the race detector's, the testing
	// package's) can now and then outnumber the waits in one interval, so
	// a few intervals are tried; a reader that never sees a wait fails all.
	var got time.Duration
	for range 10 {
		var wg sync.WaitGroup
		for range 4 * gomaxprocs() {
			wg.Go(func() {
				deadline := time.Now().Add(100 * time.Millisecond)
				for time.Now().Before(deadline) {
				}
			})
		}
		wg.Wait()
		if got = c.schedLatencyP90(); got > 0 {
			return
		}
	}
	t.Fatalf("p90 scheduling latency %v in each of 10 intervals after CPU-bound goroutines outnumbered the CPUs", got)
}

// TestRefusesWhileTheRunQueueIsLong: with the CPU saturated and one request
// in flight at a time (handlers that never block, so the in-flight limit
// never binds), requests are refused while more goroutines wait for a CPU
// than the instance finishes in MaxQueueDelay, and admitted again once the
// queue is short; an idle CPU refuses nothing whatever the count says.
func TestRefusesWhileTheRunQueueIsLong(t *testing.T) {
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	runnable := new(atomic.Int64)
	counts := new(atomic.Int64)
	s := New(Options{Now: c.Now, CPU: c.CPU, Runnable: func() int64 { counts.Add(1); return runnable.Load() },
		// Scheduling latency is the other overload signal; kept at zero so
		// that CPU use alone decides here.
		SchedLatencies: func() time.Duration { return 0 }})
	sampler := &cpuSampler{}
	// 40 requests of 2 ms finished per 100 ms bucket: 40 in the default
	// MaxQueueDelay of 100 ms.
	fill(s, c, 40, 2*time.Millisecond)
	s.sizeQueue()
	if s.MaxQueue() != 40 {
		t.Fatalf("MaxQueue = %d after 40 requests per 100 ms; want 40", s.MaxQueue())
	}
	runnable.Store(1000)
	if d, err := s.Allow(); err != nil {
		t.Fatalf("refused with an idle CPU and %d runnable goroutines: %v", runnable.Load(), err)
	} else {
		d(true)
	}
	if counts.Load() != 0 {
		t.Fatalf("an instance that is not overloaded counted its goroutines %d times", counts.Load())
	}
	for range 30 {
		c.advance(100*time.Millisecond, 1, gomaxprocs())
		s.sample(sampler)
	}
	if u := s.CPUUsage(); u < 0.9 {
		t.Fatalf("CPU usage %v after 3 saturated seconds", u)
	}
	fill(s, c, 40, 2*time.Millisecond) // the window moved on
	s.sizeQueue()
	limit := s.MaxQueue()
	for _, tc := range []struct {
		runnable int64
		refused  bool
	}{{limit + 1, true}, {10 * limit, true}, {limit, false}, {0, false}} {
		runnable.Store(tc.runnable)
		c.advance(queueCountEvery, 1, gomaxprocs()) // the last count is old enough to take again
		d, err := s.Allow()
		if refused := err == ErrOverloaded; refused != tc.refused {
			t.Fatalf("with the CPU saturated and %d goroutines runnable (limit %d): refused = %v, want %v",
				tc.runnable, limit, refused, tc.refused)
		}
		if d != nil {
			d(true)
		}
	}
	// Within a millisecond of a count, requests reuse it.
	before := counts.Load()
	for range 100 {
		if d, err := s.Allow(); err == nil {
			d(true)
		}
	}
	if counts.Load() != before {
		t.Fatalf("%d counts for 100 requests within a millisecond, want none", counts.Load()-before)
	}
}

// TestRunnableGoroutinesReadsTheRuntime: with more CPU-bound goroutines
// than CPUs, the runtime's count of runnable goroutines is seen above zero.
func TestRunnableGoroutinesReadsTheRuntime(t *testing.T) {
	count := runnableGoroutines()
	var seen int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 * gomaxprocs() {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	deadline := time.Now().Add(2 * time.Second)
	for seen == 0 && time.Now().Before(deadline) {
		seen = max(seen, count())
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if seen == 0 {
		t.Fatalf("no runnable goroutine counted in 2 s with %d spinning on %d CPUs", 4*gomaxprocs(), gomaxprocs())
	}
}

// BenchmarkRunnableGoroutines is the cost of one count of the runnable
// goroutines, which an overloaded instance takes at most every millisecond.
func BenchmarkRunnableGoroutines(b *testing.B) {
	count := runnableGoroutines()
	for b.Loop() {
		count()
	}
}

// hotShedder returns a shedder whose CPU is saturated and whose in-flight
// limit is one more than the CPUs, with a queue of queueLen and the given
// MaxQueueDelay, and the done functions of requests filling its slots.
func hotShedder(t *testing.T, queueLen int64, delay time.Duration) (*Shedder, []func(bool)) {
	t.Helper()
	s, _, _, slots := hotShedderOnClock(t, queueLen, delay)
	return s, slots
}

// hotShedderOnClock is hotShedder that also returns the shedder's clock
// and CPU sampler.
func hotShedderOnClock(t *testing.T, queueLen int64, delay time.Duration) (*Shedder, *clock, *cpuSampler, []func(bool)) {
	t.Helper()
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	s := New(Options{Now: c.Now, CPU: c.CPU, MaxQueueDelay: delay,
		Runnable: func() int64 { return 0 }, SchedLatencies: func() time.Duration { return 0 }})
	sampler := &cpuSampler{}
	fill(s, c, 10, 10*time.Millisecond) // limit: 100/s × 10 ms = 1
	for range 30 {
		c.advance(100*time.Millisecond, 1, gomaxprocs())
		s.sample(sampler)
	}
	fill(s, c, 10, 10*time.Millisecond) // the window moved on
	s.maxQueue.Store(queueLen)
	var slots []func(bool)
	for range gomaxprocs() + 1 {
		done, err := s.Admit(context.Background())
		if err != nil {
			t.Fatalf("refused below the limit: %v", err)
		}
		slots = append(slots, done)
	}
	return s, c, sampler, slots
}

// queueUp starts Admit on its own goroutine, returns once it is queued,
// and delivers its result on the channel.
func queueUp(t *testing.T, s *Shedder, ctx context.Context) <-chan error {
	t.Helper()
	before := s.Queued()
	result := make(chan error, 1)
	go func() {
		done, err := s.Admit(ctx)
		if err == nil {
			done(true)
		}
		result <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); s.Queued() == before; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request never queued")
		}
	}
	return result
}

// TestAdmitQueuesForTheNextFreeSlot: over the limit of an overloaded
// instance, requests wait and take the slots of finishing requests in the
// order they came, without the in-flight count ever passing the limit.
func TestAdmitQueuesForTheNextFreeSlot(t *testing.T) {
	s, slots := hotShedder(t, 8, time.Minute)
	limit := s.InFlight()
	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 3 {
		before := s.Queued()
		wg.Go(func() {
			done, err := s.Admit(context.Background())
			if err != nil {
				t.Errorf("queued request %d refused: %v", i, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			done(true)
		})
		for deadline := time.Now().Add(5 * time.Second); s.Queued() == before; time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatalf("request %d never queued", i)
			}
		}
	}
	if _, err := s.Allow(); err != ErrOverloaded {
		t.Fatalf("Allow with requests queued: %v, want ErrOverloaded (it never waits)", err)
	}
	// One slot frees: it passes down the queue (each queued request
	// finishes at once and hands it on), and the others stay in flight.
	slots[0](true)
	wg.Wait()
	if len(order) != 3 || order[0] != 0 || order[1] != 1 || order[2] != 2 {
		t.Fatalf("served in order %v, want [0 1 2]", order)
	}
	if got := s.InFlight(); got != limit-1 {
		t.Fatalf("InFlight = %d after one of %d finished and the queue drained", got, limit)
	}
	for _, done := range slots[1:] {
		done(true)
	}
	if s.InFlight() != 0 || s.Queued() != 0 {
		t.Fatalf("InFlight = %d, Queued = %d after everything finished", s.InFlight(), s.Queued())
	}
}

// TestAdmitWaitsAtMostMaxQueueDelay: a queued request is refused once
// MaxQueueDelay passes without a free slot on an instance still
// overloaded.
func TestAdmitWaitsAtMostMaxQueueDelay(t *testing.T) {
	const delay = 50 * time.Millisecond
	s, slots := hotShedder(t, 8, delay)
	start := time.Now()
	if _, err := s.Admit(context.Background()); err != ErrOverloaded {
		t.Fatalf("Admit with every slot busy: %v, want ErrOverloaded", err)
	}
	if waited := time.Since(start); waited < delay {
		t.Fatalf("refused after %v, before MaxQueueDelay (%v)", waited, delay)
	}
	if s.Dropped() != 1 || s.Queued() != 0 {
		t.Fatalf("Dropped = %d, Queued = %d after a wait that ran out", s.Dropped(), s.Queued())
	}

	for _, done := range slots {
		done(true)
	}
}

// TestAdmitDropsAQueuedRequestWhoseClientLeft: a request whose client
// leaves while it waits goes at once, counted as abandoned rather than
// refused, and keeps no slot.
func TestAdmitDropsAQueuedRequestWhoseClientLeft(t *testing.T) {
	s, slots := hotShedder(t, 8, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	result := queueUp(t, s, ctx)
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("Admit after its client left: %v, want context.Canceled", err)
	}
	if s.Abandoned() != 1 || s.Dropped() != 0 || s.Queued() != 0 {
		t.Fatalf("Abandoned = %d, Dropped = %d, Queued = %d after a client left the queue", s.Abandoned(), s.Dropped(), s.Queued())
	}
	for _, done := range slots {
		done(true)
	}
	if s.InFlight() != 0 {
		t.Fatalf("InFlight = %d: a request that left the queue kept a slot", s.InFlight())
	}
}

// TestAdmitRunsAQueuedRequestOnceTheOverloadIsOver: a request still queued
// when its wait ends on an instance that has calmed down (CPU low, cool-off
// over: a slow dependency now holds the slots) runs instead of being
// refused, and its wait does not restart the cool-off.
func TestAdmitRunsAQueuedRequestOnceTheOverloadIsOver(t *testing.T) {
	s, c, sampler, slots := hotShedderOnClock(t, 8, time.Second)
	// Queued while overloaded; the CPU then calms down and the cool-off
	// passes before the wait ends.
	s.lastDrop.Store(c.Now().UnixNano())
	result := queueUp(t, s, context.Background())
	for range 30 {
		c.advance(100*time.Millisecond, 0, gomaxprocs())
		s.sample(sampler)
	}
	if err := <-result; err != nil {
		t.Fatalf("a request queued before the overload ended: %v", err)
	}
	if s.Dropped() != 0 || s.stillHot() {
		t.Fatalf("Dropped = %d, still hot = %v: the wait counted as a refusal", s.Dropped(), s.stillHot())
	}
	for _, done := range slots {
		done(true)
	}
	if s.InFlight() != 0 {
		t.Fatalf("InFlight = %d after everything finished", s.InFlight())
	}
}

// TestAdmitRefusesAtOnceWhenTheQueueIsFull: the queue holds what the
// instance finishes in MaxQueueDelay; the request after that is refused
// without waiting.
func TestAdmitRefusesAtOnceWhenTheQueueIsFull(t *testing.T) {
	s, slots := hotShedder(t, minQueue, time.Minute)
	var queued []<-chan error
	for range minQueue {
		queued = append(queued, queueUp(t, s, context.Background()))
	}
	start := time.Now()
	if _, err := s.Admit(context.Background()); err != ErrOverloaded {
		t.Fatalf("Admit with the queue full: %v, want ErrOverloaded", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("refused after %v: it waited", waited)
	}
	for _, done := range slots {
		done(true)
	}
	for i, result := range queued {
		if err := <-result; err != nil {
			t.Fatalf("queued request %d: %v", i, err)
		}
	}
	if s.InFlight() != 0 || s.Queued() != 0 {
		t.Fatalf("InFlight = %d, Queued = %d after everything finished", s.InFlight(), s.Queued())
	}
}

// TestAdmitUnderContention: many requests admitted, queued, timed out and
// abandoned at once (under -race) never pass the in-flight limit and leak
// no slot: every request is counted once, and everything ends at zero.
func TestAdmitUnderContention(t *testing.T) {
	s, slots := hotShedder(t, 16, 2*time.Millisecond)
	limit := s.InFlight()
	for _, done := range slots {
		done(true)
	}
	var over atomic.Int64
	var admitted, refused, abandoned atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 200 {
				ctx, cancel := context.WithCancel(context.Background())
				if (g+i)%7 == 0 {
					cancel()
				}
				done, err := s.Admit(ctx)
				cancel()
				switch {
				case err == nil:
					admitted.Add(1)
					if n := s.InFlight(); n > limit {
						over.Store(n)
					}
					time.Sleep(50 * time.Microsecond)
					done(i%5 != 0)
				case errors.Is(err, ErrOverloaded):
					refused.Add(1)
				default:
					abandoned.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if over.Load() != 0 {
		t.Fatalf("%d in flight over a limit of %d", over.Load(), limit)
	}
	if total := admitted.Load() + refused.Load() + abandoned.Load(); total != 32*200 {
		t.Fatalf("%d outcomes for %d requests", total, 32*200)
	}
	if admitted.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("%d admitted, %d refused: the test did not contend", admitted.Load(), refused.Load())
	}
	if s.InFlight() != 0 || s.Queued() != 0 {
		t.Fatalf("InFlight = %d, Queued = %d after everything finished", s.InFlight(), s.Queued())
	}
	if s.Dropped() != refused.Load() || s.Passed() != int64(len(slots))+admitted.Load() {
		t.Fatalf("Dropped = %d for %d refusals, Passed = %d for %d admissions", s.Dropped(), refused.Load(), s.Passed(), int64(len(slots))+admitted.Load())
	}
}
