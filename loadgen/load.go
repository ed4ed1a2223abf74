package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Plan is a whole load test: an optional warm-up, the measured schedule,
// the server's metrics around it and the SLOs it must meet.
type Plan struct {
	Target  string // what is under test, for the report
	Command string // the command line that ran it, for the report
	Version string // the generator's version stamp, if any
	Stages  []Stage
	// Warmup runs at the first stage's rate before measuring, so that
	// connections, pools, caches and the page cache are warm when the
	// measurement starts; nothing of it is recorded.
	Warmup      time.Duration
	Concurrency int
	Backlog     int
	Timeout     time.Duration
	// MetricsURL is the server's Prometheus endpoint (million's admin
	// /metrics); empty means no server-side figures.
	MetricsURL string
	SLOs       []SLO
	// Steps are listed in the report even when nothing ran them.
	Steps []string
	// Workload describes the workload in the report (its mix, users, …).
	Workload any
	// Progress, if set, receives the progress of the warm-up and of the run
	// about once a second.
	Progress func(phase string, p Progress)
}

// Phases passed to Plan.Progress.
const (
	PhaseWarmup = "warm-up"
	PhaseRun    = "run"
)

// Execute carries out the plan against w. It returns the report even when
// an SLO is missed, together with an error wrapping ErrSLOMissed; when ctx
// ends early the report covers what ran and has Meta.Interrupted set.
func Execute(ctx context.Context, p Plan, w Workload) (*Report, error) {
	opts := Options{Stages: p.Stages, Concurrency: p.Concurrency, Backlog: p.Backlog, Timeout: p.Timeout, Steps: p.Steps}
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	progress := func(phase string) func(Progress) {
		if p.Progress == nil {
			return nil
		}
		return func(pr Progress) { p.Progress(phase, pr) }
	}
	if p.Warmup > 0 {
		rate := 0.0
		for _, s := range p.Stages {
			if s.Rate > 0 {
				rate = s.Rate
				break
			}
		}
		warm := opts
		warm.Stages = []Stage{{Rate: rate, Duration: p.Warmup}}
		warm.Progress = progress(PhaseWarmup)
		if _, err := Run(ctx, warm, w); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted during the warm-up: %w", ctx.Err())
		}
	}

	var watch *serverWatch
	if p.MetricsURL != "" {
		var err error
		if watch, err = watchServer(ctx, &http.Client{Timeout: 5 * time.Second}, p.MetricsURL, time.Second); err != nil {
			return nil, err
		}
	}
	opts.Progress = progress(PhaseRun)
	res, err := Run(ctx, opts, w)
	if err != nil {
		return nil, err
	}
	rep := res.Report(Meta{
		Target: p.Target, Command: p.Command, WarmupS: p.Warmup.Seconds(), Concurrency: opts.Concurrency,
		Backlog: opts.Backlog, TimeoutS: opts.Timeout.Seconds(), Workload: p.Workload, Generator: ThisGenerator(p.Version),
	})
	if watch != nil {
		// The final scrape must happen even when the run was interrupted,
		// so it does not use ctx.
		rep.Server = watch.finish(context.WithoutCancel(ctx))
	}
	return rep, rep.CheckSLOs(p.SLOs)
}

// GetWorkload fetches one URL for every arrival: the shape of a
// single-endpoint benchmark, and of the bare net/http baseline it is
// compared with.
type GetWorkload struct {
	Client *http.Client
	URL    string
	Step   string      // the step name in the report; "get" when empty
	Header http.Header // sent with every request
}

// Do implements Workload.
func (g *GetWorkload) Do(ctx context.Context) Outcome {
	step := g.Step
	if step == "" {
		step = "get"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL, nil)
	if err != nil {
		return Outcome{Step: step, Err: fmt.Errorf("%w: %v", ErrClient, err)}
	}
	for k, v := range g.Header {
		req.Header[k] = v
	}
	return Send(g.Client, req, step)
}

// Send does one request and reads the whole body (so the connection is
// reused, and the latency includes the transfer), returning its Outcome.
func Send(client *http.Client, req *http.Request, step string) Outcome {
	resp, err := client.Do(req)
	if err != nil {
		return Outcome{Step: step, Err: err}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return Outcome{Step: step, Err: err}
	}
	return Outcome{Step: step, Status: resp.StatusCode}
}

// NewHTTPClient returns a client tuned for load: enough idle connections to
// the target for every worker (the default keeps 2, and the rest would be
// re-dialled for every request), and HTTP/1.1 with one connection per
// request in flight, as proxies mostly speak to an origin. Timeouts come from
// each request's context.
func NewHTTPClient(concurrency int) *http.Client {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = concurrency
	t.MaxIdleConnsPerHost = concurrency
	t.ForceAttemptHTTP2 = false
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: t}
}
