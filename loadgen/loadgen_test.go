package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// stallServer answers at once, except during one window: stallAfter after
// the first request it stops answering for stall, as a server does in a
// long GC pause, a lock convoy or a full disk; everything that arrives in
// the window waits for its end.
type stallServer struct {
	*httptest.Server
	once            sync.Once
	from, to        time.Time
	mu              sync.Mutex
	arrivedInStall  atomic.Int64
	stallAfter, len time.Duration
}

func newStallServer(t *testing.T, stallAfter, stall time.Duration) *stallServer {
	s := &stallServer{stallAfter: stallAfter, len: stall}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		s.once.Do(func() {
			s.mu.Lock()
			s.from = now.Add(s.stallAfter)
			s.to = s.from.Add(s.len)
			s.mu.Unlock()
		})
		s.mu.Lock()
		from, to := s.from, s.to
		s.mu.Unlock()
		if !now.Before(from) && now.Before(to) {
			s.arrivedInStall.Add(1)
			time.Sleep(time.Until(to))
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(s.Close)
	return s
}

// TestOpenModelReportsStall is the proof that the generator is open-model
// (acceptance 2 of issue 4). At 200 req/s for 3 s against a server that
// stalls for 1 s once, about 200 requests fall due during the stall. They
// are still sent on schedule, and each one's latency runs from when it was
// due, so the reported p99 and max carry the stall. A closed-loop client at
// the same nominal rate, measured the usual way, waits on its one request,
// sends nothing while it waits and reports a p99 that hides the stall.
//
// Not parallel with the package's other tests: its bounds are about time,
// and their load (hundreds of requests a second under -race) stalls the
// generator too (scripts/test also runs this package alone).
func TestOpenModelReportsStall(t *testing.T) {
	const rate, dur, stall = 200, 3 * time.Second, time.Second

	t.Run("open model", func(t *testing.T) {
		t.Parallel()
		srv := newStallServer(t, 700*time.Millisecond, stall)
		stages := []Stage{{Rate: rate, Duration: dur}}
		res, err := Run(context.Background(), Options{Stages: stages, Concurrency: 500, Timeout: 5 * time.Second},
			&GetWorkload{Client: NewHTTPClient(500), URL: srv.URL})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		rep := res.Report(Meta{Target: srv.URL})
		s := rep.Summary
		t.Logf("open model: sent %d, %d arrived during the stall, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms, send lag max %.2f ms",
			s.Sent, srv.arrivedInStall.Load(), s.Latency.P50, s.Latency.P90, s.Latency.P99, s.Latency.Max, s.SendLag.Max)

		// The schedule did not slow down: every arrival of rate × duration
		// was sent, and the server saw them arrive during the stall.
		if want := int64(rate * dur.Seconds()); s.Scheduled != want || s.Sent != want || s.Completed != want {
			t.Fatalf("scheduled %d, sent %d, completed %d; want %d each", s.Scheduled, s.Sent, s.Completed, want)
		}
		if n := srv.arrivedInStall.Load(); n < 180 {
			t.Fatalf("only %d requests reached the server during the 1 s stall, want ≈ 200: the schedule waited for responses", n)
		}
		if s.Dropped != 0 || s.Errors != 0 {
			t.Fatalf("dropped %d, errors %d; want none", s.Dropped, s.Errors)
		}
		if s.SendLag.Max > 200 {
			t.Fatalf("requests left up to %.1f ms after they were due; the schedule must not wait for the stall", s.SendLag.Max)
		}
		// The stall shows: a third of the requests waited for it, so the
		// p99 is near the full second and the max is the second.
		if s.Latency.P99 < 900 || s.Latency.Max < 950 || s.Latency.Max > 1500 {
			t.Fatalf("p99 %.1f ms, max %.1f ms; want p99 ≥ 900 ms and max ≈ 1000 ms", s.Latency.P99, s.Latency.Max)
		}
		// Fast is within 100 ms, plus however long this machine stalled
		// the generator itself (its send lag): a CI machine busy with other
		// packages' tests has delayed everything by over 100 ms.
		if limit := 100 + s.SendLag.Max; s.Latency.P50 > limit {
			t.Fatalf("p50 %.1f ms, over %.1f ms; most requests were not due during the stall and must stay fast", s.Latency.P50, limit)
		}
		// The per-second series shows the stall too: a second without
		// completions, then one whose p99 is the stall.
		var worst float64
		for _, p := range rep.Series {
			worst = max(worst, p.P99)
		}
		if worst < 900 {
			t.Fatalf("no second of the series has p99 ≥ 900 ms: %+v", rep.Series)
		}
	})

	t.Run("closed loop hides it", func(t *testing.T) {
		t.Parallel()
		srv := newStallServer(t, 700*time.Millisecond, stall)
		client := NewHTTPClient(1)
		h := hdr.New(histLowest, histHighest, histDigits)
		interval := time.Second / rate
		start := time.Now()
		next := start
		sent := 0
		for time.Since(start) < dur {
			time.Sleep(time.Until(next))
			t0 := time.Now()
			resp, err := client.Get(srv.URL)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			resp.Body.Close()
			_ = h.RecordValue(micros(time.Since(t0)))
			sent++
			// The naive loop: the next request is due one interval after
			// this one was sent, or right away if that has passed.
			next = t0.Add(interval)
		}
		p99, maxMs := ms(h.ValueAtQuantile(99)), ms(h.Max())
		t.Logf("closed loop: sent %d of %d due, p99 %.1f ms, max %.1f ms", sent, int(rate*dur.Seconds()), p99, maxMs)
		if maxMs < 900 {
			t.Fatalf("the closed loop never saw the stall (max %.1f ms)", maxMs)
		}
		// Hidden: the p99 stays far below the stall that the open model's
		// p99 shows (≥ 900 ms). Not a fixed 100 ms: on a machine busy with
		// other tests, requests taking over 250 ms have been the machine,
		// not the stall.
		if limit := ms(micros(stall / 2)); p99 > limit {
			t.Fatalf("closed-loop p99 %.1f ms, over %.0f ms; expected it to hide the %v stall", p99, limit, stall)
		}
		if due := int(rate * dur.Seconds()); sent > due*85/100 {
			t.Fatalf("closed loop sent %d of %d due; it should have fallen behind by the stall", sent, due)
		}
	})
}

func fastServer(t *testing.T, delay time.Duration, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRampSendsEveryStepAtItsRate runs a two-step ramp and checks the
// arrivals per second follow it.
func TestRampSendsEveryStepAtItsRate(t *testing.T) {
	t.Parallel()
	srv := fastServer(t, 0, http.StatusOK)
	stages, err := ParseRamp("50:1s, 150:1s")
	if err != nil {
		t.Fatal(err)
	}
	var progress []Progress
	var mu sync.Mutex
	res, err := Run(context.Background(), Options{Stages: stages, Concurrency: 50,
		Progress: func(p Progress) { mu.Lock(); progress = append(progress, p); mu.Unlock() }},
		&GetWorkload{Client: NewHTTPClient(50), URL: srv.URL, Step: "ping"})
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report(Meta{})
	if rep.Summary.Scheduled != 200 || rep.Summary.OK != 200 || Arrivals(stages) != 200 {
		t.Fatalf("scheduled %d, ok %d, Arrivals %d; want 200", rep.Summary.Scheduled, rep.Summary.OK, Arrivals(stages))
	}
	if len(rep.Series) < 2 || rep.Series[0].Offered != 50 || rep.Series[1].Offered != 150 {
		t.Fatalf("offered per second %+v, want 50 then 150", rep.Series)
	}
	if st := rep.Step("ping"); st == nil || st.Count != 200 || st.Statuses["200"] != 200 || len(st.Distribution) == 0 {
		t.Fatalf("step ping: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(progress) == 0 || !strings.Contains(progress[len(progress)-1].String(), "rate 150/s") {
		t.Fatalf("progress %v, want a line at rate 150/s", progress)
	}
}

// TestSaturationIsCountedNotHidden drives a slow server with too few
// workers: arrivals that find every worker busy wait (late), those beyond
// the backlog are dropped, slow requests time out, and all of it is in the
// report instead of a quietly slower schedule.
func TestSaturationIsCountedNotHidden(t *testing.T) {
	t.Parallel()
	srv := fastServer(t, 2*time.Second, http.StatusOK)
	res, err := Run(context.Background(), Options{
		Stages: []Stage{{Rate: 100, Duration: 500 * time.Millisecond}}, Concurrency: 2, Backlog: 3,
		Timeout: 100 * time.Millisecond,
	}, &GetWorkload{Client: NewHTTPClient(2), URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report(Meta{})
	s := rep.Summary
	if s.Scheduled != 50 {
		t.Fatalf("scheduled %d, want 50: the schedule must not slow down", s.Scheduled)
	}
	if s.Dropped == 0 || s.Late == 0 || s.Completed+s.Dropped != 50 {
		t.Fatalf("late %d, dropped %d, completed %d; want late and dropped arrivals, and all 50 accounted for", s.Late, s.Dropped, s.Completed)
	}
	if rep.Errors.ByStatus[ClassTimeout] != s.Completed || rep.Errors.ByStatus[ClassDropped] != s.Dropped || s.Errors != 50 {
		t.Fatalf("errors %+v (total %d); want every completed one a timeout and every dropped one counted", rep.Errors.ByStatus, s.Errors)
	}
	if err := rep.CheckSLOs(mustSLOs(t, "errors<1%")); err == nil {
		t.Fatal("errors<1% passed with every request failed")
	}
}

// TestCancelStopsTheRun ends the context mid-run: Run returns promptly,
// cuts the requests in flight and marks the report interrupted.
func TestCancelStopsTheRun(t *testing.T) {
	t.Parallel()
	srv := fastServer(t, 5*time.Second, http.StatusOK)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Options{Stages: []Stage{{Rate: 20, Duration: time.Minute}}, Timeout: 10 * time.Second},
		&GetWorkload{Client: NewHTTPClient(10), URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Run took %s after its context ended", took)
	}
	rep := res.Report(Meta{})
	if !rep.Meta.Interrupted || rep.Summary.Errors != 0 || rep.Summary.Cancelled == 0 {
		t.Fatalf("interrupted %v, errors %d, cancelled %d; want an interrupted run whose cut requests are not server errors",
			rep.Meta.Interrupted, rep.Summary.Errors, rep.Summary.Cancelled)
	}
}

func mustSLOs(t *testing.T, s string) []SLO {
	t.Helper()
	slos, err := ParseSLOs(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return slos
}

func TestSLOs(t *testing.T) {
	t.Parallel()
	rep := &Report{
		Meta:    Meta{DurationS: 10},
		Summary: Summary{Completed: 1000, OK: 995, Errors: 5, Latency: Latency{P50: 1, P90: 4, P99: 20, P999: 40, Max: 80}},
		Steps:   []StepReport{{Name: "checkout", Count: 10, Errors: 1, Latency: Latency{P99: 300}}},
	}
	for _, tc := range []struct {
		slo  string
		pass bool
	}{
		{"p99<25ms", true},
		{"p99<20ms", false},
		{"p99<=20ms", true},
		{"p50<1500us", true},
		{"p90<4ms", false},
		{"p99.9<0.05s", true},
		{"max<50ms", false},
		{"errors<1%", true},
		{"errors<0.1%", false},
		{"errors<=5", true},
		{"errors<5", false},
		{"rps>99", true},
		{"rps>=100", false},
		{"checkout.p99<250ms", false},
		{"checkout.errors<20%", true},
		{"nosuchstep.p99<1s", false},
	} {
		slos, err := ParseSLOs(tc.slo)
		if err != nil || len(slos) != 1 {
			t.Fatalf("parse %q: %v", tc.slo, err)
		}
		if got := slos[0].Check(rep); got.Pass != tc.pass {
			t.Errorf("%s: pass %v, want %v (%s)", tc.slo, got.Pass, tc.pass, got.Message)
		}
	}
	err := rep.CheckSLOs(mustSLOs(t, "p99<25ms, errors<0.1%"))
	if err == nil || !strings.Contains(err.Error(), "errors<0.1%") || strings.Contains(err.Error(), "p99<25ms") {
		t.Fatalf("CheckSLOs: %v; want only errors<0.1%% named as missed", err)
	}
	if len(rep.SLO) != 2 || !rep.SLO[0].Pass || rep.SLO[1].Pass {
		t.Fatalf("SLO results %+v", rep.SLO)
	}
	for _, bad := range []string{"p99", "p98<1ms", "p99<25", "errors<x%", "rps>fast", "<1ms"} {
		if _, err := ParseSLOs(bad); err == nil {
			t.Errorf("ParseSLOs(%q) accepted it", bad)
		}
	}
}

func TestParseRamp(t *testing.T) {
	t.Parallel()
	got, err := ParseRamp("100:10s,500/s:1m, 0:5s")
	if err != nil {
		t.Fatal(err)
	}
	want := []Stage{{100, 10 * time.Second}, {500, time.Minute}, {0, 5 * time.Second}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if n := Arrivals(got); n != 1000+30000 {
		t.Fatalf("Arrivals %d, want 31000", n)
	}
	if n := Arrivals([]Stage{{Rate: 3, Duration: time.Second}}); n != 3 {
		t.Fatalf("Arrivals at 3/s for 1s: %d", n)
	}
	for _, bad := range []string{"", "100", "100:0s", "-1:1s", "x:1s", "100:soon"} {
		if _, err := ParseRamp(bad); err == nil {
			t.Errorf("ParseRamp(%q) accepted it", bad)
		}
	}
	b, err := json.Marshal(want[0])
	if err != nil || string(b) != `{"rate":100,"duration_s":10}` {
		t.Fatalf("stage JSON %s, %v", b, err)
	}
}

// TestServerDiff scrapes an exposition before and after and checks the
// differences, the per-request figures and the cache section, which million
// itself does not export yet.
func TestServerDiff(t *testing.T) {
	t.Parallel()
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := float64(scrapes.Add(1) - 1) // 0 before, then growing
		fmt.Fprintf(w, `# TYPE million_http_requests_total counter
million_http_requests_total{route="GET /v1/products/{id}",method="GET",code="200"} %g
million_http_requests_total{route="GET /v1/products/{id}",method="GET",code="304"} %g
# TYPE million_db_queries_total counter
million_db_queries_total{statement="select products",outcome="ok"} %g
million_db_queries_total{statement="select products",outcome="error"} %g
# TYPE million_cache_hits_total counter
million_cache_hits_total{layer="l1"} %g
# TYPE million_cache_misses_total counter
million_cache_misses_total{layer="l1"} %g
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total %g
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes %g
`, 1000+90*n, 10*n, 500+19*n, n, 90*n, 10*n, 3+0.1*n, 50e6+1e6*n)
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	w, err := watchServer(ctx, srv.Client(), srv.URL, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := w.finish(ctx) // the second scrape: n = 1
	if r.Error != "" || r.Requests != 100 || r.RequestsByCode["200"] != 90 || r.RequestsByCode["304"] != 10 {
		t.Fatalf("requests %+v", r)
	}
	if r.DBQueries != 20 || r.DBQueryErrors != 1 || r.DBQueriesPerRequest != 0.2 {
		t.Fatalf("db queries %g (errors %g), per request %g; want 20, 1, 0.2", r.DBQueries, r.DBQueryErrors, r.DBQueriesPerRequest)
	}
	if r.Cache[`million_cache_hits_total{layer=l1}`] != 90 || r.CacheHitRatio == nil || *r.CacheHitRatio != 0.9 {
		t.Fatalf("cache %v ratio %v; want 90 hits and a 0.9 ratio", r.Cache, r.CacheHitRatio)
	}
	if r.RSSPeakBytes != 51e6 || r.CPUSeconds < 0.099 || r.CPUSeconds > 0.101 {
		t.Fatalf("rss peak %g, cpu %g", r.RSSPeakBytes, r.CPUSeconds)
	}
	plain := fastServer(t, 0, http.StatusOK)
	if _, err := watchServer(ctx, plain.Client(), plain.URL, time.Hour); err == nil || !strings.Contains(err.Error(), "million_http_requests_total") {
		t.Fatalf("a URL without million's metrics: %v", err)
	}
}

// TestThroughputCountsTheDrain: a server that answers every request a
// second late finishes a one-second schedule after two seconds, so its
// throughput is half the offered rate, not all of it.
func TestThroughputCountsTheDrain(t *testing.T) {
	t.Parallel()
	srv := fastServer(t, time.Second, http.StatusOK)
	res, err := Run(context.Background(), Options{Stages: []Stage{{Rate: 50, Duration: time.Second}}, Concurrency: 100, Timeout: 5 * time.Second},
		&GetWorkload{Client: NewHTTPClient(100), URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Report(Meta{Target: srv.URL}).Summary
	if s.OK != 50 || s.OfferedRPS != 50 {
		t.Fatalf("ok %d, offered %.1f/s; want 50 and 50/s", s.OK, s.OfferedRPS)
	}
	if s.OKRPS > 30 || s.OKRPS < 15 || s.ThroughputRPS != s.OKRPS {
		t.Fatalf("ok %.1f/s, throughput %.1f/s over a run of about 2 s; want about 25/s", s.OKRPS, s.ThroughputRPS)
	}
}
