package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/cache/cachetest"
	"github.com/millionshop/million/order"
	"github.com/millionshop/million/order/store"
	"github.com/millionshop/million/order/storetest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

// TestCachedStore runs the order.Store contract through the cache
// decorator: in process only on every engine, and with a real Redis as L2
// on SQLite.
func TestCachedStore(t *testing.T) {
	t.Parallel()
	cachetest.EachLevel(t, storetest.Run, func(t *testing.T, d sqldb.Dialect, c *cache.Cache) order.Store {
		return store.NewCached(store.New(sqldbtest.Open(t, d, store.Migrations())), c, 0)
	})
}

// countingStore counts the list reads that reach the real store beneath.
type countingStore struct {
	order.Store
	lists atomic.Int64
}

func (s *countingStore) Orders(ctx context.Context, userID, beforeID string, limit int) ([]order.Order, error) {
	s.lists.Add(1)
	return s.Store.Orders(ctx, userID, beforeID, limit)
}

// Two instances share a database and Redis: a user's first page read
// twice on one is read from the database once, whatever its size, and a
// new order or a status change on the other, in a transaction or not, is
// seen by the next read on the first.
func TestCachedOrdersAcrossInstances(t *testing.T) {
	t.Parallel()
	redis := cachetest.Redis(t)
	db := sqldbtest.Open(t, sqldb.SQLite, store.Migrations(), cache.Migrations())
	open := func() (*store.Cached, *countingStore) {
		c := cachetest.Instance(t, redis, db, "orders:")
		inner := &countingStore{Store: store.New(db)}
		return store.NewCached(inner, c, 0), inner
	}
	writer, _ := open()
	reader, counted := open()
	ctx := context.Background()
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	newOrder := func(i int) order.Order {
		return order.Order{ID: fmt.Sprintf("o%02d", i), UserID: "u1", Status: order.StatusPending, Currency: "USD", PaymentStatus: "none",
			Items: []order.Item{{ProductID: "p1", SKU: "SKU-1", Name: "Kettle", PriceCents: 1999, Quantity: 1}}, TotalCents: 1999,
			CreatedAt: when, UpdatedAt: when}
	}
	list := func(limit int) []order.Order {
		t.Helper()
		got, err := reader.Orders(ctx, "u1", "", limit)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := list(21); len(got) != 0 {
		t.Fatalf("a new user has orders %+v", got)
	}
	if got := list(21); len(got) != 0 || counted.lists.Load() != 1 {
		t.Fatalf("second read: %+v after %d database reads, want none and 1", got, counted.lists.Load())
	}
	for i := range 5 {
		if err := writer.InsertOrder(ctx, newOrder(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := list(3)
	if len(got) != 3 || got[0].ID != "o04" || got[2].ID != "o02" {
		t.Fatalf("after 5 orders on another instance the first 3 read %+v", got)
	}
	// A third instance reads them from Redis: an order still knows its
	// owner there, though the owner is not encoded.
	third, thirdCounted := open()
	fromRedis, err := third.Orders(ctx, "u1", "", 3)
	if err != nil || thirdCounted.lists.Load() != 0 || len(fromRedis) != 3 {
		t.Fatalf("read through Redis: %d orders, %v, after %d database reads; want 3 and none", len(fromRedis), err, thirdCounted.lists.Load())
	}
	if fromRedis[0].UserID != "u1" || len(fromRedis[0].Items) != 1 || fromRedis[0].ID != "o04" {
		t.Fatalf("an order read from Redis: %+v", fromRedis[0])
	}
	reads := counted.lists.Load()
	if all := list(21); len(all) != 5 || counted.lists.Load() != reads {
		t.Fatalf("a larger first page: %d orders after %d more database reads, want 5 and 0", len(all), counted.lists.Load()-reads)
	}
	// A caller changing what it got does not change the cached copy.
	got[0].Status, got[0].Items[0].Quantity = "changed", 99
	if again := list(3); again[0].Status != order.StatusPending || again[0].Items[0].Quantity != 1 {
		t.Fatalf("the cached orders changed with a caller's copy: %+v", again[0])
	}
	// A later page and a read inside a transaction go to the database.
	reads = counted.lists.Load()
	if older, err := reader.Orders(ctx, "u1", "o02", 21); err != nil || len(older) != 2 || counted.lists.Load() != reads+1 {
		t.Fatalf("older page: %d orders, %v, after %d database reads; want 2 and 1", len(older), err, counted.lists.Load()-reads)
	}
	// A transition that does not happen changes nothing and drops nothing.
	list(1)
	reads = counted.lists.Load()
	if moved, err := writer.SetStatus(ctx, "u1", "o04", []string{order.StatusCancelled}, order.StatusRefunded, "refunded", when); err != nil || moved {
		t.Fatalf("SetStatus from a status the order is not in = %v, %v", moved, err)
	}
	if got := list(1); got[0].Status != order.StatusPending || counted.lists.Load() != reads {
		t.Fatalf("after a transition that did not happen: %+v, %d database reads; want pending and none", got[0], counted.lists.Load()-reads)
	}
	// A limit no page has goes to the store, as it would without a cache.
	if _, err := reader.Orders(ctx, "u1", "", 0); err != nil {
		t.Fatalf("limit 0: %v", err)
	}
	// A payment moves an order inside its transaction.
	if err := db.InTx(ctx, func(ctx context.Context) error {
		_, err := writer.SetStatus(ctx, "u1", "o04", []string{order.StatusPending}, order.StatusPaid, "captured", when.Add(time.Minute))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := list(1); len(got) != 1 || got[0].Status != order.StatusPaid || got[0].PaymentStatus != "captured" {
		t.Fatalf("after a payment on another instance the newest order reads %+v", got)
	}
}
