package store_test

import (
	"testing"

	"github.com/millionshop/million/order"
	"github.com/millionshop/million/order/store"
	"github.com/millionshop/million/order/storetest"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStore runs the order storage contract on every engine.
func TestStore(t *testing.T) {
	for _, dialect := range sqldbtest.Dialects {
		t.Run(dialect.String(), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) order.Store {
				return store.New(sqldbtest.Open(t, dialect, store.Migrations()))
			})
		})
	}
}
