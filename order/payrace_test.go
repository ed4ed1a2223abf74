package order_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/order"
	orderstore "github.com/millionshop/million/order/store"
	"github.com/millionshop/million/payment"
	"github.com/millionshop/million/payment/simulated"
)

// webhook delivers a signed provider event to the fixture's payments.
func (f *orderFixture) webhook(t *testing.T, id, typ, paymentID string) bool {
	t.Helper()
	body, _ := json.Marshal(payment.Event{ID: id, Type: typ, CreatedAt: f.clock.now(), Data: payment.EventData{PaymentID: paymentID}})
	dup, err := f.payments.HandleWebhook(context.Background(), payment.Sign([]byte("order-test-webhook-secret"), f.clock.now(), body), body)
	if err != nil {
		t.Fatalf("webhook %s: %v", typ, err)
	}
	return dup
}

func (f *orderFixture) payment(t *testing.T, orderID string) payment.Payment {
	t.Helper()
	p, err := f.payments.ByOrder(context.Background(), orderID)
	if err != nil {
		t.Fatalf("payment of %s: %v", orderID, err)
	}
	return p
}

func (f *orderFixture) onlyOrder(t *testing.T, userID string) order.Order {
	t.Helper()
	list := f.orderList(t, userID)
	if len(list) != 1 {
		t.Fatalf("orders = %+v, want one", list)
	}
	return list[0]
}

var visa = order.CheckoutRequest{Payment: order.PaymentMethod{Method: "card", Token: "tok_visa"}}

// TestCheckoutPaidByWebhookMeanwhileIsNotRefunded: a payment.captured
// webhook marks the order paid while checkout's own capture runs. Checkout
// then finds the order no longer pending; that is not a cancellation, and
// the customer's money must stay captured.
func TestCheckoutPaidByWebhookMeanwhileIsNotRefunded(t *testing.T) {
	t.Parallel()
	f := newOrderFixture(t, "")
	p := f.product(t, 5)
	const userID = "user-webhook-first"
	ctx := context.Background()
	if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 1); err != nil {
		t.Fatalf("fill cart: %v", err)
	}
	var once atomic.Bool
	f.provider.onCapture = func() {
		if once.CompareAndSwap(false, true) {
			o := f.onlyOrder(t, userID)
			f.webhook(t, "evt-early-capture", "payment.captured", f.payment(t, o.ID).ID)
		}
	}
	o, _, err := f.orders.Checkout(ctx, userID, "k-webhook", visa)
	if err != nil || o.Status != order.StatusPaid {
		t.Fatalf("checkout = %+v, %v; want it paid", o, err)
	}
	pay := f.payment(t, o.ID)
	if pay.Status != payment.StatusCaptured || f.provider.State(pay.ProviderRef) != payment.StatusCaptured {
		t.Fatalf("payment = %s, provider %s; want captured at both (not refunded)", pay.Status, f.provider.State(pay.ProviderRef))
	}
	if got := f.stock(t, p.ID); got != 4 {
		t.Fatalf("stock = %d, want 4", got)
	}
}

// TestCheckoutTakenOverWhileRunning: the first attempt's lease runs out
// while its authorization is still at the provider, and a retry takes the
// key over and completes. The first attempt must neither refund, nor
// overwrite the winner's stored outcome: it answers with the winner's.
func TestCheckoutTakenOverWhileRunning(t *testing.T) {
	t.Parallel()
	f := newOrderFixture(t, "")
	p := f.product(t, 5)
	const userID = "user-takeover"
	ctx := context.Background()
	if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 1); err != nil {
		t.Fatalf("fill cart: %v", err)
	}
	var calls atomic.Int32
	var winner order.Order
	var winnerErr error
	f.provider.onAuthorize = func() {
		if calls.Add(1) != 1 {
			return
		}
		f.clock.add(orderTestLease + time.Second)
		winner, _, winnerErr = f.orders.Checkout(ctx, userID, "k-take", visa)
	}
	o, replayed, err := f.orders.Checkout(ctx, userID, "k-take", visa)
	if winnerErr != nil || winner.Status != order.StatusPaid {
		t.Fatalf("the retry that took over = %+v, %v; want it paid", winner, winnerErr)
	}
	if err != nil || o.ID != winner.ID || o.Status != order.StatusPaid || !replayed {
		t.Fatalf("the overtaken attempt = %+v, replayed %v, %v; want the winner's %s replayed", o, replayed, err, winner.ID)
	}
	pay := f.payment(t, o.ID)
	if pay.Status != payment.StatusCaptured || f.provider.State(pay.ProviderRef) != payment.StatusCaptured {
		t.Fatalf("payment = %s, provider %s; want captured", pay.Status, f.provider.State(pay.ProviderRef))
	}
	if n := f.provider.Authorizations(); n != 1 {
		t.Fatalf("authorizations = %d, want 1", n)
	}
	rec, err := orderstore.New(f.app.DB).Key(ctx, userID, "k-take")
	if err != nil || rec.State != order.KeyDone || rec.LeaseGen != 2 || rec.OrderID != o.ID {
		t.Fatalf("key record = %+v, %v; want done by generation 2 with %s", rec, err, o.ID)
	}
	if got := f.stock(t, p.ID); got != 4 {
		t.Fatalf("stock = %d, want 4", got)
	}
}

// TestCheckoutCancelledDuringAuthorization: the customer cancels while the
// provider is authorizing. The late authorization must be voided, never
// captured: nothing is charged on a cancelled order.
func TestCheckoutCancelledDuringAuthorization(t *testing.T) {
	t.Parallel()
	f := newOrderFixture(t, "")
	p := f.product(t, 5)
	const userID = "user-cancel-auth"
	ctx := context.Background()
	if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 2); err != nil {
		t.Fatalf("fill cart: %v", err)
	}
	var once atomic.Bool
	f.provider.onAuthorize = func() {
		if once.CompareAndSwap(false, true) {
			o := f.onlyOrder(t, userID)
			if c, err := f.orders.Cancel(ctx, userID, o.ID); err != nil || c.Status != order.StatusCancelled {
				t.Errorf("cancel during authorization = %+v, %v; want cancelled", c, err)
			}
		}
	}
	o, _, err := f.orders.Checkout(ctx, userID, "k-cancel", visa)
	if err != nil || o.Status != order.StatusCancelled {
		t.Fatalf("checkout = %+v, %v; want the cancelled order", o, err)
	}
	pay := f.payment(t, o.ID)
	if pay.Status != payment.StatusVoided || f.provider.State(pay.ProviderRef) != payment.StatusVoided {
		t.Fatalf("payment = %s, provider %s; want voided at both, never captured", pay.Status, f.provider.State(pay.ProviderRef))
	}
	if got := f.stock(t, p.ID); got != 5 {
		t.Fatalf("stock = %d, want 5", got)
	}
}

// TestLateCaptureWebhookCannotUndoARefund: a payment.captured event that
// arrives after the order was cancelled and refunded is recorded and
// ignored; it must not move the payment back to captured.
func TestLateCaptureWebhookCannotUndoARefund(t *testing.T) {
	t.Parallel()
	f := newOrderFixture(t, "")
	p := f.product(t, 5)
	const userID = "user-late-webhook"
	ctx := context.Background()
	if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 1); err != nil {
		t.Fatalf("fill cart: %v", err)
	}
	o, _, err := f.orders.Checkout(ctx, userID, "k-late", visa)
	if err != nil || o.Status != order.StatusPaid {
		t.Fatalf("checkout = %+v, %v; want paid", o, err)
	}
	if c, err := f.orders.Cancel(ctx, userID, o.ID); err != nil || c.Status != order.StatusCancelled || c.PaymentStatus != payment.StatusRefunded {
		t.Fatalf("cancel = %+v, %v; want cancelled and refunded", c, err)
	}
	if dup := f.webhook(t, "evt-late-capture", "payment.captured", f.payment(t, o.ID).ID); dup {
		t.Fatalf("a first delivery was reported as a duplicate")
	}
	if dup := f.webhook(t, "evt-late-capture", "payment.captured", f.payment(t, o.ID).ID); !dup {
		t.Fatalf("a repeated delivery was not reported as a duplicate")
	}
	if pay := f.payment(t, o.ID); pay.Status != payment.StatusRefunded {
		t.Fatalf("payment after a late capture event = %s, want refunded", pay.Status)
	}
	if got, err := f.orders.Get(ctx, userID, o.ID); err != nil || got.Status != order.StatusCancelled {
		t.Fatalf("order = %+v, %v; want cancelled", got, err)
	}
	if got := f.stock(t, p.ID); got != 5 {
		t.Fatalf("stock = %d, want 5", got)
	}
}

// TestCheckoutCaptureTimeoutIsNotADecline: the capture takes effect at the
// provider but its answer is lost. The outcome is unknown, so the client
// is told to retry (503 with Retry-After), the order stays pending rather
// than cancelled "with nothing charged", and the retry completes it
// without a second charge.
func TestCheckoutCaptureTimeoutIsNotADecline(t *testing.T) {
	t.Parallel()
	f := newOrderFixture(t, "")
	p := f.product(t, 5)
	const userID = "user-capture-timeout"
	ctx := context.Background()
	if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 1); err != nil {
		t.Fatalf("fill cart: %v", err)
	}
	req := order.CheckoutRequest{Payment: order.PaymentMethod{Method: "card", Token: simulated.TokenTimeoutCapture}}
	_, _, err := f.orders.Checkout(ctx, userID, "k-timeout", req)
	if !fault.Is(err, fault.Unavailable) || fault.RetryAfterOf(err) <= 0 {
		t.Fatalf("checkout whose capture answer was lost: err = %v, want fault.Unavailable with Retry-After", err)
	}
	o := f.onlyOrder(t, userID)
	pay := f.payment(t, o.ID)
	if o.Status != order.StatusPending || pay.Status != payment.StatusAuthorized {
		t.Fatalf("after the lost answer: order %s, payment %s; want pending and authorized", o.Status, pay.Status)
	}
	if got := f.provider.State(pay.ProviderRef); got != payment.StatusCaptured {
		t.Fatalf("provider state = %s, want captured (the capture happened)", got)
	}
	// The retry resumes at once (the lease was released) and completes.
	got, replayed, err := f.orders.Checkout(ctx, userID, "k-timeout", req)
	if err != nil || replayed || got.ID != o.ID || got.Status != order.StatusPaid || got.PaymentStatus != payment.StatusCaptured {
		t.Fatalf("retry = %+v, replayed %v, %v; want %s resumed and paid", got, replayed, err, o.ID)
	}
	if n := f.provider.Authorizations(); n != 1 {
		t.Fatalf("authorizations = %d, want 1", n)
	}
	if s := f.stock(t, p.ID); s != 4 {
		t.Fatalf("stock = %d, want 4", s)
	}
}

// TestCheckoutKeepsCartLinesAddedMeanwhile: a line added to the cart after
// checkout read it (possible on PostgreSQL, whose transactions are not
// serial) is not part of the order, so it must stay in the cart.
func TestCheckoutKeepsCartLinesAddedMeanwhile(t *testing.T) {
	t.Parallel()
	f := newOrderFixture(t, "")
	p := f.product(t, 5)
	sku, name, desc, price, stock, cat := "SKU-late", "Late kettle", "Added meanwhile.", int64(900), int64(5), "kettles"
	late, err := f.app.Catalog.CreateProduct(context.Background(), catalog.NewProduct{SKU: &sku, Name: &name, Description: &desc,
		PriceCents: &price, Category: &cat, Stock: &stock})
	if err != nil {
		t.Fatalf("create product: %v", err)
	}
	const userID = "user-late-line"
	ctx := context.Background()
	if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 1); err != nil {
		t.Fatalf("fill cart: %v", err)
	}
	f.stockHook.onReserve = func(ctx context.Context) {
		// Stands in for a concurrent request that committed after
		// checkout read the cart.
		if _, err := f.app.Carts.SetItem(ctx, userID, late.ID, 2); err != nil {
			t.Errorf("add a line meanwhile: %v", err)
		}
	}
	o, _, err := f.orders.Checkout(ctx, userID, "k-late-line", visa)
	if err != nil || len(o.Items) != 1 || o.Items[0].ProductID != p.ID {
		t.Fatalf("checkout = %+v, %v; want the one line it read", o, err)
	}
	lines, err := f.app.Carts.Lines(ctx, userID)
	if err != nil || len(lines) != 1 || lines[0].ProductID != late.ID || lines[0].Quantity != 2 {
		t.Fatalf("cart after checkout = %+v, %v; want only the line added meanwhile", lines, err)
	}
}

// TestConcurrentCancelsRefundOnce: two cancels of a paid order race; only
// one asks the provider for the refund, the other waits for its outcome,
// and both answer cancelled and refunded.
func TestConcurrentCancelsRefundOnce(t *testing.T) {
	t.Parallel()
	f := newOrderFixture(t, "")
	p := f.product(t, 5)
	const userID = "user-double-cancel"
	ctx := context.Background()
	if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 1); err != nil {
		t.Fatalf("fill cart: %v", err)
	}
	o, _, err := f.orders.Checkout(ctx, userID, "k-double", visa)
	if err != nil || o.Status != order.StatusPaid {
		t.Fatalf("checkout = %+v, %v; want paid", o, err)
	}
	var wg sync.WaitGroup
	got := make([]order.Order, 2)
	errs := make([]error, 2)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = f.orders.Cancel(ctx, userID, o.ID)
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i].Status != order.StatusCancelled {
			t.Fatalf("cancel %d = %+v, %v; want cancelled", i, got[i], errs[i])
		}
	}
	if n := f.provider.refunds.Load(); n != 1 {
		t.Fatalf("provider refund calls = %d, want 1", n)
	}
	if pay := f.payment(t, o.ID); pay.Status != payment.StatusRefunded {
		t.Fatalf("payment = %s, want refunded", pay.Status)
	}
	if s := f.stock(t, p.ID); s != 5 {
		t.Fatalf("stock = %d, want 5", s)
	}
}

// TestCheckoutRenewsItsLeaseOnlyPastHalf: a checkout renews its key's
// lease before a provider call only once less than half of it is left. One
// whose authorization took 40 % of the lease keeps the lease it claimed;
// one whose authorization took 60 % renews before the capture, so no retry
// can take it over.
func TestCheckoutRenewsItsLeaseOnlyPastHalf(t *testing.T) {
	t.Parallel()
	f := newOrderFixture(t, "")
	p := f.product(t, 5)
	ctx := context.Background()
	var authorizeTakes atomic.Int64
	f.provider.onAuthorize = func() { f.clock.add(time.Duration(authorizeTakes.Load())) }
	for _, tc := range []struct {
		name        string
		takes, want time.Duration // authorization time; lease end after the claim
	}{
		{"under half", orderTestLease * 4 / 10, orderTestLease},
		{"past half", orderTestLease * 6 / 10, orderTestLease * 16 / 10},
	} {
		userID := "user-" + tc.name
		if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 1); err != nil {
			t.Fatal(err)
		}
		authorizeTakes.Store(int64(tc.takes))
		start := f.clock.now()
		if _, _, err := f.orders.Checkout(ctx, userID, "k-lease", visa); err != nil {
			t.Fatal(err)
		}
		rec, err := orderstore.New(f.app.DB).Key(ctx, userID, "k-lease")
		if err != nil || rec.State != order.KeyDone {
			t.Fatalf("%s: key record = %+v, %v", tc.name, rec, err)
		}
		if got := rec.LeaseUntil.Sub(start); got < tc.want || got > tc.want+time.Second {
			t.Fatalf("%s: the lease ends %v after the claim, want %v", tc.name, got, tc.want)
		}
	}
}
