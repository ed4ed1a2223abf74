package bench

import (
	"fmt"
	"strings"
	"testing"
)

const exposition = `# TYPE million_http_requests_total counter
million_http_requests_total{code="200",method="GET",route="/v1/products/{id}"} %d
million_http_requests_total{code="404",method="GET",route="/v1/products/{id}"} 5
# TYPE million_db_queries_total counter
million_db_queries_total{outcome="ok",statement="SELECT products"} %d
million_db_queries_total{outcome="error",statement="SELECT products"} 1
million_db_queries_total{outcome="ok",statement="INSERT orders"} %d
# TYPE million_cache_requests_total counter
million_cache_requests_total{entity="product",level="l1",result="hit"} %d
million_cache_requests_total{entity="product",level="l1",result="miss"} %d
million_cache_requests_total{entity="product",level="l2",result="miss"} 1000
`

func counted(t *testing.T, requests, selects, inserts, hits, misses int) *counters {
	t.Helper()
	c, err := parseCounters(strings.NewReader(fmt.Sprintf(exposition, requests, selects, inserts, hits, misses)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCountersDiffByStatementAndL1(t *testing.T) {
	t.Parallel()
	before := counted(t, 100, 100, 2, 0, 100)
	after := counted(t, 1100, 150, 12, 950, 150)
	d := after.since(before)
	if d.requests != 1000 {
		t.Errorf("requests = %v, want 1000 (every code summed, then the difference)", d.requests)
	}
	if d.queries["SELECT products"] != 50 || d.queries["INSERT orders"] != 10 || len(d.queries) != 2 {
		t.Errorf("queries by statement = %v, want 50 SELECT products (outcomes summed) and 10 INSERT orders", d.queries)
	}
	if r := d.hitRatio(); r == nil || *r != 0.95 {
		t.Errorf("L1 hit ratio = %v, want 0.95 (L2 lookups left out)", r)
	}
	if got, want := perRequest(d.queries, d.requests, 1), "SELECT products 0.050, and 1 more"; got != want {
		t.Errorf("perRequest = %q, want %q", got, want)
	}
	if got := perRequest(nil, 0, 5); got != "none" {
		t.Errorf("perRequest with nothing = %q", got)
	}
	if r := counted(t, 1, 1, 1, 0, 0).since(counted(t, 1, 1, 1, 0, 0)).hitRatio(); r != nil {
		t.Errorf("hit ratio without lookups = %v, want none", *r)
	}
}

// TestCacheEffectRatioIsQueriesPerRequest checks what the cache-effect
// scenario reports from its rounds: the ratio of database queries per
// request, cache on over cache off, a cache that ran no query at all
// counting as 0 rather than unmeasured, and the statements left.
func TestCacheEffectRatioIsQueriesPerRequest(t *testing.T) {
	t.Parallel()
	hit := 0.98
	side := func(name string, requests, perRequest float64, stmts map[string]float64, hits *float64) *Side {
		return &Side{Name: name, ThroughputRPS: 1000, OK: 10000, FixedRate: true, ServerRequests: requests,
			DBQueriesPerRequest: perRequest, DBQueriesByStatement: stmts, CacheHitRatio: hits,
			Latency: &Latency{RateRPS: 1000, P99: 3}}
	}
	sr := ScenarioResult{Name: "cache-effect", Baseline: "cache off", RatioOf: "database queries per request, cache on / cache off"}
	sr.ratio = func(t, b *Side) (float64, bool) {
		return t.DBQueriesPerRequest / b.DBQueriesPerRequest, b.DBQueriesPerRequest > 0
	}
	r := &runner{log: &strings.Builder{}}
	for i, on := range []float64{0.2, 0, 0.3} {
		rd := Round{N: i + 1,
			Baseline: side("cache off (--no-cache)", 10000, 2, map[string]float64{"SELECT products": 15000, "INSERT orders": 5000}, nil),
			Target:   side("million", 10000, on, map[string]float64{"INSERT orders": 10000 * on}, &hit)}
		r.roundRatio(&sr, &rd)
		sr.Rounds = append(sr.Rounds, rd)
	}
	sr.Rounds[1].Baseline.Latency.Errors, sr.Rounds[1].Baseline.Latency.Scheduled = 7, 10000
	sr.summarize()
	if want := (Stat{Median: 0.1, Min: 0, Max: 0.15, N: 3}); sr.Ratio != want {
		t.Errorf("ratio = %+v, want %+v", sr.Ratio, want)
	}
	if sr.DBQueriesPerRequest.N != 3 || sr.DBQueriesPerRequest.Min != 0 || sr.BaselineDBQueriesPerRequest.Median != 2 {
		t.Errorf("queries per request = %+v / %+v", sr.DBQueriesPerRequest, sr.BaselineDBQueriesPerRequest)
	}
	notes := strings.Join(statementNotes(&sr), "\n")
	for _, want := range []string{
		"statements per request with the cache on (all rounds, 30,000 requests): INSERT orders 0.167",
		"L1 cache hit ratio with the cache on: 0.9800",
		"statements per request with the cache off (all rounds, 30,000 requests): SELECT products 1.500, INSERT orders 0.500",
		"the cache-off server failed 7 of 10,000 arrivals at this rate",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	res := &Result{Command: "million bench --scenario cache-effect", Rounds: 3, Scenarios: []ScenarioResult{sr}}
	row := res.DocRows()[0].String()
	for _, want := range []string{"**0.10 (0.00–0.15)** (database queries per request, cache on / cache off)",
		"0.200 (0.000–0.300) database queries per request", "2.000 database queries per request"} {
		if !strings.Contains(row, want) {
			t.Errorf("row lacks %q:\n%s", want, row)
		}
	}
}
