package sqldbtest

import (
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"

	"github.com/millionshop/million/sqldb"
)

// Through returns m cut after the migration numbered sqlite on SQLite and
// postgres on PostgreSQL (the engines number their files apart), so that
// an upgrade test can build the schema an older million left behind, fill
// it the way that million wrote, and then migrate it with m whole. Cutting
// the set, rather than stopping goose at a version, keeps sqldb's one way
// of migrating (Migrate, with its lock) the only one; production code has
// no reason to stop short of the latest schema.
func Through(t testing.TB, m sqldb.Migrations, sqlite, postgres int64) sqldb.Migrations {
	t.Helper()
	m.SQLite = cut(t, m.Module, m.SQLite, sqlite)
	m.Postgres = cut(t, m.Module, m.Postgres, postgres)
	return m
}

// cut copies the migrations of fsys numbered up to version; it fails the
// test when fsys has no migration of exactly that number, since a set cut
// at a version it never had would not be the old schema the test means.
func cut(t testing.TB, module string, fsys fs.FS, version int64) fs.FS {
	t.Helper()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatalf("migrations of %s: %v", module, err)
	}
	out, found := fstest.MapFS{}, false
	for _, name := range names {
		n, err := goose.NumericComponent(name)
		if err != nil {
			t.Fatalf("migration %s of %s: %v", name, module, err)
		}
		if n > version {
			continue
		}
		found = found || n == version
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatalf("migration %s of %s: %v", name, module, err)
		}
		out[name] = &fstest.MapFile{Data: data}
	}
	if !found {
		t.Fatalf("module %s has no migration %d", module, version)
	}
	return out
}
