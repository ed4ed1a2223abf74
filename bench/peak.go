package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/millionshop/million/loadgen"
	"github.com/millionshop/million/loadgen/journey"
)

// journeySide is `million load`'s default journeys at a fixed arrival rate
// against one million server, with its own metrics (RSS, database queries)
// scraped around each run: the million-user peak (an absolute target, so
// no baseline), and both sides of cache-effect.
type journeySide struct {
	r       *runner
	name    string
	srv     *server
	shop    *journey.Shop
	client  *http.Client // the shop's
	rate    float64
	metrics string
	// statements asks for the database statements by statement and the L1
	// hit ratio over each run (cache-effect).
	statements bool
	// profile is the file for the server's CPU profile over the next
	// measured run; "" once written, or when none is asked for.
	profile string
}

func runPeak(ctx context.Context, r *runner, res *ScenarioResult) error {
	dir, err := r.seedSQLite(ctx, r.cfg.PeakUsers, r.cfg.Products)
	if err != nil {
		return err
	}
	res.Data = fmt.Sprintf("%s users, %s products", thousands(int64(r.cfg.PeakUsers)), thousands(int64(r.cfg.Products)))
	srv, err := r.startMillion(ctx, res.Name, "--data-dir", dir)
	if err != nil {
		return err
	}
	defer srv.stop()
	target, err := newJourneySide(ctx, r, "million", srv, r.cfg.PeakUsers, r.cfg.PeakRate, nil)
	if err != nil {
		return err
	}
	defer target.close()
	target.profile = r.profileFile(res.Name)
	res.Load = r.journeyLoad(r.cfg.PeakRate)
	res.Notes = append(res.Notes, target.describe())
	return r.compare(ctx, res, nil, target)
}

// newJourneySide discovers the shop on srv for journeys of users seeded
// users at rate.
func newJourneySide(ctx context.Context, r *runner, name string, srv *server, users int, rate float64, mix journey.Mix) (*journeySide, error) {
	if srv.adminAddr == "" {
		return nil, errors.New("million serve logged no admin listener, so no metrics")
	}
	client := loadgen.NewHTTPClient(loadgen.DefaultConcurrency)
	shop, err := journey.New(ctx, journey.Config{Target: "http://" + srv.addr, Client: client, Users: users,
		ProductSkew: journey.DefaultProductSkew, Mix: mix})
	if err != nil {
		client.CloseIdleConnections()
		return nil, err
	}
	return &journeySide{r: r, name: name, srv: srv, shop: shop, client: client, rate: rate, metrics: "http://" + srv.adminAddr + "/metrics"}, nil
}

// close lets the journeys' idle connections go.
func (s *journeySide) close() { s.client.CloseIdleConnections() }

// describe is the journeys, for a note.
func (s *journeySide) describe() string {
	desc := s.shop.Describe()
	return fmt.Sprintf("journeys as `million load` runs them: mix %s (%.1f %% reads), %s users, %s virtual users, %s products discovered, Zipf skew %g",
		desc.Mix, desc.ReadShare*100, thousands(int64(desc.Users)), thousands(int64(desc.VirtualUsers)),
		thousands(int64(desc.Products)), desc.ProductSkew)
}

// journeyLoad is the load of a journey scenario at rate.
func (r *runner) journeyLoad(rate float64) string {
	warm := fmt.Sprintf("warm-up at %s req/s for %s, which logs virtual users in", fmtRate(min(rate, peakWarmRate)), max(r.cfg.Warmup, peakWarmup))
	if r.cfg.Warmup <= 0 {
		warm = "no warm-up, so virtual users log in during the first round"
	}
	return fmt.Sprintf("open model at %s req/s for %s per round (loadgen, up to %d in flight, %s timeout, %d s of arrivals may wait); %s",
		fmtRate(rate), r.cfg.Duration, loadgen.DefaultConcurrency, peakTimeout, peakBacklog, warm)
}

func (s *journeySide) pause()  { s.srv.pause() }
func (s *journeySide) resume() { s.srv.resume() }

// Past the target the server is overloaded, and an open-model run then
// outlasts its schedule by as long as the queue takes to drain: requests
// give up after peakTimeout (counted as errors; the target asks for a
// p99 of 25 ms) and at most peakBacklog seconds of arrivals wait for one
// of loadgen's workers (the rest are dropped, counted as errors), so a run
// ends within seconds of its schedule whatever the server does.
const (
	peakTimeout = 2 * time.Second
	peakBacklog = 2 // seconds of arrivals
)

// The warm-up logs the virtual users in. Each starts logged out, and a
// step that needs a logged-in user logs one in instead when the few it
// tries are not, so a cold start is a stampede of logins, each an
// argon2id hash of ~30 ms on the server core: 1,000 virtual users are 30 s
// of it. A steady peak has logged-in shoppers, so the warm-up runs the
// journeys slowly (peakWarmRate, under what the core hashes) for at least
// peakWarmup, by when a few hundred are logged in and a logged-in step
// rarely finds none.
const (
	peakWarmRate = 200
	peakWarmup   = 30 * time.Second
)

func (s *journeySide) warm(ctx context.Context, d time.Duration) error {
	_, err := loadgen.Run(ctx, loadgen.Options{Stages: []loadgen.Stage{{Rate: min(s.rate, peakWarmRate), Duration: max(d, peakWarmup)}},
		Steps: s.shop.Steps(), Timeout: peakTimeout, Backlog: int(s.rate * peakBacklog)}, s.shop)
	return err
}

func (s *journeySide) measure(ctx context.Context, d time.Duration) (*Side, error) {
	var before *counters
	if s.statements {
		var err error
		if before, err = scrapeCounters(ctx, s.metrics); err != nil {
			return nil, err
		}
	}
	profiled := s.r.startProfile(ctx, s.srv, &s.profile, d)
	mt := newMeter(s.srv.pid())
	mt.start()
	rep, err := loadgen.Execute(ctx, loadgen.Plan{Target: "http://" + s.srv.addr, Stages: []loadgen.Stage{{Rate: s.rate, Duration: d}},
		Timeout: peakTimeout, Backlog: int(s.rate * peakBacklog), MetricsURL: s.metrics, Steps: s.shop.Steps(),
		Workload: s.shop.Describe()}, s.shop)
	mt.stop()
	profiled()
	if rep == nil {
		return nil, err
	}
	sum := rep.Summary
	// Over the time the run really took, as loadgen's ok_rps is.
	elapsed := rep.Meta.End.Sub(rep.Meta.Start).Seconds()
	m := &Side{Name: s.name, OK: sum.OK, DurationS: elapsed, FixedRate: true,
		Latency: &Latency{RateRPS: s.rate, DurationS: rep.Meta.DurationS, Scheduled: sum.Scheduled, Completed: sum.Completed, Errors: sum.Errors,
			P50: sum.Latency.P50, P90: sum.Latency.P90, P99: sum.Latency.P99, P999: sum.Latency.P999, Max: sum.Latency.Max,
			SendLagP99: sum.SendLag.P99, Late: sum.Late}}
	if elapsed > 0 {
		m.ThroughputRPS = float64(sum.OK) / elapsed
	}
	if len(rep.Errors.ByStatus) > 0 {
		m.Latency.ByStatus = rep.Errors.ByStatus
	}
	if len(rep.Errors.Samples) > 0 {
		m.ErrorSample = rep.Errors.Samples[0]
	}
	mt.report(s.r.cfg.Pins, m)
	m.Latency.GeneratorCPU, m.Latency.GeneratorProcess = m.GeneratorCPU, m.GeneratorProcess
	if srv := rep.Server; srv != nil {
		m.RSSPeakBytes, m.ServerRequests, m.DBQueriesPerRequest = srv.RSSPeakBytes, srv.Requests, srv.DBQueriesPerRequest
	}
	if before != nil {
		after, err := scrapeCounters(ctx, s.metrics)
		if err != nil {
			return m, err
		}
		d := after.since(before)
		m.DBQueriesByStatement, m.CacheHitRatio = d.queries, d.hitRatio()
		s.r.logf("    %s: %.3f database queries per request; per statement: %s", s.name, m.DBQueriesPerRequest,
			perRequest(d.queries, d.requests, 8))
	}
	for _, st := range rep.Steps {
		s.r.logf("    %-10s %7d requests, %5d errors, p50 %s p99 %s", st.Name, st.Count, st.Errors, fmtMs(st.Latency.P50), fmtMs(st.Latency.P99))
	}
	return m, nil
}
