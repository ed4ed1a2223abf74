package payment_test

import (
	"context"
	"testing"
	"time"

	"github.com/millionshop/million/payment"
	"github.com/millionshop/million/payment/simulated"
	"github.com/millionshop/million/payment/store"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestPayResumesThePaymentAnOrderHas: whether the caller says the order is
// new (insert first) or not (read first), an order with a payment already
// gets that payment resumed, never a second one or a second authorization.
func TestPayResumesThePaymentAnOrderHas(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, []sqldb.Migrations{store.Migrations()}, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		provider := simulated.New(0)
		pays := payment.NewPayments(store.New(db), provider, nil, []byte("secret"), 5*time.Second, time.Now)
		charge := payment.Charge{OrderID: "o1", UserID: "u1", AmountCents: 1250, Currency: "USD", Token: "tok_visa", New: true}
		first, err := pays.Pay(ctx, charge)
		if err != nil || first.Status != payment.StatusCaptured {
			t.Fatalf("first Pay = %+v, %v; want captured", first, err)
		}
		for _, isNew := range []bool{true, false} {
			charge.New = isNew
			again, err := pays.Pay(ctx, charge)
			if err != nil || again.ID != first.ID || again.Status != payment.StatusCaptured {
				t.Fatalf("Pay again (New %v) = %+v, %v; want payment %s, captured", isNew, again, err, first.ID)
			}
		}
		if n := provider.Authorizations(); n != 1 {
			t.Fatalf("%d authorizations for one order, want 1", n)
		}
		// An order that is not new and has no payment yet gets one.
		other, err := pays.Pay(ctx, payment.Charge{OrderID: "o2", UserID: "u1", AmountCents: 500, Currency: "USD", Token: "tok_visa"})
		if err != nil || other.Status != payment.StatusCaptured || other.ID == first.ID {
			t.Fatalf("Pay of a resumed order without a payment = %+v, %v; want a new captured payment", other, err)
		}
	})
}
