package store_test

import (
	"testing"

	"github.com/millionshop/million/cart"
	"github.com/millionshop/million/cart/store"
	"github.com/millionshop/million/cart/storetest"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStore runs the cart.Store contract on every engine, with a fresh
// database for each of its subtests.
func TestStore(t *testing.T) {
	t.Parallel()
	for _, d := range sqldbtest.Dialects {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) cart.Store {
				return store.New(sqldbtest.Open(t, d, store.Migrations()))
			})
		})
	}
}
