package store_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	catalogstore "github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/search/store"
	"github.com/millionshop/million/seed"
	"github.com/millionshop/million/sqldb"
	userstore "github.com/millionshop/million/user/store"
)

// searchBenchProducts is the catalog size the benchmarks run over: the size
// of a seeded load-test shop, where a write that scans the index shows.
const searchBenchProducts = 100_000

// searchBenchIndex returns an index over a database seeded with n
// products, and the ids of those products.
func searchBenchIndex(b *testing.B, n int) (*store.SQLite, []string) {
	b.Helper()
	ctx := context.Background()
	db, err := sqldb.OpenSQLite(b.TempDir(), sqldb.Options{})
	if err != nil {
		b.Fatalf("open sqlite: %v", err)
	}
	b.Cleanup(func() { db.Close() })
	sets := []sqldb.Migrations{userstore.Migrations(), catalogstore.Migrations(), store.Migrations()}
	if _, err := db.Migrate(ctx, sets); err != nil {
		b.Fatalf("migrate: %v", err)
	}
	if _, err := seed.SQLite(ctx, db, seed.Options{Products: n, Seed: 1}, nil); err != nil {
		b.Fatalf("seed: %v", err)
	}
	rows, err := db.Read.QueryContext(ctx, `SELECT id FROM products ORDER BY sku`)
	if err != nil {
		b.Fatalf("list products: %v", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			b.Fatalf("scan product: %v", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil || len(ids) != n {
		b.Fatalf("listed %d products, %v; want %d", len(ids), err, n)
	}
	return store.NewSQLite(db), ids
}

// BenchmarkUpsert measures the cost of applying one catalog event to the
// index, which holds up every other writer of the database while it runs.
// It runs over a small and a large index: the cost must not grow with the
// catalog.
func BenchmarkUpsert(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, searchBenchProducts} {
		b.Run("products="+strconv.Itoa(n), func(b *testing.B) {
			s, ids := searchBenchIndex(b, n)
			version := int64(0) // every write is newer than the last
			next := func() int64 { version++; return version }
			b.Run("update", func(b *testing.B) {
				i := 0
				for b.Loop() {
					id := ids[(i*7919)%len(ids)]
					if _, err := s.Upsert(ctx, id, next(), "Rugged Leather Hiking Boot "+strconv.Itoa(i), "Waterproof, for mountains."); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
			b.Run("create", func(b *testing.B) {
				i := 0
				for b.Loop() {
					if _, err := s.Upsert(ctx, "bench-new-"+strconv.Itoa(i), next(), "Red Camp Chair", "Folds flat."); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
			b.Run("delete", func(b *testing.B) {
				i := 0
				for b.Loop() {
					id := ids[(i*7919)%len(ids)]
					if _, err := s.Delete(ctx, id, next()); err != nil {
						b.Fatal(err)
					}
					// Put it back untimed, so every delete finds a document.
					b.StopTimer()
					if _, err := s.Upsert(ctx, id, next(), "Rugged Leather Hiking Boot", "Waterproof."); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					i++
				}
			})
		})
	}
}

// BenchmarkMatch measures typical queries over the seeded catalog: whole
// words, and the short prefixes search-as-you-type sends.
func BenchmarkMatch(b *testing.B) {
	s, _ := searchBenchIndex(b, searchBenchProducts)
	ctx := context.Background()
	for _, q := range [][]string{{"leather", "boot"}, {"hik"}, {"wor"}, {"w"}, {"leather", "b"}} {
		b.Run(strings.Join(q, "_"), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Match(ctx, q, 0, 21); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
