// Package payment owns payments: authorization, capture, void and refund
// through a Provider, and the provider's signed webhooks.
package payment

import (
	"context"
	"time"

	"github.com/millionshop/million/fault"
)

// Payment statuses.
const (
	StatusPending    = "pending" // created, provider not yet answered
	StatusAuthorized = "authorized"
	StatusCaptured   = "captured"
	StatusVoided     = "voided"
	StatusRefunded   = "refunded"
	StatusDeclined   = "declined"
	StatusFailed     = "failed"
)

// Payment is one order's payment.
type Payment struct {
	ID          string
	OrderID     string
	UserID      string
	AmountCents int64
	Currency    string
	Status      string
	Provider    string
	ProviderRef string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Charge is what checkout asks to authorize.
type Charge struct {
	OrderID     string
	UserID      string
	AmountCents int64
	Currency    string
	Token       string
}

// Errors a Provider returns; the service maps them to client answers.
var (
	// ErrDeclined means the card network refused the charge.
	ErrDeclined = fault.New(fault.PaymentRequired, "payment_declined", "the payment was declined")
	// ErrProvider means the provider failed; nothing was charged.
	ErrProvider = fault.New(fault.BadGateway, "payment_provider_error", "the payment provider failed; nothing was charged")
)

// Provider is a payment network adapter (the simulated one, or Stripe).
// Every call is idempotent for the same key, so retries never charge twice.
type Provider interface {
	// Name identifies the provider in stored payments.
	Name() string
	// Authorize holds amount on the card behind token. Errors: ErrDeclined, ErrProvider.
	Authorize(ctx context.Context, idempotencyKey string, amountCents int64, currency, token string) (ref string, err error)
	// Capture takes an authorized amount. Errors: ErrProvider.
	Capture(ctx context.Context, ref string) error
	// Void releases an authorization that was not captured. Errors: ErrProvider.
	Void(ctx context.Context, ref string) error
	// Refund returns a captured amount. Errors: ErrProvider.
	Refund(ctx context.Context, ref string) error
}

// Service is the payment module's API.
type Service interface {
	// Pay authorizes and captures a charge for an order. It is idempotent per
	// order: a second call returns the first payment. Errors: ErrDeclined, ErrProvider.
	Pay(ctx context.Context, c Charge) (Payment, error)
	// Cancel voids or refunds the order's payment, whichever applies; it is
	// idempotent and succeeds when the order has no payment.
	Cancel(ctx context.Context, orderID string) (Payment, error)
	// ByOrder returns an order's payment. Errors: fault.NotFound.
	ByOrder(ctx context.Context, orderID string) (Payment, error)
	// HandleWebhook verifies and applies a provider event. It reports whether
	// the event was a duplicate. Errors: fault.Invalid (bad signature, stale
	// timestamp, malformed event), fault.NotFound (unknown payment).
	HandleWebhook(ctx context.Context, signature string, body []byte) (duplicate bool, err error)
}

// OrderNotifier is told when a webhook changes a payment, so the order that
// owns it can follow. It runs inside the webhook's transaction.
type OrderNotifier interface {
	PaymentChanged(ctx context.Context, orderID, status string) error
}

// Store persists payments and processed webhook events; implementations
// live in payment/store and every one must pass payment/storetest.
//
// Text a store cannot hold (sqldb.Storable: invalid UTF-8, NUL) is treated
// alike on every engine: a write that carries it fails with fault.Invalid
// (sqldb.ErrUnstorable), and a lookup by it finds nothing.
//
// ByID and ByOrder, called inside a transaction, lock the payment they
// return until the transaction ends: a webhook or a cancel changes the
// payment from what it read, and two of them must not both act on the same
// stale status.
type Store interface {
	// InTx runs fn in one transaction (or joins the one in ctx).
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// Insert stores a new payment. Errors: fault.Conflict when the order
	// already has one, fault.Invalid (unstorable text).
	Insert(ctx context.Context, p Payment) error
	// ByOrder returns an order's payment, locked inside a transaction.
	// Errors: fault.NotFound.
	ByOrder(ctx context.Context, orderID string) (Payment, error)
	// ByID returns a payment, locked inside a transaction. Errors:
	// fault.NotFound.
	ByID(ctx context.Context, id string) (Payment, error)
	// SetStatus updates status and provider reference. Errors:
	// fault.Invalid (unstorable text).
	SetStatus(ctx context.Context, id, status, providerRef string, now time.Time) error
	// RecordEvent stores a webhook event ID; it reports false when it was
	// already stored. Errors: fault.Invalid (unstorable text).
	RecordEvent(ctx context.Context, eventID, eventType string, now time.Time) (bool, error)
}
