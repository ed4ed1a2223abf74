package store_test

import (
	"testing"

	"github.com/millionshop/million/payment"
	"github.com/millionshop/million/payment/store"
	"github.com/millionshop/million/payment/storetest"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStore runs the payment storage contract on every engine.
func TestStore(t *testing.T) {
	for _, dialect := range sqldbtest.Dialects {
		t.Run(dialect.String(), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) payment.Store {
				return store.New(sqldbtest.Open(t, dialect, store.Migrations()))
			})
		})
	}
}
