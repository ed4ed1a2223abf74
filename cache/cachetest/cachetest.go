// Package cachetest builds caches for store contract tests: one real
// redis-server per test binary run by the caller, and a fresh key prefix per
// cache so stores sharing it never meet.
package cachetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/redistest"
	"github.com/millionshop/million/redisx"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

var prefixes atomic.Int64

// Redis starts a redis-server for t and returns a client to it.
func Redis(t testing.TB) rueidis.Client {
	t.Helper()
	srv := redistest.Start(t)
	r, err := redisx.Open(context.Background(), srv.URL(), redisx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// New returns a cache over redis (nil: L1 only) with a key prefix no other
// cache of this process uses, closed when t ends.
func New(t testing.TB, redis rueidis.Client) *cache.Cache {
	t.Helper()
	c, err := cache.New(cache.Options{Redis: redis, Prefix: fmt.Sprintf("t%d:", prefixes.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Instance returns the cache of one instance among several that share db
// (its invalidation journal) and redis under prefix, closed when t ends and
// listening on the invalidation channel when returned.
func Instance(t testing.TB, redis rueidis.Client, db *sqldb.DB, prefix string) *cache.Cache {
	t.Helper()
	c, err := cache.New(cache.Options{Redis: redis, DB: db, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	WaitConnected(t, c)
	return c
}

// WaitConnected waits until c listens on its invalidation channel, so that
// it hears other instances' writes from then on.
func WaitConnected(t testing.TB, c *cache.Cache) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("cache never subscribed to the invalidation channel")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// EachLevel runs a module's store contract (its storetest.Run) through the
// module's cache decorator at every level a deployment has: in process only
// on every engine, and with a real Redis as L2 on SQLite. open returns the
// decorated store over a fresh database of the engine, with cache c.
func EachLevel[S any](t *testing.T, run func(t *testing.T, newStore func(t *testing.T) S),
	open func(t *testing.T, d sqldb.Dialect, c *cache.Cache) S) {
	t.Helper()
	redis := Redis(t)
	for _, d := range sqldbtest.Dialects {
		t.Run(d.String()+"/l1", func(t *testing.T) {
			t.Parallel()
			run(t, func(t *testing.T) S { return open(t, d, New(t, nil)) })
		})
	}
	t.Run("sqlite/l1+redis", func(t *testing.T) {
		t.Parallel()
		run(t, func(t *testing.T) S { return open(t, sqldb.SQLite, New(t, redis)) })
	})
}
