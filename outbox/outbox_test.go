package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/sqldb"
)

// recordingPublisher is an in-process publisher that keeps what it was
// given; failures makes that many upcoming publishes fail, as a bus outage.
type recordingPublisher struct {
	mu       sync.Mutex
	got      []outbox.Event
	attempts int
	failures int
}

func (p *recordingPublisher) Publish(_ context.Context, e outbox.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.failures > 0 {
		p.failures--
		return errors.New("bus unavailable")
	}
	p.got = append(p.got, e)
	return nil
}

func (p *recordingPublisher) published() []outbox.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]outbox.Event(nil), p.got...)
}

func newOutbox(t *testing.T) (*outbox.Outbox, *recordingPublisher, *sqldb.DB) {
	t.Helper()
	db, err := sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background(), []sqldb.Migrations{outbox.Migrations()}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	pub := &recordingPublisher{}
	return outbox.New(db, pub, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now), pub, db
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
	t.Parallel()
	o, pub, db := newOutbox(t)
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
}

// TestEventsPublishedAfterCommit proves the relay cannot see an event while
// its transaction is open, publishes it with its topic, key and payload once
// committed, keeps the recording order, and publishes each event once.
func TestEventsPublishedAfterCommit(t *testing.T) {
	t.Parallel()
	o, pub, db := newOutbox(t)
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
}

// TestFailedPublishIsRetried proves a publish failure loses nothing: the
// relay stops at the failed event, keeps it and those after it pending, and
// the next relay delivers them in order with the same event ID.
func TestFailedPublishIsRetried(t *testing.T) {
	t.Parallel()
	o, pub, db := newOutbox(t)
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
}

// TestRunRelaysAfterOutage proves the background relay delivers an event
// that was recorded while the bus was down, once the bus is back.
func TestRunRelaysAfterOutage(t *testing.T) {
	t.Parallel()
	o, pub, db := newOutbox(t)
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
}
