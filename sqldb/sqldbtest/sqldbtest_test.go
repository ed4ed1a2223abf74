package sqldbtest_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var kv = sqldb.Migrations{
	Module:   "kvtest",
	SQLite:   fstest.MapFS{"00001_kv.sql": {Data: []byte("-- +goose Up\nCREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT NOT NULL);\n")}},
	Postgres: fstest.MapFS{"00001_kv.sql": {Data: []byte("-- +goose Up\nCREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT NOT NULL);\n")}},
}

// TestEachDialect writes and reads with '?' placeholders on both engines,
// checks unique violations are recognized on both, and that transactions
// roll back on both.
func TestEachDialect(t *testing.T) {
	sqldbtest.Each(t, []sqldb.Migrations{kv}, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		if _, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, ?)`, "a", 1); err != nil {
			t.Fatal(err)
		}
		_, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, ?)`, "a", 2)
		if !sqldb.IsUniqueViolation(err) {
			t.Fatalf("duplicate insert: %v, want a unique violation", err)
		}
		_ = db.InTx(ctx, func(ctx context.Context) error {
			_, _ = db.Writer(ctx).ExecContext(ctx, `UPDATE kv SET v = ? WHERE k = ?`, 99, "a")
			return context.Canceled
		})
		var v int64
		if err := db.Reader(ctx).QueryRowContext(ctx, `SELECT v FROM kv WHERE k = ? AND v < ?`, "a", 50).Scan(&v); err != nil || v != 1 {
			t.Fatalf("v = %d (%v), want 1 after the rollback", v, err)
		}
		st, err := db.MigrationStatuses(ctx, []sqldb.Migrations{kv})
		if err != nil || len(st) != 1 || !st[0].Applied {
			t.Fatalf("migration status = %+v (%v), want one applied", st, err)
		}
	})
}
