package store_test

import (
	"testing"

	"github.com/millionshop/million/pgtest"
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
