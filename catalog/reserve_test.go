package catalog_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/catalog"
	catalogstore "github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/sqldb"
)

// testCatalog is a catalog on a fresh SQLite file, recording its events in
// the real outbox, with one category.
type testCatalog struct {
	*catalog.Catalog
	db       *sqldb.DB
	outbox   *outbox.Outbox
	sent     *sentEvents
	category string
}

func newTestCatalog(t *testing.T) testCatalog {
	t.Helper()
	db, err := sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if _, err := db.Migrate(ctx, []sqldb.Migrations{catalogstore.Migrations(), outbox.Migrations()}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	sent := &sentEvents{}
	events := outbox.New(db, sent, slog.New(slog.DiscardHandler), time.Now)
	c := catalog.NewCatalog(catalogstore.New(db), events, "USD", time.Now)
	cat, err := c.CreateCategory(ctx, "gear", "Gear")
	if err != nil {
		t.Fatalf("create category: %v", err)
	}
	return testCatalog{Catalog: c, db: db, outbox: events, sent: sent, category: cat.Slug}
}

func ptr[T any](v T) *T { return &v }

// product creates a product with the given price and stock.
func (tc testCatalog) product(t *testing.T, name string, priceCents, stock int64) catalog.Product {
	t.Helper()
	p, err := tc.CreateProduct(context.Background(), catalog.NewProduct{
		SKU: ptr("SKU-" + uuid.NewString()), Name: ptr(name), Description: ptr("For tests."),
		PriceCents: ptr(priceCents), Category: ptr(tc.category), Stock: ptr(stock),
	})
	if err != nil {
		t.Fatalf("create product: %v", err)
	}
	return p
}

// stock returns a product's stock as stored now.
func (tc testCatalog) stock(t *testing.T, id string) int64 {
	t.Helper()
	p, err := tc.Product(context.Background(), id)
	if err != nil {
		t.Fatalf("product %s: %v", id, err)
	}
	return p.Stock
}

func wantInsufficientStock(t *testing.T, err error) {
	t.Helper()
	if !fault.Is(err, fault.Conflict) || !fault.HasCode(err, "insufficient_stock") {
		t.Fatalf("err = %v, want a conflict insufficient_stock", err)
	}
}

func TestReserveTakesStockAndRecordsTheSale(t *testing.T) {
	t.Parallel()
	tc := newTestCatalog(t)
	a := tc.product(t, "Alpha", 1000, 5)
	b := tc.product(t, "Beta", 250, 3)

	got, err := tc.Reserve(context.Background(), []catalog.Line{{ProductID: b.ID, Quantity: 3}, {ProductID: a.ID, Quantity: 1}, {ProductID: a.ID, Quantity: 1}})
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	// Lines of one product are merged; the result is in product ID order.
	want := map[string]catalog.ReservedLine{
		a.ID: {ProductID: a.ID, SKU: a.SKU, Name: "Alpha", PriceCents: 1000, Quantity: 2},
		b.ID: {ProductID: b.ID, SKU: b.SKU, Name: "Beta", PriceCents: 250, Quantity: 3},
	}
	if len(got) != 2 {
		t.Fatalf("reserved %+v, want 2 lines", got)
	}
	for _, l := range got {
		if l != want[l.ProductID] {
			t.Errorf("reserved %+v, want %+v", l, want[l.ProductID])
		}
	}
	if got[0].ProductID > got[1].ProductID {
		t.Errorf("reserved lines are not in product ID order: %+v", got)
	}
	if s := tc.stock(t, a.ID); s != 3 {
		t.Errorf("stock of a = %d, want 3", s)
	}
	if s := tc.stock(t, b.ID); s != 0 {
		t.Errorf("stock of b = %d, want 0", s)
	}
}

func TestReserveIsAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		lines   func(first, second catalog.Product) []catalog.Line
		message string // names the product that is short
	}{
		{"second line lacks stock", func(first, second catalog.Product) []catalog.Line {
			return []catalog.Line{{ProductID: first.ID, Quantity: 2}, {ProductID: second.ID, Quantity: 2}}
		}, "not enough stock for Second"},
		{"second line lacks stock, given first", func(first, second catalog.Product) []catalog.Line {
			return []catalog.Line{{ProductID: second.ID, Quantity: 2}, {ProductID: first.ID, Quantity: 2}}
		}, "not enough stock for Second"},
		{"merged lines of one product lack stock", func(first, second catalog.Product) []catalog.Line {
			return []catalog.Line{{ProductID: first.ID, Quantity: 1}, {ProductID: second.ID, Quantity: 1}, {ProductID: second.ID, Quantity: 1}}
		}, "not enough stock for Second"},
		{"second product does not exist", func(first, _ catalog.Product) []catalog.Line {
			return []catalog.Line{{ProductID: first.ID, Quantity: 1}, {ProductID: "~" + uuid.NewString(), Quantity: 1}}
		}, "a product in the cart is no longer sold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestCatalog(t)
			first := c.product(t, "First", 100, 5)
			second := c.product(t, "Second", 100, 1)
			// UUIDv7 IDs grow, and Reserve goes in ID order, so a
			// reservation that took the lines one at a time would have
			// taken the first product's stock before the second failed.
			if first.ID >= second.ID {
				t.Fatalf("IDs %s and %s are not increasing", first.ID, second.ID)
			}
			got, err := c.Reserve(ctx, tc.lines(first, second))
			wantInsufficientStock(t, err)
			var fe *fault.Error
			if errors.As(err, &fe) && fe.Message != tc.message {
				t.Errorf("message %q, want %q", fe.Message, tc.message)
			}
			if got != nil {
				t.Errorf("a failed reservation returned %+v", got)
			}
			if s := c.stock(t, first.ID); s != 5 {
				t.Errorf("first product's stock = %d after a failed reservation, want 5", s)
			}
			if s := c.stock(t, second.ID); s != 1 {
				t.Errorf("second product's stock = %d after a failed reservation, want 1", s)
			}
		})
	}
}

func TestReserveRefusesNonPositiveQuantities(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newTestCatalog(t)
	p := c.product(t, "Widget", 100, 5)
	for _, qty := range []int64{0, -1, -1 << 62, catalog.MaxStock + 1} {
		if _, err := c.Reserve(ctx, []catalog.Line{{ProductID: p.ID, Quantity: qty}}); !fault.Is(err, fault.Invalid) {
			t.Errorf("Reserve(%d) err = %v, want Invalid", qty, err)
		}
		if err := c.Release(ctx, []catalog.Line{{ProductID: p.ID, Quantity: qty}}); !fault.Is(err, fault.Invalid) {
			t.Errorf("Release(%d) err = %v, want Invalid", qty, err)
		}
	}
	if s := c.stock(t, p.ID); s != 5 {
		t.Errorf("stock = %d, want 5", s)
	}
}

func TestReleaseReturnsStock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newTestCatalog(t)
	a := c.product(t, "Alpha", 100, 4)
	b := c.product(t, "Beta", 100, 2)
	lines := []catalog.Line{{ProductID: a.ID, Quantity: 3}, {ProductID: b.ID, Quantity: 2}}
	if _, err := c.Reserve(ctx, lines); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	if _, err := c.Reserve(ctx, lines); err == nil {
		t.Fatal("a second reservation succeeded without stock")
	}
	if err := c.Release(ctx, lines); err != nil {
		t.Fatalf("release: %v", err)
	}
	if sa, sb := c.stock(t, a.ID), c.stock(t, b.ID); sa != 4 || sb != 2 {
		t.Fatalf("stock after release = %d, %d, want 4, 2", sa, sb)
	}
	// Released stock can be reserved again.
	if _, err := c.Reserve(ctx, lines); err != nil {
		t.Fatalf("reserve after release: %v", err)
	}
	// Releasing a product deleted since is not an error: there is nothing to return it to.
	if err := c.DeleteProduct(ctx, b.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := c.Release(ctx, lines); err != nil {
		t.Fatalf("release with a deleted product: %v", err)
	}
	if s := c.stock(t, a.ID); s != 4 {
		t.Fatalf("stock of a = %d, want 4", s)
	}
}

func TestReserveJoinsTheCallersTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newTestCatalog(t)
	p := c.product(t, "Alpha", 100, 4)
	rollback := errors.New("caller failed later")
	err := c.db.InTx(ctx, func(ctx context.Context) error {
		if _, err := c.Reserve(ctx, []catalog.Line{{ProductID: p.ID, Quantity: 3}}); err != nil {
			t.Fatalf("reserve: %v", err)
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("InTx = %v, want the caller's error", err)
	}
	if s := c.stock(t, p.ID); s != 4 {
		t.Fatalf("stock = %d after the caller rolled back, want 4", s)
	}
}

func TestConcurrentReserveNeverOversells(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newTestCatalog(t)
	p := c.product(t, "Last Ten", 100, 10)

	const buyers = 50
	var wg sync.WaitGroup
	errs := make([]error, buyers)
	start := make(chan struct{})
	for i := range buyers {
		wg.Go(func() {
			<-start
			_, errs[i] = c.Reserve(ctx, []catalog.Line{{ProductID: p.ID, Quantity: 1}})
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case fault.HasCode(err, "insufficient_stock"):
		default:
			t.Errorf("a buyer failed with %v, want success or insufficient_stock", err)
		}
	}
	if ok != 10 {
		t.Errorf("%d reservations succeeded, want 10", ok)
	}
	if s := c.stock(t, p.ID); s != 0 {
		t.Errorf("stock = %d, want 0", s)
	}
}
