package cart_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/millionshop/million/cart"
	cartstore "github.com/millionshop/million/cart/store"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestRemoveLinesKeepsWhatChanged proves checkout's cart cleanup on every
// engine: the ordered lines go, a line added since and a line whose
// quantity changed since stay.
func TestRemoveLinesKeepsWhatChanged(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, []sqldb.Migrations{cartstore.Migrations()}, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		store := cartstore.New(db)
		carts := cart.NewCarts(store, nil, "USD", time.Now)
		now := time.Now()
		for _, l := range []cart.Line{{"p1", 2}, {"p2", 3}, {"p3", 1}} {
			if err := store.Set(ctx, "u1", l.ProductID, l.Quantity, now); err != nil {
				t.Fatalf("set %s: %v", l.ProductID, err)
			}
		}
		if err := store.Set(ctx, "u2", "p1", 2, now); err != nil {
			t.Fatalf("set: %v", err)
		}
		// Ordered: p1×2 (unchanged), p2×1 (since raised to 3), p9 (gone).
		ordered := []cart.Line{{"p1", 2}, {"p2", 1}, {"p9", 1}}
		err := db.InTx(ctx, func(ctx context.Context) error { return carts.RemoveLines(ctx, "u1", ordered) })
		if err != nil {
			t.Fatalf("RemoveLines: %v", err)
		}
		got, err := store.Lines(ctx, "u1")
		if err != nil {
			t.Fatalf("lines: %v", err)
		}
		if want := []cart.Line{{"p2", 3}, {"p3", 1}}; !slices.Equal(got, want) {
			t.Fatalf("cart after RemoveLines = %v, want %v", got, want)
		}
		if other, err := store.Lines(ctx, "u2"); err != nil || len(other) != 1 {
			t.Fatalf("another user's cart = %v, %v; want untouched", other, err)
		}
	})
}
