package loadgen

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var reportTemplate string

// htmlTemplate is parsed once; html/template escapes every string from the
// report (target, step names, error messages, commands) in its context, in
// the page's text as in the SVG's attributes.
var htmlTemplate = template.Must(template.New("report").Parse(reportTemplate))

// RenderHTML writes the report as one self-contained HTML page: inline CSS
// and inline SVG plots, no script and nothing fetched, so that it opens
// offline, from a mail attachment or a CI artifact, as it did on the day.
//
// The page is rendered from the report's JSON form, so a page made at the
// end of a run and one made later from its JSON file are the same bytes.
func (r *Report) RenderHTML(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return err
	}
	var raw struct {
		Meta map[string]any `json:"meta"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	v := buildView(&rep, raw.Meta)
	var out bytes.Buffer
	if err := htmlTemplate.Execute(&out, v); err != nil {
		return err
	}
	_, err = w.Write(out.Bytes())
	return err
}

// WriteHTML writes the HTML page of RenderHTML to path.
func (r *Report) WriteHTML(path string) error {
	var b bytes.Buffer
	if err := r.RenderHTML(&b); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// Colours of the plots. Data is drawn in saturated colours and everything
// else (axes, grid, text, the offered-rate band) in greys, so the data
// stands out; colour is never the only cue: legends name every line, and
// reference lines are dashed or labelled.
const (
	colP50       = "#4e79a7"
	colP90       = "#59a14f"
	colP99       = "#f28e2b"
	colMax       = "#e15759"
	colOffered   = "#d4dae0"
	colDone      = "#4e79a7"
	colErrors    = "#e15759"
	colServer    = "#4e79a7"
	colQueries   = "#f28e2b"
	colPerReq    = "#b07aa1"
	colRSS       = "#59a14f"
	colCPU       = "#e15759"
	colAll       = "#24292f"
	colRef       = "#8c959f"
	colSLOMet    = "#1a7f37"
	colSLOMissed = "#cf222e"
	dashRef      = "5 4"
)

// stepColours are Tableau 10 without its grey: distinct for most forms of
// colour blindness, and none of them pale on white.
var stepColours = []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"}

// htmlView is everything the template shows, formatted.
type htmlView struct {
	Title       string
	Target      string
	Started     string
	Schedule    string
	Interrupted bool
	DurationS   string
	Cards       []card
	Meta        []metaItem
	Command     string
	Steps       []stepRow
	SendLag     string
	LagWarning  bool
	SLOs        []sloRow
	ByStatus    []countItem
	ByStep      []stepErrors
	Samples     []string
	Plots       []*svgPlot
	Server      *serverView
	Seconds     []secondRow
	ServerRows  []serverRow
	Generator   string
	Build       string // commit and Go version, for the header
}

type card struct {
	Label, Value, Note string
	Class              string // "good", "bad" or ""
}

type metaItem struct {
	Label, Value string
	Mono         bool
}

type stepRow struct {
	Name                           string
	Total                          bool
	Count, Share, Errors           string
	Mean, P50, P90, P99, P999, Max string
	Statuses                       string
}

type sloRow struct {
	Expr, Message string
	Pass          bool
}

type countItem struct {
	Name  string
	Count string
}

type stepErrors struct {
	Step   string
	Counts []countItem
}

type serverView struct {
	URL   string
	Error string
	Items []metaItem
	Cache []countItem
}

type secondRow struct {
	T                          int
	Offered, Completed, Errors int64
	P50, P90, P99, Max         string
}

type serverRow struct {
	T                                       string
	Requests, Queries, PerRequest, RSS, CPU string
}

// svgPlot is one figure: panels stacked over a shared x axis.
type svgPlot struct {
	ID      string
	Title   string
	Caption string // one line under the title: how to read the plot
	Desc    string // what the data says, in words, for screen readers
	Width   float64
	Height  float64
	Wide    bool // spans both columns of the grid
	Panels  []*svgPanel
	XTicks  []tick
	XLabel  string
	XMid    float64 // centre of the x axis, for its label
	TickY   float64 // baseline of the x tick labels
	LabelY  float64 // baseline of the x axis label
	Legend  []legendItem
}

type svgPanel struct {
	X, Y, W, H    float64
	Right, Bottom float64
	YTicks        []tick
	YLabel        string
	YMid          float64 // centre of the y axis, for its rotated label
	YLabelX       float64
	Rules         []svgRule
	Bars          []svgBar
	Lines         []svgLine
	Marks         []svgMark
	Notes         []svgText
}

type svgLine struct {
	D, Color, Dash string
	Width          float64
}

type svgBar struct {
	X, Y, W, H float64
	Color      string
	Title      string
}

type svgMark struct {
	X, Y, R float64
	Color   string
	Title   string
}

type svgRule struct {
	X1, Y1, X2, Y2 float64
	Color, Dash    string
}

type svgText struct {
	X, Y   float64
	Text   string
	Anchor string
}

type legendItem struct {
	Name, Color, Dash string
	Width             float64
	Bar               bool
}

// Plot geometry, in SVG user units (pixels at 100 %).
const (
	plotW      = 600.0
	wideW      = 1200.0
	marginL    = 62.0
	marginR    = 30.0
	marginT    = 22.0 // room for the stage labels above the first panel
	panelGap   = 16.0
	marginB    = 42.0
	xTickDrop  = 16.0 // x tick labels below the last panel
	xLabelDrop = 34.0
)

func buildView(r *Report, rawMeta map[string]any) *htmlView {
	m, s := r.Meta, r.Summary
	v := &htmlView{
		Target:      m.Target,
		Started:     m.Start.UTC().Format("2006-01-02 15:04:05 UTC"),
		Schedule:    scheduleText(m.Stages),
		Interrupted: m.Interrupted,
		DurationS:   fmtSeconds(m.DurationS),
		Command:     m.Command,
		SendLag:     fmt.Sprintf("p99 %s, max %s", fmtMs(s.SendLag.P99), fmtMs(s.SendLag.Max)),
		LagWarning:  s.Late == 0 && s.SendLag.P99 > 5,
		Samples:     r.Errors.Samples,
		Generator:   generatorName(m.Generator),
		Build:       m.Generator.GoVersion,
	}
	if c := m.Generator.Commit; c != "" {
		v.Build = "commit " + c[:min(12, len(c))] + ", " + v.Build
	}
	v.Title = "million load: " + m.Target + ", " + v.Started
	v.Cards = cards(r)
	v.Meta = metaItems(r, rawMeta)
	v.Steps = stepRows(r)
	for _, res := range r.SLO {
		v.SLOs = append(v.SLOs, sloRow{Expr: res.Expr, Message: res.Message, Pass: res.Pass})
	}
	v.ByStatus = countItems(r.Errors.ByStatus)
	for _, step := range slices.Sorted(maps.Keys(r.Errors.ByStep)) {
		v.ByStep = append(v.ByStep, stepErrors{Step: step, Counts: countItems(r.Errors.ByStep[step])})
	}
	v.Server = serverItems(r)
	for _, p := range r.Series {
		v.Seconds = append(v.Seconds, secondRow{T: p.T, Offered: p.Offered, Completed: p.Completed, Errors: p.Errors,
			P50: latencyCell(p.Completed, p.P50), P90: latencyCell(p.Completed, p.P90),
			P99: latencyCell(p.Completed, p.P99), Max: latencyCell(p.Completed, p.Max)})
	}
	if r.Server != nil {
		for _, p := range r.Server.Series {
			row := serverRow{T: strconv.FormatFloat(p.T, 'f', 1, 64), Requests: fmtRate(p.RequestsPerS),
				Queries: fmtRate(p.DBQueriesPerS), PerRequest: "—", RSS: fmtMiB(p.RSSBytes), CPU: fmt.Sprintf("%.2f", p.CPUCores)}
			if p.RequestsPerS > 0 {
				row.PerRequest = fmt.Sprintf("%.2f", p.DBQueriesPerS/p.RequestsPerS)
			}
			v.ServerRows = append(v.ServerRows, row)
		}
	}
	v.Plots = plots(r)
	return v
}

func latencyCell(n int64, ms float64) string {
	if n == 0 {
		return "—"
	}
	return fmtMs(ms)
}

func scheduleText(stages []Stage) string {
	var parts []string
	for _, st := range stages {
		if st.Rate == 0 {
			parts = append(parts, "pause "+st.Duration.String())
			continue
		}
		parts = append(parts, fmt.Sprintf("%s/s for %s", strconv.FormatFloat(st.Rate, 'f', -1, 64), st.Duration))
	}
	return strings.Join(parts, ", then ")
}

func generatorName(g Generator) string {
	s := "million load"
	if g.Version != "" {
		s += " " + g.Version
	}
	return s
}

func cards(r *Report) []card {
	s := r.Summary
	out := []card{
		{Label: "Requests", Value: fmtInt(s.Completed), Note: fmt.Sprintf("completed of %s due, %s sent", fmtInt(s.Scheduled), fmtInt(s.Sent))},
		{Label: "Throughput", Value: fmtRate(s.ThroughputRPS) + "/s", Note: fmt.Sprintf("%s/s ok, %s/s offered", fmtRate(s.OKRPS), fmtRate(s.OfferedRPS))},
	}
	errs := card{Label: "Errors", Value: fmtInt(s.Errors), Note: fmtPct(s.ErrorRate) + " of requests", Class: "good"}
	if s.Errors > 0 {
		errs.Class = "bad"
	}
	if s.Dropped > 0 || s.Late > 0 {
		errs.Note += fmt.Sprintf("; %s late, %s dropped", fmtInt(s.Late), fmtInt(s.Dropped))
	}
	out = append(out, errs,
		card{Label: "p99 latency", Value: fmtMs(s.Latency.P99), Note: fmt.Sprintf("p50 %s, p99.9 %s, max %s", fmtMs(s.Latency.P50), fmtMs(s.Latency.P999), fmtMs(s.Latency.Max))})
	if sv := r.Server; sv != nil && sv.Error == "" {
		out = append(out, card{Label: "DB queries / request", Value: fmt.Sprintf("%.2f", sv.DBQueriesPerRequest),
			Note: fmt.Sprintf("%s queries for %s requests served", fmtInt(int64(sv.DBQueries)), fmtInt(int64(sv.Requests)))})
	}
	if len(r.SLO) > 0 {
		missed := 0
		for _, res := range r.SLO {
			if !res.Pass {
				missed++
			}
		}
		c := card{Label: "SLOs", Value: fmt.Sprintf("%d of %d met", len(r.SLO)-missed, len(r.SLO)), Class: "good", Note: "all thresholds met"}
		if missed > 0 {
			c.Class, c.Note = "bad", fmt.Sprintf("%d missed", missed)
		}
		out = append(out, c)
	}
	return out
}

// Keys of the JSON meta the page shows in its own words; any other key
// (such as CPU pins, added by a harness) is shown as it comes.
var (
	knownMeta = []string{"target", "command", "start", "end", "duration_s", "stages", "warmup_s", "concurrency",
		"backlog", "timeout_s", "interrupted", "workload", "generator"}
	knownGenerator = []string{"version", "go_version", "commit", "commit_time", "modified", "os", "arch", "num_cpu",
		"gomaxprocs", "hostname"}
)

func metaItems(r *Report, raw map[string]any) []metaItem {
	m, g := r.Meta, r.Meta.Generator
	measured := fmtSeconds(m.DurationS)
	if m.WarmupS > 0 {
		measured += " after " + fmtSeconds(m.WarmupS) + " of warm-up"
	}
	if m.Interrupted {
		measured += " (interrupted)"
	}
	items := []metaItem{
		{Label: "Target", Value: m.Target, Mono: true},
		{Label: "Started", Value: m.Start.UTC().Format("2006-01-02 15:04:05 UTC")},
		{Label: "Measured", Value: measured},
		{Label: "Arrival rate", Value: scheduleText(m.Stages)},
	}
	if m.Concurrency > 0 {
		items = append(items, metaItem{Label: "Concurrency",
			Value: fmt.Sprintf("%d in flight at most, backlog %d, timeout %s", m.Concurrency, m.Backlog, fmtSeconds(m.TimeoutS))})
	}
	if w, ok := raw["workload"].(map[string]any); ok {
		items = append(items, anyItems(w, "")...)
	}
	commit := "unknown (built without VCS stamp)"
	if g.Commit != "" {
		commit = g.Commit[:min(12, len(g.Commit))]
		if g.Modified {
			commit += " with uncommitted changes"
		}
		if g.CommitTime != "" {
			commit += ", " + g.CommitTime
		}
	}
	platform := fmt.Sprintf("%s/%s, %d CPUs, GOMAXPROCS %d", g.OS, g.Arch, g.NumCPU, g.GOMAXPROCS)
	if g.Hostname != "" {
		platform += ", host " + g.Hostname
	}
	items = append(items,
		metaItem{Label: "Commit", Value: commit, Mono: g.Commit != ""},
		metaItem{Label: "Generator", Value: generatorName(g) + ", " + g.GoVersion},
		metaItem{Label: "Generator host", Value: platform})
	if gen, ok := raw["generator"].(map[string]any); ok {
		items = append(items, anyItems(gen, "generator ", knownGenerator...)...)
	}
	return append(items, anyItems(raw, "", knownMeta...)...)
}

// anyItems shows the keys of a JSON object other than skip, labelled from
// their names: "virtual_users" is "Virtual users", "think_time_s" is
// "Think time" in seconds, a "…share" or "…ratio" is a percentage.
func anyItems(obj map[string]any, prefix string, skip ...string) []metaItem {
	var out []metaItem
	keys := slices.Sorted(maps.Keys(obj))
	// What a workload says about itself most often comes first, in the
	// order a reader asks: what ran, in what mix, by how many users.
	slices.SortStableFunc(keys, func(a, b string) int { return rank(a) - rank(b) })
	for _, k := range keys {
		if slices.Contains(skip, k) {
			continue
		}
		label, val := k, obj[k]
		var text string
		switch x := val.(type) {
		case float64:
			switch {
			case strings.HasSuffix(k, "_s"):
				label, text = strings.TrimSuffix(k, "_s"), fmtSeconds(x)
			case strings.HasSuffix(k, "share") || strings.HasSuffix(k, "ratio"):
				text = fmtPct(x)
			default:
				text = strconv.FormatFloat(x, 'f', -1, 64)
			}
		case map[string]any:
			if k == "mix" {
				text = mixText(x)
			} else {
				text = objectText(x)
			}
		default:
			b, _ := json.Marshal(x)
			text = strings.Trim(string(b), `"`)
		}
		label = prefix + strings.ReplaceAll(label, "_", " ")
		out = append(out, metaItem{Label: strings.ToUpper(label[:1]) + label[1:], Value: text})
	}
	return out
}

var firstKeys = []string{"kind", "mix", "read_share", "users", "virtual_users", "think_time_s", "product_skew"}

func rank(key string) int {
	if i := slices.Index(firstKeys, key); i >= 0 {
		return i
	}
	return len(firstKeys)
}

// mixText shows journey weights as shares, heaviest first.
func mixText(m map[string]any) string {
	type w struct {
		name string
		v    float64
	}
	var ws []w
	var total float64
	for k, x := range m {
		if f, ok := x.(float64); ok && f > 0 {
			ws = append(ws, w{k, f})
			total += f
		}
	}
	slices.SortFunc(ws, func(a, b w) int {
		if a.v != b.v {
			if a.v > b.v {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	var parts []string
	for _, x := range ws {
		parts = append(parts, fmt.Sprintf("%s %s%%", x.name, strconv.FormatFloat(round(100*x.v/total, 3), 'f', -1, 64)))
	}
	return strings.Join(parts, ", ")
}

func objectText(m map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b, _ := json.Marshal(m[k])
		parts = append(parts, k+"="+strings.Trim(string(b), `"`))
	}
	return strings.Join(parts, ", ")
}

func stepRows(r *Report) []stepRow {
	s := r.Summary
	total := stepRow{Name: "all", Total: true, Count: fmtInt(s.Completed), Share: "100%", Errors: fmtInt(s.Errors - s.Dropped)}
	setLatency(&total, s.Latency)
	rows := []stepRow{total}
	for _, st := range r.Steps {
		row := stepRow{Name: st.Name, Count: fmtInt(st.Count), Errors: fmtInt(st.Errors), Share: "—"}
		if s.Completed > 0 {
			row.Share = fmtPct(float64(st.Count) / float64(s.Completed))
		}
		setLatency(&row, st.Latency)
		var parts []string
		for _, c := range countItems(st.Statuses) {
			parts = append(parts, c.Name+" ×"+c.Count)
		}
		row.Statuses = strings.Join(parts, ", ")
		rows = append(rows, row)
	}
	return rows
}

func setLatency(row *stepRow, l Latency) {
	if l.Count == 0 {
		row.Mean, row.P50, row.P90, row.P99, row.P999, row.Max = "—", "—", "—", "—", "—", "—"
		return
	}
	row.Mean, row.P50, row.P90, row.P99, row.P999, row.Max = fmtMs(l.Mean), fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max)
}

// countItems lists counts by name, largest first.
func countItems(m map[string]int64) []countItem {
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int {
		switch {
		case m[a] > m[b]:
			return -1
		case m[a] < m[b]:
			return 1
		}
		return 0
	})
	var out []countItem
	for _, k := range keys {
		out = append(out, countItem{Name: k, Count: fmtInt(m[k])})
	}
	return out
}

func serverItems(r *Report) *serverView {
	sv := r.Server
	if sv == nil {
		return nil
	}
	v := &serverView{URL: sv.URL, Error: sv.Error}
	if sv.Error != "" {
		return v
	}
	codes := map[string]int64{}
	for c, n := range sv.RequestsByCode {
		codes[c] = int64(n)
	}
	var byCode []string
	for _, c := range countItems(codes) {
		byCode = append(byCode, c.Name+" ×"+c.Count)
	}
	cores := "—"
	if r.Meta.DurationS > 0 {
		cores = fmt.Sprintf("%.2f", sv.CPUSeconds/r.Meta.DurationS)
	}
	v.Items = []metaItem{
		{Label: "Requests served", Value: fmtInt(int64(sv.Requests)) + " (" + strings.Join(byCode, ", ") + ")"},
		{Label: "Database queries", Value: fmt.Sprintf("%s, %s failed", fmtInt(int64(sv.DBQueries)), fmtInt(int64(sv.DBQueryErrors)))},
		{Label: "Queries per request", Value: fmt.Sprintf("%.3f", sv.DBQueriesPerRequest)},
		{Label: "CPU", Value: fmt.Sprintf("%.2f s, %.3f ms per request, %s cores on average", sv.CPUSeconds, sv.CPUMsPerRequest, cores)},
		{Label: "Resident memory", Value: fmt.Sprintf("peak %s, at the end %s", fmtMiB(sv.RSSPeakBytes), fmtMiB(sv.RSSEndBytes))},
	}
	if sv.CacheHitRatio != nil {
		v.Items = append(v.Items, metaItem{Label: "Cache hit ratio", Value: fmtPct(*sv.CacheHitRatio)})
	}
	for _, k := range slices.Sorted(maps.Keys(sv.Cache)) {
		v.Cache = append(v.Cache, countItem{Name: k, Count: fmtInt(int64(sv.Cache[k]))})
	}
	return v
}

// fmtInt writes a count with thousands separators: 1,234,567.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
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

func fmtRate(v float64) string {
	if v >= 1000 {
		return fmtInt(int64(math.Round(v)))
	}
	return strconv.FormatFloat(round(v, 4), 'f', -1, 64)
}

func fmtPct(f float64) string {
	if f == 0 {
		return "0%"
	}
	return strconv.FormatFloat(round(f*100, 3), 'f', -1, 64) + "%"
}

func fmtSeconds(s float64) string {
	return time.Duration(math.Round(s*1000) * float64(time.Millisecond)).String()
}

func fmtMiB(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// plots builds the figures the report has data for: nothing is drawn
// empty.
func plots(r *Report) []*svgPlot {
	end := r.Meta.DurationS
	if n := len(r.Series); n > 0 {
		end = max(end, float64(r.Series[n-1].T+1))
	}
	if r.Server != nil && len(r.Server.Series) > 0 {
		end = max(end, r.Server.Series[len(r.Server.Series)-1].T)
	}
	if end <= 0 {
		end = 1
	}
	var out []*svgPlot
	if p := latencyPlot(r, end); p != nil {
		out = append(out, p)
	}
	if p := throughputPlot(r, end); p != nil {
		out = append(out, p)
	}
	if p := distributionPlot(r); p != nil {
		out = append(out, p)
	}
	if r.Server != nil && len(r.Server.Series) > 0 {
		out = append(out, serverTrafficPlot(r, end), serverResourcePlot(r, end))
	}
	return out
}

// newPlot lays out a figure of panels with the given heights.
func newPlot(id, title, caption string, width float64, heights ...float64) *svgPlot {
	p := &svgPlot{ID: id, Title: title, Caption: caption, Width: width}
	y := marginT
	for i, h := range heights {
		if i > 0 {
			y += panelGap
		}
		pn := &svgPanel{X: marginL, Y: y, W: width - marginL - marginR, H: h}
		pn.Right, pn.Bottom = pn.X+pn.W, pn.Y+pn.H
		pn.YMid, pn.YLabelX = pn.Y+pn.H/2, 16
		p.Panels = append(p.Panels, pn)
		y += h
	}
	p.TickY, p.LabelY, p.Height = y+xTickDrop, y+xLabelDrop, y+marginB
	p.XMid = marginL + (width-marginL-marginR)/2
	return p
}

// xTicks sets the shared x axis.
func (p *svgPlot) xTicks(sx scale, values []float64, label func(float64) string, axis string) {
	for _, v := range values {
		p.XTicks = append(p.XTicks, tick{At: r1(sx.at(v)), Label: label(v)})
	}
	p.XLabel = axis
}

// yTicks sets a panel's y axis.
func (pn *svgPanel) yTicks(sy scale, values []float64, label func(float64) string, axis string) {
	for _, v := range values {
		pn.YTicks = append(pn.YTicks, tick{At: r1(sy.at(v)), Label: label(v)})
	}
	pn.YLabel = axis
}

// timeScale is the x scale of the plots over time.
func (p *svgPlot) timeScale(end float64) scale {
	pn := p.Panels[0]
	sx := scale{d0: 0, d1: end, r0: pn.X, r1: pn.Right}
	p.xTicks(sx, timeTicks(end, int(pn.W/70)), tickSeconds, "time since the start of the measured run")
	return sx
}

// stages marks where the ramp changes rate, with each stage's rate above
// the first panel, so that a knee in a curve can be matched to a rate.
func (p *svgPlot) stages(r *Report, sx scale) {
	if len(r.Meta.Stages) < 2 {
		return
	}
	var t float64
	for i, st := range r.Meta.Stages {
		d := st.Duration.Seconds()
		if i > 0 {
			for _, pn := range p.Panels {
				x := r1(sx.at(t))
				pn.Rules = append(pn.Rules, svgRule{X1: x, Y1: pn.Y, X2: x, Y2: pn.Bottom, Color: colRef, Dash: "2 3"})
			}
		}
		if w := sx.at(t+d) - sx.at(t); w >= 36 {
			first := p.Panels[0]
			first.Notes = append(first.Notes, svgText{X: r1(sx.at(t + d/2)), Y: first.Y - 7, Text: tickCount(st.Rate) + "/s", Anchor: "middle"})
		}
		t += d
	}
}

// series draws ys against xs as a line, a missing value (NaN) breaking it;
// a point with no neighbour gets a dot, or it would not show.
func (pn *svgPanel) series(sx, sy scale, xs, ys []float64, color, dash string, width float64, name string, unit func(float64) string) {
	var pb pathBuilder
	for i := range xs {
		if math.IsNaN(ys[i]) {
			pb.gap()
			continue
		}
		x, y := r1(sx.at(xs[i])), r1(sy.at(ys[i]))
		pb.add(x, y)
		prev := i > 0 && !math.IsNaN(ys[i-1])
		next := i+1 < len(ys) && !math.IsNaN(ys[i+1])
		if !prev && !next {
			pn.Marks = append(pn.Marks, svgMark{X: x, Y: y, R: 3, Color: color,
				Title: fmt.Sprintf("%s at %s: %s", name, tickSeconds(xs[i]), unit(ys[i]))})
		}
	}
	if pb.points > 0 {
		pn.Lines = append(pn.Lines, svgLine{D: pb.String(), Color: color, Dash: dash, Width: width})
	}
}

func latencyPlot(r *Report, end float64) *svgPlot {
	lo, hi := math.Inf(1), 0.0
	for _, pt := range r.Series {
		if pt.Completed == 0 {
			continue
		}
		for _, v := range []float64{pt.P50, pt.P90, pt.P99, pt.Max} {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if hi == 0 {
		return nil
	}
	// A latency SLO of the whole run is drawn as a threshold line when it
	// is near the data; one far off would squash the curves into a corner.
	var slos []SLOResult
	var limits []float64
	for _, res := range r.SLO {
		slo, err := parseSLO(res.Expr)
		if err != nil || slo.Step != "" || slo.Metric == "errors" || slo.Metric == "rps" || slo.Value <= 0 {
			continue
		}
		if slo.Value >= lo/10 && slo.Value <= hi*10 {
			slos, limits = append(slos, res), append(limits, slo.Value)
			lo, hi = min(lo, slo.Value), max(hi, slo.Value)
		}
	}
	p := newPlot("latency-time", "Latency over time", "Percentiles of the requests that completed in each second, from their intended send time; log scale.", plotW, 250)
	pn := p.Panels[0]
	sx := p.timeScale(end)
	ticks, d0, d1 := logTicks(lo, hi)
	sy := scale{d0: d0, d1: d1, r0: pn.Bottom, r1: pn.Y, log: true}
	pn.yTicks(sy, ticks, tickMs, "latency")
	p.stages(r, sx)
	for i, res := range slos {
		y, c := r1(sy.at(limits[i])), colSLOMet
		if !res.Pass {
			c = colSLOMissed
		}
		pn.Rules = append(pn.Rules, svgRule{X1: pn.X, Y1: y, X2: pn.Right, Y2: y, Color: c, Dash: "6 3"})
		pn.Notes = append(pn.Notes, svgText{X: pn.Right - 4, Y: y - 4, Text: "SLO " + res.Expr, Anchor: "end"})
	}
	xs := make([]float64, len(r.Series))
	for i, pt := range r.Series {
		xs[i] = float64(pt.T) + 0.5
	}
	type line struct {
		name, color, dash string
		width             float64
		get               func(Point) float64
	}
	lines := []line{
		{"max", colMax, "", 1.25, func(p Point) float64 { return p.Max }},
		{"p99", colP99, "", 2.5, func(p Point) float64 { return p.P99 }},
		{"p90", colP90, "", 2, func(p Point) float64 { return p.P90 }},
		{"p50", colP50, "", 2.5, func(p Point) float64 { return p.P50 }},
	}
	var desc []string
	for _, l := range lines {
		ys := make([]float64, len(r.Series))
		lmin, lmax := math.Inf(1), 0.0
		for i, pt := range r.Series {
			ys[i] = math.NaN()
			if pt.Completed > 0 {
				ys[i] = l.get(pt)
				lmin, lmax = min(lmin, ys[i]), max(lmax, ys[i])
			}
		}
		pn.series(sx, sy, xs, ys, l.color, l.dash, l.width, l.name, fmtMs)
		desc = append(desc, fmt.Sprintf("%s from %s to %s", l.name, fmtMs(lmin), fmtMs(lmax)))
	}
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		p.Legend = append(p.Legend, legendItem{Name: l.name, Color: l.color, Dash: l.dash, Width: l.width})
	}
	p.Desc = "Per-second latency over " + fmtSeconds(end) + ": " + strings.Join(desc, ", ") + "."
	return p
}

func throughputPlot(r *Report, end float64) *svgPlot {
	if len(r.Series) == 0 {
		return nil
	}
	p := newPlot("throughput-time", "Throughput and errors over time", "Arrivals due and requests completed per second (any status); errors per second below, dropped arrivals included.", plotW, 170, 64)
	top, bottom := p.Panels[0], p.Panels[1]
	sx := p.timeScale(end)
	p.stages(r, sx)
	var hi float64
	var errHi int64
	xs := make([]float64, len(r.Series))
	offered := make([]float64, len(r.Series))
	done := make([]float64, len(r.Series))
	for i, pt := range r.Series {
		xs[i] = float64(pt.T) + 0.5
		offered[i], done[i] = float64(pt.Offered), float64(pt.Completed)
		hi = max(hi, offered[i], done[i])
		errHi = max(errHi, pt.Errors)
	}
	ticks, topV := linearTicks(hi, 4)
	sy := scale{d0: 0, d1: topV, r0: top.Bottom, r1: top.Y}
	top.yTicks(sy, ticks, tickCount, "requests/s")
	// Offered is a wide pale band under the completed line: where the
	// server keeps up the line runs inside the band, where it falls behind
	// the line leaves it, and neither hides the other.
	top.series(sx, sy, xs, offered, colOffered, "", 7, "offered", func(v float64) string { return tickCount(v) + "/s" })
	top.series(sx, sy, xs, done, colDone, "", 2.5, "completed", func(v float64) string { return tickCount(v) + "/s" })

	// Errors come in whole numbers: the axis never goes below 0, 1, 2.
	eticks, etop := linearTicks(float64(max(errHi, 2)), 2)
	ey := scale{d0: 0, d1: etop, r0: bottom.Bottom, r1: bottom.Y}
	bottom.yTicks(ey, eticks, tickCount, "errors/s")
	for _, pt := range r.Series {
		if pt.Errors == 0 {
			continue
		}
		x0, x1 := sx.at(float64(pt.T)), sx.at(float64(pt.T+1))
		y := ey.at(float64(pt.Errors))
		bottom.Bars = append(bottom.Bars, svgBar{X: r1(x0 + 1), Y: r1(y), W: r1(max(x1-x0-2, 1)), H: r1(bottom.Bottom - y),
			Color: colErrors, Title: fmt.Sprintf("%s errors in second %d", fmtInt(pt.Errors), pt.T)})
	}
	if errHi == 0 {
		bottom.Notes = append(bottom.Notes, svgText{X: r1(bottom.X + bottom.W/2), Y: r1(bottom.Y + bottom.H/2 + 4), Text: "no errors", Anchor: "middle"})
	}
	p.Legend = []legendItem{
		{Name: "offered (arrivals due)", Color: colOffered, Width: 7},
		{Name: "completed", Color: colDone, Width: 2.5},
		{Name: "errors", Color: colErrors, Bar: true},
	}
	s := r.Summary
	p.Desc = fmt.Sprintf("Over %s, %s requests per second completed on average for %s offered, at most %s in one second; %s errors, at most %d in one second.",
		fmtSeconds(end), fmtRate(s.ThroughputRPS), fmtRate(s.OfferedRPS), tickCount(hi), fmtInt(s.Errors), errHi)
	return p
}

// nines is the x position of a percentile on a distribution plot: the
// number of nines, so that 90, 99 and 99.9 are evenly spaced and the tail,
// where open-model measurements differ, gets most of the width.
func nines(p float64) float64 { return -math.Log10(1 - p/100) }

func distributionPlot(r *Report) *svgPlot {
	type curve struct {
		name, color string
		width       float64
		count       int64
		dist        []Quantile
	}
	var curves []curve
	var maxCount int64
	for i, st := range r.Steps {
		if st.Count == 0 || len(st.Distribution) == 0 {
			continue
		}
		curves = append(curves, curve{st.Name, stepColours[i%len(stepColours)], 2, st.Count, st.Distribution})
		maxCount = max(maxCount, st.Count)
	}
	if len(r.Summary.Distribution) > 0 {
		curves = append(curves, curve{"all steps", colAll, 3, r.Summary.Latency.Count, r.Summary.Distribution})
		maxCount = max(maxCount, r.Summary.Latency.Count)
	}
	if len(curves) == 0 {
		return nil
	}
	// Beyond 1/count the percentiles are all the maximum: the axis stops
	// at the last one the run can resolve.
	xmax := math.Min(5, math.Max(2, math.Ceil(math.Log10(float64(maxCount)))))
	lo, hi := math.Inf(1), 0.0
	for _, c := range curves {
		for _, q := range c.dist {
			if q.Percentile < 100 && nines(q.Percentile) <= xmax+1e-9 && q.Ms > 0 {
				lo, hi = min(lo, q.Ms), max(hi, q.Ms)
			}
		}
	}
	if hi == 0 {
		return nil
	}
	p := newPlot("latency-distribution", "Latency distribution by step", "Latency at each percentile, per journey step; both axes logarithmic, so the tail gets room. Hover a dot for its value.", wideW, 300)
	p.Wide = true
	pn := p.Panels[0]
	sx := scale{d0: 0, d1: xmax, r0: pn.X, r1: pn.Right}
	var xt []float64
	labels := map[float64]string{0: "0%", nines(50): "50%"}
	xt = append(xt, 0, nines(50))
	for k := 1.0; k <= xmax; k++ {
		xt = append(xt, k)
		labels[k] = strconv.FormatFloat(100-100*math.Pow(10, -k), 'f', -1, 64) + "%"
	}
	p.xTicks(sx, xt, func(v float64) string { return labels[v] }, "percentile")
	ticks, d0, d1 := logTicks(lo, hi)
	sy := scale{d0: d0, d1: d1, r0: pn.Bottom, r1: pn.Y, log: true}
	pn.yTicks(sy, ticks, tickMs, "latency")
	var desc []string
	for _, c := range curves {
		var pb pathBuilder
		var p99 float64
		for _, q := range c.dist {
			if q.Percentile == 99 {
				p99 = q.Ms
			}
			if q.Percentile >= 100 || nines(q.Percentile) > xmax+1e-9 || q.Ms <= 0 {
				continue
			}
			x, y := r1(sx.at(nines(q.Percentile))), r1(sy.at(q.Ms))
			pb.add(x, y)
			pn.Marks = append(pn.Marks, svgMark{X: x, Y: y, R: 2.25, Color: c.color,
				Title: fmt.Sprintf("%s p%s: %s", c.name, strconv.FormatFloat(q.Percentile, 'f', -1, 64), fmtMs(q.Ms))})
		}
		pn.Lines = append(pn.Lines, svgLine{D: pb.String(), Color: c.color, Width: c.width})
		p.Legend = append(p.Legend, legendItem{Name: fmt.Sprintf("%s (%s)", c.name, fmtInt(c.count)), Color: c.color, Width: c.width})
		desc = append(desc, fmt.Sprintf("%s p99 %s", c.name, fmtMs(p99)))
	}
	p.Desc = "Latency by percentile: " + strings.Join(desc, ", ") + "."
	return p
}

func serverTrafficPlot(r *Report, end float64) *svgPlot {
	sv := r.Server
	p := newPlot("server-traffic", "Server: requests and database queries", "What the server itself counted, from its /metrics scraped about once a second; database queries per request below.", plotW, 150, 84)
	top, bottom := p.Panels[0], p.Panels[1]
	sx := p.timeScale(end)
	p.stages(r, sx)
	xs := intervalMidpoints(sv.Series)
	reqs := make([]float64, len(sv.Series))
	qs := make([]float64, len(sv.Series))
	per := make([]float64, len(sv.Series))
	var hi, perHi float64
	for i, pt := range sv.Series {
		reqs[i], qs[i] = pt.RequestsPerS, pt.DBQueriesPerS
		hi = max(hi, reqs[i], qs[i])
		per[i] = math.NaN()
		if pt.RequestsPerS > 0 {
			per[i] = pt.DBQueriesPerS / pt.RequestsPerS
			perHi = max(perHi, per[i])
		}
	}
	ticks, topV := linearTicks(hi, 4)
	sy := scale{d0: 0, d1: topV, r0: top.Bottom, r1: top.Y}
	top.yTicks(sy, ticks, tickCount, "per second")
	rate := func(v float64) string { return tickCount(v) + "/s" }
	top.series(sx, sy, xs, reqs, colServer, "", 2.5, "requests", rate)
	top.series(sx, sy, xs, qs, colQueries, "", 2.5, "DB queries", rate)

	pticks, ptop := linearTicks(max(perHi, sv.DBQueriesPerRequest), 2)
	py := scale{d0: 0, d1: ptop, r0: bottom.Bottom, r1: bottom.Y}
	bottom.yTicks(py, pticks, tickCount, "queries/req")
	if sv.DBQueriesPerRequest > 0 {
		y := r1(py.at(sv.DBQueriesPerRequest))
		bottom.Rules = append(bottom.Rules, svgRule{X1: bottom.X, Y1: y, X2: bottom.Right, Y2: y, Color: colRef, Dash: dashRef})
	}
	bottom.series(sx, py, xs, per, colPerReq, "", 2.5, "queries per request", func(v float64) string { return fmt.Sprintf("%.2f", v) })
	p.Legend = []legendItem{
		{Name: "requests served/s", Color: colServer, Width: 2.5},
		{Name: "DB queries/s", Color: colQueries, Width: 2.5},
		{Name: "DB queries per request", Color: colPerReq, Width: 2.5},
		{Name: fmt.Sprintf("run average (%.2f)", sv.DBQueriesPerRequest), Color: colRef, Dash: dashRef, Width: 1.5},
	}
	p.Desc = fmt.Sprintf("The server served up to %s requests and ran up to %s database queries per second; %.2f queries per request over the run.",
		tickCount(slices.Max(reqs)), tickCount(slices.Max(qs)), sv.DBQueriesPerRequest)
	return p
}

func serverResourcePlot(r *Report, end float64) *svgPlot {
	sv := r.Server
	p := newPlot("server-resources", "Server: memory and CPU", "Resident set size, and CPU time per second of wall time (1 = one core busy).", plotW, 117, 117)
	top, bottom := p.Panels[0], p.Panels[1]
	sx := p.timeScale(end)
	p.stages(r, sx)
	// RSS is a gauge, read at the scrape; CPU a rate over the interval
	// before it.
	at, mid := make([]float64, len(sv.Series)), intervalMidpoints(sv.Series)
	rss := make([]float64, len(sv.Series))
	cpu := make([]float64, len(sv.Series))
	for i, pt := range sv.Series {
		at[i], rss[i], cpu[i] = pt.T, pt.RSSBytes/(1<<20), pt.CPUCores
	}
	ticks, topV := linearTicks(max(slices.Max(rss), sv.RSSPeakBytes/(1<<20)), 3)
	sy := scale{d0: 0, d1: topV, r0: top.Bottom, r1: top.Y}
	top.yTicks(sy, ticks, tickCount, "RSS, MiB")
	top.series(sx, sy, at, rss, colRSS, "", 2.5, "RSS", func(v float64) string { return fmt.Sprintf("%.1f MiB", v) })
	cticks, ctop := linearTicks(max(slices.Max(cpu), 0.1), 3)
	cy := scale{d0: 0, d1: ctop, r0: bottom.Bottom, r1: bottom.Y}
	bottom.yTicks(cy, cticks, tickCount, "CPU, cores")
	bottom.series(sx, cy, mid, cpu, colCPU, "", 2.5, "CPU", func(v float64) string { return fmt.Sprintf("%.2f cores", v) })
	p.Legend = []legendItem{
		{Name: "resident memory (MiB)", Color: colRSS, Width: 2.5},
		{Name: "CPU (cores)", Color: colCPU, Width: 2.5},
	}
	p.Desc = fmt.Sprintf("Resident memory peaked at %s; the server used %.2f CPU seconds in all, at most %.2f cores in one interval.",
		fmtMiB(sv.RSSPeakBytes), sv.CPUSeconds, slices.Max(cpu))
	return p
}

// intervalMidpoints places each server rate in the middle of the interval
// it was measured over (from the scrape before), as the generator's own
// per-second points are, so that both line up with the stage boundaries.
func intervalMidpoints(series []ServerPoint) []float64 {
	xs := make([]float64, len(series))
	prev := 0.0
	for i, pt := range series {
		xs[i], prev = (prev+pt.T)/2, pt.T
	}
	return xs
}

// r1 rounds a coordinate to a tenth of a pixel, which keeps the page small.
func r1(v float64) float64 { return math.Round(v*10) / 10 }
