package bench

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// Stat sums up a figure measured once per round the way the protocol
// reports it: the median, and the range so that noise is visible.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"` // rounds it was measured in
}

// Summarize returns the median, minimum and maximum of xs, leaving out NaNs
// (a round in which the figure could not be measured). The median of an
// even number of values is the mean of the middle two. No values give the
// zero Stat.
func Summarize(xs []float64) Stat {
	vs := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			vs = append(vs, x)
		}
	}
	if len(vs) == 0 {
		return Stat{}
	}
	slices.Sort(vs)
	n := len(vs)
	med := vs[n/2]
	if n%2 == 0 {
		med = (vs[n/2-1] + vs[n/2]) / 2
	}
	return Stat{Median: med, Min: vs[0], Max: vs[n-1], N: n}
}

// Ratios divides target by baseline round by round: each ratio compares two
// runs measured next to each other, which is what cancels the machine's
// drift. A round without a positive baseline gives NaN, which Summarize
// leaves out. The slices must be of the same length.
func Ratios(target, baseline []float64) []float64 {
	out := make([]float64, len(target))
	for i := range target {
		if baseline[i] > 0 && !math.IsNaN(target[i]) {
			out[i] = target[i] / baseline[i]
		} else {
			out[i] = math.NaN()
		}
	}
	return out
}

// Format writes the stat as "median (min–max)", each value formatted by f;
// a single round has no range to show.
func (s Stat) Format(f func(float64) string) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 || s.Min == s.Max {
		return f(s.Median)
	}
	return f(s.Median) + " (" + f(s.Min) + "–" + f(s.Max) + ")"
}

// FormatUnit is Format followed by a unit, once for all three values:
// "1.23 (0.50–25.3) ms".
func (s Stat) FormatUnit(f func(float64) string, unit string) string {
	if s.N == 0 {
		return "—"
	}
	return s.Format(f) + " " + unit
}

// fmtRatio formats a throughput ratio.
func fmtRatio(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }

// fmtRate formats requests per second with thousands separators.
func fmtRate(x float64) string { return thousands(int64(math.Round(x))) }

// fmtMs formats a latency in milliseconds with its unit.
func fmtMs(x float64) string { return fmtMsNum(x) + " ms" }

// fmtMsNum formats milliseconds with three significant digits at most, as
// HDR histograms record them.
func fmtMsNum(x float64) string {
	switch {
	case x >= 1000:
		return thousands(int64(math.Round(x)))
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}

// fmtPct formats a fraction as a whole percentage.
func fmtPct(x float64) string { return strconv.FormatFloat(x*100, 'f', 0, 64) + " %" }

// thousands writes n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
