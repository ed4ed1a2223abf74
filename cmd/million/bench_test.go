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
// seeds, starts million and the bare baseline as pinned children, measures
// both, and reports a ratio with both sides' figures on stdout, in JSON and
// as a row of the benchmarks document.
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
	cmd := exec.CommandContext(ctx, bin, "bench", "--scenario", "product-get", "--rounds", "1", "--duration", "1s",
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
	for _, want := range []string{"pins: ", "product-get", "million req/s", "bare net/http", "ratio", "1 rows written to " + docs} {
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
	if len(res.Scenarios) != 1 || len(res.Scenarios[0].Rounds) != 1 {
		t.Fatalf("want one scenario of one round, got %s", b)
	}
	s := res.Scenarios[0]
	rd := s.Rounds[0]
	if s.Err != "" || rd.Baseline == nil || rd.Target == nil || rd.Ratio == nil {
		t.Fatalf("incomplete round: %s", b)
	}
	for _, side := range []*bench.Side{rd.Baseline, rd.Target} {
		if side.ThroughputRPS <= 0 || side.OK == 0 || side.Errors != 0 {
			t.Errorf("%s: %.0f req/s, %d ok, %d errors", side.Name, side.ThroughputRPS, side.OK, side.Errors)
		}
		if l := side.Latency; l == nil || l.Completed == 0 || l.P99 <= 0 || l.Errors != 0 {
			t.Errorf("%s: latency at half rate = %+v", side.Name, l)
		}
	}
	if *rd.Ratio <= 0 || s.Ratio.N != 1 || s.Ratio.Median != *rd.Ratio {
		t.Errorf("ratio %v, summed up as %+v", *rd.Ratio, s.Ratio)
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
	var row string
	for line := range strings.SplitSeq(doc, "\n") {
		if strings.HasPrefix(line, "| `product-get`") {
			row = line
		}
	}
	if row == "" || !strings.Contains(row, "`million bench --scenario product-get --rounds 1") || !strings.Contains(row, res.GoVersion) {
		t.Errorf("no row with the command and the Go version in:\n%s", doc)
	}
}
