package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// result is a finished two-round run of one scenario, as Run returns it.
func result(t *testing.T) *Result {
	t.Helper()
	ratio1, ratio2 := 0.25, 0.30
	res := &Result{
		Command: "million bench --scenario product-get --write-docs", Commit: "0123456789abcdef", Modified: true,
		CommitSource: "binary", GoVersion: "go1.26.8", Start: time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC),
		NumCPU: 2, Pins: Pins{Pinned: true, ServerCPU: 0, GeneratorCPU: 1, GeneratorProcs: 1}, Rounds: 2,
		DurationS: 10, WarmupS: 3, Connections: 64,
		Scenarios: []ScenarioResult{{
			Name: "product-get", What: "GET /v1/products/{id}", Stage: "stage 1: embedded SQLite | uncached",
			Data: "100,000 products, 10,000 users", Baseline: "bare net/http serving the same bytes", Target: "≥ 0.70",
			Load: "64 connections",
			Rounds: []Round{
				{N: 1, Baseline: &Side{Name: "bare net/http", ThroughputRPS: 40000, Latency: &Latency{P99: 0.5}},
					Target: &Side{Name: "million", ThroughputRPS: 10000, Latency: &Latency{P99: 2}}, Ratio: &ratio1},
				{N: 2, Baseline: &Side{Name: "bare net/http", ThroughputRPS: 40000, Latency: &Latency{P99: 0.7}},
					Target: &Side{Name: "million", ThroughputRPS: 12000, Errors: 2, Latency: &Latency{P99: 3, Errors: 1}}, Ratio: &ratio2},
			},
		}},
	}
	for i := range res.Scenarios {
		res.Scenarios[i].summarize()
	}
	return res
}

func TestSummarizeScenario(t *testing.T) {
	t.Parallel()
	s := result(t).Scenarios[0]
	if want := (Stat{Median: 0.275, Min: 0.25, Max: 0.30, N: 2}); s.Ratio != want {
		t.Errorf("ratio = %+v, want %+v", s.Ratio, want)
	}
	if s.Throughput.Median != 11000 || s.BaselineThroughput.Median != 40000 || s.P99.Max != 3 || s.BaselineP99.Min != 0.5 {
		t.Errorf("stats = %+v / %+v / %+v / %+v", s.Throughput, s.BaselineThroughput, s.P99, s.BaselineP99)
	}
	if s.Errors != 3 || s.BaselineErrors != 0 {
		t.Errorf("errors = %d / %d, want 3 / 0 (the probe's and the latency run's)", s.Errors, s.BaselineErrors)
	}
}

func TestSummarizeNamesAnUnsaturatedServer(t *testing.T) {
	t.Parallel()
	busy, idle := 0.99, 0.60
	sr := ScenarioResult{Rounds: []Round{{N: 1,
		Baseline: &Side{Name: "bare net/http", ServerCPU: &idle, GeneratorCPU: &busy},
		Target:   &Side{Name: "million", ServerCPU: &busy, GeneratorCPU: &idle}}}}
	sr.summarize()
	if len(sr.Limits) != 1 || !strings.Contains(sr.Limits[0], "bare net/http") || !strings.Contains(sr.Limits[0], "the generator") {
		t.Errorf("limits = %q, want the bare server named as generator-bound", sr.Limits)
	}
}

func TestSummarizeNamesNeighboursAndABusyGenerator(t *testing.T) {
	t.Parallel()
	busy, half, most := 0.99, 0.50, 0.95
	sr := ScenarioResult{Rounds: []Round{{N: 2,
		Baseline: &Side{Name: "bare net/http", ServerCPU: &busy, ServerProcesses: &half,
			Latency: &Latency{RateRPS: 30000, GeneratorCPU: &busy, GeneratorProcess: &most}},
		Target: &Side{Name: "million", ServerCPU: &busy, ServerProcesses: &most,
			Latency: &Latency{RateRPS: 5000, GeneratorCPU: &busy, GeneratorProcess: &half}}}}}
	sr.summarize()
	want := []string{
		"bare net/http at 30,000/s (round 2): the generator used 95 %",
		"bare net/http: its server processes had only 50 % of the server CPU in round 2",
		"million at 5,000/s (round 2): other programs took 49 % of the generator's CPU",
	}
	if len(sr.Limits) != len(want) {
		t.Fatalf("limits = %q", sr.Limits)
	}
	for i, w := range want {
		if !strings.HasPrefix(sr.Limits[i], w) {
			t.Errorf("limit %d = %q, want it to start %q", i, sr.Limits[i], w)
		}
	}
}

func TestDocRowCarriesWhatTheProtocolAsks(t *testing.T) {
	t.Parallel()
	rows := result(t).DocRows()
	if len(rows) != 1 || rows[0].Scenario != "product-get" {
		t.Fatalf("rows = %+v", rows)
	}
	line := rows[0].String()
	for _, want := range []string{
		"`million bench --scenario product-get --write-docs`", // the command
		"0123456 + uncommitted changes",                       // the commit
		"go1.26.8", "2026-11-23",                              // Go and the date
		"**0.28 (0.25–0.30)**",                           // the median ratio and its range
		"11,000 (10,000–12,000) req/s; errors 3",         // million's throughput and errors
		"bare net/http serving the same bytes: 40,000/s", // the baseline
		"100,000 products", "64 connections; 2 rounds",   // data, load
		"server on CPU 0 (GOMAXPROCS=1), generator on CPU 1", // the pins
		`embedded SQLite \| uncached`,                        // a | inside a cell is escaped
	} {
		if !strings.Contains(line, want) {
			t.Errorf("row lacks %q:\n%s", want, line)
		}
	}
	if n := strings.Count(line, " | ") + 2; n != strings.Count(docsRule, "|") {
		t.Errorf("row has %d cell borders, header %d:\n%s", n, strings.Count(docsRule, "|"), line)
	}
}

func TestDocRowsLeaveOutFailedScenarios(t *testing.T) {
	t.Parallel()
	res := result(t)
	res.Scenarios[0].Err = "round 1: connection refused"
	if rows := res.DocRows(); len(rows) != 0 {
		t.Errorf("a failed scenario got a row: %v", rows)
	}
}

const doc = `# Benchmarks

| what | command | result |
|---|---|---|
| seed | ` + "`million seed`" + ` | 6.6 s |

Measured 2026-11-23.
`

func row(name, result string) DocRow {
	return DocRow{Scenario: name, Cells: []string{"`" + name + "`: x", result}}
}

func TestUpdateDocsAddsTheTableOnce(t *testing.T) {
	t.Parallel()
	out := UpdateDocs([]byte(doc), []DocRow{row("product-get", "1")})
	if !bytes.HasPrefix(out, []byte(doc)) {
		t.Errorf("the existing text changed:\n%s", out)
	}
	for _, want := range []string{"## million bench", docsBegin, docsHeader, docsRule, "| `product-get`: x | 1 |", docsEnd} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	again := UpdateDocs(out, []DocRow{row("product-get", "2")})
	if bytes.Count(again, []byte("## million bench")) != 1 || bytes.Count(again, []byte(docsHeader)) != 1 {
		t.Errorf("a second run added a second table:\n%s", again)
	}
}

func TestUpdateDocsReplacesRowsOfTheScenariosRunAndKeepsTheOthers(t *testing.T) {
	t.Parallel()
	out := UpdateDocs([]byte(doc), []DocRow{row("product-get", "1"), row("product-list", "1"), row("peak", "1")})
	out = UpdateDocs(out, []DocRow{row("product-list", "2"), row("pg-checkout", "2")})
	text := string(out)
	var got []string
	for line := range strings.SplitSeq(text, "\n") {
		if _, ok := rowKey(line); ok {
			got = append(got, line)
		}
	}
	want := []string{"| `product-get`: x | 1 |", "| `product-list`: x | 2 |", "| `peak`: x | 1 |", "| `pg-checkout`: x | 2 |"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant (replaced in place, new ones at the end):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(text, "| seed | `million seed` | 6.6 s |") || !strings.Contains(text, "Measured 2026-11-23.") {
		t.Errorf("rows outside the generated table were touched:\n%s", text)
	}
}

func TestUpdateDocsKeepsTextAfterTheTable(t *testing.T) {
	t.Parallel()
	withTable := string(UpdateDocs([]byte(doc), []DocRow{row("product-get", "1")})) + "\nMethod: read this.\n"
	out := string(UpdateDocs([]byte(withTable), []DocRow{row("product-get", "2")}))
	if !strings.HasSuffix(out, docsEnd+"\n\nMethod: read this.\n") || strings.Contains(out, "| 1 |") {
		t.Errorf("UpdateDocs =\n%s", out)
	}
}

func TestWriteTextShowsBothSidesAndTheRatio(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := result(t).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"commit 0123456 + uncommitted changes", "server (and PostgreSQL) on CPU 0",
		"product-get", "11,000 (10,000–12,000)", "40,000", "0.28 (0.25–0.30)", "2.50 (2.00–3.00) ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in:\n%s", want, b.String())
		}
	}
}
