package loadgen

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// The plots of the HTML report are SVG drawn here, in Go, so that the page
// needs no script and no network to show them. This file holds the geometry
// (scales, ticks, paths); html.go decides what goes into each plot and the
// template draws the result, escaping every name that comes from a report.

// scale maps a data interval onto a pixel interval, linearly or on a log10
// axis (whose domain is then in decades).
type scale struct {
	d0, d1 float64 // domain; log10 of the values for a log scale
	r0, r1 float64 // pixels
	log    bool
}

func (s scale) at(v float64) float64 {
	if s.log {
		v = math.Log10(v)
	}
	if s.d1 == s.d0 {
		return (s.r0 + s.r1) / 2
	}
	return s.r0 + (v-s.d0)/(s.d1-s.d0)*(s.r1-s.r0)
}

// tick is one labelled position on an axis, in pixels.
type tick struct {
	At    float64
	Label string
}

// niceStep is the smallest 1, 2 or 5 × 10^k at least raw.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// linearTicks covers [0, hi] with at most about n round steps and returns
// the ticks and the top of the axis (hi rounded up to a step), so that the
// highest value always sits below a labelled gridline.
func linearTicks(hi float64, n int) ([]float64, float64) {
	if hi <= 0 || math.IsNaN(hi) {
		hi = 1
	}
	step := niceStep(hi / float64(n))
	top := math.Ceil(hi/step-1e-9) * step
	var out []float64
	for i := 0; float64(i)*step <= top*(1+1e-9); i++ {
		out = append(out, float64(i)*step)
	}
	return out, top
}

// timeSteps are round intervals for a time axis in seconds: a minute is
// divided into 15 s or 30 s, not into 20 s.
var timeSteps = []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400}

// timeTicks covers [0, end] seconds with at most about n round steps.
func timeTicks(end float64, n int) []float64 {
	step := timeSteps[len(timeSteps)-1]
	for _, s := range timeSteps {
		if end/s <= float64(n) {
			step = s
			break
		}
	}
	var out []float64
	for i := 0; float64(i)*step <= end*(1+1e-9); i++ {
		out = append(out, float64(i)*step)
	}
	return out
}

// logTicks returns the decades (in log10) of an axis covering [lo, hi],
// both positive, and its ticks: every power of ten, and 2 and 5 times
// them too when the axis spans few decades, so that it never has fewer
// than three labelled lines.
func logTicks(lo, hi float64) (ticks []float64, d0, d1 float64) {
	d0, d1 = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	for k := d0; k <= d1; k++ {
		p := math.Pow(10, k)
		ticks = append(ticks, p)
		if d1-d0 <= 2 && k < d1 {
			ticks = append(ticks, 2*p, 5*p)
		}
	}
	return ticks, d0, d1
}

// tickMs labels a latency tick: "500µs", "2ms", "1.5s".
func tickMs(v float64) string {
	switch {
	case v < 1:
		return strconv.FormatFloat(round(v*1000, 3), 'g', -1, 64) + "µs"
	case v < 1000:
		return strconv.FormatFloat(round(v, 3), 'g', -1, 64) + "ms"
	default:
		return strconv.FormatFloat(round(v/1000, 3), 'g', -1, 64) + "s"
	}
}

// round keeps digits significant digits, so that 0.30000000000000004
// is labelled 0.3.
func round(v float64, digits int) float64 {
	if v == 0 {
		return 0
	}
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', digits, 64), 64)
	return f
}

// tickSeconds labels a time tick: "45s", "1m30s", "500ms".
func tickSeconds(v float64) string {
	if v == 0 {
		return "0"
	}
	return time.Duration(math.Round(v*1000) * float64(time.Millisecond)).String()
}

// tickCount labels a count or rate tick compactly: "800", "1.5k", "2M".
func tickCount(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(round(v/1e6, 3), 'g', -1, 64) + "M"
	case a >= 1e4 || (a >= 1e3 && math.Mod(a, 100) == 0):
		return strconv.FormatFloat(round(v/1e3, 3), 'g', -1, 64) + "k"
	default:
		return strconv.FormatFloat(round(v, 3), 'g', -1, 64)
	}
}

// pathBuilder writes an SVG path with one decimal per coordinate (a tenth
// of a pixel is below what a screen shows), breaking the line wherever a
// point is missing instead of drawing across the gap.
type pathBuilder struct {
	b      strings.Builder
	broken bool // the next point starts a new subpath
	points int
}

func (p *pathBuilder) add(x, y float64) {
	if p.b.Len() == 0 || p.broken {
		p.b.WriteString("M")
	} else {
		p.b.WriteString("L")
	}
	p.b.WriteString(strconv.FormatFloat(x, 'f', 1, 64))
	p.b.WriteString(",")
	p.b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
	p.broken = false
	p.points++
}

func (p *pathBuilder) gap() { p.broken = true }

func (p *pathBuilder) String() string { return p.b.String() }
