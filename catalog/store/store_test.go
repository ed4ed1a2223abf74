package store_test

import (
	"testing"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/cache/cachetest"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/catalog/storetest"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStore runs the catalog storage contract on every engine.
func TestStore(t *testing.T) {
	for _, dialect := range sqldbtest.Dialects {
		t.Run(dialect.String(), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) catalog.Store {
				return store.New(sqldbtest.Open(t, dialect, store.Migrations()))
			})
		})
	}
}

// TestCachedStore runs the same contract through the cache decorator: in
// process only on every engine, and with a real Redis as L2 on SQLite.
func TestCachedStore(t *testing.T) {
	cachetest.EachLevel(t, storetest.Run, func(t *testing.T, d sqldb.Dialect, c *cache.Cache) catalog.Store {
		return store.NewCached(store.New(sqldbtest.Open(t, d, store.Migrations())), c, store.CacheTTLs{})
	})
}
