package order_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/order"
	orderstore "github.com/millionshop/million/order/store"
	"github.com/millionshop/million/payment"
	"github.com/millionshop/million/payment/simulated"
	paymentstore "github.com/millionshop/million/payment/store"
	"github.com/millionshop/million/user"
)

// failingEvents records events in the real outbox, except that the first
// event of topic fails (the first two after failTwice): it stands in for a
// crash or a database error at that exact step of checkout.
type failingEvents struct {
	next  order.Events
	topic string

	mu     sync.Mutex
	failed int
	times  int
}

// failTwice makes the first two events of the topic fail: checkout marks
// an order paid with the capture and, when that fails, once more on its
// own, so it takes two failures to leave a captured order pending.
func (f *failingEvents) failTwice() {
	f.mu.Lock()
	f.times = 2
	f.mu.Unlock()
}

func (f *failingEvents) Add(ctx context.Context, topic, key string, payload any) error {
	f.mu.Lock()
	fail := topic == f.topic && f.failed < max(f.times, 1)
	if fail {
		f.failed++
	}
	f.mu.Unlock()
	if fail {
		return errors.New("injected failure recording " + topic)
	}
	return f.next.Add(ctx, topic, key, payload)
}

// orderClock is a clock the test moves forward, to expire key leases
// without sleeping through them.
type orderClock struct{ offset atomic.Int64 }

func (c *orderClock) now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *orderClock) add(d time.Duration) { c.offset.Add(int64(d)) }

const orderTestLease = 30 * time.Second

// orderFixture is the real application over a temporary SQLite file, with
// an order service of the test's own over the same database so the test
// controls its clock and injected failure.
type orderFixture struct {
	app       *app.App
	orders    *order.Orders
	clock     *orderClock
	events    *failingEvents
	provider  *hookProvider
	payments  *payment.Payments
	stockHook *hookStock
}

// hookStock is the catalog's stock with a hook run, inside checkout's
// transaction, when stock is reserved.
type hookStock struct {
	order.Stock
	onReserve func(ctx context.Context)
}

func (h *hookStock) Reserve(ctx context.Context, lines []catalog.Line) ([]catalog.ReservedLine, error) {
	if h.onReserve != nil {
		h.onReserve(ctx)
	}
	return h.Stock.Reserve(ctx, lines)
}

func newOrderFixture(t *testing.T, failTopic string) *orderFixture {
	t.Helper()
	return newOrderFixtureOn(t, failTopic, "")
}

// newOrderFixtureOn is newOrderFixture on the database at databaseURL
// (PostgreSQL), or on SQLite when it is empty.
func newOrderFixtureOn(t *testing.T, failTopic, databaseURL string) *orderFixture {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.Open(context.Background(), app.Config{
		DataDir:        t.TempDir(),
		DatabaseURL:    databaseURL,
		PasswordParams: user.PasswordParams{MemoryKiB: 1024, Iterations: 1, Parallelism: 1},
	}, logger)
	if err != nil {
		t.Fatalf("open app: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	f := &orderFixture{app: a, clock: &orderClock{}, events: &failingEvents{next: a.Outbox, topic: failTopic},
		provider: &hookProvider{Provider: simulated.New(0)}}
	payments := payment.NewPayments(paymentstore.New(a.DB), f.provider, a.Outbox, []byte("order-test-webhook-secret"), 5*time.Second, f.clock.now)
	f.stockHook = &hookStock{Stock: a.Catalog}
	f.orders = order.NewOrders(orderstore.New(a.DB), f.stockHook, a.Carts, payments, f.events,
		order.Config{Currency: "USD", KeyLease: orderTestLease, KeyWait: 50 * time.Millisecond}, logger, f.clock.now)
	payments.SetOrderNotifier(f.orders)
	f.payments = payments
	return f
}

func (f *orderFixture) product(t *testing.T, stock int64) catalog.Product {
	t.Helper()
	ctx := context.Background()
	slug := "kettles" // each fixture has its own database
	if _, err := f.app.Catalog.CreateCategory(ctx, slug, "Category"); err != nil {
		t.Fatalf("create category: %v", err)
	}
	sku, name, desc, price := "SKU-"+slug, "Kettle", "A kettle for tests.", int64(2500)
	p, err := f.app.Catalog.CreateProduct(ctx, catalog.NewProduct{SKU: &sku, Name: &name, Description: &desc,
		PriceCents: &price, Category: &slug, Stock: &stock})
	if err != nil {
		t.Fatalf("create product: %v", err)
	}
	return p
}

func (f *orderFixture) stock(t *testing.T, id string) int64 {
	t.Helper()
	p, err := f.app.Catalog.Product(context.Background(), id)
	if err != nil {
		t.Fatalf("read product: %v", err)
	}
	return p.Stock
}

func (f *orderFixture) orderList(t *testing.T, userID string) []order.Order {
	t.Helper()
	page, err := f.orders.List(context.Background(), userID, 100, "")
	if err != nil {
		t.Fatalf("list orders: %v", err)
	}
	return page.Items
}

// TestCheckoutResumesAfterFailureAfterCapture proves that a checkout which
// fails after its order exists (here: after the capture, while marking the
// order paid, both with the capture and on its own) keeps its idempotency key bound to that order: a retry while
// the lease runs is told the key is in use, a retry after the lease resumes
// the same order without charging again, and a refilled cart never becomes
// a second order under the same key.
func TestCheckoutResumesAfterFailureAfterCapture(t *testing.T) {
	t.Parallel()
	f := newOrderFixture(t, order.TopicPaid)
	f.events.failTwice()
	ctx := context.Background()
	p := f.product(t, 5)
	const userID = "user-resume"
	req := order.CheckoutRequest{Payment: order.PaymentMethod{Method: "card", Token: "tok_visa"}}
	if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 2); err != nil {
		t.Fatalf("fill cart: %v", err)
	}

	if _, _, err := f.orders.Checkout(ctx, userID, "k1", req); fault.KindOf(err) != fault.Internal {
		t.Fatalf("checkout with the injected failure: err = %v, want an internal error", err)
	}
	placed := f.orderList(t, userID)
	if len(placed) != 1 || placed[0].Status != order.StatusPending {
		t.Fatalf("orders after the failure = %+v, want one pending order", placed)
	}
	if got := f.stock(t, p.ID); got != 3 {
		t.Fatalf("stock = %d, want 3 (held by the pending order)", got)
	}
	if n := f.provider.Authorizations(); n != 1 {
		t.Fatalf("authorizations = %d, want 1", n)
	}

	// The customer refills the cart: if the key had been given back, the
	// retry would place this cart as a second order.
	if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 1); err != nil {
		t.Fatalf("refill cart: %v", err)
	}
	if _, _, err := f.orders.Checkout(ctx, userID, "k1", req); !fault.HasCode(err, "idempotency_key_in_use") {
		t.Fatalf("retry within the lease: err = %v, want idempotency_key_in_use", err)
	}

	f.clock.add(orderTestLease + time.Second)
	o, replayed, err := f.orders.Checkout(ctx, userID, "k1", req)
	if err != nil || replayed {
		t.Fatalf("retry after the lease: replayed %v, err %v; want the checkout resumed", replayed, err)
	}
	if o.ID != placed[0].ID || o.Status != order.StatusPaid || o.PaymentStatus != "captured" {
		t.Fatalf("resumed order = %+v, want %s paid and captured", o, placed[0].ID)
	}
	again, replayed, err := f.orders.Checkout(ctx, userID, "k1", req)
	if err != nil || !replayed || again.ID != o.ID {
		t.Fatalf("replay = %+v, %v, %v; want %s replayed", again, replayed, err, o.ID)
	}
	if list := f.orderList(t, userID); len(list) != 1 {
		t.Fatalf("orders = %+v, want exactly one", list)
	}
	if got := f.stock(t, p.ID); got != 3 {
		t.Fatalf("stock = %d, want 3", got)
	}
	if n := f.provider.Authorizations(); n != 1 {
		t.Fatalf("authorizations = %d, want still 1", n)
	}
	lines, err := f.app.Carts.Lines(ctx, userID)
	if err != nil || len(lines) != 1 || lines[0].Quantity != 1 {
		t.Fatalf("cart = %+v, %v; want the refilled line kept", lines, err)
	}
}

// hookProvider is the simulated provider with a hook run when an
// authorization starts, and injectable failures: failCaptures and
// failAuthorizes make that many calls time out without taking effect at
// the provider, as when the request never reached it.
type hookProvider struct {
	*simulated.Provider
	onAuthorize    func()
	onCapture      func()
	onVoid         func()
	refunds        atomic.Int32
	captures       atomic.Int32 // capture calls that reached the provider
	failCaptures   atomic.Int32
	failAuthorizes atomic.Int32
}

// errTimeout is what an injected failure answers: no answer at all.
var errTimeout = fmt.Errorf("injected: no answer from the provider: %w", context.DeadlineExceeded)

// take consumes one injected failure of n, reporting whether there was one.
func take(n *atomic.Int32) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

func (h *hookProvider) Refund(ctx context.Context, ref string) error {
	h.refunds.Add(1)
	time.Sleep(50 * time.Millisecond) // a slow provider, so concurrent cancels overlap
	return h.Provider.Refund(ctx, ref)
}

func (h *hookProvider) Capture(ctx context.Context, ref string) error {
	if h.onCapture != nil {
		h.onCapture()
	}
	if take(&h.failCaptures) {
		return errTimeout
	}
	h.captures.Add(1)
	return h.Provider.Capture(ctx, ref)
}

func (h *hookProvider) Void(ctx context.Context, ref string) error {
	if h.onVoid != nil {
		h.onVoid()
	}
	return h.Provider.Void(ctx, ref)
}

func (h *hookProvider) Authorize(ctx context.Context, key string, amount int64, currency, token string) (string, error) {
	if h.onAuthorize != nil {
		h.onAuthorize()
	}
	if take(&h.failAuthorizes) {
		return "", errTimeout
	}
	return h.Provider.Authorize(ctx, key, amount, currency, token)
}

// TestCheckoutAnswersTheStoredOrder: a paid checkout answers the order
// without reading it back, so its answer must be, byte for byte, what
// reading the order returns, at each engine's precision (microseconds).
func TestCheckoutAnswersTheStoredOrder(t *testing.T) {
	t.Parallel()
	onEachEngine(t, "", func(t *testing.T, f *orderFixture) {
		checkoutAnswersTheStoredOrder(t, f)
	})
}

func checkoutAnswersTheStoredOrder(t *testing.T, f *orderFixture) {
	p := f.product(t, 5)
	const userID = "user-reads-back"
	ctx := context.Background()
	if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 2); err != nil {
		t.Fatalf("fill cart: %v", err)
	}
	o, _, err := f.orders.Checkout(ctx, userID, "k-read-back", order.CheckoutRequest{Payment: order.PaymentMethod{Method: "card", Token: "tok_visa"}})
	if err != nil || o.Status != order.StatusPaid {
		t.Fatalf("checkout = %+v, %v; want it paid", o, err)
	}
	stored, err := f.orders.Get(ctx, userID, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	answered, _ := json.Marshal(o)
	read, _ := json.Marshal(stored)
	if !bytes.Equal(answered, read) || o.UserID != stored.UserID {
		t.Fatalf("checkout answered\n%s\nreading the order returns\n%s", answered, read)
	}
}

// TestCheckoutFinishesAfterClientLeaves proves that once the order is
// placed, a caller that goes away (its context cancelled while the provider
// works) does not strand it: the payment completes, the outcome is stored,
// and the retry gets it replayed.
func TestCheckoutFinishesAfterClientLeaves(t *testing.T) {
	t.Parallel()
	f := newOrderFixture(t, "")
	p := f.product(t, 5)
	const userID = "user-leaves"
	req := order.CheckoutRequest{Payment: order.PaymentMethod{Method: "card", Token: "tok_visa"}}
	if _, err := f.app.Carts.SetItem(context.Background(), userID, p.ID, 1); err != nil {
		t.Fatalf("fill cart: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.provider.onAuthorize = cancel
	o, _, err := f.orders.Checkout(ctx, userID, "k-leave", req)
	if err != nil || o.Status != order.StatusPaid {
		t.Fatalf("checkout whose caller left = %+v, %v; want it paid", o, err)
	}
	f.provider.onAuthorize = nil
	again, replayed, err := f.orders.Checkout(context.Background(), userID, "k-leave", req)
	if err != nil || !replayed || again.ID != o.ID {
		t.Fatalf("retry = %+v, %v, %v; want %s replayed", again, replayed, err, o.ID)
	}
	if got := f.stock(t, p.ID); got != 4 {
		t.Fatalf("stock = %d, want 4", got)
	}
	if n := f.provider.Authorizations(); n != 1 {
		t.Fatalf("authorizations = %d, want 1", n)
	}
}
