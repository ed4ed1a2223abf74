package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hostileStep is a step name that would run as script if the page did not
// escape what comes from a report.
const hostileStep = `<script>alert("step")</script>`

// stepsWorkload sends each arrival to one of three endpoints of a real
// server, in turn: a fast one, a slow one and one that fails every fourth
// time, each its own step, so that the report has distinct latency curves
// and errors to show.
type stepsWorkload struct {
	client *http.Client
	base   string
	n      atomic.Int64
}

func (w *stepsWorkload) Do(ctx context.Context) Outcome {
	path, step := "/fast", "product"
	switch w.n.Add(1) % 3 {
	case 1:
		path, step = "/slow", "search"
	case 2:
		path, step = "/flaky", hostileStep
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.base+path, nil)
	if err != nil {
		return Outcome{Step: step, Err: err}
	}
	return Send(w.client, req, step)
}

func newStepsServer(t *testing.T) *httptest.Server {
	var flaky atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(3 * time.Millisecond)
		case "/flaky":
			if flaky.Add(1)%4 == 0 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestHTMLReport renders the report of a real run with errors and a missed
// SLO: the page is self-contained, escapes what comes from the report,
// draws the plots it has data for, and is the same page when rendered
// again from the JSON file.
func TestHTMLReport(t *testing.T) {
	t.Parallel()
	srv := newStepsServer(t)
	stages := []Stage{{Rate: 150, Duration: time.Second}, {Rate: 300, Duration: time.Second}}
	res, err := Run(context.Background(), Options{Stages: stages, Concurrency: 100, Timeout: 5 * time.Second},
		&stepsWorkload{client: NewHTTPClient(100), base: srv.URL})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	rep := res.Report(Meta{
		Target:  srv.URL + `/?q=<b>"x"</b>`,
		Command: `million load --target '<img src=x onerror=alert(1)>'`,
		Workload: map[string]any{"kind": "test", "mix": map[string]float64{"product": 1, "search": 1, hostileStep: 1}, "read_share": 1.0,
			"server_cpus": "0"},
		Generator: ThisGenerator("test"),
	})
	// The latency SLO sits at the run's fastest second, so it is near the
	// data (and drawn) however slow a busy test machine makes the server.
	fastest := math.Inf(1)
	for _, pt := range rep.Series {
		if pt.Completed > 0 && pt.P50 > 0 {
			fastest = min(fastest, pt.P50)
		}
	}
	latencySLO := fmt.Sprintf("p99<%dms", max(1, int(fastest)))
	if err := rep.CheckSLOs(mustSLOs(t, latencySLO+",errors<1%")); err == nil {
		t.Fatalf("errors<1%% met with a step failing one time in four")
	}
	dir := t.ArtifactDir()
	jsonPath, htmlPath := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")
	if err := rep.WriteJSON(jsonPath); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteHTML(htmlPath); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)

	// Nothing runs and nothing is fetched: no script, no stylesheet or
	// image from elsewhere.
	for _, banned := range []string{"<script", "<img", "<link", "<iframe", ` src="`, ` href="`, "url(", "@import"} {
		if strings.Contains(page, banned) {
			t.Errorf("the page contains %q", banned)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(&#34;step&#34;)&lt;/script&gt;", // the step name, as text
		"&lt;img src=x onerror=alert(1)&gt;",                 // the command
		"/?q=&lt;b&gt;&#34;x&#34;&lt;/b&gt;",                 // the target
		"503", "MISSED",                                      // the errors and the missed SLO
		"errors in second", // an error bar
		"SLO " + strings.ReplaceAll(latencySLO, "<", "&lt;"), // the threshold line on the latency plot
		"150/s", "300/s", // the stages
		"Not measured",                   // no --metrics
		"<dt>Server cpus</dt><dd>0</dd>", // what the page knows nothing of is shown as it comes
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Without server metrics: latency and throughput over time, and the
	// distribution, with a curve for every step and one for all of them.
	if n := strings.Count(page, `<svg class="plot"`); n != 3 {
		t.Fatalf("%d plots, want 3", n)
	}
	dist := page[strings.Index(page, `id="latency-distribution"`):]
	dist = dist[:strings.Index(dist, "</svg>")]
	if n := strings.Count(dist, "<path "); n != 4 {
		t.Fatalf("%d curves on the distribution plot, want 3 steps and the whole run", n)
	}

	again, err := ReadReport(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON bytes.Buffer
	if err := again.RenderHTML(&fromJSON); err != nil {
		t.Fatal(err)
	}
	if fromJSON.String() != page {
		t.Fatalf("the page rendered from the JSON file differs from the one rendered from the run")
	}
}

// TestHTMLReportOfNothing renders a run in which nothing completed: the
// page says so instead of drawing empty plots.
func TestHTMLReportOfNothing(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	rep := &Report{Meta: Meta{Target: "http://127.0.0.1:1", Stages: []Stage{{Rate: 10, Duration: time.Second}}, Interrupted: true}}
	if err := rep.RenderHTML(&b); err != nil {
		t.Fatalf("render: %v", err)
	}
	if !strings.Contains(b.String(), "Nothing completed") || strings.Contains(b.String(), `<svg class="plot"`) ||
		!strings.Contains(b.String(), "interrupted") {
		t.Fatalf("page of an empty run:\n%s", b.String())
	}
}

func TestPlotTicks(t *testing.T) {
	t.Parallel()
	near := func(a, b []float64) bool {
		return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Abs(x-y) < 1e-9*max(1, math.Abs(y)) })
	}
	for _, tc := range []struct {
		hi   float64
		n    int
		want []float64
		top  float64
	}{
		{1234, 4, []float64{0, 500, 1000, 1500}, 1500},
		{200, 4, []float64{0, 50, 100, 150, 200}, 200},
		{0.9, 4, []float64{0, 0.5, 1}, 1},
		{0, 4, []float64{0, 0.5, 1}, 1},
	} {
		got, top := linearTicks(tc.hi, tc.n)
		if !near(got, tc.want) || top != tc.top {
			t.Errorf("linearTicks(%g, %d) = %v, %g; want %v, %g", tc.hi, tc.n, got, top, tc.want, tc.top)
		}
	}
	for _, tc := range []struct {
		lo, hi float64
		want   []float64
	}{
		{0.3, 45, []float64{0.1, 1, 10, 100}},
		{0.4, 0.9, []float64{0.1, 0.2, 0.5, 1}},
		{1, 1, []float64{1, 2, 5, 10}},
	} {
		if got, _, _ := logTicks(tc.lo, tc.hi); !near(got, tc.want) {
			t.Errorf("logTicks(%g, %g) = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
	if got := timeTicks(13, 8); !near(got, []float64{0, 2, 4, 6, 8, 10, 12}) {
		t.Errorf("timeTicks(13, 8) = %v", got)
	}
	if got := timeTicks(600, 8); !near(got, []float64{0, 120, 240, 360, 480, 600}) {
		t.Errorf("timeTicks(600, 8) = %v", got)
	}
	for v, want := range map[float64]string{0.5: "500µs", 2: "2ms", 0.3: "300µs", 1500: "1.5s", 20000: "20s"} {
		if got := tickMs(v); got != want {
			t.Errorf("tickMs(%g) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0", 90: "1m30s", 0.5: "500ms"} {
		if got := tickSeconds(v); got != want {
			t.Errorf("tickSeconds(%g) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{800: "800", 1500: "1.5k", 12000: "12k", 2e6: "2M", 0.25: "0.25"} {
		if got := tickCount(v); got != want {
			t.Errorf("tickCount(%g) = %q, want %q", v, got, want)
		}
	}
}
