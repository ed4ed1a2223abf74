package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The server metrics the report reads. million exports them on its admin
// listener; any other target simply lacks some, and the report says so by
// leaving them at zero.
const (
	metricRequests = "million_http_requests_total"
	metricQueries  = "million_db_queries_total"
	metricCPU      = "process_cpu_seconds_total"
	metricRSS      = "process_resident_memory_bytes"
	cachePrefix    = "million_cache_"
)

// ServerReport is the server's own view of the run: the difference between
// its metrics just before and just after the measured schedule.
type ServerReport struct {
	URL string `json:"url"`
	// Requests is what the server counted as served (million_http_requests_total),
	// RequestsByCode the same by status code.
	Requests       float64            `json:"requests"`
	RequestsByCode map[string]float64 `json:"requests_by_code"`
	// DBQueries is the database statements run (million_db_queries_total over
	// all statements), DBQueryErrors those that failed.
	DBQueries     float64 `json:"db_queries"`
	DBQueryErrors float64 `json:"db_query_errors"`
	// DBQueriesPerRequest is DBQueries over Requests: the figure a cache is
	// meant to bring down.
	DBQueriesPerRequest float64 `json:"db_queries_per_request"`
	// Cache holds the increase of every million_cache_* counter, by series
	// ("name{label=value}"); absent when the server has no cache metrics.
	Cache map[string]float64 `json:"cache,omitempty"`
	// CacheHitRatio is hits over hits plus misses, summed over the cache
	// series whose names say "hit" or "miss", when both exist.
	CacheHitRatio *float64 `json:"cache_hit_ratio,omitempty"`
	// CPUSeconds is the server process's CPU time over the run;
	// CPUMsPerRequest the same per request served.
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUMsPerRequest float64 `json:"cpu_ms_per_request"`
	// RSSPeakBytes is the largest resident set seen, sampled about once a
	// second, and RSSEndBytes the one at the end.
	RSSPeakBytes float64       `json:"rss_peak_bytes"`
	RSSEndBytes  float64       `json:"rss_end_bytes"`
	Series       []ServerPoint `json:"series,omitempty"`
	// Error says why the final scrape failed, if it did.
	Error string `json:"error,omitempty"`
}

// ServerPoint is the server's rates between two scrapes about a second
// apart, for plots next to the generator's own series.
type ServerPoint struct {
	T             float64 `json:"t"` // seconds since the start of the measured run
	RequestsPerS  float64 `json:"requests_per_s"`
	DBQueriesPerS float64 `json:"db_queries_per_s"`
	RSSBytes      float64 `json:"rss_bytes"`
	// CPUCores is CPU seconds per second of wall time: 1 is one core busy.
	CPUCores float64 `json:"cpu_cores"`
}

// sample is one scrape.
type sample struct {
	at   time.Time
	fams map[string]*dto.MetricFamily
}

// sum adds the values of every series of the family whose labels pass keep
// (all of them when keep is nil).
func (s *sample) sum(name string, keep func(*dto.Metric) bool) float64 {
	mf := s.fams[name]
	if mf == nil {
		return 0
	}
	var total float64
	for _, m := range mf.GetMetric() {
		if keep == nil || keep(m) {
			total += value(m)
		}
	}
	return total
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// byLabels is every series of a family keyed "name{a=1,b=2}" (labels sorted).
func (s *sample) byLabels(name string) map[string]float64 {
	out := map[string]float64{}
	mf := s.fams[name]
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		slices.Sort(ls)
		key := name
		if len(ls) > 0 {
			key += "{" + strings.Join(ls, ",") + "}"
		}
		out[key] += value(m)
	}
	return out
}

// scrapeMetrics fetches and parses a Prometheus text exposition.
func scrapeMetrics(ctx context.Context, client *http.Client, url string) (*sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Ask for the classic text format: it is what the parser reads, and
	// every Prometheus client library serves it.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return &sample{at: time.Now(), fams: fams}, nil
}

// serverWatch follows the server's metrics over a run: one scrape before,
// one about every second (for the peak RSS and the server's own rates) and
// one after.
type serverWatch struct {
	client *http.Client
	url    string
	before *sample
	stop   chan struct{}
	done   chan struct{}

	mu     sync.Mutex
	start  time.Time
	last   *sample
	peak   float64
	series []ServerPoint
}

// watchServer takes the "before" scrape; a failure here is an error of the
// run, since the user asked for server metrics and would otherwise only
// learn at the end that the URL was wrong.
func watchServer(ctx context.Context, client *http.Client, url string, every time.Duration) (*serverWatch, error) {
	before, err := scrapeMetrics(ctx, client, url)
	if err != nil {
		return nil, err
	}
	if before.fams[metricRequests] == nil {
		return nil, fmt.Errorf("%s has no %s: is it a million server's admin /metrics?", url, metricRequests)
	}
	w := &serverWatch{client: client, url: url, before: before, last: before, start: time.Now(),
		peak: before.sum(metricRSS, nil), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if s, err := scrapeMetrics(ctx, client, url); err == nil {
					w.add(s)
				}
			}
		}
	}()
	return w, nil
}

func (w *serverWatch) add(s *sample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	dt := s.at.Sub(w.last.at).Seconds()
	rss := s.sum(metricRSS, nil)
	w.peak = max(w.peak, rss)
	if dt > 0 {
		w.series = append(w.series, ServerPoint{
			T:             s.at.Sub(w.start).Seconds(),
			RequestsPerS:  (s.sum(metricRequests, nil) - w.last.sum(metricRequests, nil)) / dt,
			DBQueriesPerS: (s.sum(metricQueries, nil) - w.last.sum(metricQueries, nil)) / dt,
			RSSBytes:      rss,
			CPUCores:      (s.sum(metricCPU, nil) - w.last.sum(metricCPU, nil)) / dt,
		})
	}
	w.last = s
}

// settle is how long the "after" scrape waits once the last response is
// in: a server counts a request just after writing its response, so the
// last few would otherwise be missing from the difference.
const settle = 100 * time.Millisecond

// finish takes the "after" scrape and computes the differences.
func (w *serverWatch) finish(ctx context.Context) *ServerReport {
	close(w.stop)
	<-w.done
	time.Sleep(settle)
	r := &ServerReport{URL: w.url, RequestsByCode: map[string]float64{}}
	after, err := scrapeMetrics(ctx, w.client, w.url)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	w.add(after)
	b := w.before
	r.Requests = after.sum(metricRequests, nil) - b.sum(metricRequests, nil)
	codesAfter, codesBefore := codes(after), codes(b)
	for code, n := range codesAfter {
		if d := n - codesBefore[code]; d > 0 {
			r.RequestsByCode[code] = d
		}
	}
	r.DBQueries = after.sum(metricQueries, nil) - b.sum(metricQueries, nil)
	isErr := func(m *dto.Metric) bool { return label(m, "outcome") == "error" }
	r.DBQueryErrors = after.sum(metricQueries, isErr) - b.sum(metricQueries, isErr)
	if r.Requests > 0 {
		r.DBQueriesPerRequest = r.DBQueries / r.Requests
	}
	r.CPUSeconds = after.sum(metricCPU, nil) - b.sum(metricCPU, nil)
	if r.Requests > 0 {
		r.CPUMsPerRequest = r.CPUSeconds * 1000 / r.Requests
	}
	r.RSSEndBytes = after.sum(metricRSS, nil)
	w.mu.Lock()
	r.RSSPeakBytes, r.Series = w.peak, w.series
	w.mu.Unlock()

	var hits, misses float64
	var sawHit, sawMiss bool
	for name, mf := range after.fams {
		if !strings.HasPrefix(name, cachePrefix) || (mf.GetType() != dto.MetricType_COUNTER && mf.GetType() != dto.MetricType_UNTYPED) {
			continue
		}
		if r.Cache == nil {
			r.Cache = map[string]float64{}
		}
		before := b.byLabels(name)
		for key, v := range after.byLabels(name) {
			d := v - before[key]
			r.Cache[key] = d
			switch {
			case strings.Contains(key, "miss"):
				misses, sawMiss = misses+d, true
			case strings.Contains(key, "hit"):
				hits, sawHit = hits+d, true
			}
		}
	}
	if sawHit && sawMiss && hits+misses > 0 {
		ratio := hits / (hits + misses)
		r.CacheHitRatio = &ratio
	}
	return r
}

// codes sums million_http_requests_total by its code label.
func codes(s *sample) map[string]float64 {
	out := map[string]float64{}
	if mf := s.fams[metricRequests]; mf != nil {
		for _, m := range mf.GetMetric() {
			out[label(m, "code")] += value(m)
		}
	}
	return out
}
