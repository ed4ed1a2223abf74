package cache

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"

	"github.com/millionshop/million/redistest"
	"github.com/millionshop/million/redisx"
)

// source is a fake-free stand-in for a database row: a value the test
// changes and a count of reads, which is what the cache must minimise.
type source struct {
	mu    sync.Mutex
	val   map[string]string
	reads atomic.Int64
	delay time.Duration
}

func newSource() *source { return &source{val: map[string]string{}} }

func (s *source) set(id, v string) {
	s.mu.Lock()
	s.val[id] = v
	s.mu.Unlock()
}

func (s *source) loader(id string) Loader[string] {
	return func(ctx context.Context) (string, bool, error) {
		s.reads.Add(1)
		if s.delay > 0 {
			time.Sleep(s.delay)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		v, ok := s.val[id]
		return v, ok, nil
	}
}

func openRedis(t *testing.T, url string) rueidis.Client {
	t.Helper()
	r, err := redisx.Open(context.Background(), url, redisx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func newCache(t *testing.T, opts Options) *Cache {
	t.Helper()
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitReady waits until c serves L1 (subscribed, nothing pending, own
// heartbeat fresh). The bound is generous: once in CI, under -race beside
// other packages' tests, a cache reconnecting through toxiproxy was not
// ready within 10 s; the message says which condition was missing.
func waitReady(t *testing.T, c *Cache) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !c.l1Usable() {
		if time.Now().After(deadline) {
			t.Fatalf("cache not ready after 30 s: subscribed %v, invalidations pending %d, last own heartbeat %v ago",
				c.subscribed.Load(), c.pendingN.Load(), time.Since(c.born)-time.Duration(c.lastBeat.Load()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func get(t *testing.T, e *Entity[string], src *source, id string) (string, bool) {
	t.Helper()
	v, found, err := e.Get(context.Background(), id, src.loader(id))
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return v, found
}

func TestL1OnlyHitMissNegativeAndInvalidate(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{})
	e := Register[string](c, Spec{Name: "thing", Version: 1, TTL: time.Minute, NegativeTTL: 300 * time.Millisecond})
	src := newSource()
	src.set("a", "one")
	for range 5 {
		if v, found := get(t, e, src, "a"); !found || v != "one" {
			t.Fatalf("get = %q %v, want one", v, found)
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("5 gets read the source %d times, want 1", n)
	}
	if got := testutil.ToFloat64(c.metrics.requests.WithLabelValues("thing", "l1", "hit")); got != 4 {
		t.Fatalf("l1 hits = %v, want 4", got)
	}
	// Not found is cached too, for the short negative TTL only.
	for range 3 {
		if _, found := get(t, e, src, "missing"); found {
			t.Fatal("missing id found")
		}
	}
	if n := src.reads.Load(); n != 2 {
		t.Fatalf("3 gets of a missing id read the source %d times in all, want 2", n)
	}
	src.set("missing", "now here")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, found := get(t, e, src, "missing"); found && v == "now here" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("negative entry outlived its TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A write drops the entry synchronously.
	src.set("a", "two")
	if err := e.Invalidate(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, e, src, "a"); v != "two" {
		t.Fatalf("after invalidate got %q, want two", v)
	}
}

func TestTTLJitterBounds(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{})
	e := Register[string](c, Spec{Name: "j", Version: 1, TTL: time.Second, Jitter: 0.2})
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		d := e.ttlFor(true)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 800*time.Millisecond || hi > 1200*time.Millisecond {
		t.Fatalf("TTL with 20%% jitter ranged %v..%v, want within 0.8s..1.2s", lo, hi)
	}
	if hi-lo < 200*time.Millisecond {
		t.Fatalf("TTL with 20%% jitter ranged only %v..%v: no jitter", lo, hi)
	}
	// An entry is reloaded once its TTL has passed.
	short := Register[string](c, Spec{Name: "short", Version: 1, TTL: 150 * time.Millisecond})
	src := newSource()
	src.set("k", "v1")
	get(t, short, src, "k")
	src.set("k", "v2")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, _ := get(t, short, src, "k"); v == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry outlived its TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestL2SharedAndVersionedKeys(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	b := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	waitReady(t, a)
	waitReady(t, b)
	ea := Register[string](a, Spec{Name: "thing", Version: 1, TTL: time.Minute})
	eb := Register[string](b, Spec{Name: "thing", Version: 1, TTL: time.Minute})
	if k := ea.Key("x"); k != "v1:thing:x" {
		t.Fatalf("key = %q, want v1:thing:x", k)
	}
	src := newSource()
	src.set("x", "hello")
	get(t, ea, src, "x")
	if v, _ := get(t, eb, src, "x"); v != "hello" {
		t.Fatalf("b got %q", v)
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("two instances read the source %d times, want 1 (b from L2)", n)
	}
	if got := testutil.ToFloat64(b.metrics.requests.WithLabelValues("thing", "l2", "hit")); got != 1 {
		t.Fatalf("b's l2 hits = %v, want 1", got)
	}
	// A new schema version never reads the old entries.
	ev2 := Register[string](b, Spec{Name: "thing", Version: 2, TTL: time.Minute})
	src.set("x", "hello v2")
	if v, _ := get(t, ev2, src, "x"); v != "hello v2" {
		t.Fatalf("version 2 read %q, an entry of version 1", v)
	}
	r := openRedis(t, srv.URL())
	for _, k := range []string{"mc:v1:thing:x", "mc:v2:thing:x"} {
		if err := r.Do(context.Background(), r.B().Get().Key(k).Build()).Error(); err != nil {
			t.Fatalf("L2 key %s: %v", k, err)
		}
	}
}

func TestInvalidationReachesEveryL1WithinBound(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var caches []*Cache
	var ents []*Entity[string]
	for range 3 {
		c := newCache(t, Options{Redis: openRedis(t, srv.URL())})
		waitReady(t, c)
		caches = append(caches, c)
		ents = append(ents, Register[string](c, Spec{Name: "p", Version: 1, TTL: time.Hour}))
	}
	src := newSource()
	ctx := context.Background()
	for i := range 50 {
		want := "price-" + string(rune('a'+i%26)) + string(rune('0'+i%10))
		for _, e := range ents {
			get(t, e, src, "hot") // every L1 holds the current value
		}
		src.set("hot", want)
		w := ents[i%3]
		start := time.Now()
		if err := w.Invalidate(ctx, "hot"); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("invalidate took %v", took)
		}
		for j, e := range ents {
			if v, _ := get(t, e, src, "hot"); v != want {
				t.Fatalf("round %d: instance %d served %q after the write returned, want %q", i, j, v, want)
			}
		}
	}
	acked := 0.0
	for _, c := range caches {
		acked += testutil.ToFloat64(c.metrics.received)
	}
	if acked < 150 {
		t.Fatalf("instances applied %v invalidations, want 150", acked)
	}
}

func TestGenerationalInvalidateAll(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	b := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	waitReady(t, a)
	waitReady(t, b)
	ea := Register[string](a, Spec{Name: "list", Version: 1, TTL: time.Hour, Generational: true})
	eb := Register[string](b, Spec{Name: "list", Version: 1, TTL: time.Hour, Generational: true})
	src := newSource()
	src.set("page1", "old")
	get(t, ea, src, "page1")
	get(t, eb, src, "page1")
	src.set("page1", "new")
	if err := ea.InvalidateAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, e := range []*Entity[string]{ea, eb} {
		if v, _ := get(t, e, src, "page1"); v != "new" {
			t.Fatalf("instance %d served %q after InvalidateAll", i, v)
		}
	}
	if ea.gen.Load() != eb.gen.Load() || ea.gen.Load() == 0 {
		t.Fatalf("generations %d and %d, want equal and moved", ea.gen.Load(), eb.gen.Load())
	}
}

func TestStampedeOneLoadAcrossInstances(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var ents []*Entity[string]
	for range 3 {
		c := newCache(t, Options{Redis: openRedis(t, srv.URL())})
		waitReady(t, c)
		ents = append(ents, Register[string](c, Spec{Name: "hot", Version: 1, TTL: time.Minute}))
	}
	src := newSource()
	src.set("k", "v")
	src.delay = 50 * time.Millisecond
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 300 {
		wg.Go(func() {
			<-start
			v, _, err := ents[i%3].Get(context.Background(), "k", src.loader("k"))
			if err != nil || v != "v" {
				t.Errorf("get = %q, %v", v, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("300 concurrent misses on 3 instances read the source %d times, want 1", n)
	}
}

// TestLoadRacingInvalidationDoesNotFill: a load that started before a
// write and finishes after its invalidation must not be cached.
func TestLoadRacingInvalidationDoesNotFill(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, redis := range []rueidis.Client{nil, openRedis(t, srv.URL())} {
		c := newCache(t, Options{Redis: redis})
		if redis != nil {
			waitReady(t, c)
		}
		e := Register[string](c, Spec{Name: "race", Version: 1, TTL: time.Hour})
		started, release := make(chan struct{}), make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _, _ = e.Get(context.Background(), "k", func(ctx context.Context) (string, bool, error) {
				close(started)
				<-release
				return "old", true, nil // read before the write committed
			})
		}()
		<-started
		if err := e.Invalidate(context.Background(), "k"); err != nil { // the write commits and invalidates
			t.Fatal(err)
		}
		close(release)
		<-done
		src := newSource()
		src.set("k", "new")
		if v, _ := get(t, e, src, "k"); v != "new" {
			t.Fatalf("redis=%v: served %q, the value of a load that raced with a write", redis != nil, v)
		}
	}
}

// TestRedisDownBreakerAndL1Bypass: with Redis gone reads still succeed from
// the source, the breaker opens, L1 is not served while the channel is
// lost (another instance's writes could not be heard), and everything
// recovers after Redis returns.
func TestRedisDownBreakerAndL1Bypass(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	waitReady(t, c)
	e := Register[string](c, Spec{Name: "d", Version: 1, TTL: time.Hour})
	src := newSource()
	src.set("k", "v1")
	get(t, e, src, "k")
	srv.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for c.subscribed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the lost subscription was never noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Another instance's write cannot be heard now: the new value must be
	// read, never the L1 copy.
	src.set("k", "v2")
	for range 20 {
		if v, _ := get(t, e, src, "k"); v != "v2" {
			t.Fatalf("served %q from L1 while disconnected", v)
		}
	}
	if s := c.breaker.State(); s != gobreaker.StateOpen {
		t.Fatalf("breaker %v after 20 failed reads, want open", s)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	recovered := time.Now()
	waitReady(t, c)
	for i := 0; c.breaker.State() != gobreaker.StateClosed; i++ {
		get(t, e, src, fmt.Sprint("other-", i)) // misses: traffic through L2
		if time.Since(recovered) > 10*time.Second {
			t.Fatalf("breaker still %v 10 s after Redis returned", c.breaker.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
	get(t, e, src, "k")
	before := src.reads.Load()
	for range 10 {
		if v, _ := get(t, e, src, "k"); v != "v2" {
			t.Fatalf("got %q after recovery", v)
		}
	}
	if n := src.reads.Load() - before; n != 0 {
		t.Fatalf("after recovery 10 reads hit the source %d times, want 0 (L1)", n)
	}
}

func TestMetricsRegistered(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := newCache(t, Options{Registerer: reg})
	e := Register[string](c, Spec{Name: "m", Version: 1, TTL: time.Minute})
	src := newSource()
	get(t, e, src, "a")
	get(t, e, src, "a")
	if err := e.Invalidate(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"million_cache_requests_total", "million_cache_db_queries_avoided_total",
		"million_cache_loads_total", "million_cache_load_duration_seconds", "million_cache_invalidations_total"} {
		if !strings.Contains(all, want) {
			t.Errorf("metric %s not registered (have %s)", want, all)
		}
	}
}

// TestSilentReceiverCostsTheBound: a subscriber that never acknowledges (a
// wedged instance) makes a write wait the bound, not forever, and is counted.
func TestSilentReceiverCostsTheBound(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const bound = 300 * time.Millisecond
	c := newCache(t, Options{Redis: openRedis(t, srv.URL()), Bound: bound})
	waitReady(t, c)
	e := Register[string](c, Spec{Name: "s", Version: 1, TTL: time.Minute})
	silent := openRedis(t, srv.URL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = silent.Receive(ctx, silent.B().Subscribe().Channel("mc:inv").Build(), func(rueidis.PubSubMessage) {})
	}()
	// Wait until Redis counts the silent subscriber.
	r := openRedis(t, srv.URL())
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := r.Do(context.Background(), r.B().PubsubNumsub().Channel("mc:inv").Build()).AsIntMap()
		if err == nil && n["mc:inv"] >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("silent subscriber never subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if err := e.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < bound {
		t.Fatalf("write returned after %v with a receiver silent: it did not wait for the bound %v", took, bound)
	}
	if took > bound+3*time.Second {
		t.Fatalf("write waited %v with a receiver silent; the bound is %v", took, bound)
	}
	if got := testutil.ToFloat64(c.metrics.missingAcks); got != 1 {
		t.Fatalf("missing acks = %v, want 1", got)
	}
}

func TestGetManyLevels(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	b := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	waitReady(t, a)
	waitReady(t, b)
	ea := Register[string](a, Spec{Name: "many", Version: 1, TTL: time.Minute})
	eb := Register[string](b, Spec{Name: "many", Version: 1, TTL: time.Minute})
	src := newSource()
	src.set("1", "one")
	src.set("2", "two")
	var batches [][]string
	var mu sync.Mutex
	loadMany := func(ctx context.Context, ids []string) (map[string]string, error) {
		mu.Lock()
		batches = append(batches, ids)
		mu.Unlock()
		out := map[string]string{}
		for _, id := range ids {
			src.mu.Lock()
			if v, ok := src.val[id]; ok {
				out[id] = v
			}
			src.mu.Unlock()
		}
		return out, nil
	}
	wantVals, wantFound := []string{"one", "two", "", "two"}, []bool{true, true, false, true}
	for i, e := range []*Entity[string]{ea, ea, eb} {
		vals, found, err := e.GetMany(context.Background(), []string{"1", "2", "3", "2"}, loadMany)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(vals, wantVals) || !slices.Equal(found, wantFound) {
			t.Fatalf("call %d: got %q %v, want %q %v", i, vals, found, wantVals, wantFound)
		}
	}
	if len(batches) != 1 || len(batches[0]) != 3 {
		t.Fatalf("loads = %v, want one batch of the 3 distinct ids (then L1, then L2 on the other instance, 3 cached as missing)", batches)
	}
	if got := testutil.ToFloat64(b.metrics.requests.WithLabelValues("many", "l2", "hit")); got != 3 {
		t.Fatalf("b's l2 hits = %v, want 3", got)
	}
}

// TestHotKeyRefreshedBeforeExpiry: a key read continuously is reloaded in
// the background near the end of its TTL, so readers never miss.
func TestHotKeyRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{})
	e := Register[string](c, Spec{Name: "hot", Version: 1, TTL: 2 * time.Second, Jitter: 0.01})
	src := newSource()
	src.set("k", "v")
	src.delay = 20 * time.Millisecond
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) {
		get(t, e, src, "k")
		time.Sleep(5 * time.Millisecond)
	}
	misses := testutil.ToFloat64(c.metrics.requests.WithLabelValues("hot", "l1", "miss"))
	if misses != 1 {
		t.Fatalf("a key read every 5 ms for 2.5 TTLs missed L1 %v times, want 1 (the first read): not refreshed early", misses)
	}
	if n := src.reads.Load(); n < 3 {
		t.Fatalf("source read %d times in 2.5 TTLs, want at least 3 (refreshes)", n)
	}
}

// TestSlowChannelStopsL1: when Redis answers late (toxiproxy adds 1 s), the
// subscription stays up but this instance's heartbeats come back late, so
// it stops serving L1 (it could not hear another instance's write in
// time) and serves the source; when Redis is fast again L1 comes back.
func TestSlowChannelStopsL1(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	proxy := toxiproxy.NewProxy(toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		"redis", "127.0.0.1:0", srv.Addr)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	c := newCache(t, Options{Redis: openRedis(t, "redis://"+proxy.Listen)})
	waitReady(t, c)
	e := Register[string](c, Spec{Name: "slow", Version: 1, TTL: time.Hour})
	src := newSource()
	src.set("k", "v1")
	get(t, e, src, "k")
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(
		`{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":1000}}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("L1 still served 10 s into a 1 s Redis delay")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !c.subscribed.Load() {
		t.Fatal("the subscription dropped: this test is about a slow, not a broken, channel")
	}
	src.set("k", "v2") // as another instance's write whose invalidation is late
	start := time.Now()
	if v, _ := get(t, e, src, "k"); v != "v2" {
		t.Fatalf("served %q from L1 while the channel was late", v)
	}
	if took := time.Since(start); took >= time.Second {
		t.Fatalf("a read took %v: it waited on the slow Redis", took)
	}
	if err := proxy.Toxics.RemoveToxic(context.Background(), "slow"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c)
}
