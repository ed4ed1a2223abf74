// Package loadgen is million's open-model load generator: requests arrive on
// a fixed schedule (a rate, or a ramp of rates) whatever the server does,
// and each one's latency runs from the time it was due, not from the time it
// was finally sent. A server that stalls for a second therefore shows a
// second of latency on every request that fell due during the stall, instead
// of the one request a closed-loop client would have been waiting on
// ("coordinated omission"). Latencies go into HDR histograms per step and
// overall; the report adds a per-second time series, the server's own
// metrics over the run and SLO checks.
//
// What a request does is the Workload's business: package journey replays
// shop visitors, GetWorkload fetches one URL.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is how one request ended.
type Outcome struct {
	Step   string // the journey step it was, e.g. "product"; it names the histogram it goes into
	Status int    // the HTTP status; 0 when no response came
	Err    error  // why no response came (timeout, connection refused), or nil
}

// ErrClient wraps the Err of an Outcome the workload produced without
// talking to the server, so it is counted as ClassClient rather than as a
// transport failure.
var ErrClient = errors.New("client side")

// Workload turns one arrival into one request. Do is called concurrently,
// at most Options.Concurrency calls at a time, each with a context that ends
// at the request timeout; it must honour it.
type Workload interface {
	Do(ctx context.Context) Outcome
}

// Options configure one run of the schedule.
type Options struct {
	Stages []Stage
	// Concurrency is the most requests in flight. An arrival that falls due
	// while all are busy waits for one (it is counted late, and its wait is
	// part of its latency); the schedule never slows down for it.
	Concurrency int
	// Backlog is how many late arrivals may wait; beyond it, arrivals are
	// dropped and counted as errors. It bounds memory when the target is
	// hopelessly slow.
	Backlog int
	// Timeout bounds every request, from when it is sent.
	Timeout time.Duration
	// Steps are listed in the report even if no request was one of them.
	Steps []string
	// Progress, if set, is called about once a second during the run.
	Progress func(Progress)
}

// Defaults for zero Options fields.
const (
	DefaultConcurrency = 1000
	DefaultBacklog     = 100_000
	DefaultTimeout     = 10 * time.Second
)

func (o *Options) defaults() error {
	if len(o.Stages) == 0 {
		return errors.New("loadgen: no stages: give a rate and a duration")
	}
	for _, s := range o.Stages {
		if s.Rate < 0 || s.Duration <= 0 {
			return fmt.Errorf("loadgen: stage %s: rate must be ≥ 0 and duration > 0", s)
		}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Backlog <= 0 {
		o.Backlog = DefaultBacklog
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return nil
}

// Progress is the state of a run in progress.
type Progress struct {
	Elapsed   time.Duration
	Total     time.Duration // the schedule's length
	Rate      float64       // the current stage's arrival rate
	Scheduled int64         // arrivals that fell due so far
	Sent      int64         // requests sent so far
	Completed int64
	InFlight  int64
	Errors    int64
	Dropped   int64
	Late      int64
	Last      Point // the last whole second, when HaveLast
	HaveLast  bool
}

// String is the one-line progress shown on a terminal.
func (p Progress) String() string {
	s := fmt.Sprintf("%5.1fs/%.0fs  rate %g/s  sent %d  done %d  in flight %d  errors %d",
		p.Elapsed.Seconds(), p.Total.Seconds(), p.Rate, p.Sent, p.Completed, p.InFlight, p.Errors)
	if p.Dropped > 0 || p.Late > 0 {
		s += fmt.Sprintf("  late %d  dropped %d", p.Late, p.Dropped)
	}
	if p.HaveLast {
		s += fmt.Sprintf("  last second: %d req/s p50 %s p99 %s", p.Last.Completed, fmtMs(p.Last.P50), fmtMs(p.Last.P99))
	}
	return s
}

// Result is a finished run: everything the report is made of.
type Result struct {
	Start, End  time.Time
	Stages      []Stage
	Scheduled   int64 // arrivals that fell due
	Sent        int64 // requests sent
	Late        int64 // arrivals that found every worker busy and waited
	Cancelled   int64 // requests cut short or never sent because the run was cancelled
	Interrupted bool  // the context ended before the schedule did
	rec         *recorder
	offered     []int64 // arrivals due per second
}

// Run sends the schedule of opts to w and returns what happened. It returns
// when the schedule is over and every request sent has finished (each is
// bounded by the timeout), or soon after ctx ends, with Interrupted set and
// the requests in flight cancelled.
func Run(ctx context.Context, opts Options, w Workload) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	// Cancelling reqCtx cuts the requests in flight when ctx ends; it is
	// separate so that the end of a schedule never cuts them.
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	stopCut := context.AfterFunc(ctx, cancelReqs)
	defer stopCut()

	start := time.Now()
	rec := newRecorder(start, opts.Steps)
	res := &Result{Start: start, Stages: opts.Stages, rec: rec}
	p := newPacer(start, opts, rec)

	var workers sync.WaitGroup
	for range opts.Concurrency {
		workers.Go(func() {
			for due := range p.out {
				if reqCtx.Err() != nil {
					p.cancelled.Add(1)
					continue
				}
				p.busy.Add(1)
				p.sent.Add(1)
				sent := time.Now()
				tctx, cancel := context.WithTimeout(reqCtx, opts.Timeout)
				o := w.Do(tctx)
				cancel()
				done := time.Now()
				p.busy.Add(-1)
				if reqCtx.Err() != nil && o.Err != nil {
					// Cut by the cancelled run, not by the server.
					p.cancelled.Add(1)
					continue
				}
				rec.record(o, done.Sub(due), sent.Sub(due), done)
				if done.UnixNano() >= p.nextDue.Load() {
					p.pump(done)
				}
			}
		})
	}

	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	total := TotalDuration(opts.Stages)
	if opts.Progress != nil {
		progressWG.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case now := <-t.C:
					pr := Progress{
						Elapsed: now.Sub(start), Total: total, Rate: opts.Stages[p.stage.Load()].Rate,
						Scheduled: p.scheduled.Load(), Sent: p.sent.Load(), InFlight: p.busy.Load(), Late: p.late.Load(),
					}
					rec.live(now, &pr)
					opts.Progress(pr)
				}
			}
		})
	}

	// The schedule: sleep until the next arrival is due and send every
	// arrival due by then.
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, more := p.pump(time.Now())
		if !more {
			break
		}
		precise := haveNanosleep && opts.Stages[p.stage.Load()].Rate <= preciseRate
		if !sleepUntil(ctx, timer, next, precise) {
			res.Interrupted = true
			break
		}
	}
	p.stop()
	close(p.out)
	workers.Wait()
	close(progressDone)
	progressWG.Wait()

	res.End = time.Now()
	rec.finish(res.End)
	res.Scheduled, res.Sent, res.Late, res.Cancelled = p.scheduled.Load(), p.sent.Load(), p.late.Load(), p.cancelled.Load()
	res.offered = p.offered
	return res, nil
}

// pacer hands out the schedule's arrivals when they fall due. Every one
// goes out at its due time or, when the pacer gets to it late, at once,
// carrying its lateness in its latency; nothing ever waits for a response.
//
// The scheduling goroutine sleeps until the next arrival (see sleepUntil
// for how precisely), and every worker that finishes a request also pumps
// the schedule, which sends arrivals that fell due while the scheduling
// goroutine was asleep or waiting for the CPU. Measured on one core against
// a bare server, this halves the send lag at 5,000 arrivals a second.
type pacer struct {
	mu      sync.Mutex
	sched   schedule
	start   time.Time
	due     time.Time // the next arrival's due time
	over    bool      // the schedule is exhausted or stopped
	offered []int64   // arrivals due per second
	out     chan time.Time
	rec     *recorder
	limit   int64 // Options.Concurrency

	nextDue   atomic.Int64 // due, in Unix nanoseconds, for a lock-free check; MaxInt64 when over
	stage     atomic.Int64 // the current stage's index
	busy      atomic.Int64 // requests in flight
	scheduled atomic.Int64
	sent      atomic.Int64
	late      atomic.Int64
	cancelled atomic.Int64
}

func newPacer(start time.Time, opts Options, rec *recorder) *pacer {
	p := &pacer{sched: schedule{stages: opts.Stages}, start: start, out: make(chan time.Time, opts.Backlog),
		rec: rec, limit: int64(opts.Concurrency)}
	p.advance()
	return p
}

// advance moves to the next arrival of the schedule. p.mu must be held.
func (p *pacer) advance() {
	off, stage, ok := p.sched.next()
	if !ok {
		p.over = true
		p.nextDue.Store(math.MaxInt64)
		return
	}
	p.due = p.start.Add(off)
	p.nextDue.Store(p.due.UnixNano())
	p.stage.Store(int64(stage))
}

// pump sends every arrival due by now and returns when the next one is due,
// or false when the schedule is over.
func (p *pacer) pump(now time.Time) (next time.Time, more bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.over && !p.due.After(now) {
		p.send(p.due)
		p.advance()
	}
	return p.due, !p.over
}

// send hands one due arrival to the workers. p.mu must be held.
func (p *pacer) send(due time.Time) {
	sec := int(due.Sub(p.start) / time.Second)
	for len(p.offered) <= sec {
		p.offered = append(p.offered, 0)
	}
	p.offered[sec]++
	p.scheduled.Add(1)
	// Approximate (a worker may be about to free up), which is all a count
	// of "had to wait for a worker" needs.
	if p.busy.Load()+int64(len(p.out)) >= p.limit {
		p.late.Add(1)
	}
	select {
	case p.out <- due:
	default:
		p.rec.drop(time.Now())
	}
}

// stop ends the schedule early or marks its end; after it, pump sends
// nothing, so the channel can be closed.
func (p *pacer) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.over = true
	p.nextDue.Store(math.MaxInt64)
}

// preciseRate is the highest arrival rate at which every arrival gets a
// wake-up of its own. Above it, waits between arrivals are shorter than a
// system call's overshoot, so arrivals are sent in the batches the Go
// timer's millisecond allows, and the send lag in the report shows it.
const preciseRate = 5000

// coarseWait is how far ahead of a due time a Go timer may be used: it
// wakes up to a millisecond late, so it sleeps until this long before,
// and nanosleep does the rest.
const coarseWait = 1500 * time.Microsecond

// sleepUntil waits until t, or returns false if ctx ends first. precise
// asks for a wake-up within tens of microseconds rather than a millisecond.
func sleepUntil(ctx context.Context, timer *time.Timer, t time.Time, precise bool) bool {
	for {
		d := time.Until(t)
		if d <= 0 {
			return ctx.Err() == nil
		}
		if precise && d <= coarseWait {
			nanosleep(d)
			return ctx.Err() == nil
		}
		if precise {
			d -= coarseWait - 300*time.Microsecond
		}
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			return false
		}
		if !precise {
			return true
		}
	}
}
