package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/millionshop/million/loadgen"
)

// Scenario is one comparison the bench can run. Each names the stage
// configuration million runs in and what it is compared with.
type Scenario struct {
	Name     string // as --scenario takes it
	What     string // the request measured
	Stage    string // million's configuration
	Baseline string // what it is compared with, "" for an absolute target
	Target   string // what bench.md asks
	run      func(ctx context.Context, r *runner, res *ScenarioResult) error
}

// Scenarios is every scenario, in the order "all" runs them.
var Scenarios = []Scenario{
	{
		Name:     "product-get",
		What:     "GET /v1/products/{id}, a product drawn at random from all seeded ones",
		Stage:    "stage 1: embedded SQLite, read cache on (the default: in-process L1; no Redis, so no L2), primed with every product before the warm-up; load shedding off (--no-shed)",
		Baseline: "bare net/http serving the same bytes",
		Target:   "≥ 0.70 of bare, p99 ≤ 2 ms at 50 % of max rate (the L1 cache hit)",
		run:      runProductGet,
	},
	{
		Name:     "product-get-uncached",
		What:     "GET /v1/products/{id}, a product drawn at random from all seeded ones",
		Stage:    "stage 1: embedded SQLite, read cache off (--no-cache); load shedding off (--no-shed)",
		Baseline: "bare net/http serving the same bytes",
		Target:   "none of its own: the reference that shows what the cache adds to product-get",
		run:      runProductGetUncached,
	},
	{
		Name:     "product-list",
		What:     "GET /v1/products?category=… (first page, 20 products), a category drawn at random",
		Stage:    "stage 1: embedded SQLite, read cache on (the default: in-process L1; no Redis, so no L2), primed with every category's first page before the warm-up; load shedding off (--no-shed)",
		Baseline: "bare net/http serving the same bytes",
		Target:   "≥ 0.50 of bare (the cache hit)",
		run:      runProductList,
	},
	{
		Name:     "pg-product-get",
		What:     "GET /v1/products/{id}, a product drawn at random from all seeded ones",
		Stage:    "stage 2: PostgreSQL (throwaway cluster on the server CPU, default settings), read cache off (--no-cache), million's default pool; load shedding off (--no-shed)",
		Baseline: "pgbench -S -M prepared (point read of one row by primary key)",
		Target:   "≥ 0.60 of pgbench -S",
		run:      runPgProductGet,
	},
	{
		Name:     "pg-checkout",
		What:     "POST /v1/checkout of a 3-item cart (stock, order, outbox, payment)",
		Stage:    "stage 2: PostgreSQL (throwaway cluster on the server CPU, default settings: fsync and synchronous_commit on), million's default pool, read cache off (the default on PostgreSQL without --redis); load shedding off (--no-shed)",
		Baseline: "pgbench TPC-B-like default script, -M prepared",
		Target:   "≥ 0.50 of pgbench TPC-B",
		run:      runPgCheckout,
	},
	{
		Name:     "cache-effect",
		What:     "the default journey mix (95 % reads) at a fixed, moderate arrival rate: database queries per request",
		Stage:    "stage 1: embedded SQLite, read cache on (the default: in-process L1; no Redis, so no L2); load shedding off (--no-shed) on both sides",
		Baseline: "the same server with its read cache off (--no-cache), same rate, same journeys",
		Target:   "database queries per request ≤ 0.10 of the cache-off server's (≥ 90 % fewer)",
		run:      runCacheEffect,
	},
	{
		Name:     "cache-effect-reads",
		What:     "the read steps of the default journey mix (product, list, search, categories, orders; no cart, checkout or login) at a fixed, moderate arrival rate: database queries per request",
		Stage:    "stage 1: embedded SQLite, read cache on (the default: in-process L1; no Redis, so no L2); load shedding off (--no-shed) on both sides",
		Baseline: "the same server with its read cache off (--no-cache), same rate, same journeys",
		Target:   "none of its own: what the cache does to the reads, beside cache-effect's whole mix (≤ 0.10)",
		run:      runCacheEffectReads,
	},
	{
		Name:     "gateway",
		What:     "GET /v1/products/{id} through a reverse proxy, round robin over two bare net/http backends",
		Stage:    "stage 3: million gateway (GOMAXPROCS=1), rate limits off (--rate-limit-ip 0 --rate-limit-user 0), its two backends on the same CPU",
		Baseline: "HAProxy 2.6 (nbthread 1), round robin over the same two backends",
		Target:   "≥ 1.0 of HAProxy's throughput, p99 no worse at the same rate",
		run:      runGateway,
	},
	{
		Name:   "peak",
		What:   "the million-user peak: the default journey mix (95 % reads) at a fixed arrival rate",
		Stage:  "stage 1: embedded SQLite, one server core; read cache and load shedding on (the defaults: a shed request counts as an error)",
		Target: "≥ 10,000 req/s, p99 ≤ 25 ms, 0 errors, RSS ≤ 256 MiB",
		run:    runPeak,
	},
}

// Flags of million serve the scenarios choose. Load shedding answers 503
// when the server has more in flight than it can finish in time, which is
// what a closed-loop probe always does (every connection has a request in
// flight and the CPU is busy): with shedding on, a probe would measure how
// many requests the server refuses as well as how many it serves, so the
// scenarios that measure capacity, and cache-effect, whose figure a shed
// request (no query) would lower, turn it off. peak keeps the default, at a
// fixed rate, where a shed request is an error like any other.
const (
	noShed  = "--no-shed"
	noCache = "--no-cache"
)

// setupClient talks to the servers outside the measurement: discovery,
// logins, captures.
var setupClient = &http.Client{Timeout: 30 * time.Second}

// httpSide is an HTTP server measured by the generator: million or the
// bare baseline.
type httpSide struct {
	r     *runner
	name  string
	srv   *server
	roots []int // the server's processes, for their CPU time: srv, and PostgreSQL when used
	t     *httpTarget
	next  nextFunc
	step  string
	// metrics is million's admin /metrics URL, when its L1 cache hit ratio
	// and database queries per request are to be measured over the
	// capacity run.
	metrics string
	// profile is the file for the server's CPU profile over the next
	// capacity run, "" for none (or once written).
	profile string
}

func (s *httpSide) pause()  { s.srv.pause() }
func (s *httpSide) resume() { s.srv.resume() }

func (s *httpSide) warm(ctx context.Context, d time.Duration) error {
	if p := s.t.saturate(ctx, d, s.next); p.OK == 0 {
		return fmt.Errorf("%s answered nothing successfully: %s", s.name, p.Sample)
	}
	return nil
}

func (s *httpSide) measure(ctx context.Context, d time.Duration) (*Side, error) {
	m, err := s.capacity(ctx, d)
	if err != nil {
		return m, err
	}
	m.Latency, err = openModel(ctx, s.r.cfg.Pins, s.t, s.next, s.step, m.ThroughputRPS/2, d)
	return m, err
}

// capacity is the closed-loop probe of measure.
func (s *httpSide) capacity(ctx context.Context, d time.Duration) (*Side, error) {
	var before *counters
	if s.metrics != "" {
		var err error
		if before, err = scrapeCounters(ctx, s.metrics); err != nil {
			return nil, err
		}
	}
	mt := newMeter(s.roots...)
	mt.start()
	profiled := s.r.startProfile(ctx, s.srv, &s.profile, d)
	p := s.t.saturate(ctx, d, s.next)
	mt.stop()
	profiled()
	m := &Side{Name: s.name, ThroughputRPS: p.rps(), OK: p.OK, Errors: p.Errors, DurationS: p.Elapsed.Seconds(), ErrorSample: p.Sample}
	mt.report(s.r.cfg.Pins, m)
	if before != nil {
		after, err := scrapeCounters(ctx, s.metrics)
		if err != nil {
			return m, err
		}
		d := after.since(before)
		m.CacheHitRatio = d.hitRatio()
		if d.requests > 0 {
			var q float64
			for _, n := range d.queries {
				q += n
			}
			m.ServerRequests, m.DBQueriesPerRequest = d.requests, q/d.requests
		}
	}
	if p.OK == 0 {
		return m, fmt.Errorf("no successful answer: %s", p.Sample)
	}
	return m, nil
}

// openModel sends next's requests to t at a fixed rate for d (package
// loadgen: latency from the intended send time) and sums the run up.
func openModel(ctx context.Context, pins Pins, t *httpTarget, next nextFunc, step string, rate float64, d time.Duration) (*Latency, error) {
	if rate <= 0 {
		return nil, errors.New("no rate to run the open model at")
	}
	mt := newMeter()
	mt.start()
	res, err := loadgen.Run(ctx, loadgen.Options{
		Stages: []loadgen.Stage{{Rate: rate, Duration: d}}, Concurrency: cap(t.conns),
		Timeout: loadgen.DefaultTimeout, Steps: []string{step},
	}, &workload{t: t, next: next, step: step})
	if err != nil {
		return nil, err
	}
	mt.stop()
	var gen Side
	mt.report(pins, &gen)
	rep := res.Report(loadgen.Meta{})
	s := rep.Summary
	l := &Latency{RateRPS: rate, DurationS: d.Seconds(), Scheduled: s.Scheduled, Completed: s.Completed, Errors: s.Errors,
		P50: s.Latency.P50, P90: s.Latency.P90, P99: s.Latency.P99, P999: s.Latency.P999, Max: s.Latency.Max,
		SendLagP99: s.SendLag.P99, Late: s.Late, GeneratorCPU: gen.GeneratorCPU, GeneratorProcess: gen.GeneratorProcess}
	if len(rep.Errors.ByStatus) > 0 {
		l.ByStatus = rep.Errors.ByStatus
	}
	return l, nil
}

// pick returns a nextFunc drawing GETs of paths uniformly at random.
func pick(paths []string) nextFunc {
	reqs := make([]request, len(paths))
	for i, p := range paths {
		reqs[i] = request{method: http.MethodGet, path: p}
	}
	return func() (*request, bool) { return &reqs[rand.IntN(len(reqs))], true }
}

// productInfo is a product as discovery finds it.
type productInfo struct {
	ID    string `json:"id"`
	Stock int64  `json:"stock"`
}

// discoverProducts lists every product through the API, 100 a page.
func discoverProducts(ctx context.Context, base string) ([]productInfo, error) {
	var all []productInfo
	cursor := ""
	for {
		path := "/v1/products?limit=100"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Items      []productInfo `json:"items"`
			NextCursor string        `json:"next_cursor"`
		}
		if err := getJSON(ctx, base+path, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if cursor = page.NextCursor; cursor == "" || len(page.Items) == 0 {
			break
		}
	}
	if len(all) == 0 {
		return nil, errors.New("the server has no products")
	}
	return all, nil
}

func getJSON(ctx context.Context, u string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := setupClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

func productPaths(ctx context.Context, base string) ([]string, error) {
	ps, err := discoverProducts(ctx, base)
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(ps))
	for i, p := range ps {
		paths[i] = "/v1/products/" + url.PathEscape(p.ID)
	}
	return paths, nil
}

func categoryPaths(ctx context.Context, base string) ([]string, error) {
	var cats struct {
		Items []struct {
			Slug string `json:"slug"`
		} `json:"items"`
	}
	if err := getJSON(ctx, base+"/v1/categories", &cats); err != nil {
		return nil, err
	}
	var paths []string
	for _, c := range cats.Items {
		paths = append(paths, "/v1/products?category="+url.QueryEscape(c.Slug))
	}
	if len(paths) == 0 {
		return nil, errors.New("the server has no categories")
	}
	return paths, nil
}

func runProductGet(ctx context.Context, r *runner, res *ScenarioResult) error {
	return r.sqliteVsBare(ctx, res, "product", productPaths, true)
}

func runProductGetUncached(ctx context.Context, r *runner, res *ScenarioResult) error {
	return r.sqliteVsBare(ctx, res, "product", productPaths, false)
}

func runProductList(ctx context.Context, r *runner, res *ScenarioResult) error {
	return r.sqliteVsBare(ctx, res, "list", categoryPaths, true)
}

// sqliteVsBare measures million on a seeded embedded database, with its
// read cache on or off, against the bare baseline serving what million
// answered for the first path.
func (r *runner) sqliteVsBare(ctx context.Context, res *ScenarioResult, step string,
	discover func(context.Context, string) ([]string, error), cached bool) error {
	dir, err := r.seedSQLite(ctx, r.cfg.Users, r.cfg.Products)
	if err != nil {
		return err
	}
	res.Data = fmt.Sprintf("%s products, %s users", thousands(int64(r.cfg.Products)), thousands(int64(r.cfg.Users)))
	flags := []string{"--data-dir", dir, noShed}
	if !cached {
		flags = append(flags, noCache)
	}
	srv, err := r.startMillion(ctx, res.Name, flags...)
	if err != nil {
		return err
	}
	defer srv.stop()
	return r.httpVsBare(ctx, res, srv, step, discover, cached)
}

// httpVsBare discovers what to ask million for, captures one answer, starts
// the bare baseline with it and compares the two. With cached, it first
// asks million for every path once, so that its cache holds them all (as
// far as it can: the L1 hit ratio of each capacity run is reported).
func (r *runner) httpVsBare(ctx context.Context, res *ScenarioResult, srv *server, step string,
	discover func(context.Context, string) ([]string, error), cached bool) error {
	base := "http://" + srv.addr
	paths, err := discover(ctx, base)
	if err != nil {
		return err
	}
	c, err := capture(ctx, setupClient, base, paths[0])
	if err != nil {
		return err
	}
	bare, err := r.startBare(ctx, res.Name, c)
	if err != nil {
		return err
	}
	defer bare.stop()
	res.Notes = append(res.Notes,
		fmt.Sprintf("%s distinct requests, drawn uniformly at random", thousands(int64(len(paths)))),
		fmt.Sprintf("the bare baseline answers every path with what million answered for %s: status, headers and the same %s-byte body", c.Path, thousands(int64(len(c.Body)))))
	res.Load = r.httpLoad()
	target := &httpSide{r: r, name: "million", srv: srv, roots: []int{srv.pid()}, t: newHTTPTarget(srv.addr, r.cfg.Connections),
		next: pick(paths), step: step}
	baseline := &httpSide{r: r, name: "bare net/http", srv: bare, roots: []int{bare.pid()}, t: newHTTPTarget(bare.addr, r.cfg.Connections),
		next: pick(paths), step: step}
	defer target.t.close()
	defer baseline.t.close()
	if srv.adminAddr == "" {
		return errors.New("million serve logged no admin listener, so no metrics")
	}
	target.metrics = "http://" + srv.adminAddr + "/metrics"
	target.profile = r.profileFile(res.Name)
	if !cached {
		err := r.compare(ctx, res, baseline, target)
		lookups := false
		for _, rd := range res.Rounds {
			lookups = lookups || rd.Target != nil && rd.Target.CacheHitRatio != nil
		}
		if !lookups && len(res.Rounds) > 0 {
			res.Notes = append(res.Notes, "million made no cache lookup during its capacity runs: the read cache was off")
		}
		return err
	}
	bare.pause() // priming is not measured; the idle baseline keeps out of its way
	start := time.Now()
	p := target.t.saturate(ctx, primeTimeout, inOrder(paths))
	bare.resume()
	if p.Errors > 0 || p.OK != int64(len(paths)) {
		return fmt.Errorf("priming the cache: %d of %d paths answered, %d errors (%s)", p.OK, len(paths), p.Errors, p.Sample)
	}
	r.logf("primed the cache with %s paths in %s", thousands(p.OK), time.Since(start).Round(time.Millisecond))
	err = r.compare(ctx, res, baseline, target)
	var hits []float64
	for _, rd := range res.Rounds {
		if rd.Target != nil && rd.Target.CacheHitRatio != nil {
			hits = append(hits, *rd.Target.CacheHitRatio)
		}
	}
	if st := Summarize(hits); st.N > 0 {
		note := "million's L1 cache hit ratio over its capacity runs: " + st.Format(fmtHit)
		if st.Min < wantHitRatio {
			note += fmt.Sprintf(" — below %s, so part of what was measured is misses read from the database, not the L1 hit path alone (the L1 bound, --cache-size, may be smaller than the working set, or a long run outlived the entries' lifetime, --cache-ttl-product or --cache-ttl-list, 5 min)", fmtHit(wantHitRatio))
		}
		res.Notes = append(res.Notes, note)
	}
	return err
}

// primeTimeout bounds priming the cache: a pass over every path, closed
// loop, uncached (100,000 products take seconds).
const primeTimeout = 5 * time.Minute

// wantHitRatio is the L1 hit ratio below which a cached scenario says it
// did not measure the hit path alone.
const wantHitRatio = 0.99

func fmtHit(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }

// inOrder returns a nextFunc that gives each path once, then runs out.
func inOrder(paths []string) nextFunc {
	var i atomic.Int64
	return func() (*request, bool) {
		n := i.Add(1) - 1
		if n >= int64(len(paths)) {
			return nil, false
		}
		return &request{method: http.MethodGet, path: paths[n]}, true
	}
}

func (r *runner) httpLoad() string {
	return fmt.Sprintf("capacity: %d keep-alive connections, closed loop, %s; latency: open model at 50 %% of each side's capacity, %s; %s warm-up per side",
		r.cfg.Connections, r.cfg.Duration, r.cfg.Duration, r.cfg.Warmup)
}
