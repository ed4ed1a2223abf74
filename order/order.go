// Package order owns checkout and the order lifecycle: stock reserved,
// order written, cart cleared and the order.placed event recorded in one
// transaction; payment outside it with compensation; idempotency keys so a
// retried checkout never places a second order or charges twice.
package order

import (
	"context"
	"time"

	"github.com/millionshop/million/cart"
	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/payment"
)

// Order statuses.
const (
	StatusPending   = "pending"
	StatusPaid      = "paid"
	StatusCancelled = "cancelled"
	StatusRefunded  = "refunded"
	StatusFulfilled = "fulfilled"
)

// Item is one line of an order, priced when the order was placed.
type Item struct {
	ProductID  string `json:"product_id"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Quantity   int64  `json:"quantity"`
}

// Order is an order as its owner sees it.
type Order struct {
	ID            string    `json:"id"`
	UserID        string    `json:"-"`
	Status        string    `json:"status"`
	Items         []Item    `json:"items"`
	TotalCents    int64     `json:"total_cents"`
	Currency      string    `json:"currency"`
	PaymentStatus string    `json:"payment_status"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// PaymentMethod is how a checkout pays.
type PaymentMethod struct {
	Method string `json:"method"`
	Token  string `json:"token"`
}

// CheckoutRequest is the body of POST /v1/checkout.
type CheckoutRequest struct {
	Payment PaymentMethod `json:"payment"`
}

// Page is one page of orders, newest first.
type Page struct {
	Items      []Order `json:"items"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// Service is the order module's API. Every method acts on the caller's own orders.
type Service interface {
	// Checkout places the cart as an order and pays for it. The same key and
	// request return the first outcome again (replayed = true). Errors:
	// fault.Invalid (missing key, empty cart), fault.Conflict
	// (insufficient_stock, idempotency_key_in_use), fault.Unprocessable
	// (idempotency_key_reused), payment.ErrDeclined, payment.ErrProvider.
	Checkout(ctx context.Context, userID, key string, req CheckoutRequest) (o Order, replayed bool, err error)
	// Get returns one of the user's orders. Errors: fault.NotFound.
	Get(ctx context.Context, userID, orderID string) (Order, error)
	// List returns the user's orders, newest first. Errors: fault.Invalid.
	List(ctx context.Context, userID string, limit int, cursor string) (Page, error)
	// Cancel cancels an order: stock returned, payment voided or refunded.
	// Errors: fault.NotFound, fault.Conflict (fulfilled).
	Cancel(ctx context.Context, userID, orderID string) (Order, error)
}

// Stock is what the order module needs from the catalog.
type Stock interface {
	Reserve(ctx context.Context, lines []catalog.Line) ([]catalog.ReservedLine, error)
	Release(ctx context.Context, lines []catalog.Line) error
}

// Carts is what the order module needs from the cart.
type Carts interface {
	Lines(ctx context.Context, userID string) ([]cart.Line, error)
	// RemoveLines takes the ordered lines out of the cart, keeping any
	// line added or changed since they were read.
	RemoveLines(ctx context.Context, userID string, lines []cart.Line) error
}

// Payments is what the order module needs from payments: checkout (the
// payment opened with the order, then paid) and cancel, and for the
// background jobs the payments left authorized and a void that never
// refunds.
type Payments interface {
	Open(ctx context.Context, c payment.Charge) (payment.Payment, error)
	Pay(ctx context.Context, c payment.Charge) (payment.Payment, error)
	Cancel(ctx context.Context, orderID string) (payment.Payment, error)
	Void(ctx context.Context, orderID string) (payment.Payment, error)
	Stalled(ctx context.Context, status string, before time.Time, limit int) ([]payment.Payment, error)
}

// Events records domain events atomically with the transaction in ctx.
type Events interface {
	Add(ctx context.Context, topic, key string, payload any) error
}

// Idempotency record states.
const (
	KeyRunning = "running"
	KeyDone    = "done"
)

// KeyRecord is the stored state of one idempotency key.
type KeyRecord struct {
	UserID      string
	Key         string
	RequestHash string
	State       string
	OrderID     string
	LeaseUntil  time.Time // a running record whose lease passed was abandoned by a crash
	LeaseGen    int64     // bumped by every claim or takeover; fences the writes of an attempt that lost its lease
	ErrKind     int       // fault.Kind of a failed outcome; 0 with ErrCode "" is success
	ErrCode     string
	ErrMessage  string
	Response    []byte // the order as first answered
	CreatedAt   time.Time
}

// Store persists orders and idempotency keys; implementations live in
// order/store and every one must pass order/storetest.
//
// Text a store cannot hold (sqldb.Storable: invalid UTF-8, NUL) is treated
// alike on every engine: a write that carries it fails with fault.Invalid
// (sqldb.ErrUnstorable), and a lookup by it finds nothing.
//
// Order, OrderByID and Key, called inside a transaction, lock the row they
// return until the transaction ends: checkout (taking over a key whose lease
// ran out), cancel and payment webhooks change what they read, and must not
// act twice on the same stale row.
type Store interface {
	// InTx runs fn in one transaction (or joins the one in ctx).
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// InsertOrder stores a new order with its items. Errors: fault.Invalid
	// (unstorable text).
	InsertOrder(ctx context.Context, o Order) error
	// Order returns an order of the user, locked inside a transaction.
	// Errors: fault.NotFound (also for another user's order).
	Order(ctx context.Context, userID, orderID string) (Order, error)
	// OrderByID returns an order whoever owns it, locked inside a
	// transaction. Errors: fault.NotFound.
	OrderByID(ctx context.Context, orderID string) (Order, error)
	// Orders returns up to limit orders of the user older than beforeID ("" for the newest).
	// Errors: fault.Invalid when beforeID is an ID no store can hold, so it
	// cannot be a position a list returned.
	Orders(ctx context.Context, userID, beforeID string, limit int) ([]Order, error)
	// SetStatus moves the user's order from one of the given statuses to
	// status; it reports false when the order was in none of them (or is
	// not the user's). Errors: fault.Invalid (unstorable status text).
	SetStatus(ctx context.Context, userID, orderID string, from []string, status, paymentStatus string, now time.Time) (bool, error)
	// Key returns an idempotency record, locked inside a transaction.
	// Errors: fault.NotFound.
	Key(ctx context.Context, userID, key string) (KeyRecord, error)
	// InsertKey stores a new record. A record that exists is not an error
	// for the transaction (on PostgreSQL it is not aborted: checkout goes
	// on to read the record in another). Errors: fault.Conflict
	// (idempotency_key_in_use) when it exists, fault.Invalid (unstorable
	// text).
	InsertKey(ctx context.Context, r KeyRecord) error
	// UpdateKey writes every mutable field of r (LeaseGen included) if the
	// stored record is running and its generation is still gen; it reports
	// false, writing nothing, when another attempt took the key over
	// meanwhile, the record is gone, or it is done: a stored outcome is
	// final, so an attempt acting on a stale copy (one that could not tell
	// whether its capture committed) cannot erase it. Errors:
	// fault.Invalid (unstorable text).
	UpdateKey(ctx context.Context, r KeyRecord, gen int64) (bool, error)
	// DeleteKey removes a record (a transient failure that must not be
	// replayed) if its generation is still gen; it reports whether it did.
	DeleteKey(ctx context.Context, userID, key string, gen int64) (bool, error)
	// PendingOrders returns up to limit pending orders placed before
	// before, oldest first (for the abandoned-checkout reaper).
	PendingOrders(ctx context.Context, before time.Time, limit int) ([]Order, error)
	// KeyByOrder returns the idempotency record an order was placed
	// under, locked inside a transaction. Errors: fault.NotFound (none:
	// it was purged).
	KeyByOrder(ctx context.Context, orderID string) (KeyRecord, error)
	// PurgeKeys deletes up to limit records created before before that
	// are finished: done, or running with a lease that ran out before now
	// (an attempt nobody resumed). A running record whose lease is live
	// is never deleted. It returns how many it deleted.
	PurgeKeys(ctx context.Context, before, now time.Time, limit int) (int, error)
}
