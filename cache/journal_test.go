package cache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/redistest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func journalRows(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	var n int
	if err := db.Read.QueryRow(`SELECT count(*) FROM cache_invalidations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A writer cut off from Redis while the other instances reach it: its
// invalidation, recorded in the write's transaction, is delivered by
// another instance's replay, without the writer ever coming back, so the
// others stop serving the old value within seconds rather than a TTL.
func TestJournalDeliversWhatTheWriterCouldNot(t *testing.T) {
	t.Parallel()
	for _, dialect := range sqldbtest.Dialects {
		t.Run(dialect.String(), func(t *testing.T) {
			t.Parallel()
			db := sqldbtest.Open(t, dialect, Migrations())
			srv := redistest.Start(t)
			proxy := cutProxy(t, srv.Addr)
			opts := func(url string) Options {
				return Options{Redis: openRedis(t, url), DB: db, InvalidateWait: 500 * time.Millisecond, ReplayEvery: 100 * time.Millisecond}
			}
			a := newCache(t, opts("redis://"+proxy.Listen))
			b := newCache(t, opts(srv.URL()))
			waitReady(t, a)
			waitReady(t, b)
			ea := Register[string](a, Spec{Name: "p", Version: 1, TTL: time.Hour})
			eb := Register[string](b, Spec{Name: "p", Version: 1, TTL: time.Hour})
			src := newSource()
			src.set("k", "old")
			get(t, ea, src, "k")
			get(t, eb, src, "k")
			proxy.Stop() // for good: the writer never reaches Redis again
			ctx := context.Background()
			if err := db.InTx(ctx, func(ctx context.Context) error {
				src.set("k", "new")
				return a.Defer(ctx, ea.Keys("k"))
			}); err != nil {
				t.Fatal(err)
			}
			if n := testutil.ToFloat64(a.metrics.invalidationFailures); n != 1 {
				t.Fatalf("the writer counted %v failed invalidations, want 1", n)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				v, _ := get(t, eb, src, "k")
				if v == "new" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("another instance still serves %q 15 s after the write; journal rows %d", v, journalRows(t, db))
				}
				time.Sleep(20 * time.Millisecond)
			}
			// The replayer counts a message after Redis took it and its row
			// is deleted, which is after this instance may already have
			// seen the new value.
			for testutil.ToFloat64(b.metrics.replayed) < 1 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := testutil.ToFloat64(b.metrics.replayed); n != 1 {
				t.Fatalf("the other instance replayed %v invalidations, want 1", n)
			}
			if n := journalRows(t, db); n != 0 {
				t.Fatalf("%d journal rows left after the replay", n)
			}
		})
	}
}

// The record is part of the write: a rolled-back write leaves none and
// invalidates nothing; a committed one whose invalidation Redis took
// leaves none either.
func TestJournalFollowsTheTransaction(t *testing.T) {
	t.Parallel()
	db := sqldbtest.Open(t, sqldb.SQLite, Migrations())
	srv := redistest.Start(t)
	c := newCache(t, Options{Redis: openRedis(t, srv.URL()), DB: db})
	waitReady(t, c)
	e := Register[string](c, Spec{Name: "p", Version: 1, TTL: time.Hour})
	l := Register[string](c, Spec{Name: "l", Version: 1, TTL: time.Hour, Generational: true})
	ctx := context.Background()
	boom := errors.New("roll back")
	if err := db.InTx(ctx, func(ctx context.Context) error {
		if err := c.Defer(ctx, e.Keys("k")); err != nil {
			return err
		}
		if n := journalRows(t, db); n != 0 {
			t.Errorf("a record outside the transaction: %d rows seen from another connection", n)
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if n := journalRows(t, db); n != 0 {
		t.Fatalf("%d journal rows after a rollback", n)
	}
	if n := testutil.ToFloat64(c.metrics.received); n != 0 {
		t.Fatalf("%v invalidations sent for a rolled-back write", n)
	}
	if err := db.InTx(ctx, func(ctx context.Context) error {
		for range 3 { // three writes of one transaction, one message
			if err := c.Defer(ctx, e.Keys("k", "m"), l.All()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := journalRows(t, db); n != 0 {
		t.Fatalf("%d journal rows after a delivered invalidation", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(c.metrics.received) < 1 { // its own echo; an ack may be late
		if time.Now().After(deadline) {
			t.Fatal("the committed write's invalidation never came back on the channel")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := testutil.ToFloat64(c.metrics.received); n != 1 {
		t.Fatalf("one transaction sent %v messages, want 1", n)
	}
	if l.gen.Load() != 1 {
		t.Fatalf("generation %d after one transaction, want 1", l.gen.Load())
	}
}

// journalInserts counts the rows written to the journal.
type journalInserts struct{ n atomic.Int64 }

func (j *journalInserts) ObserveQuery(statement string, _ time.Duration, err error) {
	if statement == "INSERT cache_invalidations" && err == nil {
		j.n.Add(1)
	}
}

// Several writes of one transaction, through as many Defer calls, share
// one journal row, written in the transaction.
func TestJournalOneRowPerTransaction(t *testing.T) {
	t.Parallel()
	db := sqldbtest.Open(t, sqldb.SQLite, Migrations())
	inserts := &journalInserts{}
	db.SetObserver(inserts) // before the cache uses the database
	srv := redistest.Start(t)
	c := newCache(t, Options{Redis: openRedis(t, srv.URL()), DB: db})
	waitReady(t, c)
	e := Register[string](c, Spec{Name: "p", Version: 1, TTL: time.Hour})
	ctx := context.Background()
	if err := db.InTx(ctx, func(ctx context.Context) error {
		for _, k := range []string{"a", "b", "c"} {
			if err := c.Defer(ctx, e.Keys(k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := inserts.n.Load(); n != 1 {
		t.Fatalf("three Defer calls of one transaction wrote %d journal rows, want 1", n)
	}
}
