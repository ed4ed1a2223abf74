package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the whole result, every round of every side, to path.
func (res *Result) WriteJSON(path string) error { return writeJSON(path, res) }

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// shortCommit is the commit as the report prints it, marked when the tree
// had uncommitted changes.
func (res *Result) shortCommit() string {
	c := res.Commit
	if c == "" {
		c = "unknown"
	} else if len(c) > 7 {
		c = c[:7]
	}
	if res.Modified {
		c += " + uncommitted changes"
	}
	if res.CommitSource == "working tree" {
		c += " (of the working tree: the binary has no VCS stamp)"
	}
	return c
}

// WriteText writes the human summary: a table of the scenarios, then what
// each one ran and anything that qualifies its figures.
func (res *Result) WriteText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "million bench: commit %s, %s, %s, %d CPUs\n", res.shortCommit(), res.GoVersion, res.Start.Format("2006-01-02 15:04 MST"), res.NumCPU)
	fmt.Fprintf(&b, "pins: %s\n", res.Pins.Describe())
	fmt.Fprintf(&b, "%d rounds (baseline then million in each), %gs per run, %gs warm-up per side\n\n", res.Rounds, res.DurationS, res.WarmupS)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmillion req/s\tbaseline\tbaseline req/s\tratio\tratio per server CPU-s\tmillion p99 @50%\tbaseline p99 @50%\terrors (million/baseline)")
	for _, s := range res.Scenarios {
		baseline := s.Baseline
		if baseline == "" {
			baseline = "—"
		}
		if i := strings.Index(baseline, " ("); i > 0 {
			baseline = baseline[:i]
		}
		p99 := s.P99.FormatUnit(fmtMsNum, "ms")
		if s.Baseline == "" {
			p99 += " (at the fixed rate)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d / %d\n", s.Name, s.Throughput.Format(fmtRate), baseline,
			s.BaselineThroughput.Format(fmtRate), s.Ratio.Format(fmtRatio), s.CPURatio.Format(fmtRatio), p99,
			s.BaselineP99.FormatUnit(fmtMsNum, "ms"), s.Errors, s.BaselineErrors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range res.Scenarios {
		fmt.Fprintf(&b, "\n%s: %s\n  configuration: %s\n", s.Name, s.What, s.Stage)
		if s.Data != "" {
			fmt.Fprintf(&b, "  data: %s\n", s.Data)
		}
		if s.Load != "" {
			fmt.Fprintf(&b, "  load: %s\n", s.Load)
		}
		if s.Baseline != "" {
			fmt.Fprintf(&b, "  baseline: %s\n", s.Baseline)
		}
		fmt.Fprintf(&b, "  target: %s\n", s.Target)
		if s.RatioOf != "" {
			fmt.Fprintf(&b, "  ratio: %s = %s\n", s.RatioOf, s.Ratio.Format(fmtRatio))
		}
		if q := s.queriesSummary(); q != "" {
			fmt.Fprintf(&b, "  database queries per request: %s\n", q)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "  note: %s\n", n)
		}
		for _, l := range s.Limits {
			fmt.Fprintf(&b, "  LIMIT: %s\n", l)
		}
		if s.Name == "peak" {
			fmt.Fprintf(&b, "  result: %s\n", s.peakSummary())
		}
		if s.Err != "" {
			fmt.Fprintf(&b, "  FAILED: %s\n", s.Err)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// queriesSummary is both sides' database queries per request, where
// measured, or "".
func (s *ScenarioResult) queriesSummary() string {
	if s.DBQueriesPerRequest.N == 0 && s.BaselineDBQueriesPerRequest.N == 0 {
		return ""
	}
	q := "million " + s.DBQueriesPerRequest.Format(fmtQueries)
	if s.BaselineDBQueriesPerRequest.N > 0 {
		q += ", baseline " + s.BaselineDBQueriesPerRequest.Format(fmtQueries)
	}
	return q
}

func fmtQueries(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }

// peakSummary is the fixed-rate scenario's figures against its targets.
func (s *ScenarioResult) peakSummary() string {
	var rss []float64
	var errs, scheduled int64
	for _, rd := range s.Rounds {
		if m := rd.Target; m != nil {
			rss = append(rss, m.RSSPeakBytes/(1<<20))
			if m.Latency != nil {
				errs += m.Latency.Errors
				scheduled += m.Latency.Scheduled
			}
		}
	}
	st := Summarize(rss)
	rate := "—"
	if len(s.Rounds) > 0 && s.Rounds[0].Target != nil && s.Rounds[0].Target.Latency != nil {
		rate = fmtRate(s.Rounds[0].Target.Latency.RateRPS)
	}
	pct := 0.0
	if scheduled > 0 {
		pct = float64(errs) / float64(scheduled) * 100
	}
	return fmt.Sprintf("%s req/s answered successfully of %s offered; p99 %s; %s errors of %s arrivals (%.2f %%: failed answers, timeouts, arrivals dropped); server RSS peak %s MiB",
		s.Throughput.Format(fmtRate), rate, s.P99.FormatUnit(fmtMsNum, "ms"), thousands(errs), thousands(scheduled), pct,
		st.Format(func(x float64) string { return fmt.Sprintf("%.0f", x) }))
}

// Markers of the generated part of docs/benchmarks.md.
const (
	docsBegin  = "<!-- million bench: begin. Rows written by `million bench --write-docs`; a run replaces the rows of the scenarios it ran and keeps the others. -->"
	docsEnd    = "<!-- million bench: end -->"
	docsHeader = "| scenario | configuration | data | load | million | baseline | ratio (median, min–max) | p99 at 50 % of max: million / baseline | target | command | commit · Go · date |"
	docsRule   = "|---|---|---|---|---|---|---|---|---|---|---|"
)

// DocRow is one scenario's row of docs/benchmarks.md.
type DocRow struct {
	Scenario string
	Cells    []string // every cell, the scenario's first
}

// String renders the row as a markdown table line.
func (r DocRow) String() string {
	cells := make([]string, len(r.Cells))
	for i, c := range r.Cells {
		c = strings.ReplaceAll(c, "\n", " ")
		cells[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return "| " + strings.Join(cells, " | ") + " |"
}

// DocRows renders the rows of the scenarios that finished.
func (res *Result) DocRows() []DocRow {
	var rows []DocRow
	for _, s := range res.Scenarios {
		if s.Err != "" || len(s.Rounds) == 0 {
			continue
		}
		million := s.Throughput.Format(fmtRate) + " req/s"
		baseline, ratio := "—", "—"
		lat := s.P99.FormatUnit(fmtMsNum, "ms") + " / " + s.BaselineP99.FormatUnit(fmtMsNum, "ms") +
			" (generator send lag p99: " + s.SendLagP99.FormatUnit(fmtMsNum, "ms") + " / " + s.BaselineSendLagP99.FormatUnit(fmtMsNum, "ms") + ")"
		if s.Baseline != "" {
			baseline = s.Baseline + ": " + s.BaselineThroughput.Format(fmtRate) + "/s"
			ratio = "**" + s.Ratio.Format(fmtRatio) + "**; per server CPU-second: " + s.CPURatio.Format(fmtRatio)
			if s.RatioOf != "" {
				ratio = "**" + s.Ratio.Format(fmtRatio) + "** (" + s.RatioOf + "); answers per server CPU-second: " + s.CPURatio.Format(fmtRatio)
			}
		}
		if s.DBQueriesPerRequest.N > 0 && s.Name != "peak" {
			million += "; " + s.DBQueriesPerRequest.Format(fmtQueries) + " database queries per request"
		}
		if s.BaselineDBQueriesPerRequest.N > 0 {
			baseline += "; " + s.BaselineDBQueriesPerRequest.Format(fmtQueries) + " database queries per request"
		}
		if s.Name == "peak" {
			million = s.peakSummary() // errors included
			lat = s.P99.FormatUnit(fmtMsNum, "ms") + " at the fixed rate (generator send lag p99 " + s.SendLagP99.FormatUnit(fmtMsNum, "ms") + ")"
		} else {
			million += fmt.Sprintf("; errors %d", s.Errors)
		}
		if s.Baseline != "" {
			baseline += fmt.Sprintf("; errors %d", s.BaselineErrors)
		}
		for _, l := range s.Limits {
			// Each limit starts with the side it is about.
			if strings.HasPrefix(l, "million") {
				million += "; " + l
			} else {
				baseline += "; " + l
			}
		}
		run := fmt.Sprintf("%s; %d rounds", s.Load, res.Rounds)
		if s.NotesInDocs {
			for _, n := range s.Notes {
				run += "; " + n
			}
		}
		rows = append(rows, DocRow{Scenario: s.Name, Cells: []string{
			"`" + s.Name + "`: " + s.What, s.Stage + "; " + pinsCell(res.Pins), s.Data, run, million, baseline, ratio, lat,
			s.Target, "`" + res.Command + "`",
			res.shortCommit() + " · " + res.GoVersion + " · " + res.Start.Format("2006-01-02"),
		}})
	}
	return rows
}

func pinsCell(p Pins) string {
	if !p.Pinned {
		return "NOT PINNED: " + p.Note
	}
	return fmt.Sprintf("server on CPU %d (GOMAXPROCS=1), generator on CPU %d", p.ServerCPU, p.GeneratorCPU)
}

// UpdateDocs puts rows into the generated table of doc (docs/benchmarks.md):
// a row replaces the row of the same scenario, the other rows stay, and new
// scenarios are added at the end. A document without the table gets one,
// under a heading, at its end.
func UpdateDocs(doc []byte, rows []DocRow) []byte {
	text := string(doc)
	begin, end := strings.Index(text, docsBegin), strings.Index(text, docsEnd)
	if begin < 0 || end < begin {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += "\n## million bench\n\n" + docsBegin + "\n" + docsEnd + "\n"
		begin, end = strings.Index(text, docsBegin), strings.Index(text, docsEnd)
	}
	var keys []string
	existing := map[string]string{}
	for line := range strings.SplitSeq(text[begin+len(docsBegin):end], "\n") {
		if k, ok := rowKey(line); ok {
			if _, dup := existing[k]; !dup {
				keys = append(keys, k)
			}
			existing[k] = line
		}
	}
	for _, r := range rows {
		if _, ok := existing[r.Scenario]; !ok {
			keys = append(keys, r.Scenario)
		}
		existing[r.Scenario] = r.String()
	}
	var b strings.Builder
	b.WriteString(text[:begin])
	b.WriteString(docsBegin + "\n" + docsHeader + "\n" + docsRule + "\n")
	for _, k := range keys {
		b.WriteString(existing[k] + "\n")
	}
	b.WriteString(text[end:])
	return []byte(b.String())
}

// rowKey is the scenario a generated row is for: the name in backticks that
// starts its first cell.
func rowKey(line string) (string, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "| `")
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, "`")
	return name, ok && name != ""
}
