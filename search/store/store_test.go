package store_test

import (
	"context"
	"io/fs"
	"slices"
	"strconv"
	"testing"
	"testing/fstest"

	"github.com/millionshop/million/search"
	"github.com/millionshop/million/search/store"
	"github.com/millionshop/million/sqldb"
)

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

func upsert(t *testing.T, s *store.SQLite, id, name, description string) {
	t.Helper()
	if err := s.Upsert(context.Background(), id, name, description); err != nil {
		t.Fatalf("upsert %s: %v", id, err)
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

func TestMatch(t *testing.T) {
	t.Parallel()
	s := newIndex(t)
	upsert(t, s, "boot", "Rugged Leather Hiking Boot", "Waterproof, for mountains.")
	upsert(t, s, "chair", "Red Camp Chair", "Folds flat; pairs with a hiking table.")
	upsert(t, s, "cafe", "Café Press", "Brews coffee.")
	upsert(t, s, "using", "Kit", "Using it is easy.")

	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"boot", []string{"boot"}},
		{"boots", []string{"boot"}},
		{"booted", []string{"boot"}},
		{"h", []string{"boot", "chair"}},
		{"hik", []string{"boot", "chair"}},
		{"hiki", []string{"boot", "chair"}},
		{"hikin", []string{"boot", "chair"}},
		{"hiking", []string{"boot", "chair"}},
		{"hikings", []string{"boot", "chair"}},
		{"hikx", nil},
		{"usi", []string{"using"}},
		{"hikin boot", nil}, // only the last word is a prefix
		{"boot hikin", []string{"boot"}},
		{"red hikin", []string{"chair"}},
		{"cafe", []string{"cafe"}},
		{"café", []string{"cafe"}},
		{"caf", []string{"cafe"}},
		{"coffee brew", []string{"cafe"}},
		{"mountain waterproof leather", []string{"boot"}},
	} {
		if got := sorted(match(t, s, tc.q)); !slices.Equal(got, sorted(tc.want)) {
			t.Errorf("match %q = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestMatchRanksNameAboveDescription(t *testing.T) {
	t.Parallel()
	s := newIndex(t)
	upsert(t, s, "d1", "Stool", "lantern lantern lantern lantern, the lantern stool")
	upsert(t, s, "d2", "Tarp", "Goes with a lantern.")
	upsert(t, s, "n1", "Lantern", "Bright.")
	upsert(t, s, "n2", "Folding Camp Table With Lantern Hook And Cup Holders", "Sturdy.")
	for _, q := range []string{"lantern", "lant", "lanterns"} {
		got := match(t, s, q)
		if len(got) != 4 || !slices.Equal(sorted(got[:2]), []string{"n1", "n2"}) {
			t.Errorf("match %q = %v, want n1 and n2 before d1 and d2", q, got)
		}
	}
}

func TestUpsertReplacesAndDeleteRemoves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newIndex(t)
	upsert(t, s, "p", "Kayak Paddle", "Carbon.")
	upsert(t, s, "q", "Kayak Seat", "Padded.")
	upsert(t, s, "p", "Canoe Paddle", "Carbon.")
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"kayak", []string{"q"}},
		{"kaya", []string{"q"}},
		{"canoe", []string{"p"}},
		{"cano", []string{"p"}},
		{"paddle", []string{"p"}},
		{"carbon", []string{"p"}},
	} {
		if got := sorted(match(t, s, tc.q)); !slices.Equal(got, tc.want) {
			t.Errorf("after rename: match %q = %v, want %v", tc.q, got, tc.want)
		}
	}
	if err := s.Delete(ctx, "p"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := s.Delete(ctx, "p"); err != nil {
		t.Fatalf("delete of a missing document: %v", err)
	}
	for _, q := range []string{"canoe", "cano", "paddle", "carbon"} {
		if got := match(t, s, q); len(got) != 0 {
			t.Errorf("after delete: match %q = %v, want nothing", q, got)
		}
	}
	upsert(t, s, "p", "Canoe Paddle", "Carbon.")
	if got := match(t, s, "cano"); !slices.Equal(got, []string{"p"}) {
		t.Errorf("after re-adding: match cano = %v, want [p]", got)
	}
}

func TestMatchPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newIndex(t)
	// More completions than MaxCompletions: the query still works and still
	// finds every document through the prefix itself.
	const n = store.MaxCompletions + 36
	for i := range n {
		upsert(t, s, "p"+strconv.Itoa(1000+i), "Hikeword"+strconv.Itoa(1000+i), "Trail.")
	}
	all, err := s.Match(ctx, []string{"hikew"}, 0, 1000)
	if err != nil || len(all) != n {
		t.Fatalf("match = %d ids, %v; want %d", len(all), err, n)
	}
	var paged []string
	for offset := 0; ; offset += 7 {
		ids, err := s.Match(ctx, []string{"hikew"}, offset, 7)
		if err != nil {
			t.Fatalf("match at %d: %v", offset, err)
		}
		if len(ids) == 0 {
			break
		}
		paged = append(paged, ids...)
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("paged results differ from one page:\n%v\n%v", paged, all)
	}
}

func TestMatchAcceptsAnyTerm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newIndex(t)
	upsert(t, s, "boot", "Hiking Boot", "Leather.")
	// Terms come from search.Terms, but the store must not depend on it for
	// safety: anything it is given is a word to look for, never syntax.
	for _, term := range []string{`"`, `""`, `*`, `"*`, `OR`, `NEAR(`, `-`, `)`, `:`, `^`, `{name}`, `'`,
		"𞤀𞤁", "🥾", "\u0301", "\x00", "ǅ", "日本語", "a b", `boot"`, "\uFFFD", "\U0010FFFF"} {
		for _, terms := range [][]string{{term}, {term, "boot"}, {"boot", term}} {
			if _, err := s.Match(ctx, terms, 0, 10); err != nil {
				t.Errorf("match %q: %v", terms, err)
			}
		}
	}
}

// TestMigrationIndexesExistingDocuments applies the schema in two steps, as
// an existing installation gets it, and checks that documents indexed
// before the unstemmed vocabulary existed complete like new ones.
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
