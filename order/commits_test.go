package order_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/order"
	orderstore "github.com/millionshop/million/order/store"
	"github.com/millionshop/million/payment"
	paymentstore "github.com/millionshop/million/payment/store"
	"github.com/millionshop/million/sqldb"
)

// commitCounter counts the commits and statements of a sequential piece of
// work (one goroutine, no relay running: the race detector would tell
// otherwise): the transactions the order and payment stores begin (not the
// ones they join), and each statement, of which those run outside a
// transaction commit on their own.
type commitCounter struct {
	transactions, alone int
	inTx                bool
	names               []string // every statement, in order
}

func (c *commitCounter) ObserveQuery(name string, _ time.Duration, _ error) {
	c.names = append(c.names, name)
	if !c.inTx {
		c.alone++
	}
}

func (c *commitCounter) inTransaction(ctx context.Context, inTx func(context.Context, func(context.Context) error) error, fn func(context.Context) error) error {
	if sqldb.InTransaction(ctx) {
		return inTx(ctx, fn)
	}
	c.transactions++
	c.inTx = true
	defer func() { c.inTx = false }()
	return inTx(ctx, fn)
}

func (c *commitCounter) commits() int { return c.transactions + c.alone }

type countedOrders struct {
	order.Store
	c *commitCounter
}

func (s countedOrders) InTx(ctx context.Context, fn func(context.Context) error) error {
	return s.c.inTransaction(ctx, s.Store.InTx, fn)
}

type countedPayments struct {
	payment.Store
	c *commitCounter
}

func (s countedPayments) InTx(ctx context.Context, fn func(context.Context) error) error {
	return s.c.inTransaction(ctx, s.Store.InTx, fn)
}

// TestCheckoutCommitsThreeTimes: a checkout of a new key commits three
// times, not the seven it took when the key, the order, the payment, each
// payment step, the paid order and the stored outcome had a transaction
// each: the key, the order and its payment; the authorization; the capture
// with the order paid and the outcome stored. Its statements stay within
// a budget, so that one more round trip per checkout is a decision, not an
// accident.
func TestCheckoutCommitsThreeTimes(t *testing.T) {
	t.Parallel()
	onEachEngine(t, "", func(t *testing.T, f *orderFixture) {
		ctx := context.Background()
		c := &commitCounter{}
		payments := payment.NewPayments(countedPayments{paymentstore.New(f.app.DB), c}, f.provider, f.app.Outbox,
			[]byte("order-test-webhook-secret"), 5*time.Second, f.clock.now)
		orders := order.NewOrders(countedOrders{orderstore.New(f.app.DB), c}, f.app.Catalog, f.app.Carts, payments, f.app.Outbox,
			order.Config{Currency: "USD", KeyLease: orderTestLease}, slog.New(slog.NewTextHandler(io.Discard, nil)), f.clock.now)
		payments.SetOrderNotifier(orders)
		const userID = "user-counted"
		if _, err := f.app.Catalog.CreateCategory(ctx, "kettles", "Kettles"); err != nil {
			t.Fatalf("create category: %v", err)
		}
		for i := range 3 {
			sku, name, desc, price, slug, stock := fmt.Sprintf("SKU-%d", i), "Kettle", "A kettle for tests.", int64(2500), "kettles", int64(10)
			p, err := f.app.Catalog.CreateProduct(ctx, catalog.NewProduct{SKU: &sku, Name: &name, Description: &desc,
				PriceCents: &price, Category: &slug, Stock: &stock})
			if err != nil {
				t.Fatalf("create product: %v", err)
			}
			if _, err := f.app.Carts.SetItem(ctx, userID, p.ID, 1); err != nil {
				t.Fatalf("fill cart: %v", err)
			}
		}
		f.app.DB.SetObserver(c)
		o, replayed, err := orders.Checkout(ctx, userID, "k", order.CheckoutRequest{Payment: order.PaymentMethod{Method: "card", Token: "tok_visa"}})
		f.app.DB.SetObserver(nil)
		if err != nil || replayed || o.Status != order.StatusPaid || len(o.Items) != 3 {
			t.Fatalf("checkout = %+v, replayed %v, %v; want a new paid order of 3 lines", o, replayed, err)
		}
		// The key, the cart, its products twice (the cart's own read
		// leaves out products no longer sold, then the reservation locks
		// and checks them), the stock, the order, its items, its payment,
		// the cart's lines, order.placed; the authorization and its
		// event; the capture, the order paid, their two events in one
		// insert, the key's outcome.
		const maxStatements = 16
		if n := c.commits(); n != 3 {
			t.Errorf("a checkout committed %d times, want 3; statements %q", n, c.names)
		}
		if n := len(c.names); n > maxStatements {
			t.Errorf("a checkout ran %d statements, want at most %d: %q", n, maxStatements, c.names)
		}
	})
}
