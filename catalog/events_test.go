package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/outbox"
)

// sentEvents is the bus as the outbox sees it: it keeps what the relay
// published.
type sentEvents struct {
	mu     sync.Mutex
	events []outbox.Event
}

// Publish implements outbox.Publisher.
func (s *sentEvents) Publish(_ context.Context, e outbox.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

// relay publishes every pending event and returns those published since the
// last call.
func (tc testCatalog) relay(t *testing.T) []outbox.Event {
	t.Helper()
	if _, err := tc.outbox.RelayOnce(context.Background(), 1000); err != nil {
		t.Fatalf("relay: %v", err)
	}
	tc.sent.mu.Lock()
	defer tc.sent.mu.Unlock()
	out := tc.sent.events
	tc.sent.events = nil
	return out
}

// wantProductEvent fails unless e is one event of topic about p at version.
func wantProductEvent(t *testing.T, e outbox.Event, topic string, p catalog.Product, version int64) {
	t.Helper()
	var got catalog.ProductEvent
	if err := json.Unmarshal(e.Payload, &got); err != nil {
		t.Fatalf("%s payload %s: %v", e.Topic, e.Payload, err)
	}
	if e.Topic != topic || e.Key != p.ID || got.Version != version ||
		!got.UpdatedAt.Equal(p.UpdatedAt) || !got.CreatedAt.Equal(p.CreatedAt) {
		t.Fatalf("event %s key %s payload %s; want %s of %s at version %d", e.Topic, e.Key, e.Payload, topic, p.ID, version)
	}
	got.UpdatedAt, got.CreatedAt = p.UpdatedAt, p.CreatedAt
	if got.Product != p {
		t.Fatalf("%s carries %+v, want %+v", topic, got.Product, p)
	}
}

// TestProductWritesRecordEvents checks that every admin write of a product
// records its event in the write's transaction, with the product as written
// and a version one above the last, and that a write that fails or rolls
// back records nothing.
func TestProductWritesRecordEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tc := newTestCatalog(t)
	p := tc.product(t, "Kettle", 2500, 3)
	events := tc.relay(t)
	if len(events) != 1 {
		t.Fatalf("create published %d events, want 1", len(events))
	}
	wantProductEvent(t, events[0], catalog.TopicProductCreated, p, 1)

	// A price and a stock change are updates like a rename.
	for i, patch := range []catalog.ProductPatch{{PriceCents: ptr(int64(1999))}, {Stock: ptr(int64(9))}, {Name: ptr("Tea Kettle")}} {
		p, err := tc.UpdateProduct(ctx, p.ID, patch)
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		events := tc.relay(t)
		if len(events) != 1 {
			t.Fatalf("update %d published %d events, want 1", i, len(events))
		}
		wantProductEvent(t, events[0], catalog.TopicProductUpdated, p, int64(i+2))
	}

	// Refused and rolled-back writes record nothing.
	if _, err := tc.UpdateProduct(ctx, p.ID, catalog.ProductPatch{Category: ptr("no-such-category")}); !fault.Is(err, fault.Invalid) {
		t.Fatalf("update to a missing category = %v, want fault.Invalid", err)
	}
	errAbort := errors.New("abort")
	err := tc.db.InTx(ctx, func(ctx context.Context) error {
		if _, err := tc.UpdateProduct(ctx, p.ID, catalog.ProductPatch{Name: ptr("Ghost")}); err != nil {
			return err
		}
		if err := tc.DeleteProduct(ctx, p.ID); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("rolled-back writes = %v, want %v", err, errAbort)
	}
	if events := tc.relay(t); len(events) != 0 {
		t.Fatalf("refused and rolled-back writes published %v, want nothing", events)
	}

	// Checkout's reservations record no event.
	if _, err := tc.Reserve(ctx, []catalog.Line{{ProductID: p.ID, Quantity: 2}}); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	if err := tc.Release(ctx, []catalog.Line{{ProductID: p.ID, Quantity: 1}}); err != nil {
		t.Fatalf("release: %v", err)
	}
	if events := tc.relay(t); len(events) != 0 {
		t.Fatalf("reserve and release published %v, want nothing", events)
	}

	before := time.Now().Add(-time.Second)
	if err := tc.DeleteProduct(ctx, p.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	events = tc.relay(t)
	if len(events) != 1 || events[0].Topic != catalog.TopicProductDeleted || events[0].Key != p.ID {
		t.Fatalf("delete published %v, want one %s of %s", events, catalog.TopicProductDeleted, p.ID)
	}
	var del catalog.ProductDeleted
	if err := json.Unmarshal(events[0].Payload, &del); err != nil {
		t.Fatalf("delete payload %s: %v", events[0].Payload, err)
	}
	// Four writes (create and three updates) came before: the deletion is the fifth.
	if del.ID != p.ID || del.Version != 5 || del.DeletedAt.Before(before) {
		t.Fatalf("delete payload %+v, want %s at version 5 deleted now", del, p.ID)
	}
}
