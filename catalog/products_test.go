package catalog_test

import (
	"context"
	"errors"
	"testing"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

// TestProductsRejectsAnUnstorableCursor forges cursors whose product ID no
// store can hold (JSON carries a NUL as "\u0000") and wants each refused as
// a bad cursor, with the field named, where the store would only say the
// request is invalid.
func TestProductsRejectsAnUnstorableCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.product(t, "Kettle", 2500, 1)
	tc.product(t, "Teapot", 1500, 1)
	for _, sort := range []string{catalog.SortNewest, catalog.SortPrice, catalog.SortPriceDesc} {
		first, err := tc.Products(ctx, catalog.ListQuery{Sort: sort, Limit: 1})
		if err != nil || len(first.Items) != 1 || first.NextCursor == "" {
			t.Fatalf("Products(%s, limit 1) = %+v, %v; want one product and a next cursor", sort, first, err)
		}
		// The cursor the list returned still works, so the refusals below
		// are about the forged ID alone.
		next, err := tc.Products(ctx, catalog.ListQuery{Sort: sort, Limit: 1, Cursor: first.NextCursor})
		if err != nil || len(next.Items) != 1 || next.Items[0].ID == first.Items[0].ID {
			t.Fatalf("Products(%s, limit 1, next) = %+v, %v; want the other product", sort, next, err)
		}
		last := first.Items[0]
		for _, id := range []string{last.ID + "\x00", "\x00", "p\x001"} {
			pos := catalog.Position{Sort: sort, ID: id}
			if sort != catalog.SortNewest {
				pos.PriceCents = last.PriceCents
			}
			page, err := tc.Products(ctx, catalog.ListQuery{Sort: sort, Limit: 1, Cursor: web.EncodeCursor(pos)})
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Kind != fault.Invalid || len(fe.Fields) != 1 || fe.Fields[0].Field != "cursor" {
				t.Errorf("Products(%s, cursor with ID %q) = %+v, %v; want fault.Invalid on field cursor", sort, id, page, err)
			}
		}
	}
}
