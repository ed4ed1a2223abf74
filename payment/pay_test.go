package payment_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/payment"
	"github.com/millionshop/million/payment/simulated"
	"github.com/millionshop/million/payment/store"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestPayResumesThePaymentAnOrderHas: whether the caller hands Pay the
// payment it opened or lets Pay look for it, an order with a payment
// already gets that payment resumed, never a second one or a second
// authorization; an order without one gets one.
func TestPayResumesThePaymentAnOrderHas(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, []sqldb.Migrations{store.Migrations()}, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		provider := simulated.New(0)
		pays := payment.NewPayments(store.New(db), provider, nil, []byte("secret"), 5*time.Second, time.Now)
		charge := payment.Charge{OrderID: "o1", UserID: "u1", AmountCents: 1250, Currency: "USD", Token: "tok_visa"}
		opened, err := pays.Open(ctx, charge)
		if err != nil || opened.Status != payment.StatusPending {
			t.Fatalf("Open = %+v, %v; want a pending payment", opened, err)
		}
		if _, err := pays.Open(ctx, charge); !fault.Is(err, fault.Conflict) {
			t.Fatalf("a second Open of the order = %v, want fault.Conflict", err)
		}
		charge.Opened = &opened
		first, err := pays.Pay(ctx, charge)
		if err != nil || first.ID != opened.ID || first.Status != payment.StatusCaptured {
			t.Fatalf("first Pay = %+v, %v; want payment %s captured", first, err, opened.ID)
		}
		charge.Opened = nil
		again, err := pays.Pay(ctx, charge)
		if err != nil || again.ID != first.ID || again.Status != payment.StatusCaptured {
			t.Fatalf("Pay again = %+v, %v; want payment %s, captured", again, err, first.ID)
		}
		if n := provider.Authorizations(); n != 1 {
			t.Fatalf("%d authorizations for one order, want 1", n)
		}
		// An order without a payment yet gets one.
		other, err := pays.Pay(ctx, payment.Charge{OrderID: "o2", UserID: "u1", AmountCents: 500, Currency: "USD", Token: "tok_visa"})
		if err != nil || other.Status != payment.StatusCaptured || other.ID == first.ID {
			t.Fatalf("Pay of an order without a payment = %+v, %v; want a new captured payment", other, err)
		}
	})
}

// TestCapturedRunsInTheCaptureTransaction: the caller's Captured step
// commits with the capture, and an error from it leaves the payment
// authorized (nothing recorded as captured), so a retry captures again.
func TestCapturedRunsInTheCaptureTransaction(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, []sqldb.Migrations{store.Migrations()}, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		provider := simulated.New(0)
		st := store.New(db)
		pays := payment.NewPayments(st, provider, nil, []byte("secret"), 5*time.Second, time.Now)
		charge := payment.Charge{OrderID: "o1", UserID: "u1", AmountCents: 1250, Currency: "USD", Token: "tok_visa"}
		calls := 0
		charge.Captured = func(ctx context.Context) error {
			calls++
			if !sqldb.InTransaction(ctx) {
				t.Error("Captured ran outside a transaction")
			}
			seen, err := st.ByOrder(ctx, "o1")
			if err != nil || seen.Status != payment.StatusCaptured {
				t.Errorf("in Captured the payment is %+v, %v; want it captured in this transaction", seen, err)
			}
			if calls == 1 {
				return errors.New("the caller's step failed")
			}
			return nil
		}
		if _, err := pays.Pay(ctx, charge); err == nil {
			t.Fatal("Pay succeeded though its Captured step failed")
		}
		if got, err := pays.ByOrder(ctx, "o1"); err != nil || got.Status != payment.StatusAuthorized {
			t.Fatalf("after a failed Captured step the payment is %+v, %v; want it still authorized", got, err)
		}
		got, err := pays.Pay(ctx, charge)
		if err != nil || got.Status != payment.StatusCaptured || calls != 2 {
			t.Fatalf("the retry = %+v, %v after %d Captured calls; want captured after 2", got, err, calls)
		}
		// A payment found captured already does not run it again.
		if _, err := pays.Pay(ctx, charge); err != nil || calls != 2 {
			t.Fatalf("Pay of a captured payment = %v with %d Captured calls, want nil and still 2", err, calls)
		}
		if n := provider.Authorizations(); n != 1 {
			t.Fatalf("%d authorizations for one order, want 1", n)
		}
	})
}
