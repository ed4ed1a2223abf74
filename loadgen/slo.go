package loadgen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SLO is one threshold a run must meet, such as "p99<25ms", "errors<0.1%",
// "rps>=9000" or, for one step, "checkout.p99<200ms".
type SLO struct {
	Expr    string  // as written
	Step    string  // the step it applies to; "" for the whole run
	Metric  string  // p50, p90, p99, p99.9, max, errors or rps
	Op      string  // <, <=, > or >=
	Value   float64 // milliseconds for latencies, requests per second for rps, a fraction or a count for errors
	Percent bool    // errors given as a percentage (Value is then a fraction)
}

// SLOResult is an SLO checked against a report.
type SLOResult struct {
	Expr    string  `json:"expr"`
	Actual  float64 `json:"actual"` // in the SLO's unit: ms, req/s, a fraction or a count
	Pass    bool    `json:"pass"`
	Message string  `json:"message"`
}

var sloMetrics = []string{"p99.9", "p50", "p90", "p99", "max", "errors", "rps"}

// ParseSLOs reads thresholds separated by commas. Latencies (p50, p90, p99,
// p99.9, max) take a duration ("25ms", "1s"); errors take a percentage of
// the requests ("0.1%") or a count ("0"); rps takes the successful responses
// per second. A step name and a dot in front restrict one to that step.
func ParseSLOs(s string) ([]SLO, error) {
	var out []SLO
	for expr := range strings.SplitSeq(s, ",") {
		expr = strings.TrimSpace(expr)
		if expr == "" {
			continue
		}
		slo, err := parseSLO(expr)
		if err != nil {
			return nil, err
		}
		out = append(out, slo)
	}
	return out, nil
}

func parseSLO(expr string) (SLO, error) {
	slo := SLO{Expr: expr}
	i := strings.IndexAny(expr, "<>")
	if i <= 0 {
		return slo, fmt.Errorf("SLO %q: want metric<value or metric>value, e.g. p99<25ms", expr)
	}
	lhs, rest := strings.TrimSpace(expr[:i]), expr[i:]
	slo.Op = rest[:1]
	rest = rest[1:]
	if strings.HasPrefix(rest, "=") {
		slo.Op += "="
		rest = rest[1:]
	}
	rhs := strings.TrimSpace(rest)
	slo.Metric = lhs
	if !isSLOMetric(lhs) {
		step, metric, ok := strings.Cut(lhs, ".")
		if !ok || step == "" || !isSLOMetric(metric) {
			return slo, fmt.Errorf("SLO %q: unknown metric %q (want %s, optionally after a step name and a dot)",
				expr, lhs, strings.Join(sloMetrics, ", "))
		}
		slo.Step, slo.Metric = step, metric
	}
	switch slo.Metric {
	case "errors":
		if p, ok := strings.CutSuffix(rhs, "%"); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || v < 0 {
				return slo, fmt.Errorf("SLO %q: %q is not a percentage", expr, rhs)
			}
			slo.Value, slo.Percent = v/100, true
		} else {
			v, err := strconv.ParseFloat(rhs, 64)
			if err != nil || v < 0 {
				return slo, fmt.Errorf("SLO %q: %q is not a count or a percentage", expr, rhs)
			}
			slo.Value = v
		}
	case "rps":
		v, err := strconv.ParseFloat(strings.TrimSuffix(rhs, "/s"), 64)
		if err != nil || v < 0 {
			return slo, fmt.Errorf("SLO %q: %q is not a rate", expr, rhs)
		}
		slo.Value = v
	default:
		d, err := time.ParseDuration(strings.ReplaceAll(rhs, "us", "µs"))
		if err != nil || d < 0 {
			return slo, fmt.Errorf("SLO %q: %q is not a duration (e.g. 25ms)", expr, rhs)
		}
		slo.Value = float64(d) / float64(time.Millisecond)
	}
	return slo, nil
}

func isSLOMetric(s string) bool {
	for _, m := range sloMetrics {
		if s == m {
			return true
		}
	}
	return false
}

// Check evaluates the SLO against a report.
func (s SLO) Check(r *Report) SLOResult {
	res := SLOResult{Expr: s.Expr}
	lat, count, errs, ok := r.Summary.Latency, r.Summary.Completed+r.Summary.Dropped, r.Summary.Errors, r.Summary.OK
	where := ""
	if s.Step != "" {
		st := r.Step(s.Step)
		if st == nil {
			res.Message = fmt.Sprintf("%s: the run has no step %q", s.Expr, s.Step)
			return res
		}
		lat, count, errs, ok = st.Latency, st.Count, st.Errors, st.Count-st.Errors
		where = s.Step + " "
	}
	var shown string
	switch s.Metric {
	case "p50":
		res.Actual = lat.P50
	case "p90":
		res.Actual = lat.P90
	case "p99":
		res.Actual = lat.P99
	case "p99.9":
		res.Actual = lat.P999
	case "max":
		res.Actual = lat.Max
	case "errors":
		if s.Percent {
			if count > 0 {
				res.Actual = float64(errs) / float64(count)
			}
			shown = fmt.Sprintf("%.3g%% (%d of %d)", res.Actual*100, errs, count)
		} else {
			res.Actual = float64(errs)
			shown = strconv.FormatInt(errs, 10)
		}
	case "rps":
		if r.Meta.DurationS > 0 {
			res.Actual = float64(ok) / r.Meta.DurationS
		}
		shown = fmt.Sprintf("%.1f/s", res.Actual)
	}
	if shown == "" {
		shown = fmtMs(res.Actual)
	}
	switch s.Op {
	case "<":
		res.Pass = res.Actual < s.Value
	case "<=":
		res.Pass = res.Actual <= s.Value
	case ">":
		res.Pass = res.Actual > s.Value
	case ">=":
		res.Pass = res.Actual >= s.Value
	}
	verdict := "ok"
	if !res.Pass {
		verdict = "MISSED"
	}
	res.Message = fmt.Sprintf("%s: %s%s is %s (%s)", s.Expr, where, s.Metric, shown, verdict)
	return res
}

// ErrSLOMissed is returned (wrapped) when a report misses an SLO.
var ErrSLOMissed = errors.New("SLO missed")

// CheckSLOs evaluates every SLO, stores the results in the report and
// returns an error wrapping ErrSLOMissed that names each one missed.
func (r *Report) CheckSLOs(slos []SLO) error {
	r.SLO = nil
	var missed []string
	for _, s := range slos {
		res := s.Check(r)
		r.SLO = append(r.SLO, res)
		if !res.Pass {
			missed = append(missed, res.Message)
		}
	}
	if len(missed) > 0 {
		return fmt.Errorf("%w: %s", ErrSLOMissed, strings.Join(missed, "; "))
	}
	return nil
}

// fmtMs shows milliseconds with a unit and about three significant digits.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	case v < 1000:
		return fmt.Sprintf("%.0fms", v)
	default:
		return fmt.Sprintf("%.2fs", v/1000)
	}
}
