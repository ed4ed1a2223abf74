package loadgen

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to an hour (anything
// longer is clamped), with three significant digits: a 25 ms p99 is known to
// within 25 µs.
const (
	histLowest  = 1
	histHighest = int64(time.Hour / time.Microsecond)
	histDigits  = 3
	// Per-second histograms live for one second each and only feed plots, so
	// two digits (1 %) are plenty and keep them small.
	secondDigits = 2
)

// Outcome classes that are not HTTP status codes, as they appear in the
// report's status counts.
const (
	// ClassTimeout is a request that got no answer within the timeout.
	ClassTimeout = "timeout"
	// ClassTransport is a request that failed below HTTP: connection
	// refused or reset, DNS, a malformed answer.
	ClassTransport = "transport_error"
	// ClassDropped is an arrival never sent because every worker was busy
	// and the backlog was full: the generator, not the server, gave up, and
	// it counts as an error so that an SLO can never pass by dropping.
	ClassDropped = "dropped"
	// ClassClient is an arrival the workload could not turn into a request
	// (for example, no idle virtual user could take it).
	ClassClient = "client_error"
)

// maxSamples bounds how many distinct error messages a report keeps: enough
// to diagnose, never a flood.
const maxSamples = 10

func newHist(digits int) *hdr.Histogram { return hdr.New(histLowest, histHighest, digits) }

func micros(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	if us < histLowest {
		return histLowest
	}
	if us > histHighest {
		return histHighest
	}
	return us
}

// classify names an outcome for the status counts and says whether it
// succeeded. Only 2xx and 304 are successes: every other answer, a timeout
// or a broken connection is an error of the run.
func classify(o Outcome) (class string, ok bool) {
	switch {
	case o.Err != nil && errors.Is(o.Err, context.DeadlineExceeded):
		return ClassTimeout, false
	case o.Err != nil && isTimeout(o.Err):
		return ClassTimeout, false
	case o.Err != nil && errors.Is(o.Err, ErrClient):
		return ClassClient, false
	case o.Err != nil:
		return ClassTransport, false
	case o.Status/100 == 2 || o.Status == 304:
		return strconv.Itoa(o.Status), true
	default:
		return strconv.Itoa(o.Status), false
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stepStats is what the recorder keeps per journey step.
type stepStats struct {
	hist     *hdr.Histogram
	count    int64
	errors   int64
	statuses map[string]int64
}

// recorder collects every outcome of a run. One mutex guards it: at tens of
// thousands of records a second an uncontended lock costs far less than the
// request it records, and it keeps the histograms exact (no sampling).
type recorder struct {
	mu        sync.Mutex
	start     time.Time
	overall   *hdr.Histogram
	lag       *hdr.Histogram // actual send time minus intended send time
	steps     map[string]*stepStats
	statuses  map[string]int64
	completed int64
	errors    int64
	dropped   int64
	samples   []string

	// The current second of the time series; older seconds are in series.
	cur          int
	curHist      *hdr.Histogram
	curCompleted int64
	curErrors    int64
	series       []Point
}

func newRecorder(start time.Time, steps []string) *recorder {
	r := &recorder{
		start:    start,
		overall:  newHist(histDigits),
		lag:      newHist(histDigits),
		steps:    make(map[string]*stepStats),
		statuses: make(map[string]int64),
		curHist:  newHist(secondDigits),
	}
	for _, s := range steps {
		r.step(s)
	}
	return r
}

func (r *recorder) step(name string) *stepStats {
	s := r.steps[name]
	if s == nil {
		s = &stepStats{hist: newHist(histDigits), statuses: make(map[string]int64)}
		r.steps[name] = s
	}
	return s
}

// record adds one finished request. latency runs from the intended send
// time, lag from the intended to the actual send time, and done is when it
// finished, which places it in the time series.
func (r *recorder) record(o Outcome, latency, lag time.Duration, done time.Time) {
	class, ok := classify(o)
	us := micros(latency)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roll(done)
	r.completed++
	r.curCompleted++
	r.statuses[class]++
	_ = r.overall.RecordValue(us)
	_ = r.lag.RecordValue(micros(lag))
	_ = r.curHist.RecordValue(us)
	s := r.step(o.Step)
	s.count++
	s.statuses[class]++
	_ = s.hist.RecordValue(us)
	if !ok {
		r.errors++
		r.curErrors++
		s.errors++
		if o.Err != nil {
			r.sample(o.Step + ": " + o.Err.Error())
		}
	}
}

// drop counts an arrival that was never sent.
func (r *recorder) drop(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roll(at)
	r.dropped++
	r.errors++
	r.curErrors++
	r.statuses[ClassDropped]++
}

func (r *recorder) sample(msg string) {
	if len(r.samples) >= maxSamples {
		return
	}
	for _, s := range r.samples {
		if s == msg {
			return
		}
	}
	r.samples = append(r.samples, msg)
}

// roll closes the seconds before the one t falls in. Records come in
// roughly in completion order; one that is a little late for its second
// lands in the current one, which moves a point by one request at most.
func (r *recorder) roll(t time.Time) {
	sec := int(t.Sub(r.start) / time.Second)
	for r.cur < sec {
		r.series = append(r.series, r.point())
		r.cur++
		r.curHist.Reset()
		r.curCompleted, r.curErrors = 0, 0
	}
}

func (r *recorder) point() Point {
	h := r.curHist
	p := Point{T: r.cur, Completed: r.curCompleted, Errors: r.curErrors}
	if h.TotalCount() > 0 {
		p.P50 = ms(h.ValueAtQuantile(50))
		p.P90 = ms(h.ValueAtQuantile(90))
		p.P99 = ms(h.ValueAtQuantile(99))
		p.Max = ms(h.Max())
	}
	return p
}

// ms converts microseconds to milliseconds for the report.
func ms(us int64) float64 { return float64(us) / 1000 }

// live is what the progress line shows.
func (r *recorder) live(now time.Time, p *Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roll(now)
	if n := len(r.series); n > 0 {
		p.Last, p.HaveLast = r.series[n-1], true
	}
	p.Completed, p.Errors, p.Dropped = r.completed, r.errors, r.dropped
}

// finish closes the last second and returns the series.
func (r *recorder) finish(end time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roll(end)
	if r.curCompleted > 0 || r.curErrors > 0 {
		r.series = append(r.series, r.point())
		r.cur++
		r.curHist.Reset()
		r.curCompleted, r.curErrors = 0, 0
	}
}
