package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/app"
)

// TestOperationsEndpoints checks health, readiness, the OpenAPI document, and
// that metrics and pprof exist only on the admin listener.
func TestOperationsEndpoints(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	c := tg.Client()
	if got := c.Expect(t, http.StatusOK, "GET", "/healthz", nil).JSON(t)["status"]; got != "ok" {
		t.Errorf("healthz status = %v, want ok", got)
	}
	if got := c.Expect(t, http.StatusOK, "GET", "/readyz", nil).JSON(t)["status"]; got != "ready" {
		t.Errorf("readyz status = %v, want ready", got)
	}
	spec := c.Expect(t, http.StatusOK, "GET", "/openapi.yaml", nil)
	if !strings.HasPrefix(string(spec.Body), "openapi: 3.1") {
		t.Errorf("openapi.yaml does not start with 'openapi: 3.1': %.40q", spec.Body)
	}
	c.Expect(t, http.StatusNotFound, "GET", "/metrics", nil)
	c.Expect(t, http.StatusNotFound, "GET", "/debug/pprof/", nil)

	if tg.Server == nil {
		return // an external target's admin listener is not ours to reach
	}
	// Traffic first, so the request metrics have something to count.
	c.Expect(t, http.StatusOK, "GET", "/v1/categories", nil)
	c.Expect(t, http.StatusNotFound, "GET", "/v1/products/nope", nil)
	admin := "http://" + tg.Server.AdminAddr()
	metrics := get(t, admin+"/metrics")
	for _, want := range []string{
		`million_http_requests_total{code="200",method="GET",route="/v1/categories"}`,
		`million_http_requests_total{code="404",method="GET",route="/v1/products/{id}"}`,
		`million_http_request_duration_seconds_bucket{method="GET",route="/v1/categories"`,
		`million_outbox_pending`,
		`million_db_queries_total{outcome="ok",statement="SELECT categories"}`,
		`million_db_query_duration_seconds_bucket{statement="SELECT categories"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("admin /metrics lacks %s", want)
		}
	}
	pools := []string{`go_sql_open_connections{db_name="write"}`, `go_sql_open_connections{db_name="read"}`}
	if Backend() == "postgres" {
		pools = []string{`go_sql_open_connections{db_name="primary"}`, "million_db_pool_in_use_connections",
			"million_db_pool_idle_connections", "million_db_pool_waited_acquires_total", "million_db_pool_acquire_wait_seconds_total"}
	}
	for _, want := range pools {
		if !strings.Contains(metrics, want) {
			t.Errorf("admin /metrics lacks pool metric %s", want)
		}
	}
	if !strings.Contains(get(t, admin+"/debug/pprof/"), "goroutine") {
		t.Error("admin /debug/pprof/ does not list profiles")
	}
	if !strings.Contains(get(t, admin+"/readyz"), "ready") {
		t.Error("admin /readyz is not ready")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// TestGracefulShutdownFinishesInFlight stops the server while checkouts are
// in flight (the payment provider takes 1 s): every one of them completes
// with 201, and the server then refuses new connections.
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	s := Start(t, func(c *app.Config) { c.PaymentLatency = time.Second })
	tg := targetFor(t, s)
	admin := tg.Admin(t)
	p := admin.NewProduct(t, admin.NewCategory(t), "Slow Paid Lamp", 1500, 100)

	const n = 5
	shoppers := make([]*Session, n)
	for i := range shoppers {
		shoppers[i] = tg.Register(t)
		shoppers[i].Expect(t, http.StatusOK, "PUT", "/v1/cart/items/"+p.ID, map[string]int{"quantity": 1})
	}
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i, sh := range shoppers {
		wg.Go(func() {
			r := sh.Do(t, "POST", "/v1/checkout", map[string]any{"payment": map[string]string{"method": "card", "token": "tok_ok"}},
				"Idempotency-Key", "shutdown")
			statuses[i] = r.Status
		})
	}
	// Stop only once every checkout is inside the server, waiting on the provider.
	deadline := time.Now().Add(10 * time.Second)
	for s.App.InFlight() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.App.InFlight(); got < n {
		t.Fatalf("only %d of %d checkouts reached the server", got, n)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusCreated {
			t.Errorf("in-flight checkout %d got %d, want 201", i, st)
		}
	}
	if _, err := http.Get(s.BaseURL + "/healthz"); err == nil {
		t.Error("the stopped server still accepts connections")
	}
}
