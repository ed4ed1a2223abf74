package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/redistest"
)

// metricSum scrapes s's /metrics and sums the samples of name whose labels
// contain every given label="value" pair.
func metricSum(t testing.TB, s *Server, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(s.MetricsURL())
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// productQueries is how many times the instances read products from the database.
func productQueries(t testing.TB, servers []*Server) float64 {
	n := 0.0
	for _, s := range servers {
		n += metricSum(t, s, "million_db_queries_total", `statement="SELECT products"`)
	}
	return n
}

func withRedis(url string, mutate ...func(*app.Config)) func(*app.Config) {
	return func(c *app.Config) {
		c.RedisURL = url
		for _, m := range mutate {
			m(c)
		}
	}
}

func getProduct(c *http.Client, base, id string) (Product, int, error) {
	var p Product
	resp, err := c.Get(base + "/v1/products/" + id)
	if err != nil {
		return p, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return p, resp.StatusCode, nil
	}
	err = json.NewDecoder(resp.Body).Decode(&p)
	return p, resp.StatusCode, err
}

// TestCacheNoStaleReadAfterWrite is acceptance 1 of stage 4: three
// instances with L1 and a shared Redis; once a PATCH of a price returns, no
// instance serves the old price, neither for the product nor in a list.
func TestCacheNoStaleReadAfterWrite(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	tg, servers := StartCluster(t, 3, withRedis(redis.URL()))
	for _, s := range servers {
		waitCacheConnected(t, s, 10*time.Second)
	}
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	p := admin.NewProduct(t, cat, "Stale Check", 1000, 5)
	anon := tg.Client()
	for round := range 60 {
		for _, s := range servers { // every L1 and the L2 hold the current price
			c := *anon
			c.Base = s.BaseURL
			c.Expect(t, http.StatusOK, "GET", "/v1/products/"+p.ID, nil)
			c.Expect(t, http.StatusOK, "GET", "/v1/products?category="+cat, nil)
		}
		price := int64(2000 + round)
		writer := *admin.Client
		writer.Base = servers[round%3].BaseURL
		writer.Expect(t, http.StatusOK, "PATCH", "/v1/products/"+p.ID, map[string]any{"price_cents": price})
		for i, s := range servers {
			c := *anon
			c.Base = s.BaseURL
			var got Product
			c.Expect(t, http.StatusOK, "GET", "/v1/products/"+p.ID, nil).Decode(t, &got)
			if got.PriceCents != price {
				t.Fatalf("round %d: instance %d served price %d after the PATCH to %d returned", round, i, got.PriceCents, price)
			}
			var page struct{ Items []Product }
			c.Expect(t, http.StatusOK, "GET", "/v1/products?category="+cat, nil).Decode(t, &page)
			if len(page.Items) != 1 || page.Items[0].PriceCents != price {
				t.Fatalf("round %d: instance %d listed %+v after the PATCH to %d returned", round, i, page.Items, price)
			}
		}
	}
	hits := 0.0
	for _, s := range servers {
		hits += metricSum(t, s, "million_cache_requests_total", `entity="product"`, `level="l1"`, `result="hit"`)
	}
	if hits == 0 {
		t.Fatal("no L1 hit at all: the test did not exercise the cache")
	}
}

func waitCacheConnected(t testing.TB, s *Server, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for !s.App.Cache.Connected() {
		if time.Since(start) > within {
			t.Fatalf("instance cache not connected to the invalidation channel within %v", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestCacheStampedeOneQuery is acceptance 2 of stage 4: 1,000 concurrent
// requests across three instances for a hot product whose entries just
// expired everywhere cause exactly one database query.
//
// It does not run in parallel with the package's other tests: its 1,000
// goroutines, with -race and the rest of the suite on two cores, starved
// the instances' Redis replies past their timeout in one CI run (229 Redis
// errors on one instance, so reads fell back to the database).
func TestCacheStampedeOneQuery(t *testing.T) {
	redis := redistest.Start(t)
	// Long enough that the burst ends before the reloaded entry reaches
	// the last tenth of its life, where one request refreshes a hot key
	// early (a second query, by design): the burst took 1.5 s under -race
	// on an idle 2-core machine, and longer beside other tests.
	const ttl = 6 * time.Second
	tg, servers := StartCluster(t, 3, withRedis(redis.URL(), func(c *app.Config) {
		c.Cache.ProductTTL = ttl
		// 1,000 requests at once on a shared 2-core machine under -race
		// delay every goroutine, Redis replies included, by hundreds of
		// milliseconds: generous bounds keep this a test of the election,
		// not of the scheduler. The defaults (100 ms, 1 s) suit a server.
		c.Cache.RedisTimeout, c.Cache.LockWait = 5*time.Second, 30*time.Second
	}))
	for _, s := range servers {
		waitCacheConnected(t, s, 10*time.Second)
	}
	admin := tg.Admin(t)
	p := admin.NewProduct(t, admin.NewCategory(t), "Hot Item", 1999, 100)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 0}}
	for _, s := range servers {
		if _, code, err := getProduct(client, s.BaseURL, p.ID); err != nil || code != http.StatusOK {
			t.Fatalf("warm-up: %d %v", code, err)
		}
	}
	// No traffic until every level's entry has expired (TTL + 10 % jitter).
	time.Sleep(ttl*11/10 + 300*time.Millisecond)
	before := productQueries(t, servers)
	var wg sync.WaitGroup
	var failures atomic.Int64
	start := make(chan struct{})
	for i := range 1000 {
		wg.Go(func() {
			<-start
			got, code, err := getProduct(client, servers[i%3].BaseURL, p.ID)
			if err != nil || code != http.StatusOK || got.PriceCents != 1999 {
				failures.Add(1)
			}
		})
	}
	burst := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(burst)
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of 1000 requests failed", n)
	}
	if q := productQueries(t, servers) - before; q != 1 {
		diag := ""
		for i, s := range servers {
			diag += fmt.Sprintf("; instance %d: lock wait timeouts %v, redis errors %v, l2 hits %v", i,
				metricSum(t, s, "million_cache_lock_wait_timeouts_total"), metricSum(t, s, "million_cache_l2_errors_total"),
				metricSum(t, s, "million_cache_requests_total", `level="l2"`, `result="hit"`))
		}
		t.Fatalf("1000 concurrent requests on 3 instances for a just-expired key ran %v product queries in %v, want exactly 1%s", q, took, diag)
	}
}

// TestCacheRedisFaults is acceptance 3 of stage 4: with Redis slowed by 1 s
// (toxiproxy between the instances and redis-server), then stopped, reads
// keep being answered (error rate under 0.1 %, p99 well under the injected
// delay), reads after a write never see the old price, and the cache is back
// within 10 s of Redis returning.
func TestCacheRedisFaults(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	proxy := toxiproxy.NewProxy(toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		"redis", "127.0.0.1:0", redis.Addr)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	tg, servers := StartCluster(t, 2, withRedis("redis://"+proxy.Listen))
	for _, s := range servers {
		waitCacheConnected(t, s, 10*time.Second)
	}
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	var ids []string
	for i := range 10 {
		ids = append(ids, admin.NewProduct(t, cat, fmt.Sprint("Fault Item ", i), 100, 1000).ID)
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var mu sync.Mutex
	var latencies []time.Duration
	var total, failed atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				s := servers[r.IntN(len(servers))]
				url := s.BaseURL + "/v1/products/" + ids[r.IntN(len(ids))]
				if r.IntN(4) == 0 {
					url = s.BaseURL + "/v1/products?category=" + cat
				}
				start := time.Now()
				resp, err := client.Get(url)
				took := time.Since(start)
				total.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				mu.Lock()
				latencies = append(latencies, took)
				mu.Unlock()
			}
		})
	}
	// checkWrite patches a price and checks every instance serves it at once.
	price := int64(100)
	checkWrite := func(phase string) {
		t.Helper()
		price++
		writer := *admin.Client
		writer.Base = servers[int(price)%len(servers)].BaseURL
		writer.Expect(t, http.StatusOK, "PATCH", "/v1/products/"+ids[0], map[string]any{"price_cents": price})
		for i, s := range servers {
			got, code, err := getProduct(client, s.BaseURL, ids[0])
			if err != nil || code != http.StatusOK {
				t.Fatalf("%s: GET after PATCH on instance %d: %d %v", phase, i, code, err)
			}
			if got.PriceCents != price {
				t.Fatalf("%s: instance %d served price %d after the PATCH to %d returned", phase, i, got.PriceCents, price)
			}
		}
	}
	phase := func(name string, d time.Duration) {
		t.Helper()
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			checkWrite(name)
			time.Sleep(200 * time.Millisecond)
		}
	}
	recovered := func(name string) {
		t.Helper()
		took := time.Duration(0)
		for _, s := range servers {
			took = max(took, waitCacheConnected(t, s, 10*time.Second))
		}
		t.Logf("%s: cache reconnected on every instance %v after Redis returned", name, took.Round(time.Millisecond))
	}

	phase("healthy", 2*time.Second)
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(
		`{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":1000}}`)); err != nil {
		t.Fatal(err)
	}
	phase("redis slowed by 1s", 5*time.Second)
	if err := proxy.Toxics.RemoveToxic(context.Background(), "slow"); err != nil {
		t.Fatal(err)
	}
	recovered("after slowness")
	phase("recovered from slowness", time.Second)
	redis.Stop()
	phase("redis stopped", 5*time.Second)
	if err := redis.Restart(); err != nil {
		t.Fatal(err)
	}
	recovered("after restart")
	phase("recovered from stop", 2*time.Second)
	stop()
	wg.Wait()

	// Recovered means cached again, not only reconnected: once each
	// instance has the product, reading it costs the database nothing.
	for _, s := range servers {
		if _, code, err := getProduct(client, s.BaseURL, ids[1]); err != nil || code != http.StatusOK {
			t.Fatalf("GET after recovery: %d %v", code, err)
		}
	}
	before := productQueries(t, servers)
	for i := range 100 {
		if _, code, err := getProduct(client, servers[i%len(servers)].BaseURL, ids[1]); err != nil || code != http.StatusOK {
			t.Fatalf("GET after recovery: %d %v", code, err)
		}
	}
	if q := productQueries(t, servers) - before; q != 0 {
		t.Fatalf("after recovery 100 reads of a cached product ran %v database queries, want 0", q)
	}

	mu.Lock()
	defer mu.Unlock()
	slices.Sort(latencies)
	n, f := total.Load(), failed.Load()
	p99 := latencies[len(latencies)*99/100]
	t.Logf("%d reads, %d failed, p50 %v, p99 %v, max %v", n, f, latencies[len(latencies)/2], p99, latencies[len(latencies)-1])
	if n < 500 {
		t.Fatalf("only %d reads in the whole run: the load did not run", n)
	}
	if f*1000 >= n {
		t.Fatalf("%d of %d reads failed, want under 0.1 %%", f, n)
	}
	if p99 >= time.Second {
		t.Fatalf("read p99 %v: requests waited on the slow Redis", p99)
	}
}

// TestCacheHTTPHeaders: public catalog reads carry an ETag honoured with
// 304, Cache-Control with max-age and stale-while-revalidate, and
// Surrogate-Key naming what they depend on.
func TestCacheHTTPHeaders(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	p := admin.NewProduct(t, cat, "Header Check", 500, 3)
	anon := tg.Client()
	for _, c := range []struct{ path, keys string }{
		{"/v1/products/" + p.ID, "product-" + p.ID + " products category-" + cat},
		{"/v1/products?category=" + cat, "products category-" + cat},
		{"/v1/products", "products"},
		{"/v1/categories", "categories"},
	} {
		r := anon.Expect(t, http.StatusOK, "GET", c.path, nil)
		cc := r.Header.Get("Cache-Control")
		if !strings.Contains(cc, "public") || !strings.Contains(cc, "max-age=") || !strings.Contains(cc, "stale-while-revalidate=") {
			t.Errorf("GET %s: Cache-Control %q, want public, max-age and stale-while-revalidate", c.path, cc)
		}
		if got := r.Header.Get("Surrogate-Key"); got != c.keys {
			t.Errorf("GET %s: Surrogate-Key %q, want %q", c.path, got, c.keys)
		}
		etag := r.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("GET %s: no ETag", c.path)
		}
		nm := anon.Expect(t, http.StatusNotModified, "GET", c.path, nil, "If-None-Match", etag)
		if len(nm.Body) != 0 {
			t.Errorf("GET %s: 304 with a body", c.path)
		}
	}
	// A change changes the list's tag.
	r := anon.Expect(t, http.StatusOK, "GET", "/v1/products?category="+cat, nil)
	admin.Expect(t, http.StatusOK, "PATCH", "/v1/products/"+p.ID, map[string]any{"price_cents": 501})
	anon.Expect(t, http.StatusOK, "GET", "/v1/products?category="+cat, nil, "If-None-Match", r.Header.Get("ETag"))

	// Answers are built once per version and kept: two categories whose
	// (empty) pages are equal still answer with their own Surrogate-Key,
	// and a new category shows in the categories' answer at once.
	empty1, empty2 := admin.NewCategory(t), admin.NewCategory(t)
	for _, c := range []string{empty1, empty2, empty1} {
		r := anon.Expect(t, http.StatusOK, "GET", "/v1/products?category="+c, nil)
		if got, want := r.Header.Get("Surrogate-Key"), "products category-"+c; got != want {
			t.Errorf("GET /v1/products?category=%s: Surrogate-Key %q, want %q", c, got, want)
		}
	}
	before := anon.Expect(t, http.StatusOK, "GET", "/v1/categories", nil)
	extra := admin.NewCategory(t)
	after := anon.Expect(t, http.StatusOK, "GET", "/v1/categories", nil)
	if !strings.Contains(string(after.Body), `"`+extra+`"`) || after.Header.Get("ETag") == before.Header.Get("ETag") {
		t.Errorf("the categories after creating %s: ETag %s (was %s), body %s", extra, after.Header.Get("ETag"), before.Header.Get("ETag"), after.Body)
	}

	// HEAD answers the headers of GET, without the body.
	get := anon.Expect(t, http.StatusOK, "GET", "/v1/products/"+p.ID, nil)
	head := anon.Expect(t, http.StatusOK, "HEAD", "/v1/products/"+p.ID, nil)
	if len(head.Body) != 0 || head.Header.Get("ETag") != get.Header.Get("ETag") ||
		head.Header.Get("Content-Length") != strconv.Itoa(len(get.Body)) {
		t.Errorf("HEAD: body %q, ETag %q (GET %q), Content-Length %q (GET body %d bytes)", head.Body,
			head.Header.Get("ETag"), get.Header.Get("ETag"), head.Header.Get("Content-Length"), len(get.Body))
	}
}
