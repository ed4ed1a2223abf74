// Package sqldbtest opens real, migrated databases for tests: a SQLite file
// in a temporary directory, or a fresh PostgreSQL database cloned from a
// migrated template on a throwaway cluster (package pgtest). Contract suites
// run the same tests over both through Each.
package sqldbtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb"
)

// Dialects are the engines every store must work on.
var Dialects = []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres}

// Open returns a migrated database of the given dialect, closed when the test ends.
func Open(t testing.TB, dialect sqldb.Dialect, sets ...sqldb.Migrations) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	var (
		db  *sqldb.DB
		err error
	)
	switch dialect {
	case sqldb.Postgres:
		srv := pgtest.Cluster(t)
		template := srv.NewTemplate(t, templateName(sets), func(url string) error {
			db, err := sqldb.OpenPostgres(ctx, url, sqldb.PostgresOptions{MaxConns: 2})
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = db.Migrate(ctx, sets)
			return err
		})
		db, err = sqldb.OpenPostgres(ctx, srv.NewDatabase(t, template), sqldb.PostgresOptions{MaxConns: 16})
		if err != nil {
			t.Fatalf("open postgres: %v", err)
		}
	default:
		db, err = sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		if _, err := db.Migrate(ctx, sets); err != nil {
			db.Close()
			t.Fatalf("migrate sqlite: %v", err)
		}
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// templateName names a template after the migration sets it holds, so
// different test packages and set combinations never share one by mistake.
func templateName(sets []sqldb.Migrations) string {
	names := make([]string, len(sets))
	for i, s := range sets {
		names[i] = s.Module
	}
	sum := sha256.Sum256([]byte(strings.Join(names, ",")))
	return "tpl_" + hex.EncodeToString(sum[:8]) // identifiers are capped at 63 bytes
}

// Each runs fn as a parallel subtest once per dialect, with a fresh
// migrated database.
func Each(t *testing.T, sets []sqldb.Migrations, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			fn(t, Open(t, d, sets...))
		})
	}
}
