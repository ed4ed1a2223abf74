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

// TestCapturedRunsInTheCaptureTransaction: the caller's Captured step runs
// in the transaction that records the capture and commits with it; when
// it fails, its writes are rolled back and the capture is recorded without
// it, so a capture the provider made is never left unrecorded, and the
// caller learns that its step did not commit.
func TestCapturedRunsInTheCaptureTransaction(t *testing.T) {
	t.Parallel()
	sqldbtest.Each(t, []sqldb.Migrations{store.Migrations()}, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		provider := simulated.New(0)
		st := store.New(db)
		pays := payment.NewPayments(st, provider, nil, []byte("secret"), 5*time.Second, time.Now)
		for _, fail := range []bool{true, false} {
			orderID := "order-step-ok"
			if fail {
				orderID = "order-step-fails"
			}
			calls, committed := 0, 0
			charge := payment.Charge{OrderID: orderID, UserID: "u1", AmountCents: 1250, Currency: "USD", Token: "tok_visa"}
			charge.Captured = func(ctx context.Context) error {
				calls++
				if !sqldb.InTransaction(ctx) {
					t.Error("Captured ran outside a transaction")
				}
				if seen, err := st.ByOrder(ctx, orderID); err != nil || seen.Status != payment.StatusCaptured {
					t.Errorf("in Captured the payment is %+v, %v; want it captured in this transaction", seen, err)
				}
				// A write of the caller's, standing in for the paid order.
				if _, err := st.RecordEvent(ctx, "step-"+orderID, "step", time.Now()); err != nil {
					return err
				}
				sqldb.AfterCommit(ctx, func() { committed++ })
				if fail {
					return errors.New("the caller's step failed")
				}
				return nil
			}
			got, err := pays.Pay(ctx, charge)
			if err != nil || got.Status != payment.StatusCaptured {
				t.Fatalf("Pay (step fails: %v) = %+v, %v; want captured", fail, got, err)
			}
			if stored, err := pays.ByOrder(ctx, orderID); err != nil || stored.Status != payment.StatusCaptured {
				t.Fatalf("stored payment (step fails: %v) = %+v, %v; want captured", fail, stored, err)
			}
			wantCommitted := 1
			if fail {
				wantCommitted = 0
			}
			if calls != 1 || committed != wantCommitted {
				t.Fatalf("step fails: %v: Captured ran %d times and committed %d; want 1 and %d", fail, calls, committed, wantCommitted)
			}
			// The step's own write went with its transaction: RecordEvent
			// reports it fresh again only if it was rolled back.
			fresh, err := st.RecordEvent(ctx, "step-"+orderID, "step", time.Now())
			if err != nil || fresh != fail {
				t.Fatalf("step fails: %v: recording the step's event again = fresh %v, %v; want fresh %v (only a rolled-back step left none)", fail, fresh, err, fail)
			}
			// A payment found captured already does not run it again.
			if _, err := pays.Pay(ctx, charge); err != nil || calls != 1 {
				t.Fatalf("Pay of a captured payment = %v with %d Captured calls, want nil and still 1", err, calls)
			}
		}
		if n := provider.Authorizations(); n != 2 {
			t.Fatalf("%d authorizations for two orders, want 2", n)
		}
	})
}
