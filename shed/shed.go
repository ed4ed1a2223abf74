// Package shed is adaptive load shedding: when an instance has more work
// than it can finish in time, new requests are refused quickly with 503 and
// Retry-After instead of queueing without bound behind the others.
// Refusing early keeps goodput near capacity under overload; an unbounded
// queue would make every request late, so that clients time out and retry
// and nobody is served.
//
// The in-flight limit is go-zero's adaptive shedder. The instance tracks,
// over a rolling window, the most requests it finished in one bucket
// (maxPass) and the lowest mean latency of a bucket (minRT). By Little's
// law maxPass × buckets-per-second × minRT is how much work it can have in
// flight while keeping up. When the process's CPU use is above the
// threshold (or it shed within the cool-off), a request that would put more
// than that in flight (and at least one more than there are CPUs) waits.
//
// Unlike go-zero's, the request over the limit is not refused at once: it
// waits, parked, in a short first-come first-served queue (while the
// instance is overloaded: once it has calmed down, new requests start at
// once) and takes the slot of the next request to finish. Refusing it
// would leave the CPU idle from the moment a request finishes until the
// next one arrives below the limit: on one CPU with millisecond requests,
// a fifth of the capacity at twice the load. The queue holds what the instance finishes in
// MaxQueueDelay at its best (from the window's throughput, so the mix of
// cheap and costly requests it actually serves sets the size) and nobody
// waits in it longer than MaxQueueDelay: beyond that a request is refused
// if the instance is still overloaded.
//
// The trigger is CPU, not latency alone, because latency cannot tell a slow
// dependency from an overloaded instance, and shedding does not help the
// former. CPU is seen two ways: the process's CPU time against GOMAXPROCS
// (go-zero's signal), and the Go scheduler's latency, how long runnable
// goroutines waited for a CPU. The second also catches an instance that
// gets less CPU than GOMAXPROCS promises (a busy neighbour, a cgroup
// quota), where CPU time never reaches the threshold although every
// request waits.
//
// Requests also queue where the shedder cannot see them: as goroutines of
// connections whose requests arrived and that wait, runnable, for a CPU to
// read and parse them, refusals included. Every request then waits behind
// all of them, and once the wait nears the clients' timeout even a refusal
// comes too late to help. So an overloaded instance also refuses while more
// goroutines are runnable than fit in its queue; the count is read from the
// runtime at most every millisecond, and only while overloaded.
package shed

import (
	"container/list"
	"context"
	"errors"
	"math"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrOverloaded is returned by Allow and Admit when a request must be
// refused.
var ErrOverloaded = errors.New("shed: instance overloaded")

// Options tune a Shedder. Zero values mean the defaults.
type Options struct {
	// CPUThreshold is the share of the process's CPUs (GOMAXPROCS) above
	// which the instance counts as overloaded; default 0.9.
	CPUThreshold float64
	// Window is how far back maxPass and minRT look; default 5 s.
	Window time.Duration
	// Buckets splits the window; default 50 (100 ms each).
	Buckets int
	// CoolOff keeps shedding possible for this long after the last refusal
	// even when CPU dips, so the shedder does not flap; default 1 s.
	CoolOff time.Duration
	// SchedLatency is the 90th percentile of goroutine scheduling latency
	// over one sample above which the instance counts as CPU-starved;
	// default 10 ms.
	SchedLatency time.Duration
	// SampleEvery is the CPU sampling interval; default 100 ms.
	SampleEvery time.Duration
	// CPU returns the CPU time the process has used so far; default
	// getrusage(RUSAGE_SELF). Tests replace it.
	CPU func() time.Duration
	// SchedLatencies, when set, replaces the scheduler-latency reading
	// (tests).
	SchedLatencies func() time.Duration
	// MaxQueueDelay bounds how long a request of an overloaded instance
	// waits for an in-flight slot, and sizes both its queue and the runnable
	// goroutines it allows (what it finishes in that time); default 100 ms.
	// Much longer, and a long queue makes every answer, refusals included,
	// late (a timeout for clients waiting 1 s); much shorter, and the CPU
	// idles between refusals.
	MaxQueueDelay time.Duration
	// Runnable, when set, replaces the runtime's count of runnable
	// goroutines (tests).
	Runnable func() int64
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.CPUThreshold <= 0 {
		o.CPUThreshold = 0.9
	}
	if o.Window <= 0 {
		o.Window = 5 * time.Second
	}
	if o.Buckets <= 0 {
		o.Buckets = 50
	}
	if o.CoolOff <= 0 {
		o.CoolOff = time.Second
	}
	if o.SchedLatency <= 0 {
		o.SchedLatency = 10 * time.Millisecond
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 100 * time.Millisecond
	}
	if o.MaxQueueDelay <= 0 {
		o.MaxQueueDelay = 100 * time.Millisecond
	}
	if o.CPU == nil {
		o.CPU = processCPU
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Shedder decides, per request, whether the instance can take it.
type Shedder struct {
	opts      Options
	bucket    time.Duration
	inFlight  atomic.Int64
	cpuBits   atomic.Uint64 // smoothed CPU use, as a share of GOMAXPROCS, float64 bits
	schedP90  atomic.Int64  // smoothed scheduling latency p90, nanoseconds
	lastDrop  atomic.Int64  // unix nanoseconds of the last refusal, 0 if none
	dropped   atomic.Int64
	abandoned atomic.Int64 // requests whose client left before they started
	passed    atomic.Int64
	runnable  atomic.Int64 // goroutines waiting for a CPU, at the last count
	countedAt atomic.Int64 // unix nanoseconds of the last count
	maxQueue  atomic.Int64 // queued requests, and runnable goroutines, allowed while overloaded; 0 until known
	countMu   sync.Mutex   // one count at a time (the runtime reader is not concurrent)
	count     func() int64 // the runtime's count of runnable goroutines
	queued    atomic.Int64 // requests waiting in queue, read without the lock

	queueMu sync.Mutex
	queue   list.List // of *waiter, first come first

	mu      sync.Mutex
	buckets []bucket // ring, indexed by bucket number modulo len
}

type bucket struct {
	n     int64 // bucket number (time / bucket length) this slot holds
	count int64 // requests finished
	sumRT time.Duration
}

// New returns a shedder. Call Sample periodically (Run does it) so it sees
// the CPU use.
func New(opts Options) *Shedder {
	opts.defaults()
	s := &Shedder{opts: opts, bucket: opts.Window / time.Duration(opts.Buckets),
		buckets: make([]bucket, opts.Buckets), count: opts.Runnable}
	if s.count == nil {
		s.count = runnableGoroutines()
	}
	return s
}

// Allow admits a request or refuses it with ErrOverloaded, without
// waiting. An admitted request must call done exactly once when it
// finishes; ok=false (the request failed on its own) keeps its latency out
// of the capacity estimate.
func (s *Shedder) Allow() (done func(ok bool), err error) {
	switch v, overloaded := s.decide(); v {
	case admitted:
		return s.started(), nil
	default:
		return nil, s.refuse(overloaded)
	}
}

// Admit is Allow for a request that may wait: on an overloaded instance
// with its in-flight limit reached, the request joins a first-come,
// first-served queue and takes the slot of the next request to finish. It
// is refused when the queue already holds what the instance finishes in
// MaxQueueDelay, or when it has waited that long and the instance is still
// overloaded (once it has calmed down, the request runs); when ctx ends
// first, it returns ctx's error and counts as abandoned. Without the queue
// the CPU would idle between one request finishing and the next arriving
// below the limit, and goodput would fall short of capacity by as much;
// with it, the waiting requests cost no CPU (they are parked, not
// runnable) and each waits at most MaxQueueDelay.
func (s *Shedder) Admit(ctx context.Context) (done func(ok bool), err error) {
	v, overloaded := s.decide()
	switch v {
	case admitted:
		return s.started(), nil
	case refuse:
		return nil, s.refuse(overloaded)
	}
	s.queueMu.Lock()
	if s.queue.Len() == 0 && s.take(s.admitLimit()) {
		// A slot freed since decide looked.
		s.queueMu.Unlock()
		return s.started(), nil
	}
	if int64(s.queue.Len()) >= max(minQueue, s.maxQueue.Load()) { // maxQueue is 0 until sized
		s.queueMu.Unlock()
		return nil, s.refuse(overloaded)
	}
	w := &waiter{ready: make(chan struct{})}
	e := s.queue.PushBack(w)
	s.queued.Store(int64(s.queue.Len()))
	s.queueMu.Unlock()

	timer := time.NewTimer(s.opts.MaxQueueDelay)
	defer timer.Stop()
	select {
	case <-w.ready:
		return s.started(), nil
	case <-timer.C:
	case <-ctx.Done():
	}
	s.queueMu.Lock()
	if w.granted {
		// The slot came as the wait ended: it is this request's now.
		s.queueMu.Unlock()
		return s.started(), nil
	}
	s.queue.Remove(e)
	s.queued.Store(int64(s.queue.Len()))
	if ctx.Err() != nil {
		s.queueMu.Unlock()
		s.abandoned.Add(1)
		return nil, ctx.Err()
	}
	overloaded = s.overloaded()
	if !overloaded && !s.stillHot() {
		// The overload ended while the request waited (new requests no
		// longer queue): refusing it now would fail a request of an
		// instance that keeps up.
		s.inFlight.Add(1)
		s.queueMu.Unlock()
		return s.started(), nil
	}
	s.queueMu.Unlock()
	return nil, s.refuse(overloaded)
}

// minQueue is the shortest queue an overloaded instance keeps, so that a
// window of slow requests does not close the door.
const minQueue = 8

// waiter is a request queued for an in-flight slot. granted is set, under
// queueMu, when a finishing request hands it its slot.
type waiter struct {
	ready   chan struct{}
	granted bool
}

// refuse counts a refusal and returns ErrOverloaded.
func (s *Shedder) refuse(overloaded bool) error {
	// Only a refusal while overloaded extends the cool-off: refusals made
	// within it must not keep it going once the CPU has calmed down, or a
	// slow dependency would be shed forever.
	if overloaded {
		s.lastDrop.Store(s.opts.Now().UnixNano())
	}
	s.dropped.Add(1)
	return ErrOverloaded
}

// started returns the done function of a request that holds an in-flight
// slot from now.
func (s *Shedder) started() func(ok bool) {
	start := s.opts.Now()
	var once atomic.Bool
	return func(ok bool) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		s.release()
		s.passed.Add(1)
		if ok {
			s.record(start, s.opts.Now())
		}
	}
}

// release frees an in-flight slot, or hands it to the first queued
// request. Under queueMu, so that a request queueing as the last slot
// frees is always seen.
func (s *Shedder) release() {
	s.queueMu.Lock()
	defer s.queueMu.Unlock()
	e := s.queue.Front()
	if e == nil {
		s.inFlight.Add(-1)
		return
	}
	w := s.queue.Remove(e).(*waiter)
	s.queued.Store(int64(s.queue.Len()))
	w.granted = true
	close(w.ready)
}

// verdict is what decide makes of a new request.
type verdict int

const (
	admitted verdict = iota // admitted: the request holds an in-flight slot
	refuse                  // refuse at once
	wait                    // over the in-flight limit: queue for a slot (Admit) or refuse (Allow)
)

// decide judges a new request, taking an in-flight slot for it when it is
// admitted, and reports whether the instance is overloaded (rather than
// within the cool-off of an overload).
func (s *Shedder) decide() (v verdict, overloaded bool) {
	overloaded = s.overloaded()
	if !overloaded && !s.stillHot() {
		s.inFlight.Add(1)
		return admitted, false
	}
	if limit := s.maxQueue.Load(); limit > 0 && s.runnableNow() > limit {
		return refuse, overloaded
	}
	if s.queued.Load() == 0 && s.take(s.admitLimit()) {
		return admitted, overloaded
	}
	return wait, overloaded
}

// take takes an in-flight slot if fewer than limit are taken. A compare
// and swap, so that two requests seeing the last free slot do not both
// take it.
func (s *Shedder) take(limit int64) bool {
	for {
		n := s.inFlight.Load()
		if n >= limit {
			return false
		}
		if s.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// admitLimit is how many requests an overloaded instance runs at once: the
// Little's-law estimate, and at least one more than it has CPUs so that a
// request finishing never leaves a CPU without work. Unbounded until the
// window has a complete bucket.
func (s *Shedder) admitLimit() int64 {
	limit, known := s.MaxInFlight()
	if !known {
		return math.MaxInt64
	}
	return max(int64(limit), int64(runtime.GOMAXPROCS(0))+1)
}

func (s *Shedder) overloaded() bool {
	return s.CPUUsage() >= s.opts.CPUThreshold || s.SchedLatencyP90() >= s.opts.SchedLatency
}

func (s *Shedder) stillHot() bool {
	last := s.lastDrop.Load()
	return last != 0 && s.opts.Now().Sub(time.Unix(0, last)) < s.opts.CoolOff
}

// record adds a finished request to its bucket.
func (s *Shedder) record(start, end time.Time) {
	n := end.UnixNano() / int64(s.bucket)
	s.mu.Lock()
	b := &s.buckets[n%int64(len(s.buckets))]
	if b.n != n {
		*b = bucket{n: n}
	}
	b.count++
	b.sumRT += end.Sub(start)
	s.mu.Unlock()
}

// window returns the most requests finished in one complete bucket of the
// window and the lowest mean latency of one (0, 0 when there is none).
func (s *Shedder) window() (maxPass int64, minRT time.Duration) {
	current := s.opts.Now().UnixNano() / int64(s.bucket)
	oldest := current - int64(len(s.buckets)) + 1
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for _, b := range s.buckets {
		// The current bucket is still filling: its count would understate
		// throughput.
		if b.count == 0 || b.n >= current || b.n < oldest {
			continue
		}
		maxPass = max(maxPass, b.count)
		if rt := b.sumRT / time.Duration(b.count); !found || rt < minRT {
			minRT, found = rt, true
		}
	}
	return maxPass, minRT
}

// Queued returns the requests waiting for an in-flight slot.
func (s *Shedder) Queued() int64 { return s.queued.Load() }

// MaxInFlight returns how many requests the instance can have in flight
// and keep up, from the window's best throughput and latency; known is
// false until a complete bucket has been recorded.
func (s *Shedder) MaxInFlight() (limit float64, known bool) {
	maxPass, minRT := s.window()
	if maxPass == 0 {
		return 0, false
	}
	perSecond := float64(time.Second) / float64(s.bucket)
	return math.Ceil(float64(maxPass) * perSecond * minRT.Seconds()), true
}

// CPUUsage returns the smoothed CPU use as a share of GOMAXPROCS (0..1).
func (s *Shedder) CPUUsage() float64 { return math.Float64frombits(s.cpuBits.Load()) }

// SchedLatencyP90 returns the smoothed 90th percentile of how long
// runnable goroutines waited for a CPU.
func (s *Shedder) SchedLatencyP90() time.Duration { return time.Duration(s.schedP90.Load()) }

// InFlight returns the admitted requests not yet done.
func (s *Shedder) InFlight() int64 { return s.inFlight.Load() }

// Dropped returns how many requests were refused so far.
func (s *Shedder) Dropped() int64 { return s.dropped.Load() }

// Abandoned returns how many requests were skipped because their client
// had gone before they started.
func (s *Shedder) Abandoned() int64 { return s.abandoned.Load() }

// Passed returns how many admitted requests finished so far.
func (s *Shedder) Passed() int64 { return s.passed.Load() }

// cpuBeta is the smoothing of both CPU signals: with 100 ms samples, a
// time constant of about half a second.
const cpuBeta = 0.8

// cpuSampler turns successive CPU-time readings into a smoothed share,
// and successive scheduler-latency histograms into the latest interval's.
type cpuSampler struct {
	lastCPU  time.Duration
	lastWall time.Time
	sched    []metrics.Sample
	last     []uint64 // cumulative bucket counts at the previous sample
}

// sample folds one reading in: an exponential moving average with a time
// constant of about half a second, quick enough to catch a burst, slow
// enough not to follow every garbage collection.
func (s *Shedder) sample(c *cpuSampler) {
	now, cpu := s.opts.Now(), s.opts.CPU()
	if !c.lastWall.IsZero() {
		wall := now.Sub(c.lastWall)
		if wall > 0 {
			cur := float64(cpu-c.lastCPU) / float64(wall) / float64(runtime.GOMAXPROCS(0))
			prev := s.CPUUsage()
			s.cpuBits.Store(math.Float64bits(prev*cpuBeta + min(cur, 1)*(1-cpuBeta)))
		}
	}
	c.lastCPU, c.lastWall = cpu, now
	var p90 time.Duration
	if s.opts.SchedLatencies != nil {
		p90 = s.opts.SchedLatencies()
	} else {
		p90 = c.schedLatencyP90()
	}
	// Smoothed like CPU use, so one garbage collection or one burst does
	// not count as overload.
	s.schedP90.Store(int64(float64(s.schedP90.Load())*cpuBeta + float64(p90)*(1-cpuBeta)))
}

// schedLatencyP90 reads the runtime's cumulative scheduling-latency
// histogram and returns the 90th percentile of what was added since the
// previous call (0 on the first).
func (c *cpuSampler) schedLatencyP90() time.Duration {
	if c.sched == nil {
		c.sched = []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	}
	metrics.Read(c.sched)
	if c.sched[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	h := c.sched[0].Value.Float64Histogram()
	first := c.last == nil
	if len(c.last) != len(h.Counts) {
		c.last = make([]uint64, len(h.Counts))
	}
	delta := make([]uint64, len(h.Counts))
	var total uint64
	for i, n := range h.Counts {
		delta[i] = n - c.last[i]
		total += delta[i]
		c.last[i] = n
	}
	if first || total == 0 {
		return 0
	}
	// The bucket holding the 90th percentile; its lower bound keeps the
	// estimate conservative (buckets are narrow at these magnitudes).
	rank := total - total/10
	var seen uint64
	for i, n := range delta {
		seen += n
		if seen >= rank {
			lo := h.Buckets[i]
			if math.IsInf(lo, -1) {
				return 0
			}
			return time.Duration(lo * float64(time.Second))
		}
	}
	return 0
}

// Run samples CPU use every SampleEvery until stop is closed.
func (s *Shedder) Run(stop <-chan struct{}) {
	t := time.NewTicker(s.opts.SampleEvery)
	defer t.Stop()
	var c cpuSampler
	s.sample(&c)
	s.sizeQueue()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.sample(&c)
			s.sizeQueue()
		}
	}
}

// queueCountEvery is how often, at most, an overloaded instance counts
// its runnable goroutines: a count costs about a microsecond (the runtime
// takes its scheduler lock), and taken on the request path it is fresh
// when it matters, where a sampler goroutine would wait for a CPU behind
// the very queue it counts.
const queueCountEvery = time.Millisecond

// runnableNow returns the runnable goroutines, counted again when the last
// count is older than queueCountEvery.
func (s *Shedder) runnableNow() int64 {
	now := s.opts.Now().UnixNano()
	if last := s.countedAt.Load(); now-last >= int64(queueCountEvery) && s.countMu.TryLock() {
		s.runnable.Store(s.count())
		s.countedAt.Store(now)
		s.countMu.Unlock()
	}
	return s.runnable.Load()
}

// sizeQueue sets how many runnable goroutines an overloaded instance
// allows: as many as it finished requests in MaxQueueDelay in the window's
// best bucket, so that a request arriving behind them waits about that
// long; at least a few, so that a window of slow requests does not close
// the door. Throughput rather than latency: it weighs cheap and costly
// requests as the instance serves them, and leaves out time spent waiting
// on I/O, which a runnable goroutine does not need a CPU for.
func (s *Shedder) sizeQueue() {
	maxPass, _ := s.window()
	if maxPass == 0 {
		s.maxQueue.Store(0)
		return
	}
	s.maxQueue.Store(max(minQueue, maxPass*int64(s.opts.MaxQueueDelay)/int64(s.bucket)))
}

// Runnable counts the goroutines waiting for a CPU now.
func (s *Shedder) Runnable() int64 {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	return s.count()
}

// MaxQueue returns how many queued requests, and runnable goroutines, an
// overloaded instance allows before it refuses requests; 0 until the window
// has a request.
func (s *Shedder) MaxQueue() int64 { return s.maxQueue.Load() }

// runnableGoroutines returns a reader of the runtime's count of runnable
// goroutines (Go 1.26's /sched/goroutines/runnable); it reads 0, which
// turns the queue bound off, on a runtime without the metric. Not safe for
// concurrent use.
func runnableGoroutines() func() int64 {
	sample := []metrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}}
	return func() int64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(sample[0].Value.Uint64())
	}
}

// processCPU is the user and system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
