package store_test

import (
	"context"
	"io/fs"
	"slices"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/cache/cachetest"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/search"
	"github.com/millionshop/million/search/store"
	"github.com/millionshop/million/search/storetest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStore runs the search.Store contract on every engine, with a fresh
// database for each of its subtests.
func TestStore(t *testing.T) {
	t.Parallel()
	for _, d := range sqldbtest.Dialects {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) search.Store {
				return store.New(sqldbtest.Open(t, d, store.Migrations()))
			})
		})
	}
}

func openDB(t *testing.T) *sqldb.DB {
	t.Helper()
	db, err := sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newIndex(t *testing.T) *store.SQLite {
	t.Helper()
	db := openDB(t)
	if _, err := db.Migrate(context.Background(), []sqldb.Migrations{store.Migrations()}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return store.NewSQLite(db)
}

// versions hands out increasing versions, so that every upsert is newer
// than the writes before it.
var versions atomic.Int64

func upsert(t *testing.T, s *store.SQLite, id, name, description string) {
	t.Helper()
	if wrote, err := s.Upsert(context.Background(), id, versions.Add(1), name, description); err != nil || !wrote {
		t.Fatalf("upsert %s = %v, %v; want it written", id, wrote, err)
	}
}

// match runs q through the same term splitting the service uses.
func match(t *testing.T, s *store.SQLite, q string) []string {
	t.Helper()
	terms := search.Terms(q)
	if len(terms) == 0 {
		t.Fatalf("query %q has no terms", q)
	}
	ids, err := s.Match(context.Background(), terms, 0, 100)
	if err != nil {
		t.Fatalf("match %q: %v", q, err)
	}
	return ids
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// TestPagingContractExceedsCompletions keeps the contract's paging test
// meaningful on SQLite: some of its documents must be found through the
// prefix alone, beyond the words it is completed into.
func TestPagingContractExceedsCompletions(t *testing.T) {
	t.Parallel()
	if store.MaxCompletions >= storetest.PrefixDocuments {
		t.Fatalf("MaxCompletions = %d, not below the %d documents the contract pages through",
			store.MaxCompletions, storetest.PrefixDocuments)
	}
}

func TestMigrationIndexesExistingDocuments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	full := store.Migrations()
	first, err := fs.ReadFile(full.SQLite, "00001_search.sql")
	if err != nil {
		t.Fatalf("read first migration: %v", err)
	}
	v1 := sqldb.Migrations{Module: full.Module, SQLite: fstest.MapFS{"00001_search.sql": {Data: first}}}
	if _, err := db.Migrate(ctx, []sqldb.Migrations{v1}); err != nil {
		t.Fatalf("migrate to v1: %v", err)
	}
	if _, err := db.Write.ExecContext(ctx, `INSERT INTO search_products (product_id, name, description)
		VALUES ('old', 'Hiking Boot', 'Leather.')`); err != nil {
		t.Fatalf("index under v1: %v", err)
	}
	if _, err := db.Migrate(ctx, []sqldb.Migrations{full}); err != nil {
		t.Fatalf("migrate to the latest version: %v", err)
	}
	s := store.NewSQLite(db)
	if got := match(t, s, "hikin"); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("match hikin = %v, want [old]", got)
	}
	upsert(t, s, "old", "Trail Runner", "Mesh.")
	for q, want := range map[string][]string{"hikin": nil, "boot": nil, "trai": {"old"}} {
		if got := match(t, s, q); !slices.Equal(got, want) {
			t.Errorf("after re-indexing: match %q = %v, want %v", q, got, want)
		}
	}
}

// TestCachedStore runs the same contract through the cache decorator: in
// process only on every engine, and with a real Redis as L2 on SQLite.
func TestCachedStore(t *testing.T) {
	cachetest.EachLevel(t, storetest.Run, func(t *testing.T, d sqldb.Dialect, c *cache.Cache) search.Store {
		return store.NewCached(store.New(sqldbtest.Open(t, d, store.Migrations())), c, 0)
	})
}
