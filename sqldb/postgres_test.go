package sqldb

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestPostgresCloseWithLeakedConnection proves that a connection never given
// back (here a transaction left open) makes Close fail with the reason
// instead of blocking forever, as pgxpool.Close alone would: shutdown must
// end even when a code path leaks.
func TestPostgresCloseWithLeakedConnection(t *testing.T) {
	// Not parallel: it shortens the package's closeTimeout.
	defer func(d time.Duration) { closeTimeout = d }(closeTimeout)
	closeTimeout = 200 * time.Millisecond

	ctx := context.Background()
	db, err := OpenPostgres(ctx, pgtest.Cluster(t).NewDatabase(t, ""), PostgresOptions{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err = db.Close()
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Close took %s with a leaked connection, want about %s", took, closeTimeout)
	}
	if err == nil || !strings.Contains(err.Error(), "1 connections still in use") {
		t.Errorf("Close = %v, want an error naming the connection still in use", err)
	}
	_ = tx.Rollback() // lets the pool's closing goroutine finish
}
