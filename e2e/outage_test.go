package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/app"
	"github.com/millionshop/million/pgtest"
)

const (
	// outageBound is the longest any request may take, outage or not: the
	// pool's connect timeout is 2 s, so a request that waits longer is
	// hanging on a dead database instead of failing fast.
	outageBound = 3 * time.Second
	// outageRecovery is how soon after PostgreSQL accepts connections again
	// every request must succeed: the pool has to drop its dead connections
	// and dial new ones by itself, without restarting million.
	outageRecovery = 2 * time.Second
	outageWorkers  = 6
	outageStock    = 1_000_000 // never runs out, so every refusal is the outage's
)

// outageCall is one request of the load and how it ended.
type outageCall struct {
	op          string
	worker      int
	begin, end  time.Time
	status      int
	contentType string
	retryAfter  string
	body        []byte
	err         error // transport failure: reset, refused, client timeout
}

func (c outageCall) String() string {
	if c.err != nil {
		return fmt.Sprintf("%s (worker %d) after %s: %v", c.op, c.worker, c.end.Sub(c.begin).Round(time.Millisecond), c.err)
	}
	return fmt.Sprintf("%s (worker %d) after %s: %d %s", c.op, c.worker, c.end.Sub(c.begin).Round(time.Millisecond), c.status, bytes.TrimSpace(c.body))
}

// outageOK is the status a call answers when the database is up.
var outageOK = map[string]int{
	"list products": http.StatusOK, "get product": http.StatusOK, "me": http.StatusOK,
	"cart": http.StatusOK, "put cart item": http.StatusOK, "checkout": http.StatusCreated, "readyz": http.StatusOK,
}

// outageUnavailable explains why c is not the 503 an outage must answer
// (problem+json with Retry-After), or returns "".
func outageUnavailable(c outageCall) string {
	if c.err != nil || c.status != http.StatusServiceUnavailable {
		return "want 503"
	}
	if !strings.HasPrefix(c.contentType, "application/problem+json") {
		return "Content-Type " + c.contentType + ", want application/problem+json"
	}
	if n, err := strconv.Atoi(c.retryAfter); err != nil || n < 1 {
		return fmt.Sprintf("Retry-After %q, want a number of seconds", c.retryAfter)
	}
	var p struct {
		Status int               `json:"status"`
		Code   string            `json:"code"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(c.body, &p); err != nil || p.Status != 503 || p.Code != "unavailable" {
		return "want a problem with status 503 and code unavailable"
	}
	if c.op == "readyz" && p.Checks["database"] != "unreachable" {
		return "want checks.database unreachable"
	}
	return ""
}

// outageLoad is the traffic of the test and what it saw.
type outageLoad struct {
	base     string
	http     *http.Client
	products []Product
	tokens   []string // one shopper per worker

	mu     sync.Mutex
	calls  []outageCall
	orders map[string]int // order ID answered 201 → worker
}

func (l *outageLoad) do(worker int, op, method, path, token string, body any, headers ...string) outageCall {
	c := outageCall{op: op, worker: worker, begin: time.Now()}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, l.base+path, rd)
	if err == nil {
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		var resp *http.Response
		if resp, err = l.http.Do(req); err == nil {
			c.status, c.contentType, c.retryAfter = resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After")
			c.body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
	}
	c.err, c.end = err, time.Now()
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
	return c
}

// run sends requests from one worker until ctx ends, cycling through a
// shopper's journey; workers start at different steps, so every kind of
// request is in flight when the database goes away.
func (l *outageLoad) run(ctx context.Context, worker int) {
	token := l.tokens[worker]
	for i := worker; ctx.Err() == nil; i++ {
		p := l.products[i%len(l.products)]
		switch i % 5 {
		case 0:
			l.do(worker, "list products", "GET", "/v1/products?limit=10", "", nil)
		case 1:
			l.do(worker, "get product", "GET", "/v1/products/"+p.ID, "", nil)
		case 2:
			l.do(worker, "me", "GET", "/v1/me", token, nil)
		case 3:
			l.do(worker, "cart", "GET", "/v1/cart", token, nil)
		case 4:
			if c := l.do(worker, "put cart item", "PUT", "/v1/cart/items/"+p.ID, token, map[string]int{"quantity": 1}); c.status != http.StatusOK {
				break
			}
			c := l.do(worker, "checkout", "POST", "/v1/checkout", token, checkoutBody("tok_visa"), "Idempotency-Key", uuid.NewString())
			if c.status == http.StatusCreated {
				var o checkoutOrder
				if json.Unmarshal(c.body, &o) == nil && o.ID != "" {
					l.mu.Lock()
					l.orders[o.ID] = worker
					l.mu.Unlock()
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond): // a steady load, not a flood
		}
	}
}

// pollReady asks /readyz every 100 ms until ctx ends.
func (l *outageLoad) pollReady(ctx context.Context) {
	for ctx.Err() == nil {
		l.do(-1, "readyz", "GET", "/readyz", "", nil)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestOutageDatabaseRestartUnderLoad stops PostgreSQL under a steady load of
// reads, authenticated reads, cart writes and checkouts, and starts it again.
// It proves the failure behaviour of issue 3: no request hangs (each answers
// within outageBound, none is reset), every request while the database is
// down answers 503 problem+json with Retry-After, /readyz reports the
// database unreachable during the outage and ready after it, million
// recovers by itself within outageRecovery of the database's return and
// stays healthy, no pool connection stays checked out or in a transaction,
// and the outage loses no order and leaks no stock.
//
// Not parallel: its bounds are about latency, which the rest of the suite
// running alongside under -race would blur.
func TestOutageDatabaseRestartUnderLoad(t *testing.T) {
	pg := pgtest.NewDedicated(t)
	s := Start(t, func(c *app.Config) {
		c.DatabaseURL = pg.NewDatabase(t, "") // empty: app.Open migrates it
		// This test is about the database path: every read must reach the
		// database and fail fast while it is down. With the cache on,
		// cached public reads keep succeeding during the outage instead
		// (the degradation stage 4 wants); that is not what it measures.
		c.Cache.Disabled = true
	})
	tg := targetFor(t, s)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	load := &outageLoad{base: tg.BaseURL, http: &http.Client{Timeout: 10 * time.Second}, orders: map[string]int{}}
	for i := range 3 {
		load.products = append(load.products, admin.NewProduct(t, cat, fmt.Sprintf("Outage Lamp %d", i), 1000+int64(i), outageStock))
	}
	shoppers := make([]*Session, outageWorkers)
	for i := range shoppers {
		shoppers[i] = tg.Register(t)
		load.tokens = append(load.tokens, shoppers[i].Token)
	}

	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopLoad(); wg.Wait() }() // also when a Fatal ends the test early
	for w := range outageWorkers {
		wg.Go(func() { load.run(ctx, w) })
	}
	wg.Go(func() { load.pollReady(ctx) })

	time.Sleep(1500 * time.Millisecond)
	stopping := time.Now()
	pg.Stop(t)
	stopped := time.Now()
	time.Sleep(2 * time.Second)
	starting := time.Now()
	pg.Start(t)
	started := time.Now()
	time.Sleep(3 * time.Second)
	stopLoad()
	wg.Wait()
	t.Logf("stop took %s, start took %s, %d requests, %d orders placed",
		stopped.Sub(stopping).Round(time.Millisecond), started.Sub(starting).Round(time.Millisecond), len(load.calls), len(load.orders))

	// Every request, whatever the phase: answered (no reset, no client
	// timeout) within the bound, and either its success or the outage's 503.
	var problems []string
	report := func(c outageCall, why string) { problems = append(problems, fmt.Sprintf("%s — %s", c, why)) }
	seen := map[string]map[string]int{} // phase → op → count
	count := func(phase, op string) {
		if seen[phase] == nil {
			seen[phase] = map[string]int{}
		}
		seen[phase][op]++
	}
	var lastFailure, firstSuccess time.Time // after the database returned
	var slowest time.Duration
	for _, c := range load.calls {
		ok := c.err == nil && c.status == outageOK[c.op]
		took := c.end.Sub(c.begin)
		slowest = max(slowest, took)
		if took > outageBound {
			report(c, fmt.Sprintf("took %s, want under %s", took.Round(time.Millisecond), outageBound))
		}
		if !ok {
			if why := outageUnavailable(c); why != "" {
				report(c, why)
			}
		}
		if !c.begin.Before(started) {
			if !ok && c.end.After(lastFailure) {
				lastFailure = c.end
			}
			if ok && (firstSuccess.IsZero() || c.end.Before(firstSuccess)) {
				firstSuccess = c.end
			}
		}
		switch {
		case c.end.Before(stopping):
			count("before", c.op)
			if !ok {
				report(c, "failed before the database was stopped")
			}
		case c.begin.After(stopped) && c.end.Before(starting):
			count("outage", c.op)
			if ok {
				report(c, "succeeded while the database was down")
			}
		case c.begin.After(started.Add(outageRecovery)):
			count("after", c.op)
			if !ok {
				report(c, fmt.Sprintf("failed more than %s after the database returned", outageRecovery))
			}
		}
	}
	for i, p := range problems {
		if i == 20 {
			t.Errorf("... and %d more", len(problems)-i)
			break
		}
		t.Error(p)
	}
	// The phases must really have been exercised, or the test proves nothing.
	for _, phase := range []string{"before", "outage", "after"} {
		for op := range outageOK {
			if op == "checkout" && phase == "outage" {
				continue // a checkout only follows a successful cart write
			}
			if seen[phase][op] == 0 {
				t.Errorf("no %q request %s the outage; seen %v", op, phase, seen[phase])
			}
		}
	}
	t.Logf("slowest request %s; requests by phase: %v", slowest.Round(time.Millisecond), seen)
	if firstSuccess.IsZero() {
		t.Fatal("no request succeeded after the database returned")
	}
	t.Logf("after the database returned: first success in %s, last failure in %s",
		firstSuccess.Sub(started).Round(time.Millisecond), max(lastFailure.Sub(started), 0).Round(time.Millisecond))

	// No stuck connections: idle again, nothing stays checked out of the
	// pool, nothing is left inside a transaction on the server.
	outageIdlePool(t, s)

	// Every 201 is a real order, and stock moved by exactly the orders'
	// quantities: a checkout cut short by the outage left no half-done
	// reservation, and a placed order stayed placed.
	c := tg.Client()
	reserved := map[string]int64{}
	for w, sh := range shoppers {
		for _, o := range checkoutOrders(t, sh) {
			if o.Status == "cancelled" {
				continue
			}
			for _, it := range o.Items {
				reserved[it.ProductID] += it.Quantity
			}
			if load.orders[o.ID] == w {
				delete(load.orders, o.ID)
			}
		}
	}
	for id := range load.orders {
		t.Errorf("order %s was answered 201 but its shopper does not have it", id)
	}
	for _, p := range load.products {
		if got, want := checkoutStock(t, c, p.ID), outageStock-reserved[p.ID]; got != want {
			t.Errorf("stock of %s = %d, want %d (%d in orders)", p.Name, got, want, reserved[p.ID])
		}
	}
}

// outageIdlePool waits (up to 5 s, the outbox relay may hold a connection
// for a moment) for the pool to have no connection in use, as the metrics
// and the pool itself report, and checks no backend of million's database is
// idle in a transaction.
func outageIdlePool(t *testing.T, s *Server) {
	t.Helper()
	var inUse, sqlInUse int
	var metric string
	deadline := time.Now().Add(5 * time.Second)
	for {
		inUse, sqlInUse = int(s.App.DB.PoolStats().AcquiredConns()), s.App.DB.Write.Stats().InUse
		metric = outageMetric(t, s, "million_db_pool_in_use_connections")
		if (inUse == 0 && sqlInUse == 0 && metric == "0") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if inUse != 0 || sqlInUse != 0 || metric != "0" {
		t.Errorf("5 s after the load stopped: pgx pool %d in use, database/sql %d in use, million_db_pool_in_use_connections %s; want 0",
			inUse, sqlInUse, metric)
	}
	if st := s.App.DB.PoolStats(); st.TotalConns() > st.MaxConns() {
		t.Errorf("pool holds %d connections, over its limit of %d", st.TotalConns(), st.MaxConns())
	}
	// A background worker (the outbox relay publishing a claimed batch)
	// is idle in its transaction for a moment at a time; a leaked
	// transaction stays so.
	var stuck int
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	deadline = time.Now().Add(5 * time.Second)
	for {
		if err := s.App.DB.Write.QueryRowContext(ctx, `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&stuck); err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		if stuck == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if stuck != 0 {
		t.Errorf("%d connections of million's database are idle in a transaction for 5 s", stuck)
	}
}

// outageMetric returns the value of an unlabelled metric from the admin
// listener, "" when absent.
func outageMetric(t *testing.T, s *Server, name string) string {
	t.Helper()
	for line := range strings.Lines(get(t, "http://"+s.AdminAddr()+"/metrics")) {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}
