package seed_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	catalogstore "github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/search"
	searchstore "github.com/millionshop/million/search/store"
	"github.com/millionshop/million/seed"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
	userstore "github.com/millionshop/million/user/store"
)

func openDB(t *testing.T) *sqldb.DB {
	t.Helper()
	db, err := sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sets := []sqldb.Migrations{userstore.Migrations(), catalogstore.Migrations(), searchstore.Migrations()}
	if _, err := db.Migrate(context.Background(), sets); err != nil {
		t.Fatal(err)
	}
	return db
}

func count(t *testing.T, db *sqldb.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Read.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestSeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	opts := seed.Options{Users: 2000, Products: 500, Seed: 42}

	var mu sync.Mutex
	last := map[string][2]int{}
	st, err := seed.SQLite(ctx, db, opts, func(stage string, done, total int) {
		mu.Lock()
		defer mu.Unlock()
		last[stage] = [2]int{done, total}
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Users != 2000 || st.Products != 500 || st.Categories < 15 {
		t.Fatalf("stats = %+v", st)
	}
	if last["users"] != [2]int{2000, 2000} || last["products"] != [2]int{500, 500} {
		t.Errorf("last progress = %v", last)
	}
	if got := count(t, db, `SELECT count(*) FROM users`); got != 2000 {
		t.Errorf("users = %d", got)
	}
	if got := count(t, db, `SELECT count(*) FROM products`); got != 500 {
		t.Errorf("products = %d", got)
	}
	if got := count(t, db, `SELECT count(*) FROM categories`); got != st.Categories {
		t.Errorf("categories = %d, stats say %d", got, st.Categories)
	}
	if got := count(t, db, `SELECT count(*) FROM search_products`); got != 500 {
		t.Errorf("search_products = %d", got)
	}
	if got := count(t, db, `SELECT count(*) FROM products p LEFT JOIN search_products s ON s.product_id = p.id WHERE s.product_id IS NULL`); got != 0 {
		t.Errorf("%d products not indexed", got)
	}
	if got := count(t, db, `SELECT count(*) FROM products WHERE price_cents NOT BETWEEN 199 AND 99999
		OR stock NOT BETWEEN 0 AND 500 OR currency <> 'USD' OR image_url NOT LIKE 'https://img.million.test/p/%.jpg'`); got != 0 {
		t.Errorf("%d products out of range", got)
	}
	if got := count(t, db, `SELECT count(*) FROM products WHERE stock > 0`); got < 400 {
		t.Errorf("only %d of 500 products in stock", got)
	}

	// Search finds a product by a word of its name.
	var id, name string
	if err := db.Read.QueryRow(`SELECT id, name FROM products WHERE sku = ?`, seed.SKU(7)).Scan(&id, &name); err != nil {
		t.Fatal(err)
	}
	words := strings.Fields(name)
	if len(words) < 3 {
		t.Fatalf("name %q is not adjective + material + noun", name)
	}
	word := strings.ToLower(strings.Trim(words[len(words)-1], "-"))
	if got := count(t, db, `SELECT count(*) FROM search_products WHERE search_products MATCH ? AND product_id = ?`,
		`"`+word+`"`, id); got != 1 {
		t.Errorf("search for %q did not find %s (%q)", word, id, name)
	}
	// Every search table has each product once, under one rowid, as the
	// search store would have indexed it.
	for _, table := range []string{"search_documents", "search_products", "search_words"} {
		if got := count(t, db, `SELECT count(*) FROM `+table); got != 500 {
			t.Errorf("%s = %d rows, want 500", table, got)
		}
	}
	if got := count(t, db, `SELECT count(*) FROM products p JOIN search_documents d ON d.product_id = p.id
		JOIN search_products s ON s.rowid = d.doc AND s.product_id = p.id AND s.name = p.name AND s.description = p.description
		WHERE EXISTS (SELECT 1 FROM search_words w WHERE w.rowid = d.doc)`); got != 500 {
		t.Errorf("%d of 500 products are in every search table under one rowid", got)
	}
	if got := count(t, db, `SELECT count(*) FROM search_words WHERE search_words MATCH ?
		AND rowid = (SELECT doc FROM search_documents WHERE product_id = ?)`, `"`+word+`"`, id); got != 1 {
		t.Errorf("the unstemmed words of %s (%q) lack %q", id, name, word)
	}
	ids, err := searchstore.NewSQLite(db).Match(ctx, search.Terms(name), 0, 100)
	if err != nil || !slices.Contains(ids, id) {
		t.Errorf("the search store's match for %q = %v, %v; want %s among them", name, ids, err, id)
	}

	// A seeded user logs in with the default password.
	var email, hash, role, fullName string
	var created int64
	if err := db.Read.QueryRow(`SELECT email, password_hash, role, name, created_at FROM users WHERE email = ?`,
		seed.Email(1234)).Scan(&email, &hash, &role, &fullName, &created); err != nil {
		t.Fatal(err)
	}
	if ok, err := user.VerifyPassword(seed.DefaultPassword, hash); err != nil || !ok {
		t.Errorf("VerifyPassword(DefaultPassword) = %v, %v", ok, err)
	}
	if ok, _ := user.VerifyPassword("wrong", hash); ok {
		t.Error("a wrong password verifies")
	}
	if role != "customer" || len(strings.Fields(fullName)) != 2 || email != strings.ToLower(email) {
		t.Errorf("user = %q %q %q", email, role, fullName)
	}
	if d := time.Since(time.UnixMicro(created)); d < 0 || d > time.Hour {
		t.Errorf("created_at is %v ago", d)
	}
	if got := count(t, db, `SELECT count(DISTINCT password_hash) FROM users`); got != 1 {
		t.Errorf("%d distinct hashes, want one shared", got)
	}

	// Re-running adds nothing.
	again, err := seed.SQLite(ctx, db, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Users != 0 || again.Products != 0 || again.Categories != 0 {
		t.Errorf("re-run stats = %+v", again)
	}
	if got := count(t, db, `SELECT count(*) FROM users`); got != 2000 {
		t.Errorf("users after re-run = %d", got)
	}
	if got := count(t, db, `SELECT count(*) FROM search_products`); got != 500 {
		t.Errorf("search_products after re-run = %d", got)
	}

	// The connection settings are restored and the database stays in WAL mode.
	var journal string
	var synchronous int
	if err := db.Write.QueryRow(`PRAGMA journal_mode`).Scan(&journal); err != nil || journal != "wal" {
		t.Errorf("journal_mode = %q, %v", journal, err)
	}
	if err := db.Write.QueryRow(`PRAGMA synchronous`).Scan(&synchronous); err != nil || synchronous != 1 {
		t.Errorf("synchronous = %d, %v; want 1 (NORMAL)", synchronous, err)
	}
	var integrity string
	if err := db.Write.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check = %q, %v", integrity, err)
	}
}

// TestSeedResumes checks that a larger second run tops up, that rows taken by
// hand are skipped rather than duplicated or failing the run, and that a
// deleted seeded row is put back.
func TestSeedResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	if _, err := seed.SQLite(ctx, db, seed.Options{Users: 300, Products: 100, Seed: 1}, nil); err != nil {
		t.Fatal(err)
	}
	// Someone registered user400 by hand, and someone else created SEED-150.
	var cat string
	if err := db.Read.QueryRow(`SELECT id FROM categories WHERE slug = 'books'`).Scan(&cat); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write.Exec(`INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at)
		VALUES ('manual-user', ?, 'Manual', 'customer', 'x', 0, 0)`, seed.Email(400)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write.Exec(`INSERT INTO products (id, sku, name, description, price_cents, currency, category_id, stock, created_at, updated_at)
		VALUES ('manual-product', ?, 'Manual', '', 1, 'USD', ?, 1, 0, 0)`, seed.SKU(150), cat); err != nil {
		t.Fatal(err)
	}
	st, err := seed.SQLite(ctx, db, seed.Options{Users: 1000, Products: 400, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Users != 699 || st.Products != 299 {
		t.Errorf("top-up stats = %+v, want 699 users and 299 products", st)
	}
	if got := count(t, db, `SELECT count(*) FROM users`); got != 1000 {
		t.Errorf("users = %d", got)
	}
	if got := count(t, db, `SELECT count(*) FROM products`); got != 400 {
		t.Errorf("products = %d", got)
	}
	// SEED-150 was made by hand and not indexed, and the seed must not index it either.
	if got := count(t, db, `SELECT count(*) FROM search_products`); got != 399 {
		t.Errorf("search_products = %d, want 399", got)
	}
	for _, table := range []string{"search_documents", "search_products", "search_words"} {
		if got := count(t, db, `SELECT count(*) FROM `+table); got != 399 {
			t.Errorf("%s = %d rows, want 399", table, got)
		}
	}
	if got := count(t, db, `SELECT count(*) FROM search_products WHERE product_id = 'manual-product'`) +
		count(t, db, `SELECT count(*) FROM search_documents WHERE product_id = 'manual-product'`); got != 0 {
		t.Error("the hand-made product was indexed by the seed")
	}
	if got := count(t, db, `SELECT count(*) FROM search_documents d JOIN search_products s ON s.rowid = d.doc
		AND s.product_id = d.product_id WHERE EXISTS (SELECT 1 FROM search_words w WHERE w.rowid = d.doc)`); got != 399 {
		t.Errorf("%d of 399 indexed products are in every search table under one rowid", got)
	}
	if got := count(t, db, `SELECT count(*) FROM users WHERE email = ? AND id = 'manual-user'`, seed.Email(400)); got != 1 {
		t.Error("the hand-made user was replaced")
	}

	// A deleted seeded user is put back, and nothing else changes.
	if _, err := db.Write.Exec(`DELETE FROM users WHERE email = ?`, seed.Email(20)); err != nil {
		t.Fatal(err)
	}
	st, err = seed.SQLite(ctx, db, seed.Options{Users: 1000, Products: 400, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Users != 1 || st.Products != 0 {
		t.Errorf("refill stats = %+v, want 1 user and no products", st)
	}
	if got := count(t, db, `SELECT count(*) FROM users WHERE email = ?`, seed.Email(20)); got != 1 {
		t.Error("user20 was not put back")
	}
}

// TestSeedDeterministic checks that a seed picks the same names, prices and
// stock on two databases.
func TestSeedDeterministic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rows := func(seedValue int64) string {
		db := openDB(t)
		if _, err := seed.SQLite(ctx, db, seed.Options{Users: 50, Products: 50, Seed: seedValue}, nil); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		r, err := db.Read.Query(`SELECT p.sku, p.name, p.description, p.price_cents, p.stock, c.slug
			FROM products p JOIN categories c ON c.id = p.category_id ORDER BY p.sku`)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for r.Next() {
			var sku, name, desc, slug string
			var price, stock int
			if err := r.Scan(&sku, &name, &desc, &price, &stock, &slug); err != nil {
				t.Fatal(err)
			}
			b.WriteString(sku + name + desc + strconv.Itoa(price) + strconv.Itoa(stock) + slug + "\n")
		}
		u, err := db.Read.Query(`SELECT email, name FROM users ORDER BY email`)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		for u.Next() {
			var email, name string
			if err := u.Scan(&email, &name); err != nil {
				t.Fatal(err)
			}
			b.WriteString(email + name + "\n")
		}
		return b.String()
	}
	a, b, c := rows(7), rows(7), rows(8)
	if a != b {
		t.Error("the same seed gave different rows")
	}
	if a == c {
		t.Error("different seeds gave the same rows")
	}
}

func TestSeedRejectsBadOptions(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	for _, o := range []seed.Options{{Users: -1}, {Products: -1}, {Currency: "usd"}} {
		if _, err := seed.SQLite(context.Background(), db, o, nil); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
