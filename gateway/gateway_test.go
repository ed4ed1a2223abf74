package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/gateway"
	"github.com/millionshop/million/obs"
	"github.com/millionshop/million/ratelimit"
)

// upstream is a real HTTP backend whose answers a test can switch.
type upstream struct {
	*httptest.Server
	name   string
	hits   atomic.Int64 // non-health requests
	status atomic.Int64 // status of non-health requests
	ready  atomic.Int64 // status of /readyz
	delay  atomic.Int64 // nanoseconds to wait before answering

	mu      sync.Mutex
	headers []http.Header
	bodies  [][]byte
}

func newUpstream(t testing.TB, name string) *upstream {
	t.Helper()
	u := &upstream{name: name}
	u.status.Store(200)
	u.ready.Store(200)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(int(u.ready.Load()))
			return
		}
		u.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.headers = append(u.headers, r.Header.Clone())
		u.bodies = append(u.bodies, body)
		u.mu.Unlock()
		if d := time.Duration(u.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
		}
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Body-Sha256", sha(body))
		w.WriteHeader(int(u.status.Load()))
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(u.Close)
	return u
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// refusedURL is an address nothing listens on: connections are refused.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// resetter reads each request completely and then drops the connection
// without answering: the request was delivered, its outcome is unknown.
func resetter(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		hits.Add(1)
		_, _ = io.ReadAll(r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(s.Close)
	return s.URL, &hits
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	gw  *gateway.Gateway
	srv *served
	reg *obs.Metrics
	// client is the fixture's own: http.DefaultClient's idle connections
	// close whenever any parallel test closes an httptest.Server, and a
	// new connection may land on another event loop, with its own pool of
	// backend connections, which tests counting those would see.
	client *http.Client
}

// served is a gateway's public server, listening on loopback.
type served struct{ URL string }

// serveGateway serves gw's public server until the test ends.
func serveGateway(t testing.TB, gw *gateway.Gateway) *served {
	t.Helper()
	return &served{URL: "http://" + gateway.ServeForTest(t, gw).Addr().String()}
}

func setup(t testing.TB, opts gateway.Options, backends ...string) *fixture {
	t.Helper()
	m := obs.NewMetrics()
	opts.Backends = append(opts.Backends, backends...)
	opts.Registry = m.Registry
	if opts.EjectAfter == 0 {
		opts.EjectAfter = 1000 // tests of other mechanics must not eject by accident
	}
	gw, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &fixture{gw: gw, srv: serveGateway(t, gw), reg: m, client: &http.Client{Transport: tr}}
}

type result struct {
	status  int
	backend string
	body    string
	header  http.Header
}

func (f *fixture) do(t *testing.T, method, path string, body []byte, hdr ...string) result {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, backend: resp.Header.Get("X-Backend"), body: string(b), header: resp.Header}
}

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	t.Parallel()
	a, b, c := newUpstream(t, "a"), newUpstream(t, "b"), newUpstream(t, "c")
	f := setup(t, gateway.Options{Strategy: gateway.RoundRobin}, a.URL, b.URL, c.URL)
	for range 30 {
		if r := f.do(t, "GET", "/v1/products", nil); r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
	}
	for _, u := range []*upstream{a, b, c} {
		if got := u.hits.Load(); got != 10 {
			t.Errorf("backend %s got %d of 30 requests, want 10", u.name, got)
		}
	}
}

// With two backends, p2c compares both every time, so requests issued one
// after another never join a backend that is still busy while the other
// is idle.
func TestP2CAvoidsTheBusyBackend(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var slowHits atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		slowHits.Add(1)
		<-release
	}))
	t.Cleanup(slow.Close)
	defer close(release)
	fast := newUpstream(t, "fast")
	f := setup(t, gateway.Options{Strategy: gateway.P2C}, slow.URL, fast.URL)
	for i := range 40 {
		done := make(chan struct{})
		before := slowHits.Load()
		go func() {
			defer close(done)
			req, _ := http.NewRequest("GET", f.srv.URL+"/x", nil)
			if resp, err := f.client.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		deadline := time.After(10 * time.Second)
		for waiting := true; waiting; {
			select {
			case <-done:
				waiting = false
			case <-deadline:
				t.Fatalf("request %d neither finished nor reached the slow backend", i)
			case <-time.After(2 * time.Millisecond):
				waiting = slowHits.Load() == before
			}
		}
	}
	if got := slowHits.Load(); got > 1 {
		t.Errorf("the busy backend got %d requests; p2c should send it at most the first (a tie)", got)
	}
	if got := fast.hits.Load(); got < 39 {
		t.Errorf("the idle backend got %d of 40", got)
	}
}

func TestIPHashIsStickyAndMovesOnlyTheLeaversClients(t *testing.T) {
	t.Parallel()
	ups := []*upstream{newUpstream(t, "a"), newUpstream(t, "b"), newUpstream(t, "c")}
	f := setup(t, gateway.Options{Strategy: gateway.IPHash, TrustForwardedFor: true, Fall: 1, Rise: 1},
		ups[0].URL, ups[1].URL, ups[2].URL)
	owner := map[string]string{}
	count := map[string]int{}
	for i := range 150 {
		ip := fmt.Sprintf("198.51.%d.%d", i/100, i%100+1)
		first := f.do(t, "GET", "/", nil, "X-Forwarded-For", ip).backend
		for range 3 {
			if again := f.do(t, "GET", "/", nil, "X-Forwarded-For", ip).backend; again != first {
				t.Fatalf("client %s went to %s then %s", ip, first, again)
			}
		}
		owner[ip] = first
		count[first]++
	}
	for _, u := range ups {
		if count[u.name] < 25 {
			t.Errorf("backend %s owns %d of 150 clients; the hash is too uneven: %v", u.name, count[u.name], count)
		}
	}
	ups[1].ready.Store(503)
	f.gw.CheckNow(context.Background())
	moved := 0
	for ip, was := range owner {
		now := f.do(t, "GET", "/", nil, "X-Forwarded-For", ip).backend
		switch {
		case now == "b":
			t.Fatalf("client %s still sent to the unhealthy backend", ip)
		case was != "b" && now != was:
			t.Errorf("client %s moved from %s to %s although %s stayed", ip, was, now, was)
		case was == "b":
			moved++
		}
	}
	if moved != count["b"] {
		t.Errorf("moved %d clients, want the %d of the leaver", moved, count["b"])
	}
}

func TestHealthChecksRiseAndFall(t *testing.T) {
	t.Parallel()
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	f := setup(t, gateway.Options{Rise: 2, Fall: 2}, a.URL, b.URL)
	ctx := context.Background()
	healthy := func() bool { return f.gw.Backends()[0].Healthy }
	f.gw.CheckNow(ctx)
	if !healthy() {
		t.Fatal("a is not healthy after a passing first check")
	}
	a.ready.Store(503)
	f.gw.CheckNow(ctx)
	if !healthy() {
		t.Fatal("one failed check took a out; fall is 2")
	}
	f.gw.CheckNow(ctx)
	if healthy() {
		t.Fatal("two failed checks did not take a out")
	}
	before := a.hits.Load()
	for range 10 {
		if r := f.do(t, "GET", "/", nil); r.backend != "b" {
			t.Fatalf("request went to %q while a is unhealthy", r.backend)
		}
	}
	if a.hits.Load() != before {
		t.Fatal("the unhealthy backend got requests")
	}
	a.ready.Store(200)
	f.gw.CheckNow(ctx)
	if healthy() {
		t.Fatal("one passing check brought a back; rise is 2")
	}
	f.gw.CheckNow(ctx)
	if !healthy() {
		t.Fatal("two passing checks did not bring a back")
	}
	for range 10 {
		f.do(t, "GET", "/", nil)
	}
	if a.hits.Load() != before+5 {
		t.Errorf("a got %d of 10 requests after returning, want 5", a.hits.Load()-before)
	}

	// Run does the same on its own, on the interval.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := setup(t, gateway.Options{Rise: 1, Fall: 1, HealthInterval: 20 * time.Millisecond}, a.URL, b.URL)
	go g.gw.Run(ctx)
	a.ready.Store(500)
	waitFor(t, "Run to mark a unhealthy", func() bool { return !g.gw.Backends()[0].Healthy })
	a.ready.Store(200)
	waitFor(t, "Run to mark a healthy again", func() bool { return g.gw.Backends()[0].Healthy })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEjectionGrowsThenEnds(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	a.status.Store(500)
	f := setup(t, gateway.Options{EjectAfter: 3, EjectBase: time.Second, EjectMax: 4 * time.Second, Now: clock.Now},
		a.URL, b.URL)
	// Until a is ejected every other request lands on it, fails, and is
	// retried on b: the client never sees a 500.
	ejectOnce := func() gateway.BackendStatus {
		t.Helper()
		for i := 0; !f.gw.Backends()[0].Ejected; i++ {
			if i > 20 {
				t.Fatal("a never ejected")
			}
			if r := f.do(t, "GET", "/", nil); r.status != 200 || r.backend != "b" {
				t.Fatalf("got %d from %q; the 500 should have been retried on b", r.status, r.backend)
			}
		}
		return f.gw.Backends()[0]
	}
	var got []time.Duration
	for range 4 {
		st := ejectOnce()
		got = append(got, st.EjectedUntil.Sub(clock.Now()))
		hits := a.hits.Load()
		for range 5 {
			f.do(t, "GET", "/", nil)
		}
		if a.hits.Load() != hits {
			t.Fatal("an ejected backend got requests")
		}
		clock.Advance(got[len(got)-1])
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ejection times %v, want %v (doubling, capped)", got, want)
		}
	}
	// Recovered: after the ejection a gets its share again, and after a
	// quiet EjectMax it starts over from the base time.
	a.status.Store(200)
	hits := a.hits.Load()
	for range 10 {
		if r := f.do(t, "GET", "/", nil); r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
	}
	if a.hits.Load()-hits != 5 {
		t.Errorf("the recovered backend got %d of 10", a.hits.Load()-hits)
	}
	clock.Advance(5 * time.Second)
	f.do(t, "GET", "/", nil)
	f.do(t, "GET", "/", nil)
	if n := f.gw.Backends()[0].Ejections; n != 0 {
		t.Errorf("ejections %d after a quiet period, want 0", n)
	}
}

func TestNeverEjectsAllAndTriesTheLeastBad(t *testing.T) {
	t.Parallel()
	ups := []*upstream{newUpstream(t, "a"), newUpstream(t, "b"), newUpstream(t, "c")}
	for _, u := range ups {
		u.status.Store(500)
	}
	f := setup(t, gateway.Options{EjectAfter: 1, MaxEjectPercent: 100}, ups[0].URL, ups[1].URL, ups[2].URL)
	for range 30 {
		if r := f.do(t, "GET", "/", nil); r.status != 500 || r.backend == "" {
			t.Fatalf("got %d from %q, want the backends' own 500 passed through", r.status, r.backend)
		}
		ejected := 0
		for _, b := range f.gw.Backends() {
			if b.Ejected {
				ejected++
			}
		}
		if ejected > 2 {
			t.Fatalf("%d of 3 backends ejected", ejected)
		}
	}
	// Every backend failing its health checks: requests still go to them.
	for _, u := range ups {
		u.ready.Store(503)
		u.status.Store(200)
	}
	f.gw.CheckNow(context.Background())
	f.gw.CheckNow(context.Background())
	for _, b := range f.gw.Backends() {
		if b.Healthy {
			t.Fatalf("%s still healthy", b.URL)
		}
	}
	for range 6 {
		if r := f.do(t, "GET", "/", nil); r.status != 200 {
			t.Fatalf("with every backend looking down the gateway answered %d (%s), want to try one", r.status, r.body)
		}
	}
}

func TestRetriesOnlyWhenSafe(t *testing.T) {
	t.Parallel()
	t.Run("503 after the request was read", func(t *testing.T) {
		t.Parallel()
		a, b := newUpstream(t, "a"), newUpstream(t, "b")
		a.status.Store(503)
		f := setup(t, gateway.Options{}, a.URL, b.URL)
		seen := map[int]int{}
		for range 10 {
			seen[f.do(t, "POST", "/v1/orders/x/cancel", []byte("{}")).status]++
		}
		if seen[503] != 5 || seen[200] != 5 || a.hits.Load() != 5 {
			t.Fatalf("POST without Idempotency-Key: statuses %v, a saw %d; want 5 visible 503s and no retry", seen, a.hits.Load())
		}
		for i, m := range []string{"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "POST"} {
			path := "/v1/cart/items/1"
			if m == "POST" {
				path = "/v1/checkout" // the one POST the server deduplicates by key
			}
			for j := range 6 {
				r := f.do(t, m, path, []byte(`{"quantity":2}`), "Idempotency-Key", fmt.Sprintf("k-%d-%d", i, j))
				if r.status != 200 {
					t.Fatalf("%s %s: %d, want the 503 retried on b", m, path, r.status)
				}
			}
		}
		// A key on a POST whose handler ignores it does not make it safe.
		before := a.hits.Load()
		seen = map[int]int{}
		for j := range 10 {
			seen[f.do(t, "POST", "/v1/cart/items", []byte(`{"quantity":2}`), "Idempotency-Key", fmt.Sprintf("c-%d", j)).status]++
		}
		if seen[503] != 5 || seen[200] != 5 || a.hits.Load()-before != 5 {
			t.Fatalf("POST /v1/cart/items with a key the server ignores: %v, a saw %d; want 5 visible 503s, no retry", seen, a.hits.Load()-before)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		b := newUpstream(t, "b")
		f := setup(t, gateway.Options{}, refusedURL(t), b.URL)
		for range 10 {
			if r := f.do(t, "POST", "/v1/auth/register", []byte(`{"x":1}`)); r.status != 200 {
				t.Fatalf("POST to a refused backend: %d, want it retried (nothing was sent)", r.status)
			}
		}
		if b.hits.Load() != 10 {
			t.Fatalf("b got %d", b.hits.Load())
		}
	})
	t.Run("connection dropped after the request was sent", func(t *testing.T) {
		t.Parallel()
		url, hits := resetter(t)
		b := newUpstream(t, "b")
		f := setup(t, gateway.Options{}, url, b.URL)
		seen := map[int]int{}
		for range 10 {
			r := f.do(t, "POST", "/v1/checkout", []byte(`{}`))
			seen[r.status]++
			if r.status == 502 {
				checkProblem(t, r, "bad_gateway")
			}
		}
		if seen[502] != 5 || seen[200] != 5 || hits.Load() != 5 {
			t.Fatalf("POST without key: %v, dropper saw %d; want 5 visible 502s, never run twice", seen, hits.Load())
		}
		for range 10 {
			if r := f.do(t, "GET", "/v1/products", nil); r.status != 200 {
				t.Fatalf("GET: %d, want it retried", r.status)
			}
			if r := f.do(t, "POST", "/v1/checkout", []byte(`{}`), "Idempotency-Key", "abc"); r.status != 200 {
				t.Fatalf("POST with key: %d, want it retried", r.status)
			}
		}
	})
}

func checkProblem(t *testing.T, r result, code string) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want problem+json; body %s", ct, r.body)
	}
	var p struct {
		Status    int    `json:"status"`
		Code      string `json:"code"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Code != code || p.Status != r.status || p.RequestID == "" || p.RequestID != r.header.Get("X-Request-ID") {
		t.Fatalf("problem %+v (status %d), want code %s with the request ID", p, r.status, code)
	}
}

func TestRetryBudgetCapsRetries(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(2_000_000, 0)}
	ups := []*upstream{newUpstream(t, "a"), newUpstream(t, "b"), newUpstream(t, "c")}
	for _, u := range ups {
		u.status.Store(503)
	}
	f := setup(t, gateway.Options{RetryRatio: 0.2, RetryMin: 5, MaxAttempts: 3, Now: clock.Now},
		ups[0].URL, ups[1].URL, ups[2].URL)
	attempts := func() int64 { return ups[0].hits.Load() + ups[1].hits.Load() + ups[2].hits.Load() }
	for range 100 {
		if r := f.do(t, "GET", "/", nil); r.status != 503 || r.backend == "" {
			t.Fatalf("got %d from %q, want the backend's 503 once the budget is spent", r.status, r.backend)
		}
	}
	// 20 % of 100 requests plus the floor of 5: 25 retries at most.
	if retries := attempts() - 100; retries > 25 || retries < 20 {
		t.Fatalf("%d retries for 100 failing requests; the budget allows 25", retries)
	}
	// Ten seconds later the window is empty again: the floor allows retries.
	clock.Advance(11 * time.Second)
	before := attempts()
	f.do(t, "GET", "/", nil)
	if got := attempts() - before; got != 3 {
		t.Fatalf("a fresh window gave %d attempts, want 3", got)
	}
}

// TestBodiesAreReplayedUpToTheLimit: a request body is read whole, so an
// idempotent request is replayed byte for byte on the next backend, and a
// POST past a refused connection too; a body over MaxRequestBody is refused
// with 413 problem+json before any backend sees it.
func TestBodiesAreReplayedUpToTheLimit(t *testing.T) {
	t.Parallel()
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	a.status.Store(503)
	f := setup(t, gateway.Options{MaxRequestBody: 4096}, a.URL, b.URL)
	body := bytes.Repeat([]byte("s"), 4000)
	for range 4 {
		r := f.do(t, "PUT", "/v1/cart/items/1", body)
		if r.status != 200 || r.header.Get("X-Body-Sha256") != sha(body) {
			t.Fatalf("PUT: %d, body hash %s; want it replayed whole on b", r.status, r.header.Get("X-Body-Sha256"))
		}
	}
	hitsBefore := a.hits.Load() + b.hits.Load()
	large := bytes.Repeat([]byte("L"), 5000)
	r := f.do(t, "PUT", "/v1/cart/items/1", large)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over the limit: %d, want 413", r.status)
	}
	checkProblem(t, r, "body_too_large")
	if n := a.hits.Load() + b.hits.Load(); n != hitsBefore {
		t.Fatalf("a refused body reached the backends (%d requests)", n-hitsBefore)
	}

	// A POST a refused connection never received is retried, whole.
	c := newUpstream(t, "c")
	g := setup(t, gateway.Options{}, refusedURL(t), c.URL)
	for range 4 {
		r := g.do(t, "POST", "/v1/upload", large)
		if r.status != 200 || r.header.Get("X-Body-Sha256") != sha(large) {
			t.Fatalf("POST past a refused backend: %d", r.status)
		}
	}
}

func TestForwardingHeaders(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, "a")
	f := setup(t, gateway.Options{}, a.URL)
	r := f.do(t, "GET", "/v1/me", nil, "X-Forwarded-For", "203.0.113.7", "X-Request-ID", "req-123",
		"Connection", "X-Secret-Hop", "X-Secret-Hop", "1")
	if r.status != 200 || r.header.Get("X-Request-ID") != "req-123" {
		t.Fatalf("status %d, response request ID %q", r.status, r.header.Get("X-Request-ID"))
	}
	r2 := f.do(t, "GET", "/v1/me", nil, "X-Request-ID", "bad id with spaces")
	a.mu.Lock()
	h1, h2 := a.headers[0], a.headers[1]
	a.mu.Unlock()
	host := strings.TrimPrefix(f.srv.URL, "http://")
	checks := []struct{ name, got, want string }{
		{"X-Forwarded-For", h1.Get("X-Forwarded-For"), "203.0.113.7, 127.0.0.1"},
		{"X-Forwarded-Proto", h1.Get("X-Forwarded-Proto"), "http"},
		{"X-Forwarded-Host", h1.Get("X-Forwarded-Host"), host},
		{"X-Request-ID", h1.Get("X-Request-ID"), "req-123"},
		{"hop-by-hop X-Secret-Hop", h1.Get("X-Secret-Hop"), ""},
		{"Connection", strings.Join(h1.Values("Connection"), ","), ""},
		{"X-Forwarded-For without a prior hop", h2.Get("X-Forwarded-For"), "127.0.0.1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	gen := h2.Get("X-Request-ID")
	if len(gen) != 32 || gen != r2.header.Get("X-Request-ID") {
		t.Errorf("generated request ID %q at the backend, %q to the client", gen, r2.header.Get("X-Request-ID"))
	}
}

func TestGatewayErrorsAreProblems(t *testing.T) {
	t.Parallel()
	f := setup(t, gateway.Options{}, refusedURL(t), refusedURL(t))
	r := f.do(t, "GET", "/v1/products", nil)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("all backends refused: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	checkProblem(t, r, "backend_unreachable")

	slow := newUpstream(t, "slow")
	slow.delay.Store(int64(2 * time.Second))
	g := setup(t, gateway.Options{ResponseHeaderTimeout: 100 * time.Millisecond}, slow.URL)
	r = g.do(t, "POST", "/v1/checkout", []byte(`{}`))
	if r.status != 504 {
		t.Fatalf("slow backend: %d, want 504", r.status)
	}
	checkProblem(t, r, "gateway_timeout")

}

// TestRateLimits: over the per-IP limit a client gets 429 problem+json with
// Retry-After and RateLimit-*; allowed answers carry RateLimit-*; a user's
// limit follows a verified bearer token, not the address; health checks
// are exempt.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, "a")
	policy := &ratelimit.Policy{Limiter: ratelimit.NewMemory(time.Now),
		PerIP: ratelimit.Rate{Limit: 3, Period: time.Minute}, PerUser: ratelimit.Rate{Limit: 1, Period: time.Minute}}
	f := setup(t, gateway.Options{RateLimit: policy, Subject: func(token string) string {
		if token == "good" {
			return "user-1"
		}
		return ""
	}}, a.URL)
	r := f.do(t, "GET", "/v1/me", nil, "Authorization", "Bearer good")
	if r.status != 200 || r.header.Get("RateLimit-Limit") != "1" || r.header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("user's first request: %d, RateLimit-Limit %q, -Remaining %q", r.status,
			r.header.Get("RateLimit-Limit"), r.header.Get("RateLimit-Remaining"))
	}
	r = f.do(t, "GET", "/v1/me", nil, "Authorization", "Bearer good")
	if r.status != 429 || r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("user over the limit: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	checkProblem(t, r, "rate_limited")
	// Anonymous requests (and an unverifiable token) from the same address
	// count against the address: two more are allowed, then 429.
	for i, auth := range []string{"", "Bearer forged"} {
		if r := f.do(t, "GET", "/v1/products", nil, "Authorization", auth); r.status != 200 || r.header.Get("RateLimit-Limit") != "3" {
			t.Fatalf("anonymous request %d: %d, RateLimit-Limit %q", i, r.status, r.header.Get("RateLimit-Limit"))
		}
	}
	r = f.do(t, "GET", "/v1/products", nil)
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("address over the limit: %d", r.status)
	}
	checkProblem(t, r, "rate_limited")
	if r := f.do(t, "GET", "/readyz", nil); r.status != 200 {
		t.Fatalf("/readyz over the limit: %d, want it exempt", r.status)
	}
	if n := a.hits.Load(); n != 3 {
		t.Fatalf("the backend saw %d requests, want the 3 allowed", n)
	}
}

func TestBackendListReloads(t *testing.T) {
	t.Parallel()
	a, b, c := newUpstream(t, "a"), newUpstream(t, "b"), newUpstream(t, "c")
	file := filepath.Join(t.TempDir(), "backends")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# the shop\n" + a.URL + "  # first\n\n")
	f := setup(t, gateway.Options{BackendsFile: file, FilePoll: 20 * time.Millisecond}, c.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.gw.Run(ctx)
	for range 4 {
		f.do(t, "GET", "/", nil)
	}
	if got := len(f.gw.Backends()); got != 2 {
		t.Fatalf("%d backends, want the flag's and the file's", got)
	}
	reqA := f.gw.Backends()[1].Requests
	write(a.URL + "\n" + b.URL + "\n")
	waitFor(t, "the file change to add b", func() bool { return len(f.gw.Backends()) == 3 })
	st := f.gw.Backends()
	if st[1].URL != a.URL || st[1].Requests != reqA {
		t.Fatalf("a's state was not kept across the reload: %+v (had %d requests)", st[1], reqA)
	}
	for range 6 {
		f.do(t, "GET", "/", nil)
	}
	if b.hits.Load() == 0 {
		t.Fatal("the added backend gets no traffic")
	}
	write("not a url\n")
	time.Sleep(100 * time.Millisecond)
	if got := len(f.gw.Backends()); got != 3 {
		t.Fatalf("a broken file changed the list to %d backends", got)
	}
	if err := f.gw.Reload(); err == nil {
		t.Fatal("Reload accepted a broken file")
	}

	// Reload is what SIGHUP calls: it applies the file without a poll.
	write(a.URL + "\n")
	g := setup(t, gateway.Options{BackendsFile: file, FilePoll: time.Hour}, c.URL)
	write(b.URL + "\n")
	if err := g.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	if st := g.gw.Backends(); len(st) != 2 || st[1].URL != b.URL {
		t.Fatalf("after Reload: %+v", st)
	}
}

func TestAdminListener(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, "a")
	f := setup(t, gateway.Options{}, a.URL)
	f.do(t, "GET", "/", nil)
	admin := httptest.NewServer(f.gw.AdminHandler(f.reg))
	defer admin.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	want := fmt.Sprintf(`million_gateway_backend_requests_total{backend=%q,class="2xx"} 1`, a.URL)
	if code != 200 || !strings.Contains(body, want) || !strings.Contains(body, "million_gateway_backend_healthy") {
		t.Fatalf("/metrics %d lacks %s", code, want)
	}
	if code, body := get("/backends"); code != 200 || !strings.Contains(body, `"available":true`) {
		t.Fatalf("/backends %d %s", code, body)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
}

// TestBackendFailingMidBodyAbortsTheResponse: a backend that dies
// mid-body must not look, to the client, like a complete (shorter)
// response: the gateway reads answers whole, so the client gets a 502
// problem, and an idempotent request is first retried on another backend.
func TestBackendFailingMidBodyAbortsTheResponse(t *testing.T) {
	t.Parallel()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("x", 100))
		rc := http.NewResponseController(w)
		_ = rc.Flush() // chunked: no Content-Length to betray the cut
		if conn, _, err := rc.Hijack(); err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(broken.Close)
	f := setup(t, gateway.Options{}, broken.URL)
	r := f.do(t, "GET", "/stream", nil)
	if r.status != http.StatusBadGateway || strings.Contains(r.body, "xxx") {
		t.Fatalf("cut answer: %d %q, want 502 problem+json", r.status, r.body)
	}
	checkProblem(t, r, "bad_gateway")

	whole := newUpstream(t, "whole")
	g := setup(t, gateway.Options{}, broken.URL, whole.URL)
	for range 4 {
		if r := g.do(t, "GET", "/stream", nil); r.status != 200 || r.body != "whole" {
			t.Fatalf("GET beside a breaking backend: %d %q, want the whole backend's answer", r.status, r.body)
		}
	}
}

// TestSheddingIsNotEjected: a backend refusing work with 503 and
// Retry-After (load shedding) keeps its place, or its load would move onto
// the others and spread the overload; its idempotent requests are still
// retried elsewhere. A backend answering 500 is ejected.
func TestSheddingIsNotEjected(t *testing.T) {
	t.Parallel()
	shedding := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(shedding.Close)
	failing, ok := newUpstream(t, "failing"), newUpstream(t, "ok")
	failing.status.Store(500)
	f := setup(t, gateway.Options{EjectAfter: 3}, shedding.URL, failing.URL, ok.URL)
	for range 30 {
		if r := f.do(t, "GET", "/", nil); r.status != 200 {
			t.Fatalf("GET: %d, want it retried on the healthy backend", r.status)
		}
	}
	for _, b := range f.gw.Backends() {
		switch b.URL {
		case shedding.URL:
			if b.Ejected {
				t.Fatal("the shedding backend was ejected")
			}
		case failing.URL:
			if !b.Ejected {
				t.Fatal("the backend answering 500 was not ejected")
			}
		}
	}
}

// counter sums the counter family name over the series whose label has
// the given value.
func (f *fixture) counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := f.reg.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
