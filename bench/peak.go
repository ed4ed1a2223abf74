package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/millionshop/million/loadgen"
	"github.com/millionshop/million/loadgen/journey"
)

// peakSide is the million-user peak: `million load`'s default journeys at a
// fixed arrival rate, with million's own metrics (RSS, database queries)
// scraped around each run. It has an absolute target, so no baseline.
type peakSide struct {
	r       *runner
	srv     *server
	shop    *journey.Shop
	rate    float64
	metrics string
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
	if srv.adminAddr == "" {
		return errors.New("million serve logged no admin listener, so no metrics")
	}
	client := loadgen.NewHTTPClient(loadgen.DefaultConcurrency)
	defer client.CloseIdleConnections()
	shop, err := journey.New(ctx, journey.Config{Target: "http://" + srv.addr, Client: client, Users: r.cfg.PeakUsers,
		ProductSkew: journey.DefaultProductSkew})
	if err != nil {
		return err
	}
	desc := shop.Describe()
	res.Load = fmt.Sprintf("open model at %s req/s for %s per round (loadgen, up to %d in flight, %s timeout, %d s of arrivals may wait); warm-up at %s req/s for %s, which logs virtual users in",
		fmtRate(r.cfg.PeakRate), r.cfg.Duration, loadgen.DefaultConcurrency, peakTimeout, peakBacklog,
		fmtRate(min(r.cfg.PeakRate, peakWarmRate)), max(r.cfg.Warmup, peakWarmup))
	res.Notes = append(res.Notes, fmt.Sprintf("journeys as `million load` runs them: mix %s (%.1f %% reads), %s users, %s virtual users, %s products discovered, Zipf skew %g",
		desc.Mix, desc.ReadShare*100, thousands(int64(desc.Users)), thousands(int64(desc.VirtualUsers)),
		thousands(int64(desc.Products)), desc.ProductSkew))
	target := &peakSide{r: r, srv: srv, shop: shop, rate: r.cfg.PeakRate,
		metrics: "http://" + srv.adminAddr + "/metrics"}
	return r.compare(ctx, res, nil, target)
}

func (s *peakSide) pause()  { s.srv.pause() }
func (s *peakSide) resume() { s.srv.resume() }

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

func (s *peakSide) warm(ctx context.Context, d time.Duration) error {
	_, err := loadgen.Run(ctx, loadgen.Options{Stages: []loadgen.Stage{{Rate: min(s.rate, peakWarmRate), Duration: max(d, peakWarmup)}},
		Steps: s.shop.Steps(), Timeout: peakTimeout, Backlog: int(s.rate * peakBacklog)}, s.shop)
	return err
}

func (s *peakSide) measure(ctx context.Context, d time.Duration) (*Side, error) {
	mt := newMeter(s.srv.pid())
	mt.start()
	rep, err := loadgen.Execute(ctx, loadgen.Plan{Target: "http://" + s.srv.addr, Stages: []loadgen.Stage{{Rate: s.rate, Duration: d}},
		Timeout: peakTimeout, Backlog: int(s.rate * peakBacklog), MetricsURL: s.metrics, Steps: s.shop.Steps(),
		Workload: s.shop.Describe()}, s.shop)
	mt.stop()
	if rep == nil {
		return nil, err
	}
	sum := rep.Summary
	// Over the time the run really took, as loadgen's ok_rps is.
	elapsed := rep.Meta.End.Sub(rep.Meta.Start).Seconds()
	m := &Side{Name: "million", OK: sum.OK, DurationS: elapsed, FixedRate: true,
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
		m.RSSPeakBytes, m.DBQueriesPerRequest = srv.RSSPeakBytes, srv.DBQueriesPerRequest
	}
	for _, st := range rep.Steps {
		s.r.logf("    %-10s %7d requests, %5d errors, p50 %s p99 %s", st.Name, st.Count, st.Errors, fmtMs(st.Latency.P50), fmtMs(st.Latency.P99))
	}
	return m, nil
}
