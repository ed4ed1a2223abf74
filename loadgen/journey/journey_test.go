package journey

import (
	"context"
	"encoding/json"
	"github.com/millionshop/million/e2e"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/loadgen"
	"github.com/millionshop/million/user"
)

// TestMain makes the seeded users' password hash cheap. Seeding hashes
// the shared password with user.DefaultPasswordParams (19 MiB, two passes:
// 25 ms a login, several times that under the race detector), and the
// journeys log dozens of virtual users in within seconds; at production
// strength the test would measure argon2id on a shared 2-core machine
// instead of the journeys. The server verifies whatever parameters the
// stored hash names, so nothing else changes.
func TestMain(m *testing.M) {
	user.DefaultPasswordParams = user.PasswordParams{MemoryKiB: 1024, Iterations: 1, Parallelism: 1}
	os.Exit(m.Run())
}

// shop is a real million, started in-process on loopback ports with a
// fresh embedded database, filled by package seed.
type shop struct {
	URL        string // public API
	MetricsURL string // admin /metrics
}

// startShop starts a real million in-process with seeded users and products.
func startShop(t *testing.T, users, products int) shop {
	t.Helper()
	s := e2e.StartSeeded(t, users, products)
	return shop{URL: s.BaseURL, MetricsURL: s.MetricsURL()}
}

// TestJourneysAgainstMillion runs the default mix against a real million
// for 3 s: every step of the mix is exercised, a correct server answers all
// of them with success, product pages get revalidated, and the server's
// own metrics show its database queries per request. The rate is modest
// and the timeout long because the server runs under the race detector on
// a shared 2-core machine, alongside other packages' tests; a steeper
// product popularity than the default makes shoppers revisit pages even in
// so short a run.
func TestJourneysAgainstMillion(t *testing.T) {
	t.Parallel()
	srv := startShop(t, 300, 400)
	client := newClient(t, 200)
	ctx := context.Background()
	s, err := New(ctx, Config{Target: srv.URL, Users: 300, VirtualUsers: 100, ProductSkew: 1.5, Client: client})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if d := s.Describe(); d.Categories != 20 || d.Products != 400 || d.ReadShare != 0.95 {
		t.Fatalf("description %+v; want 20 categories, 400 products and 95%% reads", d)
	}
	rep, err := loadgen.Execute(ctx, loadgen.Plan{
		Target: srv.URL, Stages: []loadgen.Stage{{Rate: 250, Duration: 3 * time.Second}}, Concurrency: 200,
		Timeout: 20 * time.Second, MetricsURL: srv.MetricsURL, Steps: s.Steps(), Workload: s.Describe(),
		SLOs: mustSLOs(t, "errors<=0"),
	}, s)
	if err != nil {
		t.Fatalf("execute: %v\n%s", err, text(t, rep))
	}
	t.Logf("report:\n%s", text(t, rep))
	sum := rep.Summary
	if sum.Scheduled != 750 || sum.Completed != 750 || sum.OK != 750 || sum.Errors != 0 {
		t.Fatalf("scheduled %d, completed %d, ok %d, errors %d (%v); want 750 successes\n%s",
			sum.Scheduled, sum.Completed, sum.OK, sum.Errors, rep.Errors, text(t, rep))
	}
	for step := range DefaultMix() {
		// A checkout needs an idle virtual user holding a cart: on a
		// machine slow enough that carts are still being filled when the
		// 3 s end, the mix may draw none. checkoutPhase below proves the
		// step in any case.
		if st := rep.Step(step); step != StepCheckout && (st == nil || st.Count == 0) {
			t.Errorf("step %s never ran\n%s", step, text(t, rep))
		}
	}
	if st := rep.Step(StepProduct); st.Statuses["304"] == 0 {
		t.Errorf("no product page was revalidated with If-None-Match: %v", st.Statuses)
	}
	if st := rep.Step(StepCheckout); st != nil && st.Statuses["201"] != st.Count {
		t.Errorf("checkouts %v; want every one 201", st.Statuses)
	}
	checkoutPhase(t, srv, client)

	sv := rep.Server
	if sv == nil || sv.Error != "" {
		t.Fatalf("no server figures: %+v", sv)
	}
	// The server counts what it served during the run: the 750 requests
	// (a few may be counted after the final scrape on a very busy machine),
	// and nothing of the discovery before it.
	if sv.Requests < 740 || sv.Requests > 750 || sv.DBQueries <= 0 || sv.DBQueriesPerRequest <= 0 || sv.RSSPeakBytes <= 0 {
		t.Fatalf("server: %.0f requests, %.0f queries, %.2f per request, RSS %.0f; want 750 requests and queries per request > 0",
			sv.Requests, sv.DBQueries, sv.DBQueriesPerRequest, sv.RSSPeakBytes)
	}

	// The JSON report reads back with everything in it.
	path := filepath.Join(t.TempDir(), "report.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Meta struct {
			Workload Description `json:"workload"`
			Stages   []loadgen.Stage
		} `json:"meta"`
		Summary loadgen.Summary        `json:"summary"`
		Steps   []loadgen.StepReport   `json:"steps"`
		Series  []loadgen.Point        `json:"series"`
		Server  loadgen.ServerReport   `json:"server"`
		SLO     []loadgen.SLOResult    `json:"slo"`
		Errors  map[string]interface{} `json:"errors"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	if back.Summary.OK != 750 || len(back.Steps) != len(rep.Steps) || len(back.Series) < 2 ||
		back.Server.DBQueriesPerRequest != sv.DBQueriesPerRequest || back.Meta.Workload.Mix[StepProduct] != 45 ||
		len(back.Meta.Stages) != 1 || back.Meta.Stages[0].Duration != 3*time.Second ||
		len(back.SLO) != 1 || !back.SLO[0].Pass || !strings.Contains(string(b), `"expr": "errors<=0"`) {
		t.Fatalf("report JSON lacks parts of the run:\n%s", b)
	}
}

// checkoutPhase runs a mix of checkouts alone against srv: virtual users
// log in, fill a cart and check out, each of them at its own pace, so that
// checkouts happen however slow the machine; every one must succeed. More
// virtual users than requests in flight: a draw always finds an idle one.
func checkoutPhase(t *testing.T, srv shop, client *http.Client) {
	t.Helper()
	ctx := context.Background()
	s, err := New(ctx, Config{Target: srv.URL, Users: 300, VirtualUsers: 40, Mix: Mix{StepCheckout: 1}, Client: client})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	var checkouts *loadgen.StepReport
	for round := 0; round < 5 && (checkouts == nil || checkouts.Count == 0); round++ {
		rep, err := loadgen.Execute(ctx, loadgen.Plan{
			Target: srv.URL, Stages: []loadgen.Stage{{Rate: 20, Duration: 2 * time.Second}}, Concurrency: 20,
			Timeout: 20 * time.Second, Steps: s.Steps(), Workload: s.Describe(),
		}, s)
		if err != nil {
			t.Fatalf("checkouts: %v\n%s", err, text(t, rep))
		}
		if rep.Summary.Errors != 0 {
			t.Fatalf("checkout phase: %d errors (%v)\n%s", rep.Summary.Errors, rep.Errors, text(t, rep))
		}
		checkouts = rep.Step(StepCheckout)
		if checkouts != nil && checkouts.Statuses["201"] != checkouts.Count {
			t.Fatalf("checkouts %v; want every one 201", checkouts.Statuses)
		}
	}
	if checkouts == nil || checkouts.Count == 0 {
		t.Fatal("no checkout ran in 5 rounds of a checkout-only mix")
	}
}

// TestNewChecksThePopulation fails at once, and says what to do, when the
// population is larger than what was seeded.
func TestNewChecksThePopulation(t *testing.T) {
	t.Parallel()
	srv := startShop(t, 20, 30)
	client := newClient(t, 10)
	_, err := New(context.Background(), Config{Target: srv.URL, Users: 50, Client: client})
	if err == nil || !strings.Contains(err.Error(), "user50@seed.million.test") || !strings.Contains(err.Error(), "million seed --users 50") {
		t.Fatalf("New with 50 users of 20 seeded: %v", err)
	}
	// A read-only mix logs nobody in, so needs no seeded users.
	s, err := New(context.Background(), Config{Target: srv.URL, Users: 50, Mix: Mix{StepProduct: 1}, Client: client})
	if err != nil {
		t.Fatalf("read-only mix: %v", err)
	}
	if got := s.Steps(); len(got) != 1 || got[0] != StepProduct {
		t.Fatalf("steps %v, want only product", got)
	}
	if _, err := New(context.Background(), Config{Target: "http://127.0.0.1:1"}); err == nil {
		t.Fatal("New against a closed port succeeded")
	}
}

func TestParseMix(t *testing.T) {
	t.Parallel()
	m, err := ParseMix("product=80, list=15,checkout=5")
	if err != nil {
		t.Fatal(err)
	}
	if m.ReadShare() != 0.95 || m.String() != "product=80,list=15,checkout=5" {
		t.Fatalf("mix %v: read share %v, string %q", m, m.ReadShare(), m.String())
	}
	if d := DefaultMix(); d.ReadShare() != 0.95 {
		t.Fatalf("default mix reads %.3f, want 0.95", d.ReadShare())
	}
	for _, bad := range []string{"", "product", "browse=1", "product=-1", "product=0"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted it", bad)
		}
	}
}

// newClient returns the load client, whose spare connections are closed
// before the server stops: net/http's Shutdown waits up to 5 s for a
// connection on which no request ever came, which a pooled client leaves
// behind when a request it dialled for was served by another connection.
func newClient(t *testing.T, concurrency int) *http.Client {
	c := loadgen.NewHTTPClient(concurrency)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func mustSLOs(t *testing.T, s string) []loadgen.SLO {
	t.Helper()
	slos, err := loadgen.ParseSLOs(s)
	if err != nil {
		t.Fatal(err)
	}
	return slos
}

// text renders a report for a failure message.
func text(t *testing.T, rep *loadgen.Report) string {
	t.Helper()
	if rep == nil {
		return "(no report)"
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestStepsFollowTheMix: the steps of any stretch of 2,000 draws, at the
// start of a run or deep into it, match the mix's weights within two draws
// each (independent draws would put the default mix's 1.5 % of checkouts
// anywhere from about 20 to 40).
func TestStepsFollowTheMix(t *testing.T) {
	t.Parallel()
	mix := DefaultMix()
	s := &Shop{}
	for _, step := range mix.steps() {
		s.steps = append(s.steps, step)
		s.cum = append(s.cum, s.total()+mix[step])
	}
	const stretch = 2000
	for _, from := range []uint64{1, 12_345, 1 << 40} {
		counts := map[string]int{}
		for n := from; n < from+stretch; n++ {
			counts[s.steps[s.stepAt(n)]]++
		}
		for _, step := range s.steps {
			want := stretch * mix[step] / mix.total()
			if got := float64(counts[step]); math.Abs(got-want) > 2 {
				t.Errorf("draws %d to %d: %d %s steps, want %.1f ± 2", from, from+stretch-1, counts[step], step, want)
			}
		}
	}
}
