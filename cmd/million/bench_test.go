package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/bench"
)

// TestBenchEndToEnd runs `million bench` on the real binary, short: it
// seeds, starts million (cache on, then off) and the bare baseline as
// pinned children, measures both, and reports a ratio with both sides'
// figures on stdout, in JSON and as a row of the benchmarks document. The
// server's own metrics show the cached scenario served from its L1 cache
// without database queries and the uncached one from the database.
func TestBenchEndToEnd(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := t.TempDir()
	docs := filepath.Join(dir, "benchmarks.md")
	if err := os.WriteFile(docs, []byte("# Benchmarks\n\n| kept | row |\n|---|---|\n| seed | 6.6 s |\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "bench.json")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "bench", "--scenario", "product-get,product-get-uncached", "--rounds", "1", "--duration", "1s",
		"--warmup", "0s", "--products", "2000", "--users", "20", "--json", report, "--write-docs", "--docs", docs)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("million bench: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	t.Logf("million bench took %s\n%s", time.Since(start).Round(time.Millisecond), out)

	stdout := string(out)
	for _, want := range []string{"pins: ", "product-get", "product-get-uncached", "million req/s", "bare net/http", "ratio", "2 rows written to " + docs} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}

	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, b)
	}
	if len(res.Scenarios) != 2 || res.Scenarios[0].Name != "product-get" || res.Scenarios[1].Name != "product-get-uncached" {
		t.Fatalf("want product-get and product-get-uncached, got %s", b)
	}
	for i, s := range res.Scenarios {
		if len(s.Rounds) != 1 {
			t.Fatalf("%s: want one round, got %d", s.Name, len(s.Rounds))
		}
		rd := s.Rounds[0]
		if s.Err != "" || rd.Baseline == nil || rd.Target == nil || rd.Ratio == nil {
			t.Fatalf("%s: incomplete round: %s", s.Name, b)
		}
		for _, side := range []*bench.Side{rd.Baseline, rd.Target} {
			if side.ThroughputRPS <= 0 || side.OK == 0 || side.Errors != 0 {
				t.Errorf("%s, %s: %.0f req/s, %d ok, %d errors", s.Name, side.Name, side.ThroughputRPS, side.OK, side.Errors)
			}
			if l := side.Latency; l == nil || l.Completed == 0 || l.P99 <= 0 || l.Errors != 0 {
				t.Errorf("%s, %s: latency at half rate = %+v", s.Name, side.Name, l)
			}
		}
		if *rd.Ratio <= 0 || s.Ratio.N != 1 || s.Ratio.Median != *rd.Ratio {
			t.Errorf("%s: ratio %v, summed up as %+v", s.Name, *rd.Ratio, s.Ratio)
		}
		m := rd.Target
		if m.ServerRequests < float64(m.OK) {
			t.Errorf("%s: million counted %.0f requests over the probe, the generator %d answers", s.Name, m.ServerRequests, m.OK)
		}
		if i == 0 {
			// Primed: every product in L1, and no query but background ones.
			if m.CacheHitRatio == nil || *m.CacheHitRatio < 0.99 || m.DBQueriesPerRequest >= 0.5 {
				t.Errorf("product-get: L1 hit ratio %v, %.3f database queries per request: not the cached path", m.CacheHitRatio, m.DBQueriesPerRequest)
			}
			if !strings.Contains(strings.Join(s.Notes, "\n"), "L1 cache hit ratio") {
				t.Errorf("product-get: no hit ratio in the notes %q", s.Notes)
			}
		} else if m.CacheHitRatio != nil || m.DBQueriesPerRequest < 1 {
			t.Errorf("product-get-uncached: L1 hit ratio %v, %.3f database queries per request: not read from the database", m.CacheHitRatio, m.DBQueriesPerRequest)
		}
	}
	if res.Pins.Pinned != (res.Pins.Note == "") {
		t.Errorf("pins = %+v: an unpinned run must say why", res.Pins)
	}

	d, err := os.ReadFile(docs)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(d)
	if !strings.Contains(doc, "| seed | 6.6 s |") {
		t.Errorf("the document's own rows were lost:\n%s", doc)
	}
	for _, name := range []string{"product-get", "product-get-uncached"} {
		row := docRow(doc, name)
		if row == "" || !strings.Contains(row, "`million bench --scenario product-get,product-get-uncached --rounds 1") || !strings.Contains(row, res.GoVersion) {
			t.Errorf("no %s row with the command and the Go version in:\n%s", name, doc)
		}
	}
}

// docRow is the generated row of scenario in doc, or "".
func docRow(doc, scenario string) string {
	for line := range strings.SplitSeq(doc, "\n") {
		if strings.HasPrefix(line, "| `"+scenario+"`") {
			return line
		}
	}
	return ""
}

// runBench runs `million bench` with args, a JSON report and --write-docs
// into a fresh document, and returns the report and the document.
func runBench(t *testing.T, args ...string) (*bench.Result, string) {
	t.Helper()
	bin := buildBinary(t)
	dir := t.TempDir()
	report, docs := filepath.Join(dir, "bench.json"), filepath.Join(dir, "benchmarks.md")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"bench"}, args...), "--json", report, "--write-docs", "--docs", docs)...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("million bench: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	t.Logf("%s\nstderr:\n%s", out, stderr.String())
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, b)
	}
	if len(res.Scenarios) != 1 || res.Scenarios[0].Err != "" || len(res.Scenarios[0].Rounds) != 1 {
		t.Fatalf("want one finished scenario of one round, got %s", b)
	}
	d, err := os.ReadFile(docs)
	if err != nil {
		t.Fatal(err)
	}
	return &res, string(d)
}

// TestBenchCacheEffectEndToEnd runs the cache-effect scenario, short: the
// journeys at a fixed rate against million with its cache off and on, each
// on its own copy of the seeded database, and the ratio of the database
// queries per request each server counted.
func TestBenchCacheEffectEndToEnd(t *testing.T) {
	t.Parallel()
	res, doc := runBench(t, "--scenario", "cache-effect", "--rounds", "1", "--duration", "1s", "--warmup", "0s",
		"--products", "300", "--users", "20", "--cache-rate", "100")
	s := res.Scenarios[0]
	rd := s.Rounds[0]
	off, on := rd.Baseline, rd.Target
	if off == nil || on == nil || rd.Ratio == nil {
		t.Fatalf("incomplete round: %+v", rd)
	}
	for _, side := range []*bench.Side{off, on} {
		if !side.FixedRate || side.OK == 0 || side.ServerRequests <= 0 || side.Latency == nil || side.Latency.RateRPS != 100 {
			t.Errorf("%s: %d ok, %.0f requests counted by the server, latency %+v", side.Name, side.OK, side.ServerRequests, side.Latency)
		}
	}
	// Every read of the cache-off server is a query: at least one per
	// request (logins, carts and checkouts run several).
	if off.DBQueriesPerRequest < 1 || off.DBQueriesByStatement["SELECT products"] <= 0 || off.CacheHitRatio != nil {
		t.Errorf("cache off: %.3f queries per request, by statement %v, L1 hit ratio %v", off.DBQueriesPerRequest, off.DBQueriesByStatement, off.CacheHitRatio)
	}
	if on.CacheHitRatio == nil || len(on.DBQueriesByStatement) == 0 {
		t.Errorf("cache on: L1 hit ratio %v, statements %v", on.CacheHitRatio, on.DBQueriesByStatement)
	}
	if want := on.DBQueriesPerRequest / off.DBQueriesPerRequest; *rd.Ratio != want || s.Ratio.Median != want {
		t.Errorf("ratio %v (summed up %+v), want queries per request on/off = %v", *rd.Ratio, s.Ratio, want)
	}
	if s.RatioOf == "" || s.DBQueriesPerRequest.N != 1 || s.BaselineDBQueriesPerRequest.N != 1 {
		t.Errorf("scenario = %+v", s)
	}
	notes := strings.Join(s.Notes, "\n")
	for _, want := range []string{"journeys as `million load` runs them", "statements per request with the cache on",
		"statements per request with the cache off", "SELECT products"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	row := docRow(doc, "cache-effect")
	for _, want := range []string{"database queries per request, cache on / cache off", "statements per request with the cache on", "`million bench --scenario cache-effect"} {
		if !strings.Contains(row, want) {
			t.Errorf("row lacks %q:\n%s", want, row)
		}
	}
}

// TestBenchPeakEndToEnd runs the peak scenario, tiny: the journeys at a
// fixed rate against one seeded server, with million's CPU profile over
// the measured run written where --cpu-profiles says.
func TestBenchPeakEndToEnd(t *testing.T) {
	t.Parallel()
	profiles := t.TempDir()
	profile := filepath.Join(profiles, "peak.pprof")
	res, doc := runBench(t, "--scenario", "peak", "--rounds", "1", "--duration", "2s", "--warmup", "0s",
		"--products", "300", "--peak-users", "50", "--peak-rate", "100", "--cpu-profiles", profiles)
	s := res.Scenarios[0]
	rd := s.Rounds[0]
	if rd.Target == nil || rd.Target.OK == 0 || rd.Target.Latency == nil || rd.Target.RSSPeakBytes <= 0 {
		t.Fatalf("peak round: %+v", rd.Target)
	}
	b, err := os.ReadFile(profile)
	if err != nil {
		t.Fatalf("no CPU profile: %v", err)
	}
	// pprof's format is gzip-compressed protocol buffers.
	if len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("the CPU profile is not a pprof file (%d bytes)", len(b))
	}
	if row := docRow(doc, "peak"); !strings.Contains(row, "`million bench --scenario peak") {
		t.Errorf("row lacks its command:\n%s", row)
	}
}

// TestBenchCacheEffectReadsEndToEnd runs the read-only variant, short: the
// same comparison with the journeys' writes left out of the mix.
func TestBenchCacheEffectReadsEndToEnd(t *testing.T) {
	t.Parallel()
	res, doc := runBench(t, "--scenario", "cache-effect-reads", "--rounds", "1", "--duration", "1s", "--warmup", "0s",
		"--products", "300", "--users", "20", "--cache-rate", "100")
	s := res.Scenarios[0]
	rd := s.Rounds[0]
	off, on := rd.Baseline, rd.Target
	if off == nil || on == nil || rd.Ratio == nil {
		t.Fatalf("incomplete round: %+v", rd)
	}
	for _, side := range []*bench.Side{off, on} {
		// Reads only: no cart, order or payment is ever written.
		for _, write := range []string{"INSERT cart_items", "INSERT orders", "UPDATE payments"} {
			if n := side.DBQueriesByStatement[write]; n != 0 {
				t.Errorf("%s ran %s %v times in a read-only mix", side.Name, write, n)
			}
		}
	}
	if off.DBQueriesPerRequest < 1 || on.DBQueriesPerRequest >= off.DBQueriesPerRequest {
		t.Errorf("queries per request: cache off %.3f, on %.3f", off.DBQueriesPerRequest, on.DBQueriesPerRequest)
	}
	notes := strings.Join(s.Notes, "\n")
	if !strings.Contains(notes, ",orders=5.263 (100.0 % reads)") || strings.Contains(notes, "checkout=") {
		t.Errorf("notes do not give the read-only mix:\n%s", notes)
	}
	if row := docRow(doc, "cache-effect-reads"); !strings.Contains(row, "`million bench --scenario cache-effect-reads") {
		t.Errorf("row lacks its command:\n%s", row)
	}
}

// TestBenchGatewayEndToEnd runs the gateway scenario, short: million
// gateway and HAProxy over the same two bare backends, both probed, then
// both run at half the lower capacity.
func TestBenchGatewayEndToEnd(t *testing.T) {
	t.Parallel()
	res, doc := runBench(t, "--scenario", "gateway", "--rounds", "1", "--duration", "300ms", "--warmup", "100ms")
	s := res.Scenarios[0]
	rd := s.Rounds[0]
	hp, gw := rd.Baseline, rd.Target
	if hp == nil || gw == nil || rd.Ratio == nil || hp.Name != "HAProxy" || gw.Name != "million gateway" {
		t.Fatalf("incomplete round: %+v", rd)
	}
	for _, side := range []*bench.Side{hp, gw} {
		if side.ThroughputRPS <= 0 || side.OK == 0 || side.Errors != 0 {
			t.Errorf("%s: %.0f req/s, %d ok, %d errors (%s)", side.Name, side.ThroughputRPS, side.OK, side.Errors, side.ErrorSample)
		}
		if l := side.Latency; l == nil || l.Completed == 0 || l.Errors != 0 || l.P99 <= 0 {
			t.Errorf("%s: latency run %+v", side.Name, l)
		}
	}
	if rate := min(hp.ThroughputRPS, gw.ThroughputRPS) / 2; hp.Latency.RateRPS != rate || gw.Latency.RateRPS != rate {
		t.Errorf("latency runs at %v and %v, want both at half the lower capacity, %v", hp.Latency.RateRPS, gw.Latency.RateRPS, rate)
	}
	if want := gw.ThroughputRPS / hp.ThroughputRPS; *rd.Ratio != want {
		t.Errorf("ratio %v, want %v", *rd.Ratio, want)
	}
	if !strings.HasPrefix(s.Baseline, "HAProxy 2.") {
		t.Errorf("baseline %q does not name HAProxy's version", s.Baseline)
	}
	notes := strings.Join(s.Notes, "\n")
	for _, want := range []string{"million gateway had on: round robin", "HAProxy had on", "option forwardfor", "p99 at the same rate"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if row := docRow(doc, "gateway"); !strings.Contains(row, "HAProxy had on") || !strings.Contains(row, "`million bench --scenario gateway") {
		t.Errorf("row:\n%s", row)
	}
}
