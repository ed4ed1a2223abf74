package sqldb_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/sqldb"
)

func open(t *testing.T) *sqldb.DB {
	t.Helper()
	db, err := sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Write.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestInTxCommitsRollsBackAndJoins(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.InTx(ctx, func(ctx context.Context) error {
		if _, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv VALUES ('a', 1)`); err != nil {
			return err
		}
		// A nested InTx joins the outer transaction and fails it.
		return db.InTx(ctx, func(ctx context.Context) error {
			if !sqldb.InTransaction(ctx) {
				t.Error("nested call is not in the transaction")
			}
			return boom
		})
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want boom", err)
	}
	var n int
	if err := db.Read.QueryRow(`SELECT count(*) FROM kv`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after rollback = %d (%v), want 0", n, err)
	}
	err = db.InTx(ctx, func(ctx context.Context) error {
		if _, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv VALUES ('b', 2)`); err != nil {
			return err
		}
		// Reads inside the transaction see its own writes.
		var v int
		if err := db.Reader(ctx).QueryRowContext(ctx, `SELECT v FROM kv WHERE k = 'b'`).Scan(&v); err != nil || v != 2 {
			t.Errorf("read own write = %d (%v), want 2", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Read.QueryRow(`SELECT count(*) FROM kv`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows after commit = %d (%v), want 1", n, err)
	}
}

func TestAfterCommitRunsOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	ran := 0
	_ = db.InTx(ctx, func(ctx context.Context) error {
		sqldb.AfterCommit(ctx, func() { ran++ })
		return errors.New("roll back")
	})
	if ran != 0 {
		t.Fatalf("hook ran %d times after a rollback, want 0", ran)
	}
	_ = db.InTx(ctx, func(ctx context.Context) error {
		sqldb.AfterCommit(ctx, func() {
			var n int
			_ = db.Read.QueryRow(`SELECT count(*) FROM kv`).Scan(&n)
			ran += n
		})
		_, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv VALUES ('c', 3)`)
		return err
	})
	if ran != 1 {
		t.Fatalf("hook saw %d committed rows, want 1 (it must run after the commit)", ran)
	}
	sqldb.AfterCommit(ctx, func() { ran = 100 })
	if ran != 100 {
		t.Fatal("without a transaction the hook must run at once")
	}
}

// TestBeforeCommitRunsInsideTheTransaction: a hook runs after the work, in
// the transaction (its write commits with it, and is seen by nobody before),
// a hook may add another, and a failing hook rolls everything back.
func TestBeforeCommitRunsInsideTheTransaction(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	count := func() int {
		var n int
		if err := db.Read.QueryRow(`SELECT count(*) FROM kv`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var order []string
	if err := db.InTx(ctx, func(ctx context.Context) error {
		if err := sqldb.BeforeCommit(ctx, func(ctx context.Context) error {
			order = append(order, "hook")
			if n := count(); n != 0 {
				t.Errorf("another connection saw %d rows before the commit", n)
			}
			if _, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv VALUES ('h', 1)`); err != nil {
				return err
			}
			return sqldb.BeforeCommit(ctx, func(ctx context.Context) error {
				order = append(order, "added")
				return nil
			})
		}); err != nil {
			return err
		}
		order = append(order, "work")
		_, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv VALUES ('w', 2)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "work,hook,added" || count() != 2 {
		t.Fatalf("ran %v with %d rows after the commit; want work, hook, added and 2", order, count())
	}
	boom := errors.New("hook failed")
	err := db.InTx(ctx, func(ctx context.Context) error {
		if _, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv VALUES ('x', 3)`); err != nil {
			return err
		}
		return sqldb.BeforeCommit(ctx, func(context.Context) error { return boom })
	})
	if !errors.Is(err, boom) || count() != 2 {
		t.Fatalf("a failing hook: InTx = %v with %d rows; want its error and the write rolled back", err, count())
	}
	if err := sqldb.BeforeCommit(ctx, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("without a transaction the hook must run at once: %v", err)
	}
}

// TestConcurrentWritersQueue shows why the write pool has one connection:
// many goroutines writing at once all succeed (they queue), none gets SQLITE_BUSY.
func TestConcurrentWritersQueue(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	if _, err := db.Write.Exec(`INSERT INTO kv VALUES ('counter', 0)`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			errs <- db.InTx(ctx, func(ctx context.Context) error {
				var v int
				if err := db.Reader(ctx).QueryRowContext(ctx, `SELECT v FROM kv WHERE k = 'counter'`).Scan(&v); err != nil {
					return err
				}
				_, err := db.Writer(ctx).ExecContext(ctx, `UPDATE kv SET v = ? WHERE k = 'counter'`, v+1)
				return err
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent write failed: %v", err)
		}
	}
	var v int
	if err := db.Read.QueryRow(`SELECT v FROM kv WHERE k = 'counter'`).Scan(&v); err != nil || v != 100 {
		t.Fatalf("counter = %d (%v), want 100: a read-modify-write was lost", v, err)
	}
}

// TestInTxRollsBackOnPanic: a panic inside a transaction releases it, so
// the single SQLite write connection is free for the next writer.
func TestInTxRollsBackOnPanic(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	func() {
		defer func() { _ = recover() }()
		_ = db.InTx(ctx, func(ctx context.Context) error {
			if _, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv VALUES ('p', 1)`); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	done := make(chan error, 1)
	go func() {
		done <- db.InTx(ctx, func(ctx context.Context) error {
			_, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO kv VALUES ('q', 2)`)
			return err
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write after a panicking transaction: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the write connection is still held by the transaction that panicked")
	}
	var n int
	if err := db.Read.QueryRow(`SELECT count(*) FROM kv WHERE k = 'p'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows of the panicking transaction = %d (%v), want 0", n, err)
	}
}

// TestTxValueSharedByOneTransaction: the writes of one transaction share
// one value, and one after-commit action sees all of them.
func TestTxValueSharedByOneTransaction(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	if _, ok := sqldb.TxValue(ctx, "k", func() any { return new([]int) }); ok {
		t.Fatal("TxValue outside a transaction reported ok")
	}
	var seen []int
	runs := 0
	add := func(ctx context.Context, n int) {
		v, _ := sqldb.TxValue(ctx, "k", func() any {
			p := new([]int)
			sqldb.AfterCommit(ctx, func() { runs++; seen = append(seen, *p...) })
			return p
		})
		p := v.(*[]int)
		*p = append(*p, n)
	}
	if err := db.InTx(ctx, func(ctx context.Context) error {
		add(ctx, 1)
		add(ctx, 2)
		add(ctx, 3)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if runs != 1 || len(seen) != 3 {
		t.Fatalf("after commit: %d runs saw %v, want 1 run seeing [1 2 3]", runs, seen)
	}
	if err := db.InTx(ctx, func(ctx context.Context) error {
		add(ctx, 4)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if runs != 2 || len(seen) != 4 || seen[3] != 4 {
		t.Fatalf("a second transaction got %v over %d runs: values must not outlive their transaction", seen, runs)
	}
}
