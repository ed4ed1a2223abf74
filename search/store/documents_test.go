package store_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/millionshop/million/catalog"
	catalogstore "github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/search"
	"github.com/millionshop/million/search/store"
	"github.com/millionshop/million/sqldb"
)

// searchDoc is what the index should hold for one product.
type searchDoc struct{ name, description string }

// searchWordsOf splits text the way both full-text tables do for the plain
// ASCII text these tests use: lowercase runs of letters and digits.
func searchWordsOf(d searchDoc) []string {
	return search.Terms(d.name + " " + d.description)
}

// searchCheckInStep fails unless every search table holds exactly the
// documents of want, under one rowid per product: search_documents maps each
// product to its rowid, search_products holds that row with the product's
// current text, and search_words holds that row, matching exactly the words
// of the current text. vocabulary is every word any version of a document
// had, so stale words of a replaced or deleted document are caught.
func searchCheckInStep(t *testing.T, db *sqldb.DB, want map[string]searchDoc, vocabulary []string) {
	t.Helper()
	ctx := context.Background()
	docs := map[string]int64{} // product id -> rowid
	rows, err := db.Read.QueryContext(ctx, `SELECT doc, product_id FROM search_documents WHERE NOT deleted`)
	if err != nil {
		t.Fatalf("list search_documents: %v", err)
	}
	for rows.Next() {
		var doc int64
		var id string
		if err := rows.Scan(&doc, &id); err != nil {
			t.Fatalf("scan search_documents: %v", err)
		}
		docs[id] = doc
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if got, wantIDs := slices.Sorted(maps.Keys(docs)), slices.Sorted(maps.Keys(want)); !slices.Equal(got, wantIDs) {
		t.Fatalf("search_documents holds %v, want %v", got, wantIDs)
	}

	rows, err = db.Read.QueryContext(ctx, `SELECT rowid, product_id, name, description FROM search_products`)
	if err != nil {
		t.Fatalf("list search_products: %v", err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var doc int64
		var id string
		var d searchDoc
		if err := rows.Scan(&doc, &id, &d.name, &d.description); err != nil {
			t.Fatalf("scan search_products: %v", err)
		}
		if w, ok := want[id]; !ok || seen[id] || doc != docs[id] || d != w {
			t.Errorf("search_products row %d = %s %+v; want one row per product, at rowid %d, with %+v",
				doc, id, d, docs[id], w)
		}
		seen[id] = true
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Errorf("search_products holds %d products, want %d", len(seen), len(want))
	}

	var wordRows []int64
	rows, err = db.Read.QueryContext(ctx, `SELECT rowid FROM search_words ORDER BY rowid`)
	if err != nil {
		t.Fatalf("list search_words: %v", err)
	}
	for rows.Next() {
		var doc int64
		if err := rows.Scan(&doc); err != nil {
			t.Fatalf("scan search_words: %v", err)
		}
		wordRows = append(wordRows, doc)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if wantRows := slices.Sorted(maps.Values(docs)); !slices.Equal(wordRows, wantRows) {
		t.Errorf("search_words rows = %v, want %v", wordRows, wantRows)
	}
	for _, word := range vocabulary {
		var wantDocs []int64
		for id, d := range want {
			if slices.Contains(searchWordsOf(d), word) {
				wantDocs = append(wantDocs, docs[id])
			}
		}
		slices.Sort(wantDocs)
		rows, err := db.Read.QueryContext(ctx, `SELECT rowid FROM search_words WHERE search_words MATCH ? ORDER BY rowid`,
			`"`+word+`"`)
		if err != nil {
			t.Fatalf("match search_words %q: %v", word, err)
		}
		var got []int64
		for rows.Next() {
			var doc int64
			if err := rows.Scan(&doc); err != nil {
				t.Fatalf("scan search_words: %v", err)
			}
			got = append(got, doc)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, wantDocs) {
			t.Errorf("search_words matches %q in rows %v, want %v", word, got, wantDocs)
		}
	}
}

// indexPublisher delivers the outbox's events straight to the index, as the
// "search" consumer does, without a broker between them.
type indexPublisher struct{ index *search.Index }

// Publish implements outbox.Publisher.
func (p *indexPublisher) Publish(ctx context.Context, e outbox.Event) error {
	return p.index.HandleProductEvent(ctx, e.Topic, e.Payload)
}

// TestSearchTablesFollowCatalogWrites drives the real catalog, whose events
// the real outbox relays to the real index, and checks after every write,
// committed or rolled back, that each search table holds the catalog's
// products and nothing else.
func TestSearchTablesFollowCatalogWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	if _, err := db.Migrate(ctx, []sqldb.Migrations{catalogstore.Migrations(), store.Migrations(), outbox.Migrations()}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	pub := &indexPublisher{}
	events := outbox.New(db, pub, slog.New(slog.DiscardHandler), time.Now)
	cat := catalog.NewCatalog(catalogstore.New(db), events, "USD", time.Now)
	index := search.NewIndex(store.NewSQLite(db), cat)
	pub.index = index
	checkInStep := func(want map[string]searchDoc, vocabulary []string) {
		t.Helper()
		if _, err := events.RelayOnce(ctx, 100); err != nil {
			t.Fatalf("relay: %v", err)
		}
		searchCheckInStep(t, db, want, vocabulary)
	}
	if _, err := cat.CreateCategory(ctx, "outdoor", "Outdoor"); err != nil {
		t.Fatalf("create category: %v", err)
	}

	want := map[string]searchDoc{}
	var vocabulary []string
	remember := func(d searchDoc) {
		for _, w := range searchWordsOf(d) {
			if !slices.Contains(vocabulary, w) {
				vocabulary = append(vocabulary, w)
			}
		}
	}
	create := func(sku, name, description string) string {
		t.Helper()
		price, stock, category := int64(100), int64(1), "outdoor"
		p, err := cat.CreateProduct(ctx, catalog.NewProduct{SKU: &sku, Name: &name, Description: &description,
			PriceCents: &price, Category: &category, Stock: &stock})
		if err != nil {
			t.Fatalf("create %s: %v", sku, err)
		}
		want[p.ID] = searchDoc{name, description}
		remember(want[p.ID])
		return p.ID
	}
	found := func(q string) []string {
		t.Helper()
		page, err := index.Search(ctx, q, 100, "")
		if err != nil {
			t.Fatalf("search %q: %v", q, err)
		}
		var ids []string
		for _, p := range page.Items {
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		return ids
	}

	boot := create("boot", "Leather Hiking Boot", "Waterproof for mountains")
	tent := create("tent", "Dome Tent", "Sleeps two hikers")
	stove := create("stove", "Camp Stove", "Boils water fast")
	checkInStep(want, vocabulary)

	// Renames replace the old words in both full-text tables, a price change
	// rewrites the document as it is, and a product updated many times still
	// has one document.
	for i, name := range []string{"Suede Trail Boot", "Canvas Trail Shoe", "Canvas Trail Shoe"} {
		if _, err := cat.UpdateProduct(ctx, boot, catalog.ProductPatch{Name: &name}); err != nil {
			t.Fatalf("rename %d: %v", i, err)
		}
		want[boot] = searchDoc{name, want[boot].description}
		remember(want[boot])
		checkInStep(want, vocabulary)
	}
	price := int64(250)
	if _, err := cat.UpdateProduct(ctx, tent, catalog.ProductPatch{PriceCents: &price}); err != nil {
		t.Fatalf("reprice: %v", err)
	}
	checkInStep(want, vocabulary)
	if got := found("canv"); !slices.Equal(got, []string{boot}) {
		t.Errorf("search canv = %v, want [%s]", got, boot)
	}
	if got := found("leath"); len(got) != 0 {
		t.Errorf("search leath after the rename = %v, want nothing", got)
	}

	if err := cat.DeleteProduct(ctx, stove); err != nil {
		t.Fatalf("delete: %v", err)
	}
	delete(want, stove)
	checkInStep(want, vocabulary)
	if got := found("boil"); len(got) != 0 {
		t.Errorf("search boil after the delete = %v, want nothing", got)
	}

	// A write rolled back records no event, so it leaves no trace in any
	// table.
	errAbort := errors.New("abort")
	err := db.InTx(ctx, func(ctx context.Context) error {
		sku, name, desc, price, stock, category := "lamp", "Lantern", "Bright", int64(5), int64(1), "outdoor"
		if _, err := cat.CreateProduct(ctx, catalog.NewProduct{SKU: &sku, Name: &name, Description: &desc,
			PriceCents: &price, Category: &category, Stock: &stock}); err != nil {
			return err
		}
		newName := "Gone Tent"
		if _, err := cat.UpdateProduct(ctx, tent, catalog.ProductPatch{Name: &newName}); err != nil {
			return err
		}
		if err := cat.DeleteProduct(ctx, boot); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("rolled back writes = %v, want %v", err, errAbort)
	}
	vocabulary = append(vocabulary, "lantern", "bright", "gone")
	checkInStep(want, vocabulary)

	// A product deleted and created again under the same SKU gets a new
	// document, and the old one's rowid holds nothing.
	if err := cat.DeleteProduct(ctx, tent); err != nil {
		t.Fatalf("delete tent: %v", err)
	}
	delete(want, tent)
	again := create("tent", "Tunnel Tent", "Sleeps four")
	checkInStep(want, vocabulary)
	if got := found("tent"); !slices.Equal(got, []string{again}) {
		t.Errorf("search tent = %v, want [%s]", got, again)
	}
	if got := found("dome"); len(got) != 0 {
		t.Errorf("search dome = %v, want nothing", got)
	}
}

// TestSearchMigrationMapsExistingDocuments builds a database at version 2,
// the last one without search_documents, indexes documents the ways code of
// that version did, and checks that migrating keeps them findable, complete
// as you type and writable by key.
func TestSearchMigrationMapsExistingDocuments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	set := store.Migrations()
	p, err := goose.NewProvider(goose.DialectSQLite3, db.Write, set.SQLite,
		goose.WithTableName("goose_"+set.Module), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatalf("goose provider: %v", err)
	}
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatalf("migrate to version 2: %v", err)
	}
	if v, err := p.GetDBVersion(ctx); err != nil || v != 2 {
		t.Fatalf("version = %d, %v; want 2", v, err)
	}
	exec := func(query string, args ...any) sql.Result {
		t.Helper()
		res, err := db.Write.ExecContext(ctx, query, args...)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return res
	}
	// The old Upsert: both tables, the twin under the rowid the first got.
	oldUpsert := func(id, name, description string) {
		t.Helper()
		res := exec(`INSERT INTO search_products (product_id, name, description) VALUES (?, ?, ?)`, id, name, description)
		doc, err := res.LastInsertId()
		if err != nil {
			t.Fatal(err)
		}
		exec(`INSERT INTO search_words (rowid, name, description) VALUES (?, ?, ?)`, doc, name, description)
	}
	oldUpsert("boot", "Hiking Boot", "Leather")
	oldUpsert("stove", "Camp Stove", "Boils water")
	// The old seed: search_products alone.
	exec(`INSERT INTO search_products (product_id, name, description) VALUES ('seeded', 'Walking Pole', 'Carbon')`)
	// Two documents of one product, which the old schema could not prevent:
	// the latest one is the product's.
	oldUpsert("twice", "Kayak Paddle", "Old")
	oldUpsert("twice", "Canoe Paddle", "New")

	if _, err := db.Migrate(ctx, []sqldb.Migrations{set}); err != nil {
		t.Fatalf("migrate to the latest version: %v", err)
	}
	want := map[string]searchDoc{
		"boot":   {"Hiking Boot", "Leather"},
		"stove":  {"Camp Stove", "Boils water"},
		"seeded": {"Walking Pole", "Carbon"},
		"twice":  {"Canoe Paddle", "New"},
	}
	vocabulary := []string{"hiking", "boot", "leather", "camp", "stove", "boils", "water", "walking", "pole",
		"carbon", "kayak", "canoe", "paddle", "old", "new"}
	searchCheckInStep(t, db, want, vocabulary)

	s := store.NewSQLite(db)
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"boot", []string{"boot"}},
		{"hikin", []string{"boot"}},
		{"walkin", []string{"seeded"}}, // only through search_words, which the old seed left empty
		{"pole", []string{"seeded"}},
		{"paddle", []string{"twice"}},
		{"kayak", nil},
		{"canoe", []string{"twice"}},
	} {
		if got := sorted(match(t, s, tc.q)); !slices.Equal(got, tc.want) {
			t.Errorf("after migrating: match %q = %v, want %v", tc.q, got, tc.want)
		}
	}

	upsert(t, s, "seeded", "Trekking Pole", "Aluminium")
	upsert(t, s, "new", "Dome Tent", "Sleeps two")
	if wrote, err := s.Delete(ctx, "stove", versions.Add(1)); err != nil || !wrote {
		t.Fatalf("delete = %v, %v; want it written", wrote, err)
	}
	want["seeded"] = searchDoc{"Trekking Pole", "Aluminium"}
	want["new"] = searchDoc{"Dome Tent", "Sleeps two"}
	delete(want, "stove")
	vocabulary = append(vocabulary, "trekking", "aluminium", "dome", "tent", "sleeps", "two")
	searchCheckInStep(t, db, want, vocabulary)
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"walkin", nil},
		{"trekkin", []string{"seeded"}},
		{"stove", nil},
		{"tent", []string{"new"}},
	} {
		if got := sorted(match(t, s, tc.q)); !slices.Equal(got, tc.want) {
			t.Errorf("after writing: match %q = %v, want %v", tc.q, got, tc.want)
		}
	}
}
