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
	StatusRefunding  = "refunding" // a cancel has claimed the refund and is asking the provider
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
	// Guard, when set, runs before every provider call; an error from it
	// stops Pay at once, leaving the payment as it is (the order module
	// renews its idempotency lease here, and stops if another attempt
	// took the checkout over).
	Guard func(ctx context.Context) error
	// Opened is the payment Open created for this order in the order's own
	// transaction, when the caller has it: Pay starts from it instead of
	// reading it back. Without it (a resumed checkout, a job) Pay reads the
	// order's payment, and creates one if there is none.
	Opened *Payment
	// Captured, when set, runs inside the transaction that records the
	// capture, so that what the caller does about a captured payment (the
	// order paid, the checkout's outcome) commits with it: one commit
	// instead of two. It runs only when this call records the capture, not
	// when it finds the payment captured already. Should it fail, Pay
	// records the capture without it and succeeds all the same: the caller
	// learns whether its step committed with sqldb.AfterCommit, never from
	// having been called.
	Captured func(ctx context.Context) error
}

// transitions are the status changes a payment may make. Every status write
// is a compare-and-set along one of them, so a late or concurrent writer
// (an authorization answered after a cancel, an out-of-order webhook) can
// never move a payment back: a voided payment is never captured, a refunded
// one never captured again.
var transitions = map[string][]string{
	// A webhook may be the first news of an authorization, capture or void.
	StatusPending:    {StatusAuthorized, StatusCaptured, StatusDeclined, StatusFailed, StatusVoided},
	StatusAuthorized: {StatusCaptured, StatusVoided, StatusFailed},
	StatusCaptured:   {StatusRefunding, StatusRefunded},
	// A refund the provider refused goes back to captured, to be retried.
	StatusRefunding: {StatusRefunded, StatusCaptured},
}

// CanMove reports whether a payment may go from status from to status to.
// Declined, failed, voided and refunded are final.
func CanMove(from, to string) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// Errors a Provider returns; the service maps them to client answers.
var (
	// ErrDeclined means the card network refused the charge.
	ErrDeclined = fault.New(fault.PaymentRequired, "payment_declined", "the payment was declined")
	// ErrProvider means the provider refused or failed definitely; nothing was charged.
	ErrProvider = fault.New(fault.BadGateway, "payment_provider_error", "the payment provider failed; nothing was charged")
	// ErrUnknown means the provider did not answer (timeout, transport
	// failure): the call may or may not have taken effect. The payment
	// stays where it was and a retry resumes it; nothing is compensated.
	ErrUnknown = &fault.Error{Kind: fault.Unavailable, Code: "payment_provider_timeout",
		Message: "the payment provider did not answer; retry shortly to complete the payment", RetryAfter: time.Second}
	// ErrCancelled means the order was cancelled while it was being paid
	// for: the payment was voided (or refunded) instead, nothing is charged.
	ErrCancelled = fault.New(fault.Conflict, "payment_cancelled", "the order was cancelled while it was being paid for")
	// ErrCaptured is what Void answers for a payment that was captured
	// (or refunded): the money moved, so the order is not abandoned.
	ErrCaptured = fault.New(fault.Conflict, "payment_captured", "the payment was captured")
	// ErrOrderClosed is what an OrderNotifier answers to a capture of an
	// order that was cancelled: the payment service then refunds it.
	ErrOrderClosed = fault.New(fault.Conflict, "order_closed", "the order is cancelled")
)

// Provider is a payment network adapter (the simulated one, or Stripe).
// Every call is idempotent for the same key, so retries never charge twice.
type Provider interface {
	// Name identifies the provider in stored payments.
	Name() string
	// Authorize holds amount on the card behind token. Errors: ErrDeclined,
	// ErrProvider; any other error (a timeout) leaves the outcome unknown.
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
	// Open records a pending payment for a new order, in the transaction
	// of ctx (the one that places the order), and returns it for
	// Charge.Opened. Errors: fault.Conflict (the order has a payment).
	Open(ctx context.Context, c Charge) (Payment, error)
	// Pay authorizes and captures a charge for an order. It is idempotent per
	// order: a second call returns the first payment. A capture the
	// provider made is recorded even when Charge.Captured fails. Errors:
	// ErrDeclined, ErrProvider.
	Pay(ctx context.Context, c Charge) (Payment, error)
	// Cancel voids or refunds the order's payment, whichever applies; it is
	// idempotent and succeeds when the order has no payment.
	Cancel(ctx context.Context, orderID string) (Payment, error)
	// Void releases the order's payment unless it was captured: unlike
	// Cancel it never refunds, so a caller that only gives up on an unpaid
	// order cannot undo a charge that raced it. It succeeds when the order
	// has no payment. Errors: ErrCaptured (captured, refunding or
	// refunded), ErrProvider, ErrUnknown.
	Void(ctx context.Context, orderID string) (Payment, error)
	// ByOrder returns an order's payment. Errors: fault.NotFound.
	ByOrder(ctx context.Context, orderID string) (Payment, error)
	// Stalled returns up to limit payments in status whose last change is
	// older than before, oldest first: work a crash or a lost answer left
	// half done, for a background job to finish.
	Stalled(ctx context.Context, status string, before time.Time, limit int) ([]Payment, error)
	// HandleWebhook verifies and applies a provider event. It reports whether
	// the event was a duplicate. Errors: fault.Invalid (bad signature, stale
	// timestamp, malformed event), fault.NotFound (unknown payment).
	HandleWebhook(ctx context.Context, signature string, body []byte) (duplicate bool, err error)
}

// Event topics the payment module publishes, one per status a payment
// reaches; refunding, an internal step, has none.
const (
	TopicAuthorized = "payment.authorized"
	TopicCaptured   = "payment.captured"
	TopicVoided     = "payment.voided"
	TopicRefunded   = "payment.refunded"
	TopicDeclined   = "payment.declined"
	TopicFailed     = "payment.failed"
)

// topics maps a status to the event that announces it.
var topics = map[string]string{
	StatusAuthorized: TopicAuthorized, StatusCaptured: TopicCaptured, StatusVoided: TopicVoided,
	StatusRefunded: TopicRefunded, StatusDeclined: TopicDeclined, StatusFailed: TopicFailed,
}

// EventPayload is the body of every payment event.
type EventPayload struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	Status      string `json:"status"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// Events records domain events atomically with the transaction in ctx
// (the transactional outbox), so a status change and its event are both
// stored or neither is.
type Events interface {
	Add(ctx context.Context, topic, key string, payload any) error
}

// OrderNotifier is told when a webhook changes a payment, so the order that
// owns it can follow. It runs inside the webhook's transaction.
type OrderNotifier interface {
	// PaymentChanged lets the order follow status. It returns
	// ErrOrderClosed, having changed nothing, when status is captured but
	// the order was cancelled: the payment service then refunds it.
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
	// SetStatus moves a payment whose status is one of from to status, with
	// providerRef; it reports false, changing nothing, when the payment is in
	// none of them (or does not exist). Errors: fault.Invalid (unstorable
	// text).
	SetStatus(ctx context.Context, id string, from []string, status, providerRef string, now time.Time) (bool, error)
	// Stalled returns up to limit payments in status whose updated_at is
	// before before, oldest first. Errors: fault.Invalid (unstorable
	// status text).
	Stalled(ctx context.Context, status string, before time.Time, limit int) ([]Payment, error)
	// RecordEvent stores a webhook event ID; it reports false when it was
	// already stored. Errors: fault.Invalid (unstorable text).
	RecordEvent(ctx context.Context, eventID, eventType string, now time.Time) (bool, error)
}
