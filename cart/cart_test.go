package cart_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/millionshop/million/cart"
	cartstore "github.com/millionshop/million/cart/store"
	"github.com/millionshop/million/catalog"
	catalogstore "github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/sqldb"
)

type fixture struct {
	carts   *cart.Carts
	catalog *catalog.Catalog
	db      *sqldb.DB
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	db, err := sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background(), []sqldb.Migrations{
		catalogstore.Migrations(), outbox.Migrations(), cartstore.Migrations(),
	}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	// The catalog's events stay in the outbox: nothing relays them, as the
	// cart consumes none.
	cat := catalog.NewCatalog(catalogstore.New(db), outbox.New(db, nil, slog.New(slog.DiscardHandler), time.Now), "USD", time.Now)
	if _, err := cat.CreateCategory(context.Background(), "gear", "Gear"); err != nil {
		t.Fatalf("create category: %v", err)
	}
	return fixture{carts: cart.NewCarts(cartstore.New(db), cat, "USD", time.Now), catalog: cat, db: db}
}

func ptr[T any](v T) *T { return &v }

func (f fixture) product(t *testing.T, sku string, priceCents int64) catalog.Product {
	t.Helper()
	p, err := f.catalog.CreateProduct(context.Background(), catalog.NewProduct{
		SKU: ptr(sku), Name: ptr("Product " + sku), Description: ptr(""),
		PriceCents: ptr(priceCents), Category: ptr("gear"), Stock: ptr(int64(10)),
	})
	if err != nil {
		t.Fatalf("create product: %v", err)
	}
	return p
}

func (f fixture) set(t *testing.T, userID, productID string, qty int64) {
	t.Helper()
	if _, err := f.carts.SetItem(context.Background(), userID, productID, qty); err != nil {
		t.Fatalf("set %s × %d: %v", productID, qty, err)
	}
}

func TestLinesAreWhatGetShows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	a, b, c := f.product(t, "A", 100), f.product(t, "B", 200), f.product(t, "C", 300)
	f.set(t, "u1", a.ID, 1)
	f.set(t, "u1", b.ID, 2)
	f.set(t, "u1", c.ID, 3)
	if err := f.catalog.DeleteProduct(ctx, b.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	want := []cart.Line{{ProductID: a.ID, Quantity: 1}, {ProductID: c.ID, Quantity: 3}}
	lines, err := f.carts.Lines(ctx, "u1")
	if err != nil || !slices.Equal(lines, want) {
		t.Fatalf("Lines = %+v, %v; want %+v", lines, err, want)
	}
	// Inside a transaction too, as checkout reads them.
	err = f.db.InTx(ctx, func(ctx context.Context) error {
		lines, err := f.carts.Lines(ctx, "u1")
		if err != nil || !slices.Equal(lines, want) {
			t.Errorf("Lines in a transaction = %+v, %v; want %+v", lines, err, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	got, err := f.carts.Get(ctx, "u1")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if len(got.Items) != 2 || got.Items[0].ProductID != a.ID || got.Items[1].ProductID != c.ID || got.TotalCents != 100+900 {
		t.Fatalf("Get = %+v, want a × 1 and c × 3 for 1000", got)
	}
}

func TestCartFullCountsOnlyVisibleLines(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	products := make([]catalog.Product, cart.MaxLines+1)
	for i := range products {
		products[i] = f.product(t, "P"+strconv.Itoa(i), 100)
	}
	for _, p := range products[:cart.MaxLines] {
		f.set(t, "u1", p.ID, 1)
	}
	extra := products[cart.MaxLines]
	if _, err := f.carts.SetItem(ctx, "u1", extra.ID, 1); !fault.HasCode(err, "cart_full") {
		t.Fatalf("101st product: err = %v, want cart_full", err)
	}
	// Changing a quantity of a full cart is fine.
	f.set(t, "u1", products[0].ID, 5)
	// Another user's cart is separate.
	f.set(t, "u2", extra.ID, 1)
	// A deleted product frees its place: the owner cannot see or remove it.
	if err := f.catalog.DeleteProduct(ctx, products[1].ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	f.set(t, "u1", extra.ID, 1)
	got, err := f.carts.Get(ctx, "u1")
	if err != nil || len(got.Items) != cart.MaxLines {
		t.Fatalf("cart has %d items (%v), want %d", len(got.Items), err, cart.MaxLines)
	}
}

func TestSetItemRefusesBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	p := f.product(t, "A", 100)
	for _, qty := range []int64{0, -1, cart.MaxQuantity + 1} {
		if _, err := f.carts.SetItem(ctx, "u1", p.ID, qty); !fault.Is(err, fault.Invalid) {
			t.Errorf("quantity %d: err = %v, want Invalid", qty, err)
		}
	}
	if _, err := f.carts.SetItem(ctx, "u1", "no-such-product", 1); !fault.Is(err, fault.NotFound) {
		t.Errorf("unknown product: err = %v, want NotFound", err)
	}
	if got, err := f.carts.Get(ctx, "u1"); err != nil || len(got.Items) != 0 {
		t.Errorf("cart = %+v, %v; want empty", got, err)
	}
}
