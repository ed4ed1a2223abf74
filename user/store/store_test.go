package store_test

import (
	"testing"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/cache/cachetest"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
	"github.com/millionshop/million/user"
	"github.com/millionshop/million/user/store"
	"github.com/millionshop/million/user/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStore runs the user.Store contract on every engine, with a fresh
// database for each of its subtests.
func TestStore(t *testing.T) {
	t.Parallel()
	for _, d := range sqldbtest.Dialects {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) user.Store {
				return store.New(sqldbtest.Open(t, d, store.Migrations()))
			})
		})
	}
}

// TestCachedStore runs the same contract through the cache decorator: in
// process only on every engine, and with a real Redis as L2 on SQLite.
func TestCachedStore(t *testing.T) {
	cachetest.EachLevel(t, storetest.Run, func(t *testing.T, d sqldb.Dialect, c *cache.Cache) user.Store {
		return store.NewCached(store.New(sqldbtest.Open(t, d, store.Migrations())), c, 0)
	})
	t.Run("sqlite/l1 sessions", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) user.Store {
			c := cachetest.New(t, nil)
			return store.NewCachedSessions(store.NewCached(store.New(sqldbtest.Open(t, sqldb.SQLite, store.Migrations())), c, 0), c, 0)
		})
	})
}
