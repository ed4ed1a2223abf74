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
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/search"
	searchstore "github.com/millionshop/million/search/store"
	"github.com/millionshop/million/seed"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
	"github.com/millionshop/million/user"
	userstore "github.com/millionshop/million/user/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// sets are the schemas the seed writes: users, the catalog and its index.
var sets = []sqldb.Migrations{userstore.Migrations(), catalogstore.Migrations(), searchstore.Migrations()}

func count(t *testing.T, db *sqldb.DB, query string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	var n int
	if err := db.Reader(ctx).QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func exec(t *testing.T, db *sqldb.DB, query string, args ...any) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.Writer(ctx).ExecContext(ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// indexed counts the products whose search document is in place, with the
// product's current text where the engine keeps it.
func indexed(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	if db.Dialect == sqldb.Postgres {
		return count(t, db, `SELECT count(*) FROM products p JOIN search_documents d
			ON d.product_id = p.id AND d.name = p.name AND d.description = p.description`)
	}
	// SQLite: each product in every search table, under one rowid.
	return count(t, db, `SELECT count(*) FROM products p JOIN search_documents d ON d.product_id = p.id
		JOIN search_products s ON s.rowid = d.doc AND s.product_id = p.id AND s.name = p.name AND s.description = p.description
		WHERE EXISTS (SELECT 1 FROM search_words w WHERE w.rowid = d.doc)`)
}

// indexRows counts the rows of every search table, which must all be
// equal: the seed indexes each product once. The rows search keeps for
// deleted products (no document, only the version of the deletion) are not
// counted.
func indexRows(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	n := count(t, db, `SELECT count(*) FROM search_documents WHERE NOT deleted`)
	if db.Dialect == sqldb.SQLite {
		for _, table := range []string{"search_products", "search_words"} {
			if got := count(t, db, `SELECT count(*) FROM `+table); got != n {
				t.Errorf("%s = %d rows, search_documents %d", table, got, n)
			}
		}
	}
	return n
}

func TestSeed(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, sets, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		opts := seed.Options{Users: 2000, Products: 500, Seed: 42}

		var mu sync.Mutex
		last := map[string][2]int{}
		st, err := seed.Run(ctx, db, opts, func(stage string, done, total int) {
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
		if got := indexRows(t, db); got != 500 {
			t.Errorf("search_documents = %d rows, want 500", got)
		}
		if got := indexed(t, db); got != 500 {
			t.Errorf("%d of 500 products are indexed with their text", got)
		}
		if got := count(t, db, `SELECT count(*) FROM products WHERE price_cents NOT BETWEEN 199 AND 99999
			OR stock NOT BETWEEN 0 AND 500 OR currency <> 'USD' OR image_url NOT LIKE 'https://img.million.test/p/%.jpg'`); got != 0 {
			t.Errorf("%d products out of range", got)
		}
		if got := count(t, db, `SELECT count(*) FROM products WHERE stock > 0`); got < 400 {
			t.Errorf("only %d of 500 products in stock", got)
		}

		// The search store finds a product by its name, and a boot by
		// "boots" through stemming.
		index := searchstore.New(db)
		find := func(sku, like string) (id, name string) {
			t.Helper()
			err := db.Reader(ctx).QueryRowContext(ctx, `SELECT id, name FROM products WHERE sku = ? OR (? = '' AND name LIKE ?)
				ORDER BY id LIMIT 1`, sku, sku, like).Scan(&id, &name)
			if err != nil {
				t.Fatalf("find product %q %q: %v", sku, like, err)
			}
			return id, name
		}
		id, name := find(seed.SKU(7), "")
		if len(strings.Fields(name)) < 3 {
			t.Fatalf("name %q is not adjective + material + noun", name)
		}
		if ids, err := index.Match(ctx, search.Terms(name), 0, 100); err != nil || !slices.Contains(ids, id) {
			t.Errorf("Match(%q) = %v, %v; want %s among them", name, ids, err, id)
		}
		bootID, bootName := find("", "% Boot")
		if ids, err := index.Match(ctx, []string{"boots"}, 0, 500); err != nil || !slices.Contains(ids, bootID) {
			t.Errorf("Match(boots) = %v, %v; want %s (%q) among them", ids, err, bootID, bootName)
		}

		// A seeded user logs in with the default password.
		u, hash, err := userstore.New(db).UserByEmail(ctx, seed.Email(1234))
		if err != nil {
			t.Fatalf("UserByEmail(%s): %v", seed.Email(1234), err)
		}
		if ok, err := user.VerifyPassword(seed.DefaultPassword, hash); err != nil || !ok {
			t.Errorf("VerifyPassword(DefaultPassword) = %v, %v", ok, err)
		}
		if ok, _ := user.VerifyPassword("wrong", hash); ok {
			t.Error("a wrong password verifies")
		}
		if u.Role != user.RoleCustomer || len(strings.Fields(u.Name)) != 2 || u.Email != seed.Email(1234) {
			t.Errorf("user = %+v", u)
		}
		if d := time.Since(u.CreatedAt); d < 0 || d > time.Hour {
			t.Errorf("created_at is %v ago", d)
		}
		if got := count(t, db, `SELECT count(DISTINCT password_hash) FROM users`); got != 1 {
			t.Errorf("%d distinct hashes, want one shared", got)
		}

		// Re-running adds nothing.
		clear(last)
		again, err := seed.Run(ctx, db, opts, func(stage string, done, total int) {
			mu.Lock()
			defer mu.Unlock()
			last[stage] = [2]int{done, total}
		})
		if err != nil {
			t.Fatal(err)
		}
		if again.Users != 0 || again.Products != 0 || again.Categories != 0 {
			t.Errorf("re-run stats = %+v", again)
		}
		if last["users"] != [2]int{0, 0} || last["products"] != [2]int{0, 0} {
			t.Errorf("re-run progress = %v, want nothing to do", last)
		}
		if got := count(t, db, `SELECT count(*) FROM users`); got != 2000 {
			t.Errorf("users after re-run = %d", got)
		}
		if got := count(t, db, `SELECT count(*) FROM products`); got != 500 {
			t.Errorf("products after re-run = %d", got)
		}
		if got := indexRows(t, db); got != 500 {
			t.Errorf("search_documents after re-run = %d", got)
		}

		if db.Dialect != sqldb.SQLite {
			return
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
	})
}

// TestSeedResumes checks that a larger second run tops up, that rows taken by
// hand are skipped rather than duplicated or failing the run, that values
// that only look seeded are left alone, and that deleted seeded rows are put
// back.
func TestSeedResumes(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, sets, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := seed.Run(ctx, db, seed.Options{Users: 300, Products: 100, Seed: 1}, nil); err != nil {
			t.Fatal(err)
		}
		// Someone registered user400 by hand, and someone else created SEED-150.
		var cat string
		if err := db.Reader(ctx).QueryRowContext(ctx, `SELECT id FROM categories WHERE slug = 'books'`).Scan(&cat); err != nil {
			t.Fatal(err)
		}
		addUser := func(id, email string) {
			t.Helper()
			exec(t, db, `INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at)
				VALUES (?, ?, 'Manual', 'customer', 'x', 0, 0)`, id, email)
		}
		addProduct := func(id, sku string) {
			t.Helper()
			exec(t, db, `INSERT INTO products (id, sku, name, description, price_cents, currency, category_id, stock, created_at, updated_at)
				VALUES (?, ?, 'Manual', '', 1, 'USD', ?, 1, 0, 0)`, id, sku, cat)
		}
		addUser("manual-user", seed.Email(400))
		addProduct("manual-product", seed.SKU(150))
		// Values that look seeded but are not a seeded number's.
		strayUsers := []string{"user0401@" + seed.EmailDomain, "user401x@" + seed.EmailDomain,
			"userx@" + seed.EmailDomain, "user401@" + seed.EmailDomain + "x", "user@" + seed.EmailDomain}
		for i, email := range strayUsers {
			addUser("stray-user-"+strconv.Itoa(i), email)
		}
		strayProducts := []string{"SEED-0151", "SEED-151x", "SEED-", "SEED--151", "SEED-1.5"}
		for i, sku := range strayProducts {
			addProduct("stray-product-"+strconv.Itoa(i), sku)
		}

		st, err := seed.Run(ctx, db, seed.Options{Users: 1000, Products: 400, Seed: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Users != 699 || st.Products != 299 {
			t.Errorf("top-up stats = %+v, want 699 users and 299 products", st)
		}
		if got, want := count(t, db, `SELECT count(*) FROM users`), 1000+len(strayUsers); got != want {
			t.Errorf("users = %d, want %d", got, want)
		}
		if got, want := count(t, db, `SELECT count(*) FROM products`), 400+len(strayProducts); got != want {
			t.Errorf("products = %d, want %d", got, want)
		}
		for _, n := range []int{401, 1000} {
			if got := count(t, db, `SELECT count(*) FROM users WHERE email = ?`, seed.Email(n)); got != 1 {
				t.Errorf("%s: %d rows, want 1", seed.Email(n), got)
			}
		}
		if got := count(t, db, `SELECT count(*) FROM products WHERE sku = ?`, seed.SKU(151)); got != 1 {
			t.Errorf("%s: %d rows, want 1", seed.SKU(151), got)
		}
		// SEED-150 and the strays were made by hand and not indexed, and
		// the seed must not index them either.
		if got := indexRows(t, db); got != 399 {
			t.Errorf("search_documents = %d, want 399", got)
		}
		if got := indexed(t, db); got != 399 {
			t.Errorf("%d of 399 seeded products are indexed with their text", got)
		}
		if got := count(t, db, `SELECT count(*) FROM search_documents WHERE product_id = 'manual-product' OR product_id LIKE 'stray%'`); got != 0 {
			t.Errorf("the seed indexed %d hand-made products", got)
		}
		if got := count(t, db, `SELECT count(*) FROM users WHERE email = ? AND id = 'manual-user'`, seed.Email(400)); got != 1 {
			t.Error("the hand-made user was replaced")
		}

		// Deleted seeded rows are put back, and nothing else changes. A
		// stray that reads as a seeded number (SEED-151x as 151) must not
		// make up for the gap and hide it.
		exec(t, db, `DELETE FROM users WHERE email = ?`, seed.Email(20))
		for _, n := range []int{50, 60} { // as many as the strays SEED-151x and SEED-1.5
			var gone string
			if err := db.Reader(ctx).QueryRowContext(ctx, `SELECT id FROM products WHERE sku = ?`, seed.SKU(n)).Scan(&gone); err != nil {
				t.Fatal(err)
			}
			if _, err := searchstore.New(db).Delete(ctx, gone, 2); err != nil {
				t.Fatal(err)
			}
			exec(t, db, `DELETE FROM products WHERE id = ?`, gone)
		}
		st, err = seed.Run(ctx, db, seed.Options{Users: 1000, Products: 400, Seed: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Users != 1 || st.Products != 2 {
			t.Errorf("refill stats = %+v, want 1 user and 2 products", st)
		}
		if got := count(t, db, `SELECT count(*) FROM users WHERE email = ?`, seed.Email(20)); got != 1 {
			t.Error("user20 was not put back")
		}
		if got := count(t, db, `SELECT count(*) FROM products WHERE sku IN (?, ?)`, seed.SKU(50), seed.SKU(60)); got != 2 {
			t.Errorf("%d of SEED-50 and SEED-60 were put back", got)
		}
		if got := indexed(t, db); got != 399 {
			t.Errorf("after the refill %d of 399 seeded products are indexed with their text", got)
		}
	})
}

// TestSeedConcurrentRuns starts two runs at once: together they create
// every row once, and neither fails.
func TestSeedConcurrentRuns(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, sets, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		opts := seed.Options{Users: 1500, Products: 300, Seed: 3}
		var wg sync.WaitGroup
		stats := make([]seed.Stats, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() { stats[i], errs[i] = seed.Run(ctx, db, opts, nil) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		}
		if users, products := stats[0].Users+stats[1].Users, stats[0].Products+stats[1].Products; users != 1500 || products != 300 {
			t.Errorf("the runs inserted %d users and %d products, want 1500 and 300: %+v", users, products, stats)
		}
		if got := count(t, db, `SELECT count(*) FROM users`); got != 1500 {
			t.Errorf("users = %d", got)
		}
		if got := indexed(t, db); got != 300 || count(t, db, `SELECT count(*) FROM products`) != 300 {
			t.Errorf("%d products indexed, want all 300", got)
		}
	})
}

// TestSeedDeterministic checks that a seed picks the same names, prices and
// stock on every database and engine, and another seed other ones.
func TestSeedDeterministic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rows := func(t *testing.T, d sqldb.Dialect, seedValue int64) string {
		t.Helper()
		db := sqldbtest.Open(t, d, sets...)
		if _, err := seed.Run(ctx, db, seed.Options{Users: 50, Products: 50, Seed: seedValue}, nil); err != nil {
			t.Fatal(err)
		}
		var lines []string
		r, err := db.Reader(ctx).QueryContext(ctx, `SELECT p.sku, p.name, p.description, p.price_cents, p.stock, c.slug
			FROM products p JOIN categories c ON c.id = p.category_id`)
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
			lines = append(lines, sku+name+desc+strconv.Itoa(price)+strconv.Itoa(stock)+slug)
		}
		u, err := db.Reader(ctx).QueryContext(ctx, `SELECT email, name FROM users`)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		for u.Next() {
			var email, name string
			if err := u.Scan(&email, &name); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, email+name)
		}
		if len(lines) != 100 {
			t.Fatalf("%d rows, want 100", len(lines))
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	}
	lite, lite2, pg, other := rows(t, sqldb.SQLite, 7), rows(t, sqldb.SQLite, 7), rows(t, sqldb.Postgres, 7), rows(t, sqldb.Postgres, 8)
	if lite != lite2 {
		t.Error("the same seed gave different rows on two SQLite databases")
	}
	if lite != pg {
		t.Error("the same seed gave different rows on SQLite and PostgreSQL")
	}
	if pg == other {
		t.Error("different seeds gave the same rows")
	}
}

func TestSeedRejectsBadOptions(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, sets, func(t *testing.T, db *sqldb.DB) {
		for _, o := range []seed.Options{{Users: -1}, {Products: -1}, {Currency: "usd"}} {
			if _, err := seed.Run(context.Background(), db, o, nil); err == nil {
				t.Errorf("%+v: no error", o)
			}
		}
		if got := count(t, db, `SELECT count(*) FROM categories`); got != 0 {
			t.Errorf("a refused run created %d categories", got)
		}
	})
}

// TestSeedRefusesTheOtherEngine calls each engine's loader on the other
// engine's database, which must fail before writing anything.
func TestSeedRefusesTheOtherEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := seed.Options{Users: 1, Products: 1}
	lite := sqldbtest.Open(t, sqldb.SQLite, sets...)
	if _, err := seed.Postgres(ctx, lite, opts, nil); err == nil {
		t.Error("Postgres on a SQLite database: no error")
	}
	pg := sqldbtest.Open(t, sqldb.Postgres, sets...)
	if _, err := seed.SQLite(ctx, pg, opts, nil); err == nil {
		t.Error("SQLite on a PostgreSQL database: no error")
	}
	for _, db := range []*sqldb.DB{lite, pg} {
		if got := count(t, db, `SELECT count(*) FROM categories`); got != 0 {
			t.Errorf("%s: the refused run created %d categories", db.Dialect, got)
		}
	}
}
