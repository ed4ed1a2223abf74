package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Report is everything a run measured, as written to the JSON report. Every
// latency is in milliseconds from the request's intended send time.
type Report struct {
	Meta    Meta          `json:"meta"`
	Summary Summary       `json:"summary"`
	Steps   []StepReport  `json:"steps"`
	Errors  ErrorReport   `json:"errors"`
	Series  []Point       `json:"series"`
	Server  *ServerReport `json:"server,omitempty"`
	SLO     []SLOResult   `json:"slo,omitempty"`
}

// Meta says what ran, where and when, so a figure can be reproduced and
// compared: the protocol of docs/bench asks every report for the commit, the
// Go version, the configuration, the rate and the duration.
type Meta struct {
	Target      string    `json:"target"`
	Command     string    `json:"command,omitempty"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	DurationS   float64   `json:"duration_s"` // the measured schedule's length (less if interrupted)
	Stages      []Stage   `json:"stages"`
	WarmupS     float64   `json:"warmup_s"`
	Concurrency int       `json:"concurrency"`
	Backlog     int       `json:"backlog"`
	TimeoutS    float64   `json:"timeout_s"`
	Interrupted bool      `json:"interrupted"`
	Workload    any       `json:"workload,omitempty"` // what the workload says about itself (mix, users, …)
	Generator   Generator `json:"generator"`
}

// Generator describes the program that produced the report.
type Generator struct {
	Version    string `json:"version,omitempty"`
	GoVersion  string `json:"go_version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Hostname   string `json:"hostname,omitempty"`
}

// ThisGenerator describes the running program; version is what the binary
// was stamped with, if anything. The commit comes from the build's VCS
// stamp, absent when built with -buildvcs=false or outside a repository.
func ThisGenerator(version string) Generator {
	g := Generator{Version: version, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	g.Hostname, _ = os.Hostname()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				g.Commit = s.Value
			case "vcs.time":
				g.CommitTime = s.Value
			case "vcs.modified":
				g.Modified = s.Value == "true"
			}
		}
	}
	return g
}

// Summary is the run as a whole.
type Summary struct {
	Scheduled int64 `json:"scheduled"` // arrivals the schedule made due
	Sent      int64 `json:"sent"`      // requests sent: those scheduled less those dropped or, if interrupted, never sent
	Completed int64 `json:"completed"` // requests that ended with a response, a timeout or an error
	OK        int64 `json:"ok"`        // 2xx and 304 responses
	Errors    int64 `json:"errors"`    // everything else, dropped arrivals included
	// ErrorRate is Errors over Completed plus Dropped, as a fraction.
	ErrorRate float64 `json:"error_rate"`
	Dropped   int64   `json:"dropped"`
	Late      int64   `json:"late"`
	Cancelled int64   `json:"cancelled"`
	// OfferedRPS is the arrival rate the schedule asked for on average;
	// ThroughputRPS the responses (of any status) per second, OKRPS the
	// successful ones, both over the time the run took (the schedule plus
	// the wait for late responses).
	OfferedRPS    float64 `json:"offered_rps"`
	ThroughputRPS float64 `json:"throughput_rps"`
	OKRPS         float64 `json:"ok_rps"`
	Latency       Latency `json:"latency"`
	// SendLag is how much later than due the requests were actually sent:
	// waiting for a busy worker and the generator's own scheduling. A high
	// value without late arrivals means the generator lacks CPU.
	SendLag      Latency    `json:"send_lag"`
	Distribution []Quantile `json:"distribution"`
}

// Latency is a latency histogram summed up, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// Quantile is one point of a latency distribution.
type Quantile struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

// distributionPoints are the percentiles reported per step: dense in the
// tail, where open-model measurements differ from closed-loop ones.
var distributionPoints = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 97.5, 99,
	99.5, 99.9, 99.95, 99.99, 99.999, 100}

// StepReport is one journey step.
type StepReport struct {
	Name         string           `json:"name"`
	Count        int64            `json:"count"`
	Errors       int64            `json:"errors"`
	Statuses     map[string]int64 `json:"statuses"` // by HTTP status or outcome class (timeout, transport_error, …)
	Latency      Latency          `json:"latency"`
	Distribution []Quantile       `json:"distribution"`
}

// ErrorReport counts the errors.
type ErrorReport struct {
	ByStatus map[string]int64            `json:"by_status"` // error statuses and classes over the whole run
	ByStep   map[string]map[string]int64 `json:"by_step"`   // the same, per step (steps without errors left out)
	Samples  []string                    `json:"samples,omitempty"`
}

// Point is one second of the run, by completion time.
type Point struct {
	T         int     `json:"t"`         // seconds since the start
	Offered   int64   `json:"offered"`   // arrivals that fell due in this second
	Completed int64   `json:"completed"` // requests that finished in it (the throughput)
	Errors    int64   `json:"errors"`
	P50       float64 `json:"p50_ms"`
	P90       float64 `json:"p90_ms"`
	P99       float64 `json:"p99_ms"`
	Max       float64 `json:"max_ms"`
}

func summarize(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(), Mean: h.Mean() / 1000,
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
	}
}

func distribution(h *hdr.Histogram) []Quantile {
	out := make([]Quantile, 0, len(distributionPoints))
	if h.TotalCount() == 0 {
		return out
	}
	for _, p := range distributionPoints {
		out = append(out, Quantile{Percentile: p, Ms: ms(h.ValueAtQuantile(p))})
	}
	return out
}

// Report sums the result up. meta's run-dependent fields (times, stages,
// duration) are filled in from the result.
func (res *Result) Report(meta Meta) *Report {
	r := res.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	meta.Start, meta.End, meta.Stages, meta.Interrupted = res.Start, res.End, res.Stages, res.Interrupted
	dur := TotalDuration(res.Stages)
	if res.Interrupted {
		dur = min(dur, res.End.Sub(res.Start))
	}
	meta.DurationS = dur.Seconds()

	ok := r.completed - (r.errors - r.dropped)
	s := Summary{
		Scheduled: res.Scheduled, Sent: res.Sent, Completed: r.completed,
		OK: ok, Errors: r.errors, Dropped: r.dropped, Late: res.Late, Cancelled: res.Cancelled,
		Latency: summarize(r.overall), SendLag: summarize(r.lag), Distribution: distribution(r.overall),
	}
	if n := r.completed + r.dropped; n > 0 {
		s.ErrorRate = float64(r.errors) / float64(n)
	}
	if secs := dur.Seconds(); secs > 0 {
		s.OfferedRPS = float64(res.Scheduled) / secs
	}
	// Responses are counted over the time the run really took: a server
	// that falls behind keeps answering after the schedule ends, and
	// dividing by the schedule's length would credit it with throughput it
	// never had.
	if secs := max(dur, res.End.Sub(res.Start)).Seconds(); secs > 0 {
		s.ThroughputRPS = float64(r.completed) / secs
		s.OKRPS = float64(ok) / secs
	}

	rep := &Report{Meta: meta, Summary: s, Errors: ErrorReport{
		ByStatus: map[string]int64{}, ByStep: map[string]map[string]int64{}, Samples: slices.Clone(r.samples),
	}}
	names := make([]string, 0, len(r.steps))
	for name := range r.steps {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		st := r.steps[name]
		rep.Steps = append(rep.Steps, StepReport{
			Name: name, Count: st.count, Errors: st.errors, Statuses: maps.Clone(st.statuses),
			Latency: summarize(st.hist), Distribution: distribution(st.hist),
		})
		for class, n := range st.statuses {
			if !isOKClass(class) {
				if rep.Errors.ByStep[name] == nil {
					rep.Errors.ByStep[name] = map[string]int64{}
				}
				rep.Errors.ByStep[name][class] = n
			}
		}
	}
	for class, n := range r.statuses {
		if !isOKClass(class) {
			rep.Errors.ByStatus[class] = n
		}
	}
	rep.Series = slices.Clone(r.series)
	for i := range rep.Series {
		if t := rep.Series[i].T; t < len(res.offered) {
			rep.Series[i].Offered = res.offered[t]
		}
	}
	// Seconds in which arrivals fell due but nothing finished (a stall at
	// the very end) still belong in the series.
	for t := len(rep.Series); t < len(res.offered); t++ {
		rep.Series = append(rep.Series, Point{T: t, Offered: res.offered[t]})
	}
	return rep
}

func isOKClass(class string) bool {
	return len(class) == 3 && (class[0] == '2' || class == "304")
}

// Step returns the named step's report, or nil.
func (r *Report) Step(name string) *StepReport {
	for i := range r.Steps {
		if r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	return nil
}

// WriteJSON writes the report to path, indented so that it diffs well,
// with SLOs such as "p99<25ms" left readable rather than HTML-escaped.
func (r *Report) WriteJSON(path string) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// ReadReport reads a JSON report written by WriteJSON, for example to
// render it again as HTML or to check other SLOs against it.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s is not a load report: %w", path, err)
	}
	return &r, nil
}
