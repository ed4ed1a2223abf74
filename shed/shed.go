// Package shed is adaptive load shedding: when an instance has more work in
// flight than it can finish in time, new requests are refused at once with
// 503 and Retry-After instead of queueing behind the others. Refusing early
// keeps goodput near capacity under overload; queueing would make every
// request late, so that clients time out and retry and nobody is served.
//
// The algorithm is go-zero's adaptive shedder. The instance tracks, over a
// rolling window, the most requests it finished in one bucket (maxPass) and
// the lowest mean latency of a bucket (minRT). By Little's law
// maxPass × buckets-per-second × minRT is how much work it can have in
// flight while keeping up. When the process's CPU use is above the
// threshold (or it shed within the cool-off), a request that would put more
// than that in flight is refused.
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
// On few CPUs the queue an overloaded instance builds is mostly not in
// flight at all: it is goroutines of connections whose requests arrived and
// that wait, runnable, for a CPU to read and parse them, refusals included.
// Every request then waits behind all of them, and once the wait nears the
// clients' timeout even a refusal comes too late to help. So an overloaded
// instance also refuses while more goroutines are runnable than it
// finishes requests in MaxQueueDelay (from the window's best throughput, so
// the mix of cheap and costly requests it actually serves sets the size);
// the count is read from the runtime at most every millisecond, and only
// while overloaded.
package shed

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrOverloaded is returned by Allow when a request must be refused.
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
	// MaxQueueDelay bounds how long the goroutines runnable ahead of a new
	// request may keep it waiting on an overloaded instance before it is
	// refused; default 100 ms. Much longer, and a long queue of refusals
	// makes every refusal late (a timeout for clients waiting 1 s); much
	// shorter, and the CPU idles between refusals.
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
	dropBits  atomic.Uint64 // share of requests refused for scheduling latency, float64 bits
	wasSlow   bool          // the previous sample's waits were over SchedLatency (the sampler's only)
	lastDrop  atomic.Int64  // unix nanoseconds of the last refusal, 0 if none
	dropped   atomic.Int64
	abandoned atomic.Int64 // requests whose client left before they started
	passed    atomic.Int64
	runnable  atomic.Int64 // goroutines waiting for a CPU, at the last count
	countedAt atomic.Int64 // unix nanoseconds of the last count
	maxQueue  atomic.Int64 // runnable goroutines allowed while overloaded; 0 until known
	countMu   sync.Mutex   // one count at a time (the runtime reader is not concurrent)
	count     func() int64 // the runtime's count of runnable goroutines

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

// Allow admits a request or refuses it with ErrOverloaded. An admitted
// request must call done exactly once when it finishes; ok=false (the
// request failed on its own) keeps its latency out of the capacity estimate.
func (s *Shedder) Allow() (done func(ok bool), err error) {
	if drop, overloaded := s.shouldDrop(); drop {
		// Only a refusal while overloaded extends the cool-off: refusals
		// made within it must not keep it going once the CPU has calmed
		// down, or a slow dependency would be shed forever.
		if overloaded {
			s.lastDrop.Store(s.opts.Now().UnixNano())
		}
		s.dropped.Add(1)
		return nil, ErrOverloaded
	}
	s.inFlight.Add(1)
	start := s.opts.Now()
	var once atomic.Bool
	return func(ok bool) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		s.inFlight.Add(-1)
		s.passed.Add(1)
		if ok {
			s.record(start, s.opts.Now())
		}
	}, nil
}

// shouldDrop reports whether to refuse a request now, and whether the
// instance is overloaded (rather than within the cool-off of an overload).
func (s *Shedder) shouldDrop() (drop, overloaded bool) {
	if share := s.DropShare(); share > 0 && rand.Float64() < share {
		return true, true
	}
	overloaded = s.overloaded()
	if !overloaded && !s.stillHot() {
		return false, false
	}
	if limit := s.maxQueue.Load(); limit > 0 && s.runnableNow() > limit {
		return true, overloaded
	}
	flying := s.inFlight.Load()
	limit, known := s.MaxInFlight()
	return known && flying > 1 && float64(flying) >= limit, overloaded
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
	s.steer(p90)
}

// steer adjusts the share of new requests refused before they start, from
// the last sample's scheduling latency. It covers what the in-flight limit
// cannot see: with few CPUs and handlers that never block, admitted
// requests finish one after another and in flight stays at one or two,
// while new requests queue as runnable goroutines before they reach the
// shedder at all. Goroutines waiting longer than SchedLatency to run, with
// the process busy, mean more arrives than the CPUs finish: the share
// grows by a tenth of what is left each sample, and shrinks by three tenths each
// sample without the wait, so it settles where the wait stays near the
// target and the CPU stays busy with admitted work. It grows only after two
// slow samples in a row: one alone is a burst of arrivals or a collection
// at moderate load (handlers that each take milliseconds of CPU make
// goroutines wait that long), and refusing for it fails requests of an
// instance that keeps up.
func (s *Shedder) steer(p90 time.Duration) {
	share := math.Float64frombits(s.dropBits.Load())
	slow := p90 >= s.opts.SchedLatency
	lasting := slow && s.wasSlow
	s.wasSlow = slow
	// A process that is not busy itself is not the one overloading its
	// CPUs (a neighbour is): refusing its requests would not help.
	if lasting && s.CPUUsage() >= s.opts.CPUThreshold/2 {
		share += (0.95 - share) / 10
	} else if share *= 0.7; share < 0.01 {
		share = 0
	}
	s.dropBits.Store(math.Float64bits(share))
}

// DropShare returns the share of new requests currently refused for
// scheduling latency (0 when goroutines run on time).
func (s *Shedder) DropShare() float64 { return math.Float64frombits(s.dropBits.Load()) }

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
	s.maxQueue.Store(max(8, maxPass*int64(s.opts.MaxQueueDelay)/int64(s.bucket)))
}

// Runnable counts the goroutines waiting for a CPU now.
func (s *Shedder) Runnable() int64 {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	return s.count()
}

// MaxQueue returns how many runnable goroutines an overloaded instance
// allows before it refuses requests; 0 until the window has a request.
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
