package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteText writes the report for a human: what ran, the counts, the
// latency table per step, the errors, the server's side and the SLOs.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	m, s := r.Meta, r.Summary
	var stages []string
	for _, st := range m.Stages {
		stages = append(stages, fmt.Sprintf("%g/s for %s", st.Rate, st.Duration))
	}
	fmt.Fprintf(&b, "target %s: %s", m.Target, strings.Join(stages, ", then "))
	if m.WarmupS > 0 {
		fmt.Fprintf(&b, " after %gs of warm-up", m.WarmupS)
	}
	if m.Interrupted {
		fmt.Fprintf(&b, " (INTERRUPTED after %.1fs)", m.DurationS)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "requests: %d due, %d sent, %d completed, %d errors (%.3g%%), %d late, %d dropped\n",
		s.Scheduled, s.Sent, s.Completed, s.Errors, s.ErrorRate*100, s.Late, s.Dropped)
	fmt.Fprintf(&b, "throughput: %.1f req/s (%.1f ok) for %.1f offered\n", s.ThroughputRPS, s.OKRPS, s.OfferedRPS)
	b.WriteString("latency from the intended send time:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tcount\terrors\tp50\tp90\tp99\tp99.9\tmax\t")
	row := func(name string, count, errs int64, l Latency) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, count, errs,
			fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max))
	}
	row("all", s.Completed, s.Errors-s.Dropped, s.Latency)
	for _, st := range r.Steps {
		row(st.Name, st.Count, st.Errors, st.Latency)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "send lag (generator): p99 %s, max %s\n", fmtMs(s.SendLag.P99), fmtMs(s.SendLag.Max))
	if s.Late == 0 && s.SendLag.P99 > 5 {
		b.WriteString("warning: the generator itself fell behind its schedule; give it more CPU or a lower rate\n")
	}
	if len(r.Errors.ByStatus) > 0 {
		fmt.Fprintf(&b, "errors by status: %s\n", counts(r.Errors.ByStatus))
		for _, step := range slices.Sorted(maps.Keys(r.Errors.ByStep)) {
			fmt.Fprintf(&b, "  %s: %s\n", step, counts(r.Errors.ByStep[step]))
		}
		for _, msg := range r.Errors.Samples {
			fmt.Fprintf(&b, "  e.g. %s\n", msg)
		}
	}
	if sv := r.Server; sv != nil {
		if sv.Error != "" {
			fmt.Fprintf(&b, "server: %s\n", sv.Error)
		} else {
			fmt.Fprintf(&b, "server: %.0f requests, %.0f database queries (%.2f per request), CPU %.2fs (%.3f ms per request), RSS peak %.1f MiB\n",
				sv.Requests, sv.DBQueries, sv.DBQueriesPerRequest, sv.CPUSeconds, sv.CPUMsPerRequest, sv.RSSPeakBytes/(1<<20))
			if sv.CacheHitRatio != nil {
				fmt.Fprintf(&b, "server cache: hit ratio %.1f%%\n", *sv.CacheHitRatio*100)
			}
		}
	}
	for _, res := range r.SLO {
		fmt.Fprintf(&b, "slo %s\n", res.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func counts(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
