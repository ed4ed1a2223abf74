// Package cache is million's two-level read cache, shared infrastructure
// that module stores wrap their read paths in without knowing which levels
// exist.
//
// L1 is in-process (otter, bounded by bytes). L2 is Redis, when configured:
// values are JSON envelopes under versioned keys ("v<version>:<entity>:<id>"),
// so a schema change, which bumps an entity's version, never reads old
// entries.
//
// Correctness rules, in order of priority:
//
//   - A write invalidates after its transaction commits: it deletes the L2
//     entries and broadcasts the keys over Redis pub/sub in one atomic
//     script; every instance drops its L1 entries and acknowledges. The write
//     returns once every receiver acknowledged, or after Options.Bound.
//     Instances only serve L1 while they hear the channel: every instance
//     publishes heartbeats carrying their send time on its own monotonic
//     clock, and uses L1 only while the newest of its own heartbeats it
//     received back was sent less than Bound ago. Pub/sub delivers in
//     order, so an instance that has not processed an invalidation by Bound
//     after it was published has not received any of its heartbeats sent
//     after it either, and has stopped serving L1 by then. No two clocks
//     are ever compared.
//     Hence: once a write returns, no instance serves the old value from L1.
//     When Redis does not take the message, Invalidate retries until its
//     context ends, then returns ErrNotInvalidated and keeps the message for
//     replay; this instance serves no cached value until it is replayed.
//     With a journal (Options.DB), Defer also records the invalidation in
//     the write's transaction, and any instance delivers what its writer
//     did not (journal.go).
//   - Losing the subscription (Redis down, connection broken) bumps the L1
//     era, which voids every L1 entry; it is bumped again on resubscribe.
//   - A load that raced with an invalidation never fills: L1 fills check a
//     per-key epoch under a shard lock, L2 fills check a per-key stamp that
//     invalidation increments (compare-and-set script).
//   - One load per key cluster-wide: local loads are coalesced (a miss only
//     joins a load that began after the key's latest invalidation here, and
//     none while L1 is unusable), and across instances a Redis lock (SET NX
//     PX) elects one loader; the others poll L2 for up to Options.LockWait,
//     then load themselves.
//   - Redis errors and timeouts (Options.L2Timeout) count towards a circuit
//     breaker; while it is open, L2 is skipped and reads go to the database.
package cache

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"

	"github.com/millionshop/million/sqldb"
)

// Options configures a Cache. Zero values mean the defaults.
type Options struct {
	// Redis is the L2 and the invalidation channel; nil means L1 only (one
	// embedded instance), where writes drop L1 entries synchronously.
	Redis rueidis.Client
	// Prefix namespaces every Redis key and channel; default "mc:".
	Prefix string
	// MaxBytes bounds L1 by the encoded size of its entries; default 64 MiB.
	MaxBytes int64
	// Bound is the invalidation bound: how long a write waits for
	// acknowledgements, and how old the newest heartbeat may be for an
	// instance to serve L1; default 200 ms.
	Bound time.Duration
	// L2Timeout bounds each Redis command of the read path; default 100 ms.
	L2Timeout time.Duration
	// LockWait bounds how long an instance waits for another one's load
	// before loading itself; default 1 s.
	LockWait time.Duration
	// DB holds the invalidation journal (Migrations); nil means none. With
	// it and Redis, Defer records invalidations in the write's transaction
	// and any instance delivers those their writer did not.
	DB *sqldb.DB
	// InvalidateWait bounds how long a write keeps trying to reach Redis
	// after its commit (Defer, and Invalidate with no deadline of its own);
	// the journal replay leaves a row alone for that long. Default
	// InvalidateTimeout.
	InvalidateWait time.Duration
	// ReplayEvery is how often the journal is replayed; default 1 s.
	ReplayEvery time.Duration
	// Registerer receives the cache metrics; nil means none.
	Registerer prometheus.Registerer
	// Logger reports Redis trouble; nil discards.
	Logger *slog.Logger
}

// Cache is the shared state of every entity: L1, the Redis side, metrics.
type Cache struct {
	opts    Options
	redis   rueidis.Client
	node    string
	l1      *otter.Cache[string, *entry]
	breaker *gobreaker.CircuitBreaker[any]
	metrics *metrics
	log     *slog.Logger
	flights singleflight.Group
	seed    maphash.Seed

	shards [256]shard
	// era voids every L1 entry filled before it changed; bumped when the
	// invalidation channel is lost and when it is regained.
	era atomic.Uint64
	// subscribed is true while the invalidation subscription is confirmed.
	subscribed atomic.Bool
	// lastBeat is the send time of the newest of this instance's own
	// heartbeats it received back, in ns since born on the monotonic
	// clock: only own heartbeats count, so no two clocks are compared.
	lastBeat atomic.Int64
	born     time.Time

	mu       sync.Mutex
	entities map[string]generational
	waiters  map[string]*ackWaiter
	pending  []message // invalidations Redis did not take; retried
	// pendingN is len(pending), read without the lock on every request.
	pendingN atomic.Int64

	stop chan struct{}
	done sync.WaitGroup
}

type shard struct {
	mu    sync.Mutex
	epoch uint64
}

// generational is what the Cache needs from a generational entity.
type generational interface {
	setGeneration(g uint64)
	resetGeneration(g uint64)
	bump()
	genKey() string
}

type entry struct {
	val     any // a *V into the same allocation (newValueEntry), or nil when not found
	found   bool
	expires time.Time
	delta   time.Duration // load time, for early refresh
	era     uint64
	gen     uint64
	weight  uint32
}

// valueEntry is an entry and its value in one allocation. A hit reads both,
// and over a large L1 (100,000 products) each separate allocation it has to
// reach is a likely CPU cache and TLB miss: a value boxed on its own into
// the entry's interface was one more for every hit.
type valueEntry[V any] struct {
	entry
	value V
}

// newValueEntry returns the entry of v, or of no value when not found,
// holding a found value in its own allocation; the caller sets the rest of
// its fields.
func newValueEntry[V any](v V, found bool) *entry {
	if !found {
		return &entry{}
	}
	ve := &valueEntry[V]{value: v}
	ve.val, ve.found = &ve.value, true
	return &ve.entry
}

// valueOf is the value of en, the zero V when it holds none.
func valueOf[V any](en *entry) V {
	if p, ok := en.val.(*V); ok {
		return *p
	}
	var zero V
	return zero
}

// New returns a cache; Close stops its background work.
func New(opts Options) (*Cache, error) {
	if opts.Prefix == "" {
		opts.Prefix = "mc:"
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.Bound <= 0 {
		opts.Bound = 200 * time.Millisecond
	}
	if opts.L2Timeout <= 0 {
		opts.L2Timeout = 100 * time.Millisecond
	}
	if opts.LockWait <= 0 {
		opts.LockWait = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.InvalidateWait <= 0 {
		opts.InvalidateWait = InvalidateTimeout
	}
	if opts.ReplayEvery <= 0 {
		opts.ReplayEvery = time.Second
	}
	l1, err := otter.New(&otter.Options[string, *entry]{
		MaximumWeight: uint64(opts.MaxBytes),
		Weigher:       func(k string, e *entry) uint32 { return uint32(len(k)) + e.weight + 64 },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *entry]) time.Duration {
			return max(time.Until(e.Value.expires), time.Millisecond)
		}),
	})
	if err != nil {
		return nil, err
	}
	c := &Cache{
		opts: opts, redis: opts.Redis, node: uuid.NewString(), l1: l1, log: opts.Logger, born: time.Now(),
		metrics: newMetrics(opts.Registerer), seed: maphash.MakeSeed(),
		entities: map[string]generational{}, waiters: map[string]*ackWaiter{}, stop: make(chan struct{}),
	}
	c.breaker = gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        "redis-cache",
		MaxRequests: 1,
		Timeout:     time.Second,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= 5 },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			c.log.Warn("cache redis breaker", "from", from.String(), "to", to.String())
			c.metrics.breaker.Set(float64(to))
		},
	})
	if c.redis != nil {
		c.done.Add(2)
		go c.subscribeLoop()
		go c.beatLoop()
	}
	if c.journaled() {
		c.done.Add(1)
		go c.replayLoop()
	}
	return c, nil
}

// Close stops the subscription and heartbeats. It does not close Redis.
func (c *Cache) Close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.done.Wait()
}

// Distributed reports whether the cache has an L2 and invalidation channel.
func (c *Cache) Distributed() bool { return c.redis != nil }

// Connected reports whether the cache hears the invalidation channel (always
// true without Redis): whether it serves from L1 now.
func (c *Cache) Connected() bool { return c.l1Usable() }

// l1Usable reports whether L1 may be served and filled now.
func (c *Cache) l1Usable() bool {
	if c.redis == nil {
		return true
	}
	if !c.subscribed.Load() || c.pendingN.Load() > 0 {
		// While an invalidation of this instance's own waits for replay,
		// the L2 may still hold what it invalidated: this instance uses
		// neither level until the replay, so it cannot serve or refill
		// that old copy.
		return false
	}
	return time.Since(c.born)-time.Duration(c.lastBeat.Load()) < c.opts.Bound
}

func (c *Cache) shardOf(key string) *shard {
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// dropL1 removes key from L1 and voids any load of it in flight.
func (c *Cache) dropL1(key string) {
	s := c.shardOf(key)
	s.mu.Lock()
	s.epoch++
	c.l1.Invalidate(key)
	s.mu.Unlock()
}

func (c *Cache) epochOf(key string) uint64 {
	s := c.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// fillL1 stores e unless key was invalidated since epoch was read.
func (c *Cache) fillL1(key string, epoch uint64, e *entry) {
	s := c.shardOf(key)
	s.mu.Lock()
	if s.epoch == epoch {
		c.l1.Set(key, e)
	}
	s.mu.Unlock()
}

// l2 runs fn against Redis through the breaker with the read-path timeout.
func (c *Cache) l2(ctx context.Context, fn func(ctx context.Context) error) error {
	return c.l2Within(ctx, c.opts.L2Timeout, fn)
}

// l2Within is l2 with another timeout: the loader's fill and unlock get
// the whole lock wait, since every waiter of the cluster depends on them.
func (c *Cache) l2Within(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	_, err := c.breaker.Execute(func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return nil, fn(ctx)
	})
	if err != nil {
		c.metrics.l2Errors.Inc()
	}
	return err
}

// envelope is an L2 value.
type envelope struct {
	Expires int64           `json:"e"` // unix ms
	Delta   int64           `json:"d"` // load time, µs
	Missing bool            `json:"n,omitempty"`
	Value   json.RawMessage `json:"v,omitempty"`
}

// Spec describes an entity.
type Spec struct {
	// Name appears in keys and metric labels: short, no colons.
	Name string
	// Version is the schema version of the cached value; bump it whenever
	// the value's encoding changes.
	Version int
	// TTL is the lifetime of a found value; each entry gets up to Jitter
	// more or less, so entries filled together do not expire together.
	TTL time.Duration
	// NegativeTTL is the lifetime of a not-found answer; default 10 s.
	NegativeTTL time.Duration
	// Jitter is the fraction of TTL added or removed at random; default 0.1.
	Jitter float64
	// Generational entities (lists, search results) are invalidated all at
	// once by InvalidateAll, which moves them to a new generation.
	Generational bool
}

// Entity is a typed view of the cache for one kind of value.
type Entity[V any] struct {
	c      *Cache
	spec   Spec
	gen    atomic.Uint64
	m      entityMetrics
	prefix string // of every key: "v<version>:<name>:"
}

// Register adds an entity. Register all entities before serving.
func Register[V any](c *Cache, spec Spec) *Entity[V] {
	if spec.NegativeTTL <= 0 {
		spec.NegativeTTL = 10 * time.Second
	}
	if spec.Jitter <= 0 {
		spec.Jitter = 0.1
	}
	e := &Entity[V]{c: c, spec: spec, m: c.metrics.entity(spec.Name),
		prefix: "v" + strconv.Itoa(spec.Version) + ":" + spec.Name + ":"}
	if spec.Generational {
		c.mu.Lock()
		c.entities[spec.Name] = e
		c.mu.Unlock()
		if c.redis != nil {
			e.fetchGeneration()
		}
	}
	return e
}

// setGeneration raises the generation to g, never lowers it: the writer's
// reply and the channel's messages of concurrent writes arrive in any
// order, and reading an older generation again would serve entries the
// newer one invalidated.
func (e *Entity[V]) setGeneration(g uint64) {
	for {
		old := e.gen.Load()
		if g <= old || e.gen.CompareAndSwap(old, g) {
			return
		}
	}
}

// resetGeneration sets the generation from Redis when the instance
// subscribes again: Redis may have restarted and counted from zero again,
// and the entries of this instance's own L1 are voided by the era then.
func (e *Entity[V]) resetGeneration(g uint64) { e.gen.Store(g) }

func (e *Entity[V]) bump() { e.gen.Add(1) }

func (e *Entity[V]) genKey() string {
	return e.c.opts.Prefix + "gen:v" + strconv.Itoa(e.spec.Version) + ":" + e.spec.Name
}

func (e *Entity[V]) fetchGeneration() {
	_ = e.c.l2(context.Background(), func(ctx context.Context) error {
		g, err := e.c.redis.Do(ctx, e.c.redis.B().Get().Key(e.genKey()).Build()).AsUint64()
		if rueidis.IsRedisNil(err) {
			g, err = 0, nil
		}
		if err == nil {
			e.gen.Store(g)
		}
		return err
	})
}

// Key returns the cache key of id (without the Redis prefix) in the
// current generation.
func (e *Entity[V]) Key(id string) string { return e.keyAt(id, e.gen.Load()) }

// keyAt is Key in generation gen: a read computes every key from the one
// generation it read, so an entry is never filed under another.
func (e *Entity[V]) keyAt(id string, gen uint64) string {
	if e.spec.Generational {
		return e.prefix + "g" + strconv.FormatUint(gen, 10) + ":" + id
	}
	return e.prefix + id
}

// TTL returns the configured lifetime of found values.
func (e *Entity[V]) TTL() time.Duration { return e.spec.TTL }

func (e *Entity[V]) ttlFor(found bool) time.Duration {
	ttl := e.spec.TTL
	if !found {
		ttl = e.spec.NegativeTTL
	}
	j := e.spec.Jitter * (2*rand.Float64() - 1)
	return time.Duration(float64(ttl) * (1 + j))
}

// l2Usable reports whether this entity may use Redis now: it must exist,
// and a generational entity must know the current generation, which it
// learns only through the subscription.
func (e *Entity[V]) l2Usable() bool {
	c := e.c
	if c.redis == nil || c.breaker.State() == gobreaker.StateOpen || c.pendingN.Load() > 0 {
		return false
	}
	// A generational entity must know the current generation, which it
	// learns through the channel: same rule as serving L1.
	return !e.spec.Generational || c.l1Usable()
}

// Loader reads the value of one id from the source of truth; found=false
// means it does not exist (cached for NegativeTTL).
type Loader[V any] func(ctx context.Context) (v V, found bool, err error)

// Get returns the value of id from L1, L2 or load, in that order.
//
// Concurrent misses of one key share one load, but only loads that began
// after the latest invalidation of the key this instance applied: the
// flight is named after the key's shard epoch and the L1 era, so a read
// that starts after a write returned never gets the result of a load that
// read the row before the write committed. While L1 is unusable this
// instance may not have heard another instance's write, so nothing is
// shared then.
func (e *Entity[V]) Get(ctx context.Context, id string, load Loader[V]) (V, bool, error) {
	c := e.c
	var zero V
	gen := e.gen.Load()
	key := e.keyAt(id, gen)
	// The era is read before the epoch (in fillPoint), and the epoch only
	// on a miss: a hit takes no lock.
	at := fillPoint{useL1: c.l1Usable(), era: c.era.Load()}
	if at.useL1 {
		if en, ok := c.l1.GetIfPresent(key); ok && en.era == at.era && en.gen == gen && time.Now().Before(en.expires) {
			e.m.hitL1()
			e.maybeRefresh(key, en, load)
			return valueOf[V](en), en.found, nil
		}
		e.m.missL1()
	}
	at.epoch = c.epochOf(key)
	if !at.useL1 {
		en, err := e.fetch(ctx, key, gen, at, load, nil)
		if err != nil {
			return zero, false, err
		}
		return valueOf[V](en), en.found, nil
	}
	flight := key + "\x00" + strconv.FormatUint(at.era, 36) + ":" + strconv.FormatUint(at.epoch, 36)
	ch := c.flights.DoChan(flight, func() (any, error) {
		// The load is shared by every caller waiting on it: one caller
		// giving up must not fail the others.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return e.fetch(ctx, key, gen, at, load, nil)
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return zero, false, ctx.Err()
	}
	if res.Err != nil {
		return zero, false, res.Err
	}
	en := res.Val.(*entry)
	return valueOf[V](en), en.found, nil
}

// fillPoint is what a fill of L1 is checked against: whether L1 was usable
// when the read began, the era, and the key's shard epoch then.
type fillPoint struct {
	useL1      bool
	era, epoch uint64
}

// snapshot reads the fill point of key. The era is read before the epoch:
// both only grow, and a fill is refused when either moved.
func (c *Cache) snapshot(key string) fillPoint {
	useL1 := c.l1Usable()
	era := c.era.Load()
	return fillPoint{useL1: useL1, era: era, epoch: c.epochOf(key)}
}

// maybeRefresh refreshes a hot entry in the last tenth of its lifetime,
// with a probability that grows as expiry nears and with the load time
// (XFetch), and at the latest when four load times remain, so one request
// reloads it while the others keep hitting and a hot key never expires
// under load (XFetch alone leaves it about one chance in five to start too
// late to finish in time).
func (e *Entity[V]) maybeRefresh(key string, en *entry, load Loader[V]) {
	remaining := time.Until(en.expires)
	if remaining > e.spec.TTL/10 {
		// Only in the last tenth of the lifetime: a slow load (a loaded
		// database) must not turn every fresh entry into a refresh.
		return
	}
	delta := max(en.delta, time.Millisecond)
	if remaining > 4*delta && float64(delta)*-math.Log(1-rand.Float64()) < float64(remaining) {
		return
	}
	gen := en.gen
	go func() {
		_, _, _ = e.c.flights.Do("refresh:"+key, func() (any, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return e.fetch(ctx, key, gen, e.c.snapshot(key), load, en)
		})
	}()
}

// fetch is the miss path of one key, run once per instance at a time.
// With refresh (the entry being refreshed early) it skips the L2 copy of
// that same entry and gives up when another instance holds the lock.
func (e *Entity[V]) fetch(ctx context.Context, key string, gen uint64, at fillPoint, load Loader[V], refresh *entry) (*entry, error) {
	c := e.c
	fill := func(en *entry) *entry {
		en.era, en.gen = at.era, gen
		if at.useL1 {
			c.fillL1(key, at.epoch, en)
		}
		return en
	}
	if !e.l2Usable() {
		en, _, err := e.load(ctx, load)
		if err != nil {
			return nil, err
		}
		return fill(en), nil
	}
	rkey := c.opts.Prefix + key
	if refresh == nil {
		if en, ok := e.readL2(ctx, rkey); ok {
			return fill(en), nil
		}
	}
	// Elect one loader cluster-wide; read the stamp in the same round trip,
	// so the fill can tell whether a write came in between. The others poll
	// L2 and retry the lock (a holder that died frees it at its expiry);
	// a failed attempt is retried once, since one slow round trip must not
	// turn into a database query. An open breaker, a second failure in a
	// row (Redis is slow: waiting out LockWait would hold the read for a
	// second, and the breaker's count may be reset meanwhile by a command
	// with a longer timeout that got through) or the wait bound makes an
	// instance load without the lock.
	token := c.node + ":" + strconv.FormatInt(rand.Int64(), 36)
	locked, stamp, found, lockErr := e.lock(ctx, rkey, token)
	if refresh != nil {
		switch {
		case found != nil && found.expires.After(refresh.expires):
			// Another instance refreshed it already: take its value.
			if locked {
				e.unlock(rkey, token)
			}
			return fill(found), nil
		case lockErr != nil || !locked:
			return nil, nil // another instance is refreshing it
		}
		found = nil // the L2 copy is the one being refreshed
	}
	deadline := time.Now().Add(c.opts.LockWait)
	failures := 0
	for {
		if found != nil {
			if locked {
				e.unlock(rkey, token)
			}
			e.m.hitL2()
			return fill(found), nil
		}
		if locked {
			break
		}
		if !e.l2Usable() {
			break
		}
		if lockErr != nil {
			if failures++; failures >= 2 {
				break
			}
		} else {
			failures = 0
		}
		if time.Now().After(deadline) {
			c.metrics.lockTimeouts.WithLabelValues(e.spec.Name).Inc()
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		locked, stamp, found, lockErr = e.lock(ctx, rkey, token)
	}
	en, body, err := e.load(ctx, load)
	if err != nil {
		if locked {
			e.unlock(rkey, token)
		}
		return nil, err
	}
	if lockErr == nil {
		e.writeL2(rkey, stamp, body, en)
	}
	if locked {
		e.unlock(rkey, token)
	}
	return fill(en), nil
}

// load calls the loader and builds the entry and its L2 envelope.
func (e *Entity[V]) load(ctx context.Context, load Loader[V]) (*entry, []byte, error) {
	c := e.c
	start := time.Now()
	v, found, err := load(ctx)
	took := time.Since(start)
	c.metrics.loads.WithLabelValues(e.spec.Name, outcome(err)).Inc()
	c.metrics.loadDur.WithLabelValues(e.spec.Name).Observe(took.Seconds())
	if err != nil {
		return nil, nil, err
	}
	return e.newEntry(v, found, start, took)
}

// newEntry builds the entry of a value loaded at start in took, and its L2
// envelope, whose size is also the entry's weight in L1.
func (e *Entity[V]) newEntry(v V, found bool, start time.Time, took time.Duration) (*entry, []byte, error) {
	en := newValueEntry(v, found)
	en.expires, en.delta = start.Add(e.ttlFor(found)), took
	env := envelope{Expires: en.expires.UnixMilli(), Delta: took.Microseconds(), Missing: !found}
	if found {
		var err error
		if env.Value, err = json.Marshal(v); err != nil {
			return nil, nil, err
		}
	}
	body, err := json.Marshal(env)
	if err != nil {
		return nil, nil, err
	}
	en.weight = uint32(min(len(body), math.MaxUint32/2))
	return en, body, nil
}

func outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// readL2 returns the L2 entry of rkey, if any and still fresh.
func (e *Entity[V]) readL2(ctx context.Context, rkey string) (*entry, bool) {
	c := e.c
	var body []byte
	err := c.l2(ctx, func(ctx context.Context) error {
		b, err := c.redis.Do(ctx, c.redis.B().Get().Key(rkey).Build()).AsBytes()
		if rueidis.IsRedisNil(err) {
			return nil
		}
		body = b
		return err
	})
	if err != nil || body == nil {
		e.m.missL2()
		return nil, false
	}
	en, ok := e.decode(body)
	if !ok {
		e.m.missL2()
		return nil, false
	}
	e.m.hitL2()
	return en, true
}

func (e *Entity[V]) decode(body []byte) (*entry, bool) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, false
	}
	expires := time.UnixMilli(env.Expires)
	if !time.Now().Before(expires) {
		return nil, false
	}
	var v V
	if !env.Missing {
		if err := json.Unmarshal(env.Value, &v); err != nil {
			return nil, false
		}
	}
	en := newValueEntry(v, !env.Missing)
	en.expires, en.delta = expires, time.Duration(env.Delta)*time.Microsecond
	en.weight = uint32(min(len(body), math.MaxUint32/2))
	return en, true
}

func (c *Cache) stampKey(rkey string) string { return c.opts.Prefix + "s:" + rkey }
func (c *Cache) lockKey(rkey string) string  { return c.opts.Prefix + "l:" + rkey }

// lock tries to take the load lock of rkey, and in the same round trip
// reads its stamp and its value: a loader that finished between this
// instance's L2 miss and its lock attempt has filled L2 and released the
// lock, and its value must be used rather than loaded again.
func (e *Entity[V]) lock(ctx context.Context, rkey, token string) (locked bool, stamp string, found *entry, err error) {
	c := e.c
	lockTTL := 2 * c.opts.LockWait
	var body []byte
	err = c.l2(ctx, func(ctx context.Context) error {
		res := c.redis.DoMulti(ctx,
			c.redis.B().Set().Key(c.lockKey(rkey)).Value(token).Nx().PxMilliseconds(lockTTL.Milliseconds()).Build(),
			c.redis.B().Get().Key(c.stampKey(rkey)).Build(),
			c.redis.B().Get().Key(rkey).Build())
		if err := res[0].Error(); err != nil && !rueidis.IsRedisNil(err) {
			return err
		}
		locked = res[0].Error() == nil
		s, err := res[1].ToString()
		if rueidis.IsRedisNil(err) {
			s, err = "", nil
		}
		if err != nil {
			return err
		}
		stamp = s
		b, err := res[2].AsBytes()
		if rueidis.IsRedisNil(err) {
			return nil
		}
		body = b
		return err
	})
	if err == nil && body != nil {
		found, _ = e.decode(body)
	}
	return locked, stamp, found, err
}

var unlockScript = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

func (e *Entity[V]) unlock(rkey, token string) {
	c := e.c
	_ = c.l2Within(context.Background(), c.opts.LockWait, func(ctx context.Context) error {
		return unlockScript.Exec(ctx, c.redis, []string{c.lockKey(rkey)}, []string{token}).Error()
	})
}

// fillScript sets KEYS[1] only if the stamp KEYS[2] is still ARGV[1]: an
// invalidation since the stamp was read means the loaded value may be old.
var fillScript = rueidis.NewLuaScript(`
local s = redis.call('GET', KEYS[2]) or ''
if s ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

func (e *Entity[V]) writeL2(rkey, stamp string, body []byte, en *entry) {
	c := e.c
	ttl := time.Until(en.expires).Milliseconds()
	if ttl <= 0 {
		return
	}
	_ = c.l2Within(context.Background(), c.opts.LockWait, func(ctx context.Context) error {
		return fillScript.Exec(ctx, c.redis, []string{rkey, c.stampKey(rkey)},
			[]string{stamp, string(body), strconv.FormatInt(ttl, 10)}).Error()
	})
}

// GetMany returns the values of ids, in their order: vals[i] is the value
// of ids[i] when found[i] (a duplicate id gets the same value at each of
// its places). Hits come from L1 and L2; the misses are loaded with one
// call of load (not coalesced across instances: batches are list, cart and
// search pages, not hot single keys). An all-hit call, a cached list page,
// builds no map.
func (e *Entity[V]) GetMany(ctx context.Context, ids []string, load func(ctx context.Context, ids []string) (map[string]V, error)) (vals []V, found []bool, err error) {
	c := e.c
	vals, found = make([]V, len(ids)), make([]bool, len(ids))
	gen := e.gen.Load()
	era := c.era.Load()
	useL1 := c.l1Usable()
	var misses []int // places in ids
	now := time.Now()
	for i, id := range ids {
		if useL1 {
			if en, ok := c.l1.GetIfPresent(e.keyAt(id, gen)); ok && en.era == era && en.gen == gen && now.Before(en.expires) {
				e.m.hitL1()
				if en.found {
					vals[i], found[i] = valueOf[V](en), true
				}
				continue
			}
			e.m.missL1()
		}
		misses = append(misses, i)
	}
	if len(misses) == 0 {
		return vals, found, nil
	}
	// The distinct missing ids, each looked up and loaded once, and the
	// places of each.
	places := make(map[string][]int, len(misses))
	var missing []string
	for _, i := range misses {
		id := ids[i]
		if _, dup := places[id]; !dup {
			missing = append(missing, id)
		}
		places[id] = append(places[id], i)
	}
	set := func(id string, v V) {
		for _, i := range places[id] {
			vals[i], found[i] = v, true
		}
	}
	epochs := make([]uint64, len(missing))
	for i, id := range missing {
		epochs[i] = c.epochOf(e.keyAt(id, gen))
	}
	fill := func(i int, en *entry) {
		en.era, en.gen = era, gen
		if useL1 {
			c.fillL1(e.keyAt(missing[i], gen), epochs[i], en)
		}
	}
	stamps := make([]string, len(missing))
	l2ok := false
	if e.l2Usable() {
		rkeys := make([]string, len(missing))
		skeys := make([]string, len(missing))
		for i, id := range missing {
			rkeys[i] = c.opts.Prefix + e.keyAt(id, gen)
			skeys[i] = c.stampKey(rkeys[i])
		}
		var bodies, stampVals []rueidis.RedisMessage
		err := c.l2(ctx, func(ctx context.Context) error {
			res := c.redis.DoMulti(ctx, c.redis.B().Mget().Key(rkeys...).Build(), c.redis.B().Mget().Key(skeys...).Build())
			var err error
			if bodies, err = res[0].ToArray(); err != nil {
				return err
			}
			stampVals, err = res[1].ToArray()
			return err
		})
		if err == nil && len(bodies) == len(missing) && len(stampVals) == len(missing) {
			l2ok = true
			var still []string
			var stillEpochs []uint64
			var stillStamps []string
			for i, id := range missing {
				if b, err := bodies[i].AsBytes(); err == nil {
					if en, ok := e.decode(b); ok {
						e.m.hitL2()
						fill(i, en)
						if en.found {
							set(id, valueOf[V](en))
						}
						continue
					}
				}
				e.m.missL2()
				s, _ := stampVals[i].ToString()
				still, stillEpochs, stillStamps = append(still, id), append(stillEpochs, epochs[i]), append(stillStamps, s)
			}
			missing, epochs, stamps = still, stillEpochs, stillStamps
		}
	}
	if len(missing) == 0 {
		return vals, found, nil
	}
	start := time.Now()
	loaded, err := load(ctx, missing)
	took := time.Since(start)
	c.metrics.loads.WithLabelValues(e.spec.Name, outcome(err)).Inc()
	c.metrics.loadDur.WithLabelValues(e.spec.Name).Observe(took.Seconds())
	if err != nil {
		return nil, nil, err
	}
	for i, id := range missing {
		v, ok := loaded[id]
		if ok {
			set(id, v)
		}
		en, body, err := e.newEntry(v, ok, start, took)
		if err != nil {
			return nil, nil, err
		}
		fill(i, en)
		if l2ok {
			e.writeL2(c.opts.Prefix+e.keyAt(id, gen), stamps[i], body, en)
		}
	}
	return vals, found, nil
}

// Target is one part of an invalidation: some keys of an entity, or every
// entry of a generational entity. A write that changes several things sends
// them as one message (Cache.Invalidate), so it waits for one round of
// acknowledgements, not one per thing.
type Target struct {
	name string
	keys []string
	all  generational // set when the whole entity moves generation
}

// Keys is the target of ids' entries.
func (e *Entity[V]) Keys(ids ...string) Target {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = e.Key(id)
	}
	return Target{name: e.spec.Name, keys: keys}
}

// All is the target of every entry of a generational entity: it moves to a
// new generation, so every entry of the old one is unreachable.
func (e *Entity[V]) All() Target { return Target{name: e.spec.Name, all: e} }

// Invalidate drops ids everywhere: L2 and every instance's L1. See
// Cache.Invalidate.
func (e *Entity[V]) Invalidate(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return e.c.Invalidate(ctx, e.Keys(ids...))
}

// InvalidateAll moves a generational entity to a new generation: every
// entry of the old one is unreachable on every instance. See
// Cache.Invalidate.
func (e *Entity[V]) InvalidateAll(ctx context.Context) error {
	return e.c.Invalidate(ctx, e.All())
}

// Invalidate drops targets everywhere, in one message. Call it after the
// write commits (sqldb.AfterCommit). It returns nil once every instance
// acknowledged or Options.Bound passed, after which no instance serves the
// old values. When Redis does not take the message it keeps trying until
// ctx ends (InvalidateTimeout when ctx has no deadline), then returns an
// error: the write is committed, but other instances may serve the old
// values until the message is replayed (it is kept, and this instance
// serves no cached value meanwhile) or their TTL ends. It is logged at
// error level and counted in million_cache_invalidation_failures_total.
func (c *Cache) Invalidate(ctx context.Context, targets ...Target) error {
	var m message
	seen := map[string]bool{}
	for _, t := range targets {
		n := 0
		for _, k := range t.keys {
			if seen[k] {
				continue
			}
			seen[k] = true
			c.dropL1(k)
			m.Keys = append(m.Keys, k)
			n++
		}
		if n > 0 {
			c.metrics.invalidations.WithLabelValues(t.name, "key").Add(float64(n))
		}
		if t.all != nil {
			if seen["\x00all:"+t.name] {
				continue
			}
			seen["\x00all:"+t.name] = true
			c.metrics.invalidations.WithLabelValues(t.name, "all").Inc()
			if c.redis == nil {
				t.all.bump()
				continue
			}
			// The generation is Redis' counter; the broadcast script
			// increments it and every instance, this one included, learns
			// the new number from the message before acknowledging.
			m.Entities = append(m.Entities, t.name)
		}
	}
	if len(m.Keys) == 0 && len(m.Entities) == 0 {
		return nil
	}
	return c.broadcast(ctx, m)
}
