// Package storetest is the contract every catalog.Store must pass, whatever
// engine is behind it: one suite, run by each implementation's own tests
// (catalog/store runs it on SQLite and on PostgreSQL), so a new backend is
// done when Run passes on it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

// when is a clock reading off UTC and below the microsecond, so the suite
// sees that stored times come back in UTC at microsecond precision.
var when = time.Date(2031, 2, 3, 4, 5, 6, 789012345, time.FixedZone("UTC+5:30", 5*3600+1800))

// unstorable are strings PostgreSQL cannot hold in text: NUL, and bytes
// that are not UTF-8.
var unstorable = []string{"p1\x00", "\x00", "p\xff1", "\xc3"}

// Run runs the contract against the stores newStore returns. Every subtest
// calls newStore for a fresh, empty store of its own and runs in parallel.
func Run(t *testing.T, newStore func(t *testing.T) catalog.Store) {
	t.Helper()

	setup := func(t *testing.T) (catalog.Store, context.Context) {
		t.Helper()
		t.Parallel()
		return newStore(t), context.Background()
	}

	t.Run("CategoriesListedByName", func(t *testing.T) {
		s, ctx := setup(t)
		got, err := s.Categories(ctx)
		if err != nil || len(got) != 0 {
			t.Fatalf("Categories on an empty store = %+v, %v; want none", got, err)
		}
		toys := mustCategory(t, s, "c1", "toys", "Toys")
		books := mustCategory(t, s, "c2", "books", "Books")
		garden := mustCategory(t, s, "c3", "garden", "Garden")
		got, err = s.Categories(ctx)
		if want := []catalog.Category{books, garden, toys}; err != nil || !slices.Equal(got, want) {
			t.Fatalf("Categories = %+v, %v; want %+v", got, err, want)
		}
	})

	t.Run("CategoryBySlug", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "toys", "Toys")
		books := mustCategory(t, s, "c2", "books", "Books")
		if got, err := s.CategoryBySlug(ctx, "books"); err != nil || got != books {
			t.Fatalf("CategoryBySlug(books) = %+v, %v; want %+v", got, err, books)
		}
		if got, err := s.CategoryBySlug(ctx, "games"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("CategoryBySlug(games) = %+v, %v; want fault.NotFound", got, err)
		}
		if got, err := s.CategoryBySlug(ctx, "c2"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("CategoryBySlug(an ID) = %+v, %v; want fault.NotFound: it finds by slug only", got, err)
		}
	})

	t.Run("CreateCategorySlugTaken", func(t *testing.T) {
		s, ctx := setup(t)
		first := mustCategory(t, s, "c1", "toys", "Toys")
		err := s.CreateCategory(ctx, catalog.Category{ID: "c2", Slug: "toys", Name: "More toys"})
		sqldbtest.WantFault(t, "CreateCategory(same slug)", err, fault.Conflict, "slug_taken")
		got, err := s.Categories(ctx)
		if want := []catalog.Category{first}; err != nil || !slices.Equal(got, want) {
			t.Fatalf("Categories after the conflict = %+v, %v; want only %+v", got, err, want)
		}
	})

	t.Run("InsertProductAndReadBack", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		in := catalog.ProductRow{CategoryID: "c1", Product: catalog.Product{
			ID: "p1", SKU: "SKU-1", Name: "Tent — 2 person", Description: "Light.\nWaterproof: 3000 mm.",
			PriceCents: 12_345, Currency: "EUR", Category: "gear", Stock: 7,
			ImageURL: "https://img.example.com/tent.jpg", CreatedAt: when, UpdatedAt: when.Add(90 * time.Minute),
		}}
		if err := s.InsertProduct(ctx, in); err != nil {
			t.Fatalf("InsertProduct: %v", err)
		}
		got := mustGet(t, s, "p1")
		if d := productDiff(got, in.Product); d != "" {
			t.Fatalf("ProductsByID after InsertProduct: %s", d)
		}
	})

	t.Run("InsertProductSKUTaken", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		first := mustProduct(t, s, row("p1", "c1", "gear", 100, 1))
		dup := row("p2", "c1", "gear", 200, 2)
		dup.SKU = first.SKU
		sqldbtest.WantFault(t, "InsertProduct(same sku)", s.InsertProduct(ctx, dup), fault.Conflict, "sku_taken")
		if got, ok := get(t, s, "p2"); ok {
			t.Fatalf("ProductsByID(p2) after the conflict = %+v; want no such product", got)
		}
		if d := productDiff(mustGet(t, s, "p1"), first.Product); d != "" {
			t.Fatalf("the first product after the conflict: %s", d)
		}
	})

	t.Run("ProductOne", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		a := mustProduct(t, s, row("p1", "c1", "gear", 100, 1))
		got, found, err := s.Product(ctx, "p1")
		if err != nil || !found {
			t.Fatalf("Product(p1) = found %v, %v; want it", found, err)
		}
		if d := productDiff(got, a.Product); d != "" {
			t.Fatalf("Product(p1): %s", d)
		}
		for _, id := range []string{"nope", "", "p1\x00"} {
			if got, found, err := s.Product(ctx, id); err != nil || found || got.ID != "" {
				t.Fatalf("Product(%q) = %+v, found %v, %v; want not found", id, got, found, err)
			}
		}
	})

	t.Run("ProductsByIDSkipsMissing", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		a := mustProduct(t, s, row("p1", "c1", "gear", 100, 1))
		mustProduct(t, s, row("p2", "c1", "gear", 200, 2))
		c := mustProduct(t, s, row("p3", "c1", "gear", 300, 3))
		got, err := s.ProductsByID(ctx, []string{"p3", "nope", "p1"})
		if err != nil {
			t.Fatalf("ProductsByID: %v", err)
		}
		slices.SortFunc(got, func(x, y catalog.Product) int { return strings.Compare(x.ID, y.ID) })
		if len(got) != 2 {
			t.Fatalf("ProductsByID(p3, nope, p1) = %d products %v; want p1 and p3", len(got), ids(got))
		}
		for i, want := range []catalog.Product{a.Product, c.Product} {
			if d := productDiff(got[i], want); d != "" {
				t.Errorf("ProductsByID item %d: %s", i, d)
			}
		}
		if got, err := s.ProductsByID(ctx, []string{"nope"}); err != nil || len(got) != 0 {
			t.Fatalf("ProductsByID(nope) = %v, %v; want none", ids(got), err)
		}
		if got, err := s.ProductsByID(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("ProductsByID(no ids) = %v, %v; want none", ids(got), err)
		}
	})

	t.Run("UpdateProductWritesEveryMutableField", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		mustCategory(t, s, "c2", "food", "Food")
		before := mustProduct(t, s, row("p1", "c1", "gear", 100, 1))
		other := mustProduct(t, s, row("p2", "c1", "gear", 200, 2))
		changed := before
		changed.CategoryID, changed.Category = "c2", "food"
		changed.Name, changed.Description = "Trail mix", "Nuts and raisins."
		changed.PriceCents, changed.Stock = 999, 42
		changed.ImageURL = "https://img.example.com/mix.png"
		changed.UpdatedAt = when.Add(24 * time.Hour)
		if v, err := s.UpdateProduct(ctx, changed); err != nil || v != 2 {
			t.Fatalf("UpdateProduct = version %d, %v; want version 2", v, err)
		}
		if d := productDiff(mustGet(t, s, "p1"), changed.Product); d != "" {
			t.Fatalf("after UpdateProduct: %s", d)
		}
		if d := productDiff(mustGet(t, s, "p2"), other.Product); d != "" {
			t.Fatalf("another product after UpdateProduct: %s", d)
		}
		// Writing the values the row already holds still finds the row.
		if v, err := s.UpdateProduct(ctx, changed); err != nil || v != 3 {
			t.Fatalf("UpdateProduct with unchanged values = version %d, %v; want version 3", v, err)
		}
		missing := row("nope", "c1", "gear", 1, 1)
		_, err := s.UpdateProduct(ctx, missing)
		sqldbtest.WantFault(t, "UpdateProduct(missing)", err, fault.NotFound, "")
	})

	t.Run("UpdateProductKeepsSKUCurrencyAndCreatedAt", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		before := mustProduct(t, s, row("p1", "c1", "gear", 100, 1))
		// They are set once, by InsertProduct: an update that carries other
		// values for them changes the rest and leaves them as they were.
		changed := before
		changed.SKU, changed.Currency, changed.CreatedAt = "SKU-OTHER", "EUR", when.Add(-24*time.Hour)
		changed.Name, changed.UpdatedAt = "Renamed", when.Add(time.Hour)
		if _, err := s.UpdateProduct(ctx, changed); err != nil {
			t.Fatalf("UpdateProduct: %v", err)
		}
		want := before.Product
		want.Name, want.UpdatedAt = "Renamed", changed.UpdatedAt
		if d := productDiff(mustGet(t, s, "p1"), want); d != "" {
			t.Fatalf("after UpdateProduct with another SKU, currency and creation time: %s", d)
		}
	})

	t.Run("VersionsCountAdminWritesOnly", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		p := mustProduct(t, s, row("p1", "c1", "gear", 100, 5))
		// Stock moves of checkout are not admin writes: they leave the
		// version alone, so they need no event.
		if took, err := take(ctx, s, line("p1", 2), when); err != nil || !took {
			t.Fatalf("TakeStock = %v, %v", took, err)
		}
		if err := s.PutStock(ctx, "p1", 1, when); err != nil {
			t.Fatalf("PutStock: %v", err)
		}
		for want := int64(2); want <= 4; want++ {
			p.Name = fmt.Sprintf("Name %d", want)
			if v, err := s.UpdateProduct(ctx, p); err != nil || v != want {
				t.Fatalf("update = version %d, %v; want version %d", v, err, want)
			}
		}
		// A rolled-back update does not use up a version.
		errRollback := errors.New("roll back")
		if err := s.InTx(ctx, func(ctx context.Context) error {
			if _, err := s.UpdateProduct(ctx, p); err != nil {
				return err
			}
			return errRollback
		}); !errors.Is(err, errRollback) {
			t.Fatalf("InTx = %v, want the rollback", err)
		}
		if v, err := s.DeleteProduct(ctx, "p1"); err != nil || v != 5 {
			t.Fatalf("DeleteProduct = version %d, %v; want version 5", v, err)
		}
	})

	t.Run("DeleteProduct", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		mustProduct(t, s, row("p1", "c1", "gear", 100, 1))
		other := mustProduct(t, s, row("p2", "c1", "gear", 200, 2))
		if v, err := s.DeleteProduct(ctx, "p1"); err != nil || v != 2 {
			t.Fatalf("DeleteProduct = version %d, %v; want version 2, one above the insert's", v, err)
		}
		if got, ok := get(t, s, "p1"); ok {
			t.Fatalf("ProductsByID after DeleteProduct = %+v; want no such product", got)
		}
		_, err := s.DeleteProduct(ctx, "p1")
		sqldbtest.WantFault(t, "DeleteProduct again", err, fault.NotFound, "")
		_, err = s.DeleteProduct(ctx, "nope")
		sqldbtest.WantFault(t, "DeleteProduct(missing)", err, fault.NotFound, "")
		if d := productDiff(mustGet(t, s, "p2"), other.Product); d != "" {
			t.Fatalf("another product after DeleteProduct: %s", d)
		}
		// The SKU of a deleted product is free again.
		again := row("p3", "c1", "gear", 300, 3)
		again.SKU = "SKU-p1"
		if err := s.InsertProduct(ctx, again); err != nil {
			t.Fatalf("InsertProduct with a deleted product's SKU: %v", err)
		}
	})

	t.Run("ListProductsKeysetPages", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "ca", "alpha", "Alpha")
		mustCategory(t, s, "cb", "beta", "Beta")
		const n = 26
		all := map[string]catalog.ProductRow{}
		// Insert in an order unrelated to IDs and prices, with many equal
		// prices, so each order and its ties come from the sort keys alone.
		for i := range n {
			k := (i * 11) % n
			cat, slug := "ca", "alpha"
			if k%3 == 0 {
				cat, slug = "cb", "beta"
			}
			r := mustProduct(t, s, row(fmt.Sprintf("p%02d", k), cat, slug, int64(k*7%4)*100, int64(k)))
			all[r.ID] = r
		}
		for _, sort := range []string{catalog.SortNewest, catalog.SortPrice, catalog.SortPriceDesc} {
			for _, categoryID := range []string{"", "ca", "cb"} {
				want := expectedOrder(all, categoryID, sort)
				for _, limit := range []int{1, 2, 3, 7, n, 100} {
					got := walk(t, s, all, categoryID, sort, limit)
					if !slices.Equal(got, want) {
						t.Errorf("sort %q, category %q, limit %d: pages give\n%v\nwant\n%v", sort, categoryID, limit, got, want)
					}
				}
			}
		}
		for _, sort := range []string{catalog.SortNewest, catalog.SortPrice, catalog.SortPriceDesc} {
			got, err := s.ListProducts(ctx, "nope", sort, nil, 10)
			if err != nil || len(got) != 0 {
				t.Errorf("ListProducts(unknown category, %q) = %v, %v; want none", sort, ids(got), err)
			}
		}
	})

	t.Run("ListProductsEmpty", func(t *testing.T) {
		s, ctx := setup(t)
		for _, sort := range []string{catalog.SortNewest, catalog.SortPrice, catalog.SortPriceDesc} {
			got, err := s.ListProducts(ctx, "", sort, nil, 10)
			if err != nil || len(got) != 0 {
				t.Errorf("ListProducts(%q) on an empty store = %v, %v; want none", sort, ids(got), err)
			}
		}
	})

	t.Run("TakeStockNeverBelowZero", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		mustProduct(t, s, row("p1", "c1", "gear", 100, 5))
		other := mustProduct(t, s, row("p2", "c1", "gear", 100, 5))
		later := when.Add(time.Hour)
		for _, step := range []struct {
			qty       int64
			took      bool
			stockLeft int64
		}{
			{6, false, 5},
			{2, true, 3},
			{3, true, 0},
			{1, false, 0},
		} {
			took, err := take(ctx, s, line("p1", step.qty), later)
			if err != nil || took != step.took {
				t.Fatalf("TakeStock(%d) = %v, %v; want %v", step.qty, took, err, step.took)
			}
			if got := mustGet(t, s, "p1").Stock; got != step.stockLeft {
				t.Fatalf("stock after TakeStock(%d) = %d, want %d", step.qty, got, step.stockLeft)
			}
		}
		p := mustGet(t, s, "p1")
		checkTime(t, "updated_at after TakeStock", p.UpdatedAt, later)
		checkTime(t, "created_at after TakeStock", p.CreatedAt, when)
		if d := productDiff(mustGet(t, s, "p2"), other.Product); d != "" {
			t.Fatalf("another product after TakeStock: %s", d)
		}
		if took, err := take(ctx, s, line("nope", 1), later); err != nil || took {
			t.Fatalf("TakeStock(missing product) = %v, %v; want false, nil", took, err)
		}
	})

	t.Run("TakeStockTakesEveryLineOrNone", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		// More products than one statement takes, so the batches must
		// hold together too.
		const n = 450
		all := make([]catalog.Line, n)
		before := map[string]catalog.Product{}
		for i := range all {
			id := fmt.Sprintf("p%03d", i)
			before[id] = mustProduct(t, s, row(id, "c1", "gear", 100, 5)).Product
			all[i] = catalog.Line{ProductID: id, Quantity: 2}
		}
		unchanged := func(what string) {
			t.Helper()
			for id, p := range before {
				if d := productDiff(mustGet(t, s, id), p); d != "" {
					t.Fatalf("%s: %s changed: %s", what, id, d)
				}
			}
		}
		later := when.Add(time.Hour)
		short := slices.Clone(all)
		short[n-1].Quantity = 6 // the last line, in the last batch
		if took, err := take(ctx, s, short, later); err != nil || took {
			t.Fatalf("TakeStock with the last line short = %v, %v; want false, nil", took, err)
		}
		unchanged("after a TakeStock whose last line was short")
		missing := append(slices.Clone(all[:3]), catalog.Line{ProductID: "nope", Quantity: 1})
		if took, err := take(ctx, s, missing, later); err != nil || took {
			t.Fatalf("TakeStock with a missing product = %v, %v; want false, nil", took, err)
		}
		unchanged("after a TakeStock with a missing product")
		twice := []catalog.Line{{ProductID: "p000", Quantity: 1}, {ProductID: "p000", Quantity: 1}}
		if took, err := take(ctx, s, twice, later); err == nil || took {
			t.Fatalf("TakeStock with a product on two lines = %v, %v; want an error", took, err)
		}
		unchanged("after a TakeStock with a product on two lines")
		// In a caller's transaction the lines before the shortfall are
		// taken in it, so a short take is an error, and the transaction
		// rolls back with nothing taken.
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.TakeStock(ctx, short, later); err != nil {
				return err
			}
			return errors.New("a short TakeStock in a transaction returned no error")
		})
		if !fault.Is(err, fault.Conflict) || !fault.HasCode(err, "insufficient_stock") {
			t.Fatalf("short TakeStock in a transaction: %v, want a conflict insufficient_stock", err)
		}
		unchanged("after a short TakeStock in a rolled-back transaction")
		if took, err := take(ctx, s, all, later); err != nil || !took {
			t.Fatalf("TakeStock of %d lines = %v, %v; want true", n, took, err)
		}
		for id := range before {
			p := mustGet(t, s, id)
			if p.Stock != 3 {
				t.Fatalf("%s: stock after taking 2 of 5 = %d, want 3", id, p.Stock)
			}
			checkTime(t, id+" updated_at after TakeStock", p.UpdatedAt, later)
		}
	})

	t.Run("TakeStockConcurrent", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		mustProduct(t, s, row("p1", "c1", "gear", 100, 10))
		mustProduct(t, s, row("p2", "c1", "gear", 100, 10))
		// Alone, and the way a reservation does it: read (and so lock) the
		// product in a transaction, then take.
		alone := func(ctx context.Context, id string) (bool, error) { return take(ctx, s, line(id, 1), when) }
		inTx := func(ctx context.Context, id string) (bool, error) {
			var took bool
			err := s.InTx(ctx, func(ctx context.Context) error {
				if _, err := s.ProductsByID(ctx, []string{id}); err != nil {
					return err
				}
				err := s.TakeStock(ctx, line(id, 1), when)
				took = err == nil
				return err
			})
			if fault.Is(err, fault.Conflict) {
				return false, nil // sold out, and rolled back
			}
			return took, err
		}
		for id, takeOne := range map[string]func(context.Context, string) (bool, error){"p1": alone, "p2": inTx} {
			took := sqldbtest.Concurrently(t, 50, func(int) (bool, error) { return takeOne(ctx, id) })
			if took != 10 {
				t.Errorf("%s: %d of 50 concurrent TakeStock(1) on stock 10 succeeded, want 10", id, took)
			}
			if got := mustGet(t, s, id).Stock; got != 0 {
				t.Errorf("%s: stock after the rush = %d, want 0", id, got)
			}
		}
	})

	t.Run("PutStock", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		mustProduct(t, s, row("p1", "c1", "gear", 100, 0))
		other := mustProduct(t, s, row("p2", "c1", "gear", 100, 5))
		later := when.Add(2 * time.Hour)
		if err := s.PutStock(ctx, "p1", 3, when); err != nil {
			t.Fatalf("PutStock: %v", err)
		}
		if err := s.PutStock(ctx, "p1", 4, later); err != nil {
			t.Fatalf("PutStock: %v", err)
		}
		p := mustGet(t, s, "p1")
		if p.Stock != 7 {
			t.Fatalf("stock after PutStock(3) and PutStock(4) on 0 = %d, want 7", p.Stock)
		}
		checkTime(t, "updated_at after PutStock", p.UpdatedAt, later)
		if d := productDiff(mustGet(t, s, "p2"), other.Product); d != "" {
			t.Fatalf("another product after PutStock: %s", d)
		}
	})

	t.Run("ReadInTxLocksTheProduct", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		mustProduct(t, s, row("p1", "c1", "gear", 100, 5))
		type result struct {
			took bool
			err  error
		}
		done := make(chan result, 1)
		err := s.InTx(ctx, func(ctx context.Context) error {
			found, err := s.ProductsByID(ctx, []string{"p1"})
			if err != nil || len(found) != 1 {
				return fmt.Errorf("ProductsByID in the transaction = %v, %v", ids(found), err)
			}
			go func() {
				took, err := take(context.Background(), s, line("p1", 1), when)
				done <- result{took, err}
			}()
			time.Sleep(150 * time.Millisecond)
			select {
			case r := <-done:
				return fmt.Errorf("a concurrent TakeStock returned %v, %v while the product was read in a transaction; want it to wait", r.took, r.err)
			default:
			}
			// Sell out what was read: a TakeStock that did not wait would
			// have its unit overwritten here.
			p := found[0]
			p.Stock = 0
			_, err = s.UpdateProduct(ctx, catalog.ProductRow{Product: p, CategoryID: "c1"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if r := <-done; r.err != nil || r.took {
			t.Fatalf("TakeStock after the transaction sold out = %v, %v; want false", r.took, r.err)
		}
		if got := mustGet(t, s, "p1").Stock; got != 0 {
			t.Fatalf("stock = %d, want 0", got)
		}
	})

	t.Run("ReadModifyWriteLosesNoUpdate", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		mustProduct(t, s, row("p1", "c1", "gear", 100, 0))
		const n = 12
		wait := sqldbtest.Gate(n, 200*time.Millisecond)
		ok := sqldbtest.Concurrently(t, n, func(int) (bool, error) {
			err := s.InTx(ctx, func(ctx context.Context) error {
				wait()
				found, err := s.ProductsByID(ctx, []string{"p1"})
				if err != nil || len(found) != 1 {
					return fmt.Errorf("ProductsByID in the transaction = %v, %v", ids(found), err)
				}
				time.Sleep(5 * time.Millisecond) // let the others read, unless the product is locked
				p := found[0]
				p.Stock++
				_, err = s.UpdateProduct(ctx, catalog.ProductRow{Product: p, CategoryID: "c1"})
				return err
			})
			return err == nil, err
		})
		if ok != n {
			t.Fatalf("%d of %d transactions committed", ok, n)
		}
		if got := mustGet(t, s, "p1").Stock; got != n {
			t.Fatalf("stock after %d read-increment-write transactions = %d, want %d: an update was lost", n, got, n)
		}
	})

	t.Run("UnstorableText", func(t *testing.T) {
		s, ctx := setup(t)
		gear := mustCategory(t, s, "c1", "gear", "Gear")
		p1 := mustProduct(t, s, row("p1", "c1", "gear", 100, 5))
		// PostgreSQL text holds valid UTF-8 without NUL, SQLite anything:
		// every engine refuses to write the rest and finds nothing by it.
		for _, bad := range unstorable {
			if got, err := s.CategoryBySlug(ctx, bad); !fault.Is(err, fault.NotFound) {
				t.Errorf("CategoryBySlug(%q) = %+v, %v; want fault.NotFound", bad, got, err)
			}
			if got, err := s.ProductsByID(ctx, []string{bad, "p1"}); err != nil || !slices.Equal(ids(got), []string{"p1"}) {
				t.Errorf("ProductsByID(%q, p1) = %v, %v; want p1", bad, ids(got), err)
			}
			missing := p1
			missing.ID = bad
			if _, err := s.UpdateProduct(ctx, missing); !fault.Is(err, fault.NotFound) {
				t.Errorf("UpdateProduct(ID %q) = %v, want fault.NotFound", bad, err)
			}
			if _, err := s.DeleteProduct(ctx, bad); !fault.Is(err, fault.NotFound) {
				t.Errorf("DeleteProduct(%q) = %v, want fault.NotFound", bad, err)
			}
			if took, err := take(ctx, s, line(bad, 1), when); err != nil || took {
				t.Errorf("TakeStock(%q) = %v, %v; want false, nil", bad, took, err)
			}
			if err := s.PutStock(ctx, bad, 1, when); err != nil {
				t.Errorf("PutStock(%q) = %v, want nil as for any unknown product", bad, err)
			}
			for _, sort := range []string{catalog.SortNewest, catalog.SortPrice, catalog.SortPriceDesc} {
				if got, err := s.ListProducts(ctx, bad, sort, nil, 10); err != nil || len(got) != 0 {
					t.Errorf("ListProducts(category %q, %s) = %v, %v; want none", bad, sort, ids(got), err)
				}
				after := &catalog.Position{Sort: sort, ID: bad}
				if got, err := s.ListProducts(ctx, "", sort, after, 10); !fault.Is(err, fault.Invalid) {
					t.Errorf("ListProducts(after ID %q, %s) = %v, %v; want fault.Invalid", bad, sort, ids(got), err)
				}
			}
			if err := s.CreateCategory(ctx, catalog.Category{ID: "c2", Slug: "misc", Name: "Misc " + bad}); !fault.Is(err, fault.Invalid) {
				t.Errorf("CreateCategory(name %q) = %v, want fault.Invalid", bad, err)
			}
			for _, field := range []func(r *catalog.ProductRow){
				func(r *catalog.ProductRow) { r.ID = bad },
				func(r *catalog.ProductRow) { r.SKU = bad },
				func(r *catalog.ProductRow) { r.Name = bad },
				func(r *catalog.ProductRow) { r.Description = bad },
				func(r *catalog.ProductRow) { r.ImageURL = bad },
			} {
				r := row("p2", "c1", "gear", 100, 1)
				field(&r)
				if err := s.InsertProduct(ctx, r); !fault.Is(err, fault.Invalid) {
					t.Errorf("InsertProduct(%+v) = %v, want fault.Invalid", r.Product, err)
				}
			}
			changed := p1
			changed.Description = bad
			if _, err := s.UpdateProduct(ctx, changed); !fault.Is(err, fault.Invalid) {
				t.Errorf("UpdateProduct(description %q) = %v, want fault.Invalid", bad, err)
			}
		}
		if d := productDiff(mustGet(t, s, "p1"), p1.Product); d != "" {
			t.Errorf("p1 after refused writes: %s", d)
		}
		got, err := s.ListProducts(ctx, "", catalog.SortNewest, nil, 10)
		if err != nil || !slices.Equal(ids(got), []string{"p1"}) {
			t.Errorf("products after refused writes = %v, %v; want only p1", ids(got), err)
		}
		if got, err := s.Categories(ctx); err != nil || !slices.Equal(got, []catalog.Category{gear}) {
			t.Errorf("categories after refused writes = %+v, %v; want only %+v", got, err, gear)
		}
	})

	t.Run("InTxRollsBackAndNests", func(t *testing.T) {
		s, ctx := setup(t)
		mustCategory(t, s, "c1", "gear", "Gear")
		mustProduct(t, s, row("p1", "c1", "gear", 100, 5))
		boom := errors.New("boom")
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.InsertProduct(ctx, row("p2", "c1", "gear", 100, 1)); err != nil {
				return err
			}
			// A nested InTx joins the outer transaction: its work is undone
			// with the outer one even though it returned nil.
			if err := s.InTx(ctx, func(ctx context.Context) error {
				err := s.TakeStock(ctx, line("p1", 5), when)
				return err
			}); err != nil {
				return err
			}
			if found, err := s.ProductsByID(ctx, []string{"p2"}); err != nil || len(found) != 1 {
				return fmt.Errorf("ProductsByID(p2) in the transaction that inserted it = %v, %v; want it", ids(found), err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want the error fn returned", err)
		}
		if got, ok := get(t, s, "p2"); ok {
			t.Fatalf("a product inserted in a rolled-back transaction exists: %+v", got)
		}
		if got := mustGet(t, s, "p1").Stock; got != 5 {
			t.Fatalf("stock after a rolled-back TakeStock = %d, want 5", got)
		}
		if err := s.InTx(ctx, func(ctx context.Context) error {
			return s.InsertProduct(ctx, row("p3", "c1", "gear", 100, 1))
		}); err != nil {
			t.Fatalf("InTx: %v", err)
		}
		if _, ok := get(t, s, "p3"); !ok {
			t.Fatal("a product inserted in a committed transaction is missing")
		}
	})
}

// row is a product in a category; its SKU derives from its ID.
func row(id, categoryID, categorySlug string, priceCents, stock int64) catalog.ProductRow {
	return catalog.ProductRow{CategoryID: categoryID, Product: catalog.Product{
		ID: id, SKU: "SKU-" + id, Name: "Product " + id, Description: "About " + id + ".",
		PriceCents: priceCents, Currency: "USD", Category: categorySlug, Stock: stock,
		CreatedAt: when, UpdatedAt: when,
	}}
}

// take runs TakeStock and reports whether it took the lines: a shortfall
// is its insufficient_stock conflict; any other error is returned.
func take(ctx context.Context, s catalog.Store, lines []catalog.Line, now time.Time) (bool, error) {
	err := s.TakeStock(ctx, lines, now)
	if fault.HasCode(err, "insufficient_stock") {
		return false, nil
	}
	return err == nil, err
}

// line is a take of one product's stock.
func line(id string, qty int64) []catalog.Line {
	return []catalog.Line{{ProductID: id, Quantity: qty}}
}

func mustCategory(t *testing.T, s catalog.Store, id, slug, name string) catalog.Category {
	t.Helper()
	c := catalog.Category{ID: id, Slug: slug, Name: name}
	if err := s.CreateCategory(context.Background(), c); err != nil {
		t.Fatalf("CreateCategory(%s): %v", slug, err)
	}
	return c
}

func mustProduct(t *testing.T, s catalog.Store, r catalog.ProductRow) catalog.ProductRow {
	t.Helper()
	if err := s.InsertProduct(context.Background(), r); err != nil {
		t.Fatalf("InsertProduct(%s): %v", r.ID, err)
	}
	return r
}

// get reads one product outside any transaction.
func get(t *testing.T, s catalog.Store, id string) (catalog.Product, bool) {
	t.Helper()
	found, err := s.ProductsByID(context.Background(), []string{id})
	if err != nil {
		t.Fatalf("ProductsByID(%s): %v", id, err)
	}
	if len(found) > 1 {
		t.Fatalf("ProductsByID(%s) = %d products", id, len(found))
	}
	if len(found) == 0 {
		return catalog.Product{}, false
	}
	return found[0], true
}

func mustGet(t *testing.T, s catalog.Store, id string) catalog.Product {
	t.Helper()
	p, ok := get(t, s, id)
	if !ok {
		t.Fatalf("ProductsByID(%s): no such product", id)
	}
	return p
}

func ids(ps []catalog.Product) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// productDiff describes how got differs from want as stored, or returns "".
func productDiff(got, want catalog.Product) string {
	var d []string
	for _, tm := range []struct {
		name      string
		got, want time.Time
	}{{"CreatedAt", got.CreatedAt, want.CreatedAt}, {"UpdatedAt", got.UpdatedAt, want.UpdatedAt}} {
		if tm.got.Location() != time.UTC || !tm.got.Equal(sqldbtest.Stored(tm.want)) {
			d = append(d, fmt.Sprintf("%s = %v, want %v", tm.name, tm.got, sqldbtest.Stored(tm.want)))
		}
	}
	got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got != want {
		d = append(d, fmt.Sprintf("got %+v, want %+v", got, want))
	}
	return strings.Join(d, "; ")
}

func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if got.Location() != time.UTC || !got.Equal(sqldbtest.Stored(want)) {
		t.Errorf("%s = %v, want %v (UTC, microseconds)", what, got, sqldbtest.Stored(want))
	}
}

// expectedOrder lists the IDs of the products of a category ("" for all)
// in the order of sort.
func expectedOrder(all map[string]catalog.ProductRow, categoryID, sort string) []string {
	var rows []catalog.ProductRow
	for _, r := range all {
		if categoryID == "" || r.CategoryID == categoryID {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b catalog.ProductRow) int {
		switch sort {
		case catalog.SortPrice:
			if c := compareInt(a.PriceCents, b.PriceCents); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		case catalog.SortPriceDesc:
			if c := compareInt(b.PriceCents, a.PriceCents); c != 0 {
				return c
			}
			return strings.Compare(b.ID, a.ID)
		default:
			return strings.Compare(b.ID, a.ID)
		}
	})
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// walk reads every page of a list the way catalog.Catalog.Products does:
// one more than limit to learn whether a next page exists, and the
// position of the last item shown as the start of the next page.
func walk(t *testing.T, s catalog.Store, all map[string]catalog.ProductRow, categoryID, sort string, limit int) []string {
	t.Helper()
	var out []string
	var after *catalog.Position
	for page := 0; ; page++ {
		if page > len(all)+1 {
			t.Fatalf("sort %q, category %q, limit %d: more pages than products", sort, categoryID, limit)
		}
		items, err := s.ListProducts(context.Background(), categoryID, sort, after, limit+1)
		if err != nil {
			t.Fatalf("ListProducts(%q, %q, %+v, %d): %v", categoryID, sort, after, limit+1, err)
		}
		if len(items) > limit+1 {
			t.Fatalf("ListProducts(limit %d) returned %d products", limit+1, len(items))
		}
		for _, p := range items[:min(len(items), limit)] {
			want, ok := all[p.ID]
			if !ok {
				t.Fatalf("ListProducts returned unknown product %q", p.ID)
			}
			if d := productDiff(p, want.Product); d != "" {
				t.Fatalf("ListProducts item %s: %s", p.ID, d)
			}
			out = append(out, p.ID)
		}
		if len(items) <= limit {
			return out
		}
		last := items[limit-1]
		pos := catalog.Position{Sort: sort, ID: last.ID}
		if sort != catalog.SortNewest {
			pos.PriceCents = last.PriceCents
		}
		after = &pos
	}
}
