package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/payment/simulated"
)

// TestPaymentCaptureJob: a checkout whose capture answer was lost (503)
// and that the client never retries is completed by the payment-capture
// job once the payment has been authorized longer than the grace period:
// the order becomes paid, the job's metric counts it, and the client's late
// retry gets the paid order replayed, charged once.
func TestPaymentCaptureJob(t *testing.T) {
	t.Parallel()
	srv := Start(t, func(c *app.Config) { c.PaymentCaptureAfter = time.Second })
	tg := targetFor(t, srv)
	admin := tg.Admin(t)
	p := admin.NewProduct(t, admin.NewCategory(t), "Thermos", 2500, 5)
	u := tg.Register(t)
	checkoutPut(t, u, p.ID, 1)
	checkoutPlace(t, u, http.StatusServiceUnavailable, "lost-capture", checkoutBody(simulated.TokenTimeoutCapture))
	list := checkoutOrders(t, u)
	if len(list) != 1 || list[0].Status != "pending" {
		t.Fatalf("orders after the lost capture = %+v, want one pending", list)
	}
	id := list[0].ID
	deadline := time.Now().Add(30 * time.Second)
	for {
		var o checkoutOrder
		u.Expect(t, http.StatusOK, "GET", "/v1/orders/"+id, nil).Decode(t, &o)
		if o.Status == "paid" && o.PaymentStatus == "captured" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s after 30 s = %s/%s, want paid/captured by the capture job", id, o.Status, o.PaymentStatus)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v, ok := metricValue(t, srv, "million_jobs_payments_captured_total"); !ok || v != 1 {
		t.Fatalf("million_jobs_payments_captured_total = %v (%v), want 1", v, ok)
	}
	o := checkoutDecode(t, checkoutPlace(t, u, http.StatusCreated, "lost-capture", checkoutBody(simulated.TokenTimeoutCapture)))
	if o.ID != id || o.Status != "paid" {
		t.Fatalf("late client retry = %+v, want %s paid", o, id)
	}
	if n := srv.App.Provider.Authorizations(); n != 1 {
		t.Fatalf("authorizations = %d, want 1", n)
	}
	checkoutWantStock(t, u.Client, p.ID, 4)
}
