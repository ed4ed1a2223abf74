package store_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/catalog"
	catalogstore "github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/search"
	"github.com/millionshop/million/search/store"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

// keptEvents keeps what the outbox's relay published, for a test to deliver
// in an order of its choosing.
type keptEvents struct {
	mu     sync.Mutex
	events []outbox.Event
}

// Publish implements outbox.Publisher.
func (k *keptEvents) Publish(_ context.Context, e outbox.Event) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.events = append(k.events, e)
	return nil
}

// catalogEvents runs real catalog writes and returns the events they
// recorded, in the order recorded: kettle is created and renamed twice,
// stove created and deleted.
func catalogEvents(t *testing.T) (events []outbox.Event, kettle, stove string) {
	t.Helper()
	ctx := context.Background()
	db := sqldbtest.Open(t, sqldb.SQLite, catalogstore.Migrations(), outbox.Migrations())
	kept := &keptEvents{}
	ob := outbox.New(db, kept, slog.New(slog.DiscardHandler), time.Now)
	cat := catalog.NewCatalog(catalogstore.New(db), ob, "USD", time.Now)
	if _, err := cat.CreateCategory(ctx, "gear", "Gear"); err != nil {
		t.Fatal(err)
	}
	create := func(sku, name string) string {
		t.Helper()
		desc, price, stock, category := "For camp.", int64(100), int64(1), "gear"
		p, err := cat.CreateProduct(ctx, catalog.NewProduct{SKU: &sku, Name: &name, Description: &desc,
			PriceCents: &price, Category: &category, Stock: &stock})
		if err != nil {
			t.Fatalf("create %s: %v", sku, err)
		}
		return p.ID
	}
	kettle, stove = create("kettle", "Alpha Kettle"), create("stove", "Camp Stove")
	for _, name := range []string{"Beta Kettle", "Gamma Kettle"} {
		if _, err := cat.UpdateProduct(ctx, kettle, catalog.ProductPatch{Name: &name}); err != nil {
			t.Fatalf("rename: %v", err)
		}
	}
	if err := cat.DeleteProduct(ctx, stove); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := ob.RelayOnce(ctx, 100); err != nil {
		t.Fatalf("relay: %v", err)
	}
	if len(kept.events) != 5 {
		t.Fatalf("the writes recorded %d events, want 5", len(kept.events))
	}
	return kept.events, kettle, stove
}

// TestIndexFollowsEventsInAnyOrder delivers the catalog's events to the
// index in order, reversed, interleaved and repeated, as at-least-once
// delivery with retries may: on every engine the index always ends at each
// product's last version, a late rename never overwrites a newer one and a
// late create or rename never brings a deleted product back.
func TestIndexFollowsEventsInAnyOrder(t *testing.T) {
	t.Parallel()
	events, kettle, stove := catalogEvents(t)
	// events: 0 create kettle, 1 create stove, 2 rename Beta, 3 rename Gamma, 4 delete stove.
	orders := map[string][]int{
		"in order":    {0, 1, 2, 3, 4},
		"reversed":    {4, 3, 2, 1, 0},
		"interleaved": {3, 1, 4, 0, 2},
		"repeated":    {0, 1, 2, 3, 4, 2, 0, 1, 3, 4},
	}
	for _, d := range sqldbtest.Dialects {
		for name, order := range orders {
			t.Run(d.String()+"/"+name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				s := store.New(sqldbtest.Open(t, d, store.Migrations()))
				index := search.NewIndex(s, nil)
				for _, i := range order {
					if err := index.HandleProductEvent(ctx, events[i].Topic, events[i].Payload); err != nil {
						t.Fatalf("event %d (%s): %v", i, events[i].Topic, err)
					}
				}
				for q, want := range map[string][]string{
					"gamma": {kettle}, "kettle": {kettle}, "alpha": nil, "beta": nil, "stove": nil, "camp": {kettle},
				} {
					ids, err := s.Match(ctx, search.Terms(q), 0, 10)
					if err != nil || !slices.Equal(ids, want) {
						t.Errorf("match %q = %v, %v; want %v (stove is %s)", q, ids, err, want, stove)
					}
				}
			})
		}
	}
}

// TestHandleProductEventRefusesWhatItCannotRead: a payload that is not the
// catalog's, or a topic search does not consume, is an error the broker
// retries and then dead-letters, never a silent success.
func TestHandleProductEventRefusesWhatItCannotRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	index := search.NewIndex(store.New(sqldbtest.Open(t, sqldb.SQLite, store.Migrations())), nil)
	good, _ := json.Marshal(catalog.ProductEvent{Product: catalog.Product{ID: "p", Name: "Kettle"}, Version: 1})
	for _, tc := range []struct {
		topic   string
		payload string
	}{
		{catalog.TopicProductCreated, `not json`},
		{catalog.TopicProductUpdated, `{"name": "Kettle", "version": 2}`}, // no id
		{catalog.TopicProductUpdated, `{"id": "p", "name": "Kettle"}`},    // no version
		{catalog.TopicProductDeleted, `{"id": "p"}`},
		{"order.placed", string(good)},
	} {
		if err := index.HandleProductEvent(ctx, tc.topic, json.RawMessage(tc.payload)); !fault.Is(err, fault.Invalid) {
			t.Errorf("HandleProductEvent(%s, %s) = %v, want fault.Invalid", tc.topic, tc.payload, err)
		}
	}
	if err := index.HandleProductEvent(ctx, catalog.TopicProductCreated, good); err != nil {
		t.Fatalf("HandleProductEvent of a good event: %v", err)
	}
}
