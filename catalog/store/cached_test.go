package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/cache/cachetest"
	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

// sends is how many invalidation messages a cache sent (each waited for
// one round of acknowledgements).
func sends(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "million_cache_invalidation_wait_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// A checkout reserves several products in one transaction; after it
// commits, one invalidation message carries them all, and every instance
// shows the new stock.
func TestCachedCheckoutInvalidatesOnce(t *testing.T) {
	t.Parallel()
	redis := cachetest.Redis(t)
	db := sqldbtest.Open(t, sqldb.SQLite, store.Migrations())
	open := func() (*store.Cached, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		c, err := cache.New(cache.Options{Redis: redis, Prefix: "checkout:", Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		cachetest.WaitConnected(t, c)
		return store.NewCached(store.New(db), c, store.CacheTTLs{}), reg
	}
	writer, reg := open()
	reader, _ := open()
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := writer.CreateCategory(ctx, catalog.Category{ID: "c1", Slug: "gear", Name: "Gear"}); err != nil {
		t.Fatal(err)
	}
	ids := []string{"p1", "p2", "p3"}
	for i, id := range ids {
		if err := writer.InsertProduct(ctx, catalog.ProductRow{CategoryID: "c1", Product: catalog.Product{
			ID: id, SKU: fmt.Sprint("SKU-", i), Name: id, PriceCents: 100, Currency: "EUR", Stock: 10,
			CreatedAt: now, UpdatedAt: now,
		}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := reader.ProductsByID(ctx, ids); err != nil || len(got) != 3 || got[0].Stock != 10 {
		t.Fatalf("products before checkout: %+v, %v", got, err)
	}
	before := sends(t, reg)
	if err := writer.InTx(ctx, func(ctx context.Context) error {
		lines := make([]catalog.Line, len(ids))
		for i, id := range ids {
			lines[i] = catalog.Line{ProductID: id, Quantity: 2}
		}
		if err := writer.TakeStock(ctx, lines, now); err != nil {
			return fmt.Errorf("take %v: %v", lines, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := sends(t, reg) - before; n != 1 {
		t.Fatalf("a checkout of 3 products sent %d invalidation messages, want 1", n)
	}
	// Takes of one product after another in one transaction share it too.
	before = sends(t, reg)
	if err := writer.InTx(ctx, func(ctx context.Context) error {
		for _, id := range ids {
			if err := writer.TakeStock(ctx, []catalog.Line{{ProductID: id, Quantity: 1}}, now); err != nil {
				return fmt.Errorf("take %s: %v", id, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := sends(t, reg) - before; n != 1 {
		t.Fatalf("three takes in one transaction sent %d invalidation messages, want 1", n)
	}
	got, err := reader.ProductsByID(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		if p.Stock != 7 {
			t.Fatalf("another instance shows %s with stock %d after the checkouts, want 7", p.ID, p.Stock)
		}
	}
	// An update moves the product and the lists: one message too.
	before = sends(t, reg)
	row := catalog.ProductRow{CategoryID: "c1", Product: got[0]}
	row.PriceCents = 200
	if _, err := writer.UpdateProduct(ctx, row); err != nil {
		t.Fatal(err)
	}
	if n := sends(t, reg) - before; n != 1 {
		t.Fatalf("an update sent %d invalidation messages, want 1", n)
	}
}
