package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/millionshop/million/redistest"
)

// gate is a load that read its row before a write committed and returns
// after it: started is closed once it has read, and it returns only when
// release is closed.
type gate struct {
	started, release chan struct{}
	once, rel        sync.Once
}

func newGate() *gate { return &gate{started: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) open() { g.rel.Do(func() { close(g.release) }) }

func (g *gate) loader(src *source, id string) Loader[string] {
	return func(ctx context.Context) (string, bool, error) {
		src.mu.Lock()
		v, ok := src.val[id]
		src.mu.Unlock()
		g.once.Do(func() { close(g.started) })
		<-g.release
		return v, ok, nil
	}
}

func (g *gate) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first load never started")
	}
}

// readAfterWriteNeverJoinsOlderLoad is the rename scenario: a load of the
// user is in flight, the rename commits and invalidates, and the rename's
// own response reads the user: it must see the new name, not the result of
// the load that began before the write.
func readAfterWriteNeverJoinsOlderLoad(t *testing.T, e *Entity[string]) {
	ctx := context.Background()
	src := newSource()
	src.set("u", "old name")
	g := newGate()
	t.Cleanup(g.open)
	first := make(chan string, 1)
	go func() {
		v, _, _ := e.Get(ctx, "u", g.loader(src, "u"))
		first <- v
	}()
	g.waitStarted(t)
	src.set("u", "new name")
	if err := e.Invalidate(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	after := make(chan string, 1)
	go func() {
		v, _, err := e.Get(ctx, "u", src.loader("u"))
		if err != nil {
			v = "error: " + err.Error()
		}
		after <- v
	}()
	var v string
	select {
	case v = <-after:
	case <-time.After(5 * time.Second):
		g.open() // it joined the old load: let it finish to show what it got
		v = <-after
	}
	if v != "new name" {
		t.Fatalf("a read started after the write returned got %q, want %q", v, "new name")
	}
	g.open()
	<-first
	// The old load must not have filled anything either.
	if v, _, _ := e.Get(ctx, "u", src.loader("u")); v != "new name" {
		t.Fatalf("after both loads the cache serves %q", v)
	}
}

func TestReadAfterWriteNeverJoinsOlderLoadL1(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{})
	readAfterWriteNeverJoinsOlderLoad(t, Register[string](c, Spec{Name: "user", Version: 1, TTL: time.Hour}))
}

func TestReadAfterWriteNeverJoinsOlderLoadRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	waitReady(t, c)
	readAfterWriteNeverJoinsOlderLoad(t, Register[string](c, Spec{Name: "user", Version: 1, TTL: time.Hour}))
}

// A caller waiting on another caller's load gives up when its own context
// ends; the load goes on for the others.
func TestGetWaitingOnFlightHonoursContext(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{})
	e := Register[string](c, Spec{Name: "slow", Version: 1, TTL: time.Hour})
	src := newSource()
	src.set("k", "v")
	g := newGate()
	t.Cleanup(g.open)
	first := make(chan string, 1)
	go func() {
		v, _, _ := e.Get(context.Background(), "k", g.loader(src, "k"))
		first <- v
	}()
	g.waitStarted(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, _, err := e.Get(ctx, "k", src.loader("k"))
		got <- err
	}()
	select {
	case err := <-got:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the caller's deadline", err)
		}
	case <-time.After(5 * time.Second):
		g.open()
		t.Fatal("a caller whose context ended still waited on another caller's load")
	}
	g.open()
	if v := <-first; v != "v" {
		t.Fatalf("the shared load returned %q to its first caller", v)
	}
}

// The generation an instance reads with only ever moves forward, however
// the writers' replies and the channel's messages interleave.
func TestGenerationNeverGoesBackwards(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var ents []*Entity[string]
	for range 2 {
		c := newCache(t, Options{Redis: openRedis(t, srv.URL())})
		waitReady(t, c)
		ents = append(ents, Register[string](c, Spec{Name: "list", Version: 1, TTL: time.Hour, Generational: true}))
	}
	stop := make(chan struct{})
	var backwards atomic.Int64
	var watchers sync.WaitGroup
	for _, e := range ents {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			last := e.gen.Load()
			for {
				select {
				case <-stop:
					return
				default:
				}
				g := e.gen.Load()
				if g < last {
					backwards.Add(1)
				}
				last = g
			}
		}()
	}
	var writers sync.WaitGroup
	for i := range 6 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for range 150 {
				if err := ents[i%2].InvalidateAll(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	watchers.Wait()
	if n := backwards.Load(); n > 0 {
		t.Fatalf("the generation went backwards %d times", n)
	}
	// An attempt that timed out on a loaded machine may have run and be
	// retried: Redis' counter is at least the number of writes, and every
	// instance ends on it.
	r := openRedis(t, srv.URL())
	want, err := r.Do(context.Background(), r.B().Get().Key(ents[0].genKey()).Build()).AsUint64()
	if err != nil || want < 900 {
		t.Fatalf("Redis' generation %d, %v; want at least 900", want, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i, e := range ents {
		for e.gen.Load() != want { // an acknowledgement may come after the bound
			if time.Now().After(deadline) {
				t.Fatalf("instance %d ends at generation %d, want Redis' %d", i, e.gen.Load(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// cutProxy puts a toxiproxy between a cache and Redis, so one instance can
// lose Redis while the others keep it.
func cutProxy(t *testing.T, addr string) *toxiproxy.Proxy {
	t.Helper()
	proxy := toxiproxy.NewProxy(toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		"redis", "127.0.0.1:0", addr)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	return proxy
}

// A writer that cannot reach Redis keeps trying within its deadline: when
// Redis comes back in time the write returns only once the other instances
// dropped the old value.
func TestInvalidateRetriesUntilRedisTakesIt(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	proxy := cutProxy(t, srv.Addr)
	a := newCache(t, Options{Redis: openRedis(t, "redis://"+proxy.Listen)})
	b := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	waitReady(t, a)
	waitReady(t, b)
	ea := Register[string](a, Spec{Name: "p", Version: 1, TTL: time.Hour})
	eb := Register[string](b, Spec{Name: "p", Version: 1, TTL: time.Hour})
	src := newSource()
	src.set("k", "old")
	get(t, ea, src, "k")
	get(t, eb, src, "k")
	proxy.Stop()
	src.set("k", "new") // the writer's transaction commits
	go func() {
		time.Sleep(time.Second)
		_ = proxy.Start()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ea.Invalidate(ctx, "k"); err != nil {
		t.Fatalf("invalidate with Redis back within the deadline: %v", err)
	}
	if v, _ := get(t, eb, src, "k"); v != "new" {
		t.Fatalf("another instance served %q after the write returned", v)
	}
}

// A writer that cannot reach Redis within its deadline says so: the error,
// the metric, and no cached value served by it until the invalidation is
// replayed, after which the other instances drop the old value too.
func TestInvalidateNotDeliveredIsReportedAndReplayed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	proxy := cutProxy(t, srv.Addr)
	a := newCache(t, Options{Redis: openRedis(t, "redis://"+proxy.Listen)})
	b := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	waitReady(t, a)
	waitReady(t, b)
	ea := Register[string](a, Spec{Name: "p", Version: 1, TTL: time.Hour})
	eb := Register[string](b, Spec{Name: "p", Version: 1, TTL: time.Hour})
	src := newSource()
	src.set("k", "old")
	get(t, ea, src, "k")
	get(t, eb, src, "k")
	proxy.Stop()
	src.set("k", "new")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	err := ea.Invalidate(ctx, "k")
	if !errors.Is(err, ErrNotInvalidated) {
		t.Fatalf("invalidate with Redis unreachable: %v, want ErrNotInvalidated", err)
	}
	if took := time.Since(start); took < 900*time.Millisecond || took > 5*time.Second {
		t.Fatalf("invalidate gave up after %v, want about its 1 s deadline", took)
	}
	if n := testutil.ToFloat64(a.metrics.invalidationFailures); n != 1 {
		t.Fatalf("failures metric %v, want 1", n)
	}
	if a.Connected() {
		t.Fatal("the writer serves its L1 with an invalidation pending")
	}
	before := src.reads.Load()
	if v, _ := get(t, ea, src, "k"); v != "new" || src.reads.Load() != before+1 {
		t.Fatalf("the writer served %q (reads %d→%d), want the source's value", v, before, src.reads.Load())
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, a) // subscribed again and the pending invalidation replayed
	if v, _ := get(t, eb, src, "k"); v != "new" {
		t.Fatalf("another instance served %q after the replay", v)
	}
}

// One write's changes travel as one message: the receivers apply one
// message and the writer waits for one round of acknowledgements.
func TestInvalidateManyTargetsOneMessage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	b := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	waitReady(t, a)
	waitReady(t, b)
	pa := Register[string](a, Spec{Name: "p", Version: 1, TTL: time.Hour})
	la := Register[string](a, Spec{Name: "l", Version: 1, TTL: time.Hour, Generational: true})
	pb := Register[string](b, Spec{Name: "p", Version: 1, TTL: time.Hour})
	lb := Register[string](b, Spec{Name: "l", Version: 1, TTL: time.Hour, Generational: true})
	src := newSource()
	for _, id := range []string{"x", "y", "z"} {
		src.set(id, "old")
		get(t, pb, src, id)
	}
	src.set("page", "old page")
	get(t, lb, src, "page")
	for _, id := range []string{"x", "y", "z"} {
		src.set(id, "new")
	}
	src.set("page", "new page")
	if err := a.Invalidate(context.Background(), pa.Keys("x", "y", "z"), la.All()); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(b.metrics.received); n != 1 {
		t.Fatalf("the receiver applied %v messages, want 1", n)
	}
	for _, id := range []string{"x", "y", "z"} {
		if v, _ := get(t, pb, src, id); v != "new" {
			t.Fatalf("%s: %q after the write", id, v)
		}
	}
	if v, _ := get(t, lb, src, "page"); v != "new page" {
		t.Fatalf("list page %q after the write", v)
	}
	if la.gen.Load() != 1 || lb.gen.Load() != 1 {
		t.Fatalf("generations %d and %d, want 1", la.gen.Load(), lb.gen.Load())
	}
}

// However many instances acknowledge, every acknowledgement counts: with
// more receivers than any fixed buffer, none is dropped and the writer does
// not wait out the bound.
func TestAcknowledgementsAreNeverDropped(t *testing.T) {
	t.Parallel()
	c := newCache(t, Options{})
	w := &ackWaiter{wake: make(chan struct{}, 1)}
	c.mu.Lock()
	c.waiters["m1"] = w
	c.mu.Unlock()
	const receivers = 500
	for range receivers { // all arrive before the writer starts waiting
		c.onMessage(rueidis.PubSubMessage{Channel: c.ackChannel("writer"), Message: "m1"})
	}
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	if got := w.wait(receivers, timer.C); got != receivers {
		t.Fatalf("counted %d acknowledgements of %d", got, receivers)
	}
}

// While an invalidation of its own waits for replay, an instance that still
// hears the channel serves neither its L1 nor the L2 (which may still hold
// the old value); the replay on a heartbeat tick brings both back.
func TestPendingInvalidationStopsCachingUntilReplayed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCache(t, Options{Redis: openRedis(t, srv.URL())})
	waitReady(t, c)
	e := Register[string](c, Spec{Name: "p", Version: 1, TTL: time.Hour})
	src := newSource()
	src.set("k", "old")
	get(t, e, src, "k") // in L1 and L2
	src.set("k", "new")
	// As a write whose invalidation Redis did not take: its own L1 entry is
	// dropped, the message kept.
	c.dropL1(e.Key("k"))
	c.keep(message{Node: c.node, Keys: []string{e.Key("k")}})
	if c.Connected() {
		t.Fatal("the instance serves its L1 with an invalidation pending")
	}
	if v, _ := get(t, e, src, "k"); v != "new" {
		t.Fatalf("served %q with an invalidation pending: the old L2 entry", v)
	}
	waitReady(t, c) // the beat loop replayed it
	before := src.reads.Load()
	if v, _ := get(t, e, src, "k"); v != "new" {
		t.Fatalf("served %q after the replay", v)
	}
	if v, _ := get(t, e, src, "k"); v != "new" || src.reads.Load() != before+1 {
		t.Fatalf("after the replay: %q, %d loads for two reads; want the cache back (one load)", v, src.reads.Load()-before)
	}
}
