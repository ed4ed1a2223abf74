package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/cache/cachetest"
	"github.com/millionshop/million/cart"
	"github.com/millionshop/million/cart/store"
	"github.com/millionshop/million/cart/storetest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

// TestCachedStore runs the cart.Store contract through the cache
// decorator: in process only on every engine, and with a real Redis as L2
// on SQLite.
func TestCachedStore(t *testing.T) {
	cachetest.EachLevel(t, storetest.Run, func(t *testing.T, d sqldb.Dialect, c *cache.Cache) cart.Store {
		return store.NewCached(store.New(sqldbtest.Open(t, d, store.Migrations())), c, 0)
	})
}

// countingStore counts the reads that reach the real store beneath.
type countingStore struct {
	cart.Store
	reads atomic.Int64
}

func (s *countingStore) Lines(ctx context.Context, userID string) ([]cart.Line, error) {
	s.reads.Add(1)
	return s.Store.Lines(ctx, userID)
}

// Two instances share a database and Redis: a cart read twice on one is
// read from the database once, and a write on the other, in a transaction
// or not, is seen by the next read on the first.
func TestCachedCartAcrossInstances(t *testing.T) {
	t.Parallel()
	redis := cachetest.Redis(t)
	db := sqldbtest.Open(t, sqldb.SQLite, store.Migrations(), cache.Migrations())
	open := func() (*store.Cached, *countingStore) {
		c := cachetest.Instance(t, redis, db, "cart:")
		inner := &countingStore{Store: store.New(db)}
		return store.NewCached(inner, c, 0), inner
	}
	writer, _ := open()
	reader, counted := open()
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lines := func() []cart.Line {
		t.Helper()
		got, err := reader.Lines(ctx, "u1")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := lines(); len(got) != 0 {
		t.Fatalf("a new cart has lines %+v", got)
	}
	if got := lines(); len(got) != 0 || counted.reads.Load() != 1 {
		t.Fatalf("second read: %+v after %d database reads, want none and 1", got, counted.reads.Load())
	}
	if err := writer.Set(ctx, "u1", "p1", 2, now); err != nil {
		t.Fatal(err)
	}
	if got := lines(); len(got) != 1 || got[0] != (cart.Line{ProductID: "p1", Quantity: 2}) {
		t.Fatalf("after a write on another instance the cart reads %+v", got)
	}
	// A caller changing what it got does not change the cached copy.
	got := lines()
	got[0].Quantity = 99
	if again := lines(); again[0].Quantity != 2 {
		t.Fatalf("the cached lines changed with a caller's copy: %+v", again)
	}
	// A checkout takes the lines out inside its transaction.
	if err := db.InTx(ctx, func(ctx context.Context) error {
		if _, err := writer.Lines(ctx, "u1"); err != nil {
			return err
		}
		return writer.RemoveLines(ctx, "u1", []cart.Line{{ProductID: "p1", Quantity: 2}})
	}); err != nil {
		t.Fatal(err)
	}
	if got := lines(); len(got) != 0 {
		t.Fatalf("after a checkout on another instance the cart reads %+v", got)
	}
}
