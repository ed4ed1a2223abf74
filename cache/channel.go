package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"
)

// message is what travels on the invalidation channel: keys to drop and
// generational entities that moved (with their new generations).
type message struct {
	Node     string   `json:"n,omitempty"`
	ID       string   `json:"m,omitempty"`
	Keys     []string `json:"k,omitempty"`
	Entities []string `json:"e,omitempty"`
	Gens     []uint64 `json:"g,omitempty"`
}

// beat records one of this instance's heartbeats coming back. They travel
// on its own channel, on the same connection as the invalidations, and
// Redis writes a subscriber's messages in the order it ran the PUBLISHes.
func (c *Cache) beat(sent string) {
	ns, err := strconv.ParseInt(sent, 10, 64)
	if err != nil {
		return
	}
	for {
		old := c.lastBeat.Load()
		if ns <= old || c.lastBeat.CompareAndSwap(old, ns) {
			return
		}
	}
}

// maxPending bounds the invalidations kept for retry while Redis is away.
const maxPending = 10_000

func (c *Cache) channel() string               { return c.opts.Prefix + "inv" }
func (c *Cache) ackChannel(node string) string { return c.opts.Prefix + "ack:" + node }

// broadcastScript deletes the L2 entries, bumps their stamps (so fills
// racing with this write are refused), frees their load locks (a loader
// that began before the write cannot fill, and the instances waiting for it
// must load the new value now rather than after the lock wait) and bumps
// the generations, then publishes the message, all in one atomic step: a
// receiver that drops its L1 entry and reloads can only find the new value
// in L2.
// KEYS: data keys, stamp keys, lock keys, generation keys. ARGV: number of
// data keys, channel, message prefix (JSON up to "g":).
var broadcastScript = rueidis.NewLuaScript(`
local n = tonumber(ARGV[1])
for i = 1, n do
  redis.call('DEL', KEYS[i], KEYS[2 * n + i])
  redis.call('INCR', KEYS[n + i])
  redis.call('PEXPIRE', KEYS[n + i], 3600000)
end
local gens = {}
for i = 3 * n + 1, #KEYS do
  gens[#gens + 1] = redis.call('INCR', KEYS[i])
end
local msg = ARGV[3] .. '[' .. table.concat(gens, ',') .. ']}'
local receivers = redis.call('PUBLISH', ARGV[2], msg)
local out = {receivers}
for i = 1, #gens do out[#out + 1] = gens[i] end
return out`)

// InvalidateTimeout bounds how long an invalidation keeps trying to reach
// Redis when its context has no deadline of its own.
const InvalidateTimeout = 5 * time.Second

// ErrNotInvalidated wraps the error of an invalidation Redis never took.
var ErrNotInvalidated = errors.New("cache: invalidation not delivered")

// broadcast runs the invalidation on Redis and waits for acknowledgements.
// Without Redis the caller has already dropped its own L1, which is all
// there is. When Redis does not take it, it is retried until ctx ends (and
// at least twice); then it is kept for replay, this instance stops serving
// cached values until the replay succeeds, and the caller gets an error.
func (c *Cache) broadcast(ctx context.Context, m message) error {
	if c.redis == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.InvalidateWait)
		defer cancel()
	}
	m.Node = c.node
	wait := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.send(ctx, m)
		if err == nil {
			return nil
		}
		if attempt >= 2 && ctx.Err() != nil {
			c.keep(m)
			c.metrics.invalidationFailures.Inc()
			c.log.Error("cache invalidation not delivered: other instances may serve the old values until it is replayed or their TTL ends",
				"err", err, "keys", m.Keys, "entities", m.Entities, "attempts", attempt)
			return fmt.Errorf("%w after %d attempts: %w", ErrNotInvalidated, attempt, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// keep queues m for replay; this instance serves no cached value while any
// is queued (see l1Usable).
func (c *Cache) keep(m message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) >= maxPending {
		// Keep the newest: an L2 entry outlives its TTL by nothing, so
		// the oldest lost invalidations are the first to stop mattering.
		c.pending = c.pending[1:]
	}
	c.pending = append(c.pending, m)
	c.pendingN.Store(int64(len(c.pending)))
}

// ackWaiter counts the acknowledgements of one message. It never drops
// one, however many instances there are: a count plus a wake-up channel of
// one slot, rather than a slot per acknowledgement.
type ackWaiter struct {
	n    atomic.Int64
	wake chan struct{}
}

func (w *ackWaiter) ack() {
	w.n.Add(1)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// wait returns the number of acknowledgements once there are want of
// them, or when the timer fires.
func (w *ackWaiter) wait(want int, deadline <-chan time.Time) int {
	for {
		if got := int(w.n.Load()); got >= want {
			return got
		}
		select {
		case <-w.wake:
		case <-deadline:
			return int(w.n.Load())
		}
	}
}

// send makes one attempt of one Bound at running m on Redis, then waits for
// the acknowledgements. Each attempt has its own message ID, so the
// acknowledgements of an attempt whose reply was lost are not counted.
func (c *Cache) send(ctx context.Context, m message) error {
	m.ID = uuid.NewString()
	keys := make([]string, 0, 3*len(m.Keys)+len(m.Entities))
	for _, k := range m.Keys {
		keys = append(keys, c.opts.Prefix+k)
	}
	for _, k := range m.Keys {
		keys = append(keys, c.stampKey(c.opts.Prefix+k))
	}
	for _, k := range m.Keys {
		keys = append(keys, c.lockKey(c.opts.Prefix+k))
	}
	c.mu.Lock()
	for _, name := range m.Entities {
		if e, ok := c.entities[name]; ok {
			keys = append(keys, e.genKey())
		}
	}
	c.mu.Unlock()
	head, _ := json.Marshal(struct {
		Node     string   `json:"n"`
		ID       string   `json:"m"`
		Keys     []string `json:"k"`
		Entities []string `json:"e"`
	}{m.Node, m.ID, nonNil(m.Keys), nonNil(m.Entities)})
	prefix := string(head[:len(head)-1]) + `,"g":`

	w := &ackWaiter{wake: make(chan struct{}, 1)}
	c.mu.Lock()
	c.waiters[m.ID] = w
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, m.ID)
		c.mu.Unlock()
	}()

	// Not through the breaker: the breaker sheds reads, but an invalidation
	// skipped while other instances still serve their L1 would leave them
	// stale.
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Bound)
	res, err := broadcastScript.Exec(sctx, c.redis, keys,
		[]string{strconv.Itoa(len(m.Keys)), c.channel(), prefix}).AsIntSlice()
	cancel()
	if err != nil {
		return err
	}
	// The writer learns the new generations at once rather than from its
	// own echo, so its next read already uses them.
	for i, name := range m.Entities {
		if i+1 < len(res) {
			c.mu.Lock()
			e := c.entities[name]
			c.mu.Unlock()
			if e != nil {
				e.setGeneration(uint64(res[i+1]))
			}
		}
	}
	// Every instance that had not processed the message by now+Bound has
	// received no heartbeat sent after it was published either, so it has
	// stopped serving L1 by then: waiting longer buys nothing.
	receivers := int(res[0])
	deadline := time.NewTimer(c.opts.Bound)
	defer deadline.Stop()
	if got := w.wait(receivers, deadline.C); got < receivers {
		c.metrics.missingAcks.Add(float64(receivers - got))
	}
	c.metrics.ackWait.Observe(time.Since(start).Seconds())
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// onMessage handles the invalidation and ack channels. It runs on the
// subscription's reader, in publication order.
func (c *Cache) onMessage(pm rueidis.PubSubMessage) {
	if strings.HasPrefix(pm.Channel, c.opts.Prefix+"ack:") {
		if sent, ok := strings.CutPrefix(pm.Message, "h:"); ok {
			c.beat(sent)
			return
		}
		c.mu.Lock()
		w := c.waiters[pm.Message]
		c.mu.Unlock()
		if w != nil {
			w.ack()
		}
		return
	}
	var m message
	if err := json.Unmarshal([]byte(pm.Message), &m); err != nil {
		return
	}
	for _, k := range m.Keys {
		c.dropL1(k)
	}
	c.mu.Lock()
	for i, name := range m.Entities {
		if e, ok := c.entities[name]; ok && i < len(m.Gens) {
			e.setGeneration(m.Gens[i])
		}
	}
	c.mu.Unlock()
	c.metrics.received.Inc()
	if m.Node != "" && m.ID != "" {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.Bound)
			defer cancel()
			_ = c.redis.Do(ctx, c.redis.B().Publish().Channel(c.ackChannel(m.Node)).Message(m.ID).Build()).Error()
		}()
	}
}

// subscribeLoop keeps the subscription up; every loss voids L1.
func (c *Cache) subscribeLoop() {
	defer c.done.Done()
	wait := 50 * time.Millisecond
	for {
		if c.subscribeOnce() {
			wait = 50 * time.Millisecond
		}
		c.subscribed.Store(false)
		c.era.Add(1)
		select {
		case <-c.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// subscribeOnce subscribes and blocks until the subscription breaks or the
// cache stops; it reports whether it got subscribed.
func (c *Cache) subscribeOnce() bool {
	dc, release := c.redis.Dedicate()
	defer release()
	confirmed := make(chan struct{}, 4)
	errs := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: c.onMessage,
		OnSubscription: func(s rueidis.PubSubSubscription) {
			if s.Kind == "subscribe" {
				confirmed <- struct{}{}
			}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := dc.Do(ctx, dc.B().Subscribe().Channel(c.channel(), c.ackChannel(c.node)).Build()).Error(); err != nil {
		return false
	}
	for range 2 {
		select {
		case <-confirmed:
		case <-errs:
			return false
		case <-ctx.Done():
			return false
		case <-c.stop:
			return false
		}
	}
	// Deliver what this instance could not while Redis was away, then learn
	// the generations, and only then serve from the cache again.
	if !c.flushPending() {
		return false
	}
	c.mu.Lock()
	gens := make([]generational, 0, len(c.entities))
	for _, e := range c.entities {
		gens = append(gens, e)
	}
	c.mu.Unlock()
	for _, e := range gens {
		g, err := c.redis.Do(ctx, c.redis.B().Get().Key(e.genKey()).Build()).AsUint64()
		if rueidis.IsRedisNil(err) {
			g, err = 0, nil
		}
		if err != nil {
			return false
		}
		e.resetGeneration(g)
	}
	c.era.Add(1)
	c.subscribed.Store(true)
	c.log.Info("cache invalidation channel subscribed")
	select {
	case err := <-errs:
		c.log.Warn("cache invalidation channel lost", "err", err)
	case <-c.stop:
	}
	return true
}

// flushPending resends the invalidations Redis did not take.
func (c *Cache) flushPending() bool {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for i, m := range pending {
		if err := c.send(context.Background(), m); err != nil {
			c.mu.Lock()
			c.pending = append(pending[i:], c.pending...)
			c.pendingN.Store(int64(len(c.pending)))
			c.mu.Unlock()
			return false
		}
	}
	c.mu.Lock()
	c.pendingN.Store(int64(len(c.pending)))
	c.mu.Unlock()
	if len(pending) > 0 {
		c.log.Info("cache invalidations replayed", "count", len(pending))
	}
	return true
}

// beatLoop publishes heartbeats (four per Bound) and retries pending
// invalidations.
func (c *Cache) beatLoop() {
	defer c.done.Done()
	t := time.NewTicker(c.opts.Bound / 4)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.Bound)
		_ = c.redis.Do(ctx, c.redis.B().Publish().Channel(c.ackChannel(c.node)).
			Message("h:"+strconv.FormatInt(int64(time.Since(c.born))+1, 10)).Build()).Error()
		cancel()
		c.mu.Lock()
		retry := len(c.pending) > 0
		c.mu.Unlock()
		if retry {
			c.flushPending()
		}
	}
}
