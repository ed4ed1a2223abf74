package order_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/order"
	orderstore "github.com/millionshop/million/order/store"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
	"github.com/millionshop/million/web"
)

// TestListRejectsAnUnstorableCursor forges cursors whose order ID no store
// can hold (JSON carries a NUL as "\u0000") and wants each refused as a bad
// cursor, with the field named, where the store would only say the request
// is invalid.
func TestListRejectsAnUnstorableCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := orderstore.New(sqldbtest.Open(t, sqldb.SQLite, orderstore.Migrations()))
	now := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, id := range []string{"o1", "o2"} {
		o := order.Order{ID: id, UserID: "u1", Status: order.StatusPending, Currency: "USD", PaymentStatus: "none",
			Items:      []order.Item{{ProductID: "p1", SKU: "SKU-1", Name: "Kettle", PriceCents: 2500, Quantity: 1}},
			TotalCents: 2500, CreatedAt: now, UpdatedAt: now}
		if err := store.InsertOrder(ctx, o); err != nil {
			t.Fatalf("InsertOrder(%s): %v", id, err)
		}
	}
	orders := order.NewOrders(store, nil, nil, nil, nil, order.Config{Currency: "USD"},
		slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return now })

	first, err := orders.List(ctx, "u1", 1, "")
	if err != nil || len(first.Items) != 1 || first.Items[0].ID != "o2" || first.NextCursor == "" {
		t.Fatalf("List(u1, 1) = %+v, %v; want o2 and a next cursor", first, err)
	}
	// The cursor the list returned still works, so the refusals below are
	// about the forged ID alone.
	if next, err := orders.List(ctx, "u1", 1, first.NextCursor); err != nil || len(next.Items) != 1 || next.Items[0].ID != "o1" {
		t.Fatalf("List(u1, 1, next) = %+v, %v; want o1", next, err)
	}
	for _, id := range []string{"o2\x00", "\x00", "o\x002"} {
		cursor := web.EncodeCursor(struct {
			ID string `json:"id"`
		}{id})
		page, err := orders.List(ctx, "u1", 1, cursor)
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Kind != fault.Invalid || len(fe.Fields) != 1 || fe.Fields[0].Field != "cursor" {
			t.Errorf("List(cursor with ID %q) = %+v, %v; want fault.Invalid on field cursor", id, page, err)
		}
	}
}
