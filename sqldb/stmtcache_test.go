package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"
)

func openTestSQLite(t *testing.T) *DB {
	t.Helper()
	db, err := OpenSQLite(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Write.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func cached(c *stmtCache, query string) bool {
	_, ok := c.stmts.Load(query)
	return ok
}

func TestStatementsArePreparedOncePerPool(t *testing.T) {
	t.Parallel()
	db := openTestSQLite(t)
	ctx := context.Background()
	const insert, read = `INSERT INTO kv (k, v) VALUES (?, ?)`, `SELECT v FROM kv WHERE k = ?`
	for i := range 3 {
		if _, err := db.Writer(ctx).ExecContext(ctx, insert, fmt.Sprint("k", i), i); err != nil {
			t.Fatal(err)
		}
		var v int
		if err := db.Reader(ctx).QueryRowContext(ctx, read, fmt.Sprint("k", i)).Scan(&v); err != nil || v != i {
			t.Fatalf("read k%d: %d, %v", i, v, err)
		}
	}
	if !cached(db.writeStmts, insert) || !cached(db.readStmts, read) || db.writeStmts.n.Load() != 1 || db.readStmts.n.Load() != 1 {
		t.Fatalf("kept: write %d (insert %v), read %d (select %v)", db.writeStmts.n.Load(), cached(db.writeStmts, insert),
			db.readStmts.n.Load(), cached(db.readStmts, read))
	}
	// A statement that does not compile is reported as before and not kept.
	if _, err := db.Reader(ctx).QueryContext(ctx, `SELECT nope FROM kv`); err == nil {
		t.Fatal("a bad statement ran")
	}
	if cached(db.readStmts, `SELECT nope FROM kv`) {
		t.Fatal("a bad statement was kept")
	}
}

func TestStatementsInTransactionsNeitherWaitNorDiffer(t *testing.T) {
	t.Parallel()
	db := openTestSQLite(t)
	const upsert = `INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = v + excluded.v`
	const read = `SELECT v FROM kv WHERE k = ?`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The first transaction holds SQLite's only write connection: a
	// statement it runs first must not wait to be prepared on that pool.
	tx := func() error {
		return db.InTx(ctx, func(ctx context.Context) error {
			if _, err := db.Writer(ctx).ExecContext(ctx, upsert, "a", 1); err != nil {
				return err
			}
			var v int
			return db.Reader(ctx).QueryRowContext(ctx, read, "a").Scan(&v)
		})
	}
	if err := tx(); err != nil {
		t.Fatal(err)
	}
	// Prepared in the background once the connection is free.
	for !cached(db.writeStmts, upsert) || !cached(db.writeStmts, read) {
		if ctx.Err() != nil {
			t.Fatal("the statements of a transaction were never prepared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 5 {
		if err := tx(); err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if err := db.Read.QueryRow(read, "a").Scan(&v); err != nil || v != 6 {
		t.Fatalf("v = %d, %v; want 6 from six transactions", v, err)
	}
	// A rolled-back transaction's prepared statements wrote nothing.
	_ = db.InTx(ctx, func(ctx context.Context) error {
		if _, err := db.Writer(ctx).ExecContext(ctx, upsert, "a", 100); err != nil {
			return err
		}
		return sql.ErrTxDone
	})
	if err := db.Read.QueryRow(read, "a").Scan(&v); err != nil || v != 6 {
		t.Fatalf("after a rollback v = %d, %v; want 6", v, err)
	}
}

func TestStatementCacheIsBounded(t *testing.T) {
	t.Parallel()
	db := openTestSQLite(t)
	ctx := context.Background()
	for i := range maxCachedStatements + 10 {
		var n int
		if err := db.Reader(ctx).QueryRowContext(ctx, fmt.Sprintf(`SELECT %d + count(*) FROM kv`, i)).Scan(&n); err != nil || n != i {
			t.Fatalf("statement %d: %d, %v", i, n, err)
		}
	}
	if n := db.readStmts.n.Load(); n != maxCachedStatements {
		t.Fatalf("%d statements kept, want the bound %d", n, maxCachedStatements)
	}
}

func TestStatementCacheConcurrentUse(t *testing.T) {
	t.Parallel()
	db := openTestSQLite(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 40 {
				k := fmt.Sprint("k", (g+i)%7)
				err := db.InTx(ctx, func(ctx context.Context) error {
					_, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, 1) ON CONFLICT (k) DO UPDATE SET v = v + 1`, k)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				var v int
				if err := db.Reader(ctx).QueryRowContext(ctx, `SELECT v FROM kv WHERE k = ?`, k).Scan(&v); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var total int
	if err := db.Read.QueryRow(`SELECT sum(v) FROM kv`).Scan(&total); err != nil || total != 240 {
		t.Fatalf("total %d, %v; want 240", total, err)
	}
}
