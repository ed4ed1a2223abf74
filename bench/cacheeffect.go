package bench

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/millionshop/million/loadgen/journey"
)

// runCacheEffect runs the default journeys at one moderate rate against two
// million servers on copies of one seeded database, one with its read cache
// off (the baseline) and one with it on, in alternating rounds, and compares
// the database queries each ran per request. The rate is one the cache-off
// server sustains, so both answer the same requests and only the cache
// differs; the throughput figures are that rate, and the ratio per server
// CPU-second is how much less CPU a request costs with the cache.
func runCacheEffect(ctx context.Context, r *runner, res *ScenarioResult) error {
	return cacheEffect(ctx, r, res, nil)
}

// runCacheEffectReads is runCacheEffect with the read steps of the mix
// only. The writes (carts, checkouts, logins) run the same statements with
// the cache on or off, about 20 for a checkout, and at 5 % of the default
// mix they set a floor under the whole mix's ratio that no read cache can
// lower; this run shows what the cache does to the reads.
func runCacheEffectReads(ctx context.Context, r *runner, res *ScenarioResult) error {
	return cacheEffect(ctx, r, res, journey.ReadMix())
}

// cacheEffect runs the journeys of mix (nil: the default mix) against a
// server with its cache off and one with it on.
func cacheEffect(ctx context.Context, r *runner, res *ScenarioResult, mix journey.Mix) error {
	seeded, err := r.seedSQLite(ctx, r.cfg.Users, r.cfg.Products)
	if err != nil {
		return err
	}
	res.Data = fmt.Sprintf("%s products, %s users (each side on its own copy of the seeded database)",
		thousands(int64(r.cfg.Products)), thousands(int64(r.cfg.Users)))
	// Each side writes (carts, orders), and two servers must not share an
	// embedded database: each gets a fresh copy.
	start := func(name string, flags ...string) (*server, error) {
		dir := filepath.Join(r.dir, res.Name+"-"+name)
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := copyDir(seeded, dir); err != nil {
			return nil, fmt.Errorf("copy the seeded database: %w", err)
		}
		return r.startMillion(ctx, res.Name+"-"+name, append([]string{"--data-dir", dir, noShed}, flags...)...)
	}
	off, err := start("uncached", noCache)
	if err != nil {
		return err
	}
	defer off.stop()
	on, err := start("cached")
	if err != nil {
		return err
	}
	defer on.stop()

	baseline, err := newJourneySide(ctx, r, "cache off (--no-cache)", off, r.cfg.Users, r.cfg.CacheRate, mix)
	if err != nil {
		return err
	}
	defer baseline.close()
	// Discovery ran on the idle servers one after the other; from now on
	// compare lets only the side it measures run.
	target, err := newJourneySide(ctx, r, "million", on, r.cfg.Users, r.cfg.CacheRate, mix)
	if err != nil {
		return err
	}
	defer target.close()
	baseline.statements, target.statements = true, true
	res.Load = r.journeyLoad(r.cfg.CacheRate)
	res.NotesInDocs = true
	res.RatioOf = "database queries per request, cache on / cache off"
	res.ratio = func(t, b *Side) (float64, bool) {
		if t.ServerRequests <= 0 || b.ServerRequests <= 0 || b.DBQueriesPerRequest <= 0 {
			return 0, false
		}
		return t.DBQueriesPerRequest / b.DBQueriesPerRequest, true
	}
	res.Notes = append(res.Notes, target.describe(),
		"the ratio is database queries per request (million_db_queries_total over million_http_requests_total, from each server's metrics before and after each run), cache on over cache off; the ratio per server CPU-second is answers per second of server CPU, cache on over cache off (how much CPU the cache saves at this rate)")
	err = r.compare(ctx, res, baseline, target)
	res.Notes = append(res.Notes, statementNotes(res)...)
	return err
}

// statementNotes sums the statements each side ran per request over the
// rounds, and the cache's L1 hit ratio.
func statementNotes(res *ScenarioResult) []string {
	var notes []string
	sides := []struct {
		what string
		get  func(Round) *Side
	}{
		{"with the cache on", func(rd Round) *Side { return rd.Target }},
		{"with the cache off", func(rd Round) *Side { return rd.Baseline }},
	}
	for _, sd := range sides {
		total := map[string]float64{}
		var requests float64
		var hitRounds []float64
		for _, rd := range res.Rounds {
			m := sd.get(rd)
			if m == nil || m.ServerRequests <= 0 {
				continue
			}
			requests += m.ServerRequests
			for st, n := range m.DBQueriesByStatement {
				total[st] += n
			}
			if m.CacheHitRatio != nil {
				hitRounds = append(hitRounds, *m.CacheHitRatio)
			}
		}
		if requests == 0 {
			continue
		}
		notes = append(notes, fmt.Sprintf("statements per request %s (all rounds, %s requests): %s",
			sd.what, thousands(int64(requests)), perRequest(total, requests, 12)))
		if len(hitRounds) > 0 {
			notes = append(notes, fmt.Sprintf("L1 cache hit ratio %s: %s", sd.what, Summarize(hitRounds).Format(fmtHit)))
		}
	}
	// Run fills the scenario's error counts only after this, from the
	// same rounds.
	var offErrors, offScheduled int64
	for _, rd := range res.Rounds {
		if m := rd.Baseline; m != nil && m.Latency != nil {
			offErrors += m.Latency.Errors
			offScheduled += m.Latency.Scheduled
		}
	}
	if offErrors > 0 {
		notes = append(notes, fmt.Sprintf("the cache-off server failed %s of %s arrivals at this rate (timeouts, dropped arrivals, error answers): it did not sustain the rate, so the two sides did not serve the same load; run again with a lower --cache-rate",
			thousands(offErrors), thousands(offScheduled)))
	}
	return notes
}

// copyDir copies the regular files under src to dst, which must not exist:
// a database directory no process has open.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
