package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// recordingPublisher is an in-process publisher that keeps what it was
// given; failures makes that many upcoming publishes fail, as a bus outage,
// and failKey makes the next publish of that event key fail, as a consumer
// rejecting one event.
type recordingPublisher struct {
	mu       sync.Mutex
	got      []outbox.Event
	attempts int
	failures int
	failKey  string
}

func (p *recordingPublisher) Publish(_ context.Context, e outbox.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.failures > 0 {
		p.failures--
		return errors.New("bus unavailable")
	}
	if p.failKey != "" && e.Key == p.failKey {
		p.failKey = ""
		return errors.New("consumer rejected the event")
	}
	p.got = append(p.got, e)
	return nil
}

func (p *recordingPublisher) published() []outbox.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]outbox.Event(nil), p.got...)
}

// setup runs fn once per engine, each with a fresh database and an outbox
// relaying to a recording publisher.
func setup(t *testing.T, fn func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB)) {
	t.Helper()
	t.Parallel()
	sqldbtest.Each(t, []sqldb.Migrations{outbox.Migrations()}, func(t *testing.T, db *sqldb.DB) {
		pub := &recordingPublisher{}
		fn(t, newOutbox(db, pub), pub, db)
	})
}

func newOutbox(db *sqldb.DB, pub outbox.Publisher) *outbox.Outbox {
	return outbox.New(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
}

func relay(t *testing.T, o *outbox.Outbox) int {
	t.Helper()
	n, err := o.RelayOnce(context.Background(), 100)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	return n
}

func pending(t *testing.T, o *outbox.Outbox) int {
	t.Helper()
	n, err := o.Pending(context.Background())
	if err != nil {
		t.Fatalf("pending: %v", err)
	}
	return n
}

// TestRolledBackEventIsNeverPublished proves an event recorded in a
// transaction that rolls back leaves no trace: nothing pending, nothing
// published, while a committed event next to it goes out.
func TestRolledBackEventIsNeverPublished(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		ctx := context.Background()
		errAbort := errors.New("abort the change")
		err := db.InTx(ctx, func(ctx context.Context) error {
			if err := o.Add(ctx, "order.placed", "o-rolled-back", map[string]string{"order_id": "o-rolled-back"}); err != nil {
				return err
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatalf("InTx err = %v, want the abort", err)
		}
		if n := pending(t, o); n != 0 {
			t.Fatalf("pending after rollback = %d, want 0", n)
		}
		if n := relay(t, o); n != 0 {
			t.Fatalf("relay published %d events after a rollback, want 0", n)
		}

		if err := db.InTx(ctx, func(ctx context.Context) error {
			return o.Add(ctx, "order.placed", "o-committed", map[string]string{"order_id": "o-committed"})
		}); err != nil {
			t.Fatalf("commit: %v", err)
		}
		if n := relay(t, o); n != 1 {
			t.Fatalf("relay published %d, want 1", n)
		}
		got := pub.published()
		if len(got) != 1 || got[0].Key != "o-committed" {
			t.Fatalf("published %+v, want only o-committed", got)
		}
	})
}

// TestEventsPublishedAfterCommit proves the relay cannot see an event while
// its transaction is open, publishes it with its topic, key and payload once
// committed, keeps the recording order, and publishes each event once.
func TestEventsPublishedAfterCommit(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		ctx := context.Background()
		keys := []string{"o-1", "o-2", "o-3"}
		err := db.InTx(ctx, func(ctx context.Context) error {
			for _, k := range keys {
				if err := o.Add(ctx, "order.placed", k, map[string]any{"order_id": k, "total_cents": 1250}); err != nil {
					return err
				}
			}
			// The relay runs on its own connections, as it does in production.
			if n := relay(t, o); n != 0 {
				t.Errorf("relay published %d events of an open transaction, want 0", n)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		if len(pub.published()) != 0 {
			t.Fatalf("published before relaying: %+v", pub.published())
		}
		if n := relay(t, o); n != len(keys) {
			t.Fatalf("relay published %d, want %d", n, len(keys))
		}
		got := pub.published()
		ids := map[string]bool{}
		for i, e := range got {
			if e.Topic != "order.placed" || e.Key != keys[i] || e.ID == "" || e.CreatedAt.IsZero() {
				t.Fatalf("event %d = %+v, want order.placed for %s with an ID and a time", i, e, keys[i])
			}
			var payload struct {
				OrderID    string `json:"order_id"`
				TotalCents int64  `json:"total_cents"`
			}
			if err := json.Unmarshal(e.Payload, &payload); err != nil || payload.OrderID != keys[i] || payload.TotalCents != 1250 {
				t.Fatalf("event %d payload = %s, want the recorded one", i, e.Payload)
			}
			ids[e.ID] = true
		}
		if len(ids) != len(keys) {
			t.Fatalf("event IDs %v are not distinct", ids)
		}
		if n := relay(t, o); n != 0 {
			t.Fatalf("second relay published %d, want 0", n)
		}
		if n := pending(t, o); n != 0 {
			t.Fatalf("pending = %d, want 0", n)
		}
	})
}

// TestFailedPublishIsRetried proves a publish failure loses nothing: the
// relay stops at the failed event, keeps it and those after it pending, and
// the next relay delivers them in order with the same event ID.
func TestFailedPublishIsRetried(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		ctx := context.Background()
		for _, k := range []string{"o-a", "o-b"} {
			if err := db.InTx(ctx, func(ctx context.Context) error {
				return o.Add(ctx, "order.cancelled", k, map[string]string{"order_id": k})
			}); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
		pub.failures = 1
		n, err := o.RelayOnce(ctx, 100)
		if err == nil || n != 0 {
			t.Fatalf("relay during the outage = %d, %v; want 0 and an error", n, err)
		}
		if p := pending(t, o); p != 2 {
			t.Fatalf("pending after the failure = %d, want 2", p)
		}
		var attempts int
		if err := db.Read.QueryRow(`SELECT attempts FROM outbox_events WHERE event_key = 'o-a'`).Scan(&attempts); err != nil || attempts != 1 {
			t.Fatalf("attempts of o-a = %d, %v; want 1", attempts, err)
		}

		if n := relay(t, o); n != 2 {
			t.Fatalf("relay after the outage published %d, want 2", n)
		}
		got := pub.published()
		if len(got) != 2 || got[0].Key != "o-a" || got[1].Key != "o-b" {
			t.Fatalf("published %+v, want o-a then o-b", got)
		}
		if pub.attempts != 3 {
			t.Fatalf("publish attempts = %d, want 3 (one failed, two delivered)", pub.attempts)
		}
		if p := pending(t, o); p != 0 {
			t.Fatalf("pending = %d, want 0", p)
		}
	})
}

// TestFailureMidBatchKeepsWhatWasPublished: when the second of three events
// fails to publish, the first is marked published (in the batch's one
// mark), the second has its attempt counted, and the second and third stay
// pending, in order.
func TestFailureMidBatchKeepsWhatWasPublished(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		ctx := context.Background()
		for _, k := range []string{"m-a", "m-b", "m-c"} {
			if err := db.InTx(ctx, func(ctx context.Context) error {
				return o.Add(ctx, "order.placed", k, map[string]string{"order_id": k})
			}); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
		pub.failKey = "m-b"
		n, err := o.RelayOnce(ctx, 100)
		if err == nil || n != 1 {
			t.Fatalf("relay = %d, %v; want 1 published and the failure", n, err)
		}
		if p := pending(t, o); p != 2 {
			t.Fatalf("pending = %d, want 2 (m-b and m-c)", p)
		}
		var attempts int
		if err := db.Read.QueryRow(`SELECT attempts FROM outbox_events WHERE event_key = 'm-b'`).Scan(&attempts); err != nil || attempts != 1 {
			t.Fatalf("attempts of m-b = %d, %v; want 1", attempts, err)
		}
		if n := relay(t, o); n != 2 {
			t.Fatalf("the next relay published %d, want 2", n)
		}
		var keys []string
		for _, e := range pub.published() {
			keys = append(keys, e.Key)
		}
		if strings.Join(keys, ",") != "m-a,m-b,m-c" {
			t.Fatalf("published %v, want m-a, m-b, m-c once each in order", keys)
		}
	})
}

// TestRunRelaysAfterOutage proves the background relay delivers an event
// that was recorded while the bus was down, once the bus is back.
func TestRunRelaysAfterOutage(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		pub.failures = 3
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			o.Run(ctx, 10*time.Millisecond)
		}()
		defer func() {
			cancel()
			<-done
		}()
		if err := db.InTx(context.Background(), func(ctx context.Context) error {
			return o.Add(ctx, "order.placed", "o-outage", map[string]string{"order_id": "o-outage"})
		}); err != nil {
			t.Fatalf("commit: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(pub.published()) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("event not delivered within 5 s of the bus coming back")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got := pub.published(); len(got) != 1 || got[0].Key != "o-outage" {
			t.Fatalf("published %+v, want o-outage once", got)
		}
	})
}

// TestFailureMidBatchKeepsEarlierEventsPublished proves a relay that fails
// on one event still records the events it published before it, so they
// are not sent again, and the rest go out on the next relay.
func TestFailureMidBatchKeepsEarlierEventsPublished(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		ctx := context.Background()
		keys := []string{"o-1", "o-2", "o-3"}
		if err := db.InTx(ctx, func(ctx context.Context) error {
			for _, k := range keys {
				if err := o.Add(ctx, "order.placed", k, map[string]string{"order_id": k}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("commit: %v", err)
		}
		pub.failKey = "o-2"
		n, err := o.RelayOnce(ctx, 100)
		if err == nil || n != 1 {
			t.Fatalf("relay with o-2 rejected = %d, %v; want 1 and an error", n, err)
		}
		if p := pending(t, o); p != 2 {
			t.Fatalf("pending after the failure = %d, want 2 (o-2 and o-3)", p)
		}
		if n := relay(t, o); n != 2 {
			t.Fatalf("next relay published %d, want 2", n)
		}
		var got []string
		for _, e := range pub.published() {
			got = append(got, e.Key)
		}
		if fmt.Sprint(got) != fmt.Sprint(keys) {
			t.Fatalf("published %v, want %v, each once", got, keys)
		}
	})
}

// publisherFunc adapts a function to outbox.Publisher.
type publisherFunc func(ctx context.Context, e outbox.Event) error

func (f publisherFunc) Publish(ctx context.Context, e outbox.Event) error { return f(ctx, e) }

// TestFailedHandlerWritesAreRolledBack proves handlers run outside the
// relay's own transaction: a handler whose transaction fails leaves no
// write behind, even though the relay commits the failed attempt.
func TestFailedHandlerWritesAreRolledBack(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, []sqldb.Migrations{outbox.Migrations()}, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		var o *outbox.Outbox
		errHandler := errors.New("handler failed")
		o = newOutbox(db, publisherFunc(func(ctx context.Context, e outbox.Event) error {
			if e.Topic != "order.placed" {
				return nil
			}
			// A consumer that records a follow-up event, then fails.
			return db.InTx(ctx, func(ctx context.Context) error {
				if err := o.Add(ctx, "mail.sent", e.Key, map[string]string{"order_id": e.Key}); err != nil {
					return err
				}
				return errHandler
			})
		}))
		if err := db.InTx(ctx, func(ctx context.Context) error {
			return o.Add(ctx, "order.placed", "o-1", map[string]string{"order_id": "o-1"})
		}); err != nil {
			t.Fatalf("commit: %v", err)
		}
		if _, err := o.RelayOnce(ctx, 100); !errors.Is(err, errHandler) {
			t.Fatalf("relay = %v, want the handler's error", err)
		}
		var follow, attempts int
		if err := db.Read.QueryRow(`SELECT count(*) FROM outbox_events WHERE topic = 'mail.sent'`).Scan(&follow); err != nil || follow != 0 {
			t.Fatalf("follow-up events after the handler failed = %d, %v; want 0", follow, err)
		}
		if err := db.Read.QueryRow(`SELECT attempts FROM outbox_events WHERE event_key = 'o-1'`).Scan(&attempts); err != nil || attempts != 1 {
			t.Fatalf("attempts of o-1 = %d, %v; want 1", attempts, err)
		}
		if p := pending(t, o); p != 1 {
			t.Fatalf("pending = %d, want 1 (o-1, to retry)", p)
		}
	})
}

// TestConcurrentRelaysPublishEachEventOnce proves several instances can
// relay from one PostgreSQL database: two relays running at once share the
// events between them, neither waits for the other, and every event is
// published exactly once. (SQLite has one writer and so one relay.)
func TestConcurrentRelaysPublishEachEventOnce(t *testing.T) {
	t.Parallel()
	db := sqldbtest.Open(t, sqldb.Postgres, outbox.Migrations())
	ctx := context.Background()
	const events, batch = 60, 5

	recorder := newOutbox(db, &recordingPublisher{})
	if err := db.InTx(ctx, func(ctx context.Context) error {
		for i := range events {
			if err := recorder.Add(ctx, "order.placed", fmt.Sprintf("o-%d", i), map[string]int{"n": i}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("commit: %v", err)
	}

	var (
		mu      sync.Mutex
		count   = map[string]int{} // event ID → publishes
		byRelay [2]int
		entered [2]chan struct{}
		once    [2]sync.Once
	)
	relays := make([]*outbox.Outbox, 2)
	for i := range relays {
		entered[i] = make(chan struct{})
		relays[i] = newOutbox(db, publisherFunc(func(_ context.Context, e outbox.Event) error {
			// Each relay holds its first event until the other relay is
			// publishing too: both have claimed a batch at the same time, so
			// a relay that reads its batch without claiming it would publish
			// the same events, and one that waits for the other's claim
			// would never get here.
			once[i].Do(func() {
				close(entered[i])
				select {
				case <-entered[1-i]:
				case <-time.After(5 * time.Second):
					t.Errorf("relay %d waited 5 s for the other to publish: the relays do not run side by side", i)
				}
			})
			mu.Lock()
			defer mu.Unlock()
			count[e.ID]++
			byRelay[i]++
			return nil
		}))
	}

	var (
		wg    sync.WaitGroup
		total atomic.Int64
	)
	for _, r := range relays {
		wg.Go(func() {
			for {
				n, err := r.RelayOnce(ctx, batch)
				if err != nil {
					t.Errorf("relay: %v", err)
					return
				}
				if n == 0 {
					return
				}
				total.Add(int64(n))
			}
		})
	}
	wg.Wait()

	if len(count) != events || total.Load() != events {
		t.Fatalf("published %d distinct events, relays reported %d; want %d", len(count), total.Load(), events)
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("event %s published %d times, want once", id, n)
		}
	}
	if byRelay[0] == 0 || byRelay[1] == 0 {
		t.Errorf("events published per relay = %v, want both relays to share the work", byRelay)
	}
	if p := pending(t, relays[0]); p != 0 {
		t.Fatalf("pending = %d, want 0", p)
	}
}

// TestPurgeDeletesOnlyOldPublishedEvents: Purge removes events published
// before the cutoff, in batches, and never a pending event or a recent one;
// OldestPending follows the oldest event still waiting.
func TestPurgeDeletesOnlyOldPublishedEvents(t *testing.T) {
	setup(t, func(t *testing.T, _ *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		ctx := context.Background()
		var clock atomic.Int64
		clock.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro())
		now := func() time.Time { return time.UnixMicro(clock.Load()) }
		o := outbox.New(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil)), now)
		add := func(n int) {
			for i := range n {
				if err := db.InTx(ctx, func(ctx context.Context) error { return o.Add(ctx, "t", fmt.Sprint(i), i) }); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, ok, err := o.OldestPending(ctx); err != nil || ok {
			t.Fatalf("OldestPending of an empty outbox = %v, %v", ok, err)
		}
		add(1205) // old, published: more than one purge batch
		for pending(t, o) > 0 {
			relay(t, o)
		}
		clock.Add(time.Hour.Microseconds())
		cutoff := now()
		add(3) // recent, published
		for pending(t, o) > 0 {
			relay(t, o)
		}
		clock.Add(time.Hour.Microseconds())
		add(2) // pending
		if at, ok, err := o.OldestPending(ctx); err != nil || !ok || !at.Equal(now()) {
			t.Fatalf("OldestPending = %v, %v, %v; want %v", at, ok, err, now())
		}
		n, err := o.Purge(ctx, cutoff)
		if err != nil || n != 1205 {
			t.Fatalf("Purge = %d, %v; want the 1205 old published events", n, err)
		}
		var left int
		if err := db.Reader(ctx).QueryRowContext(ctx, `SELECT count(*) FROM outbox_events`).Scan(&left); err != nil || left != 5 {
			t.Fatalf("%d events left (%v), want 3 recent and 2 pending", left, err)
		}
		if n, err := o.Purge(ctx, now().Add(time.Hour)); err != nil || n != 3 || pending(t, o) != 2 {
			t.Fatalf("Purge of everything published = %d, %v; pending %d", n, err, pending(t, o))
		}
	})
}

// statementCounter counts the statements a database runs on one table.
type statementCounter struct {
	table string
	verb  string // "" for any
	n     atomic.Int64
}

func (c *statementCounter) ObserveQuery(statement string, _ time.Duration, _ error) {
	if strings.HasSuffix(statement, " "+c.table) && (c.verb == "" || strings.HasPrefix(statement, c.verb+" ")) {
		c.n.Add(1)
	}
}

// runRelay runs o.Run with interval until the test ends.
func runRelay(t *testing.T, o *outbox.Outbox, interval time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Run(ctx, interval)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// TestRunDrainsABacklogAtOnce: a backlog larger than one batch is relayed
// batch after batch without waiting for the interval between them.
func TestRunDrainsABacklogAtOnce(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		for i := range 250 {
			if err := o.Add(context.Background(), "order.placed", fmt.Sprintf("o-%03d", i), map[string]int{"n": i}); err != nil {
				t.Fatal(err)
			}
		}
		runRelay(t, o, time.Hour)
		deadline := time.Now().Add(10 * time.Second)
		for len(pub.published()) < 250 {
			if time.Now().After(deadline) {
				t.Fatalf("%d of 250 events relayed in 10 s, with an interval of an hour", len(pub.published()))
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// TestRunSkipsWakeUpsForEventsItSaw: Adds that commit before a pass begins
// leave a wake-up behind them; the pass relays their events, and the
// wake-up runs no second query for nothing. A later Add is relayed at once.
func TestRunSkipsWakeUpsForEventsItSaw(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		ctx := context.Background()
		// A burst of commits, as a checkout makes, before the relay runs:
		// each pokes it, and one wake-up stays pending.
		for i := range 4 {
			if err := db.InTx(ctx, func(ctx context.Context) error {
				return o.Add(ctx, "order.placed", fmt.Sprintf("o-%d", i), map[string]int{"n": i})
			}); err != nil {
				t.Fatal(err)
			}
		}
		reads := &statementCounter{table: "outbox_events", verb: "SELECT"}
		db.SetObserver(reads)
		runRelay(t, o, time.Hour)
		waitPublished(t, pub, 4)
		time.Sleep(200 * time.Millisecond) // time for the pending wake-up
		if n := reads.n.Load(); n != 1 {
			t.Fatalf("the relay read the outbox %d times for one burst of events, want 1", n)
		}
		if err := db.InTx(ctx, func(ctx context.Context) error {
			return o.Add(ctx, "order.placed", "o-later", map[string]string{"order_id": "o-later"})
		}); err != nil {
			t.Fatal(err)
		}
		waitPublished(t, pub, 5)
	})
}

// waitPublished waits for n events to be published: well before the idle
// poll (an hour in these tests) would have found them.
func waitPublished(t *testing.T, pub *recordingPublisher, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(pub.published()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events published within 10 s", len(pub.published()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunIdleDoesNotPoll: a relay with nothing to do reads the outbox only
// when an Add wakes it (or every IdlePoll), not every interval, and an Add
// is still relayed at once.
func TestRunIdleDoesNotPoll(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		reads := &statementCounter{table: "outbox_events"}
		db.SetObserver(reads)
		runRelay(t, o, 10*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		// The first pass, at start; polling every interval would be ~50.
		if n := reads.n.Load(); n > 2 {
			t.Fatalf("an idle relay ran %d statements on the outbox in 500 ms", n)
		}
		if err := db.InTx(context.Background(), func(ctx context.Context) error {
			return o.Add(ctx, "order.placed", "o-woken", map[string]string{"order_id": "o-woken"})
		}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Second)
		for len(pub.published()) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("an event added to an idle relay's outbox was not relayed within 1 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// TestEventsOfATransactionAreOneInsert: the events a transaction adds are
// written by one statement, before it commits, in the order they were
// added; one more, added by another step just before the commit, is
// written too; an event added outside a transaction is written at once.
func TestEventsOfATransactionAreOneInsert(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		ctx := context.Background()
		counter := &statementCounter{table: "outbox_events", verb: "INSERT"}
		db.SetObserver(counter)
		keys := []string{"o-1", "o-2", "o-3"}
		err := db.InTx(ctx, func(ctx context.Context) error {
			for _, k := range keys {
				if err := o.Add(ctx, "order.placed", k, map[string]string{"order_id": k}); err != nil {
					return err
				}
			}
			if n := counter.n.Load(); n != 0 {
				t.Errorf("%d inserts before the commit, want the events held until then", n)
			}
			// A step that runs just before the commit, after the
			// outbox's own, adds one more.
			return sqldb.BeforeCommit(ctx, func(ctx context.Context) error {
				return o.Add(ctx, "order.placed", "o-4", map[string]string{"order_id": "o-4"})
			})
		})
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		if n := counter.n.Load(); n != 2 {
			t.Fatalf("%d inserts for the transaction's 3 events and a late one, want 2", n)
		}
		if err := o.Add(ctx, "order.placed", "o-5", map[string]string{"order_id": "o-5"}); err != nil {
			t.Fatalf("add outside a transaction: %v", err)
		}
		db.SetObserver(nil)
		if n := relay(t, o); n != 5 {
			t.Fatalf("relay published %d, want 5", n)
		}
		var got []string
		for _, e := range pub.published() {
			got = append(got, e.Key)
		}
		if want := []string{"o-1", "o-2", "o-3", "o-4", "o-5"}; !slices.Equal(got, want) {
			t.Fatalf("published %v, want %v", got, want)
		}
	})
}

// TestAddThroughAnEndedTransactionFails: an event added with the context of
// a transaction that has ended (kept by an after-commit action, or past a
// rollback) is refused with an error, never held for a commit that will not
// come, and nothing of it is relayed.
func TestAddThroughAnEndedTransactionFails(t *testing.T) {
	setup(t, func(t *testing.T, o *outbox.Outbox, pub *recordingPublisher, db *sqldb.DB) {
		ctx := context.Background()
		var afterCommit, afterRollback error
		if err := db.InTx(ctx, func(ctx context.Context) error {
			sqldb.AfterCommit(ctx, func() {
				afterCommit = o.Add(ctx, "order.placed", "o-after-commit", map[string]string{"order_id": "o-after-commit"})
			})
			return nil
		}); err != nil {
			t.Fatalf("commit: %v", err)
		}
		var kept context.Context
		errAbort := errors.New("abort")
		_ = db.InTx(ctx, func(ctx context.Context) error {
			kept = ctx
			return errAbort
		})
		afterRollback = o.Add(kept, "order.placed", "o-after-rollback", map[string]string{"order_id": "o-after-rollback"})
		if afterCommit == nil || afterRollback == nil {
			t.Fatalf("Add through an ended transaction = %v after its commit, %v after its rollback; want errors", afterCommit, afterRollback)
		}
		if n := relay(t, o); n != 0 {
			t.Fatalf("relay published %d events added through ended transactions, want 0", n)
		}
	})
}
