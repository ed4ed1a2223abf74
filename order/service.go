package order

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/payment"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/web"
)

// Event topics the order module publishes.
const (
	TopicPlaced    = "order.placed"
	TopicPaid      = "order.paid"
	TopicCancelled = "order.cancelled"
)

// EventPayload is the body of every order event.
type EventPayload struct {
	OrderID    string `json:"order_id"`
	UserID     string `json:"user_id"`
	Status     string `json:"status"`
	TotalCents int64  `json:"total_cents"`
	Currency   string `json:"currency"`
	Items      []Item `json:"items"`
}

// Config tunes checkout.
type Config struct {
	Currency string
	// KeyLease is how long a running checkout holds its key before another
	// may take over; it is renewed before every provider call, so it must
	// comfortably exceed the longest single payment step.
	KeyLease time.Duration
	KeyWait  time.Duration // how long a duplicate waits for the first to finish before 409
	// CaptureAfter is how long a payment may stay authorized before the
	// capture job finishes its checkout; 0 means DefaultCaptureAfter.
	CaptureAfter time.Duration
	// AbandonAfter is how old a pending order nobody is paying for gets
	// before the reaper cancels it and returns its stock; 0 means
	// DefaultAbandonAfter.
	AbandonAfter time.Duration
	// KeyRetention is how long finished idempotency keys are kept; 0
	// means DefaultKeyRetention, and it is never below MinKeyRetention.
	KeyRetention time.Duration
}

// DefaultKeyLease is the key lease when Config leaves it zero: well above
// three provider calls (authorize, capture, void) at a 10 s timeout each.
const DefaultKeyLease = 45 * time.Second

// errLeaseLost stops an attempt whose key was taken over by another (its
// lease ran out while it worked): it must write nothing more, and its
// caller gets the winner's outcome instead.
var errLeaseLost = errors.New("idempotency key lease lost to another attempt")

// Orders implements Service.
type Orders struct {
	store    Store
	stock    Stock
	carts    Carts
	payments Payments
	events   Events
	cfg      Config
	logger   *slog.Logger
	now      func() time.Time
	jobs     jobState
}

var _ Service = (*Orders)(nil)

// NewOrders returns the order service.
func NewOrders(store Store, stock Stock, carts Carts, payments Payments, events Events, cfg Config, logger *slog.Logger, now func() time.Time) *Orders {
	if cfg.KeyLease <= 0 {
		cfg.KeyLease = DefaultKeyLease
	}
	if cfg.KeyWait <= 0 {
		cfg.KeyWait = 10 * time.Second
	}
	if cfg.CaptureAfter <= 0 {
		cfg.CaptureAfter = DefaultCaptureAfter
	}
	if cfg.AbandonAfter <= 0 {
		cfg.AbandonAfter = DefaultAbandonAfter
	}
	if cfg.KeyRetention <= 0 {
		cfg.KeyRetention = DefaultKeyRetention
	}
	cfg.KeyRetention = max(cfg.KeyRetention, MinKeyRetention)
	return &Orders{store: store, stock: stock, carts: carts, payments: payments, events: events, cfg: cfg, logger: logger, now: now}
}

func validKey(key string) bool {
	if len(key) < 1 || len(key) > 255 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

func requestHash(req CheckoutRequest) string {
	b, _ := json.Marshal(req)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Checkout implements Service.
func (s *Orders) Checkout(ctx context.Context, userID, key string, req CheckoutRequest) (Order, bool, error) {
	var v fault.Validator
	v.Check(validKey(key), "Idempotency-Key", "header is required: 1 to 255 visible ASCII characters")
	v.Check(req.Payment.Method == "card", "payment.method", "must be card")
	v.Check(len(req.Payment.Token) >= 1 && len(req.Payment.Token) <= 255, "payment.token", "is required: 1 to 255 characters")
	if err := v.Err(); err != nil {
		return Order{}, false, err
	}
	hash := requestHash(req)
	for attempt := 0; ; attempt++ {
		rec, placed, claimed, err := s.claim(ctx, userID, key, hash)
		if fault.HasCode(err, "idempotency_key_in_use") && attempt < 100 {
			// The key was given back between our insert, which found it
			// taken, and our read of it: start over.
			continue
		}
		if err != nil {
			return Order{}, false, err
		}
		if claimed {
			// execute binds the order it places to rec, so finish knows
			// whether a failure left an order behind.
			o, err := s.execute(ctx, &rec, placed, req)
			ferr := s.finish(ctx, rec, o, err)
			if (errors.Is(err, errLeaseLost) || errors.Is(ferr, errLeaseLost)) && attempt < 100 {
				// Another attempt took the key over: answer with its outcome.
				continue
			}
			if ferr != nil {
				return Order{}, false, ferr
			}
			return o, false, err
		}
		if rec.State != KeyDone {
			var released bool
			if rec, released, err = s.waitFor(ctx, userID, key); err != nil {
				return Order{}, false, err
			}
			if released {
				continue // the first attempt gave the key back: run this one
			}
		}
		o, err := replay(rec)
		return o, true, err
	}
}

// placement is an order a claim placed, with the payment opened for it.
type placement struct {
	order   Order
	payment *payment.Payment
}

// claim takes the key for this request, or returns the record of the
// request that holds it. A new key, the common case, is taken in the
// transaction that places its order (placed): one commit instead of two,
// and a cart that cannot be placed (empty, short of stock) leaves no key
// behind, so the client can fix it and retry with the same key.
func (s *Orders) claim(ctx context.Context, userID, key, hash string) (KeyRecord, *placement, bool, error) {
	now := s.now().UTC()
	rec := KeyRecord{UserID: userID, Key: key, RequestHash: hash, State: KeyRunning,
		LeaseUntil: now.Add(s.cfg.KeyLease), LeaseGen: 1, CreatedAt: now}
	placed, err := s.place(ctx, &rec, true)
	if !fault.HasCode(err, "idempotency_key_in_use") {
		return rec, placed, err == nil, err
	}
	// The key exists.
	claimed := false
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		existing, err := s.store.Key(ctx, userID, key)
		if fault.Is(err, fault.NotFound) {
			return inUse() // given back since our insert: start over
		}
		if err != nil {
			return err
		}
		if existing.RequestHash != hash {
			return fault.New(fault.Unprocessable, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
		}
		rec = existing
		if existing.State == KeyRunning && s.now().After(existing.LeaseUntil) {
			// The request that held the key died (crash or restart):
			// resume it from where its committed state says it got to.
			// A new generation fences off the old attempt, should it
			// still be running after all.
			rec.LeaseUntil = s.now().UTC().Add(s.cfg.KeyLease)
			rec.LeaseGen = existing.LeaseGen + 1
			ok, err := s.store.UpdateKey(ctx, rec, existing.LeaseGen)
			if err == nil && !ok {
				return inUse() // the record is locked: cannot happen, but never claim blind
			}
			claimed = err == nil
			return err
		}
		return nil
	})
	return rec, nil, claimed, err
}

// waitFor waits for the request holding the key to finish. It reports
// released when that request gave the key back without an outcome.
func (s *Orders) waitFor(ctx context.Context, userID, key string) (KeyRecord, bool, error) {
	deadline := time.NewTimer(s.cfg.KeyWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return KeyRecord{}, false, inUse()
		case <-deadline.C:
			return KeyRecord{}, false, inUse()
		case <-tick.C:
		}
		rec, err := s.store.Key(ctx, userID, key)
		if fault.Is(err, fault.NotFound) {
			return KeyRecord{}, true, nil
		}
		if err != nil {
			return KeyRecord{}, false, err
		}
		if rec.State == KeyDone {
			return rec, false, nil
		}
	}
}

func inUse() error {
	return &fault.Error{Kind: fault.Conflict, Code: "idempotency_key_in_use",
		Message: "a request with this Idempotency-Key is still being processed; retry shortly", RetryAfter: time.Second}
}

func replay(rec KeyRecord) (Order, error) {
	if rec.ErrCode != "" {
		return Order{}, &fault.Error{Kind: fault.Kind(rec.ErrKind), Code: rec.ErrCode, Message: rec.ErrMessage}
	}
	var o Order
	if err := json.Unmarshal(rec.Response, &o); err != nil {
		return Order{}, fault.Wrap(err, "decode stored checkout response")
	}
	return o, nil
}

// finish stores the outcome so a repeat gets the same answer: the order, or
// a payment refusal; a paid order's outcome may be stored already, with
// the capture. A failure before the order exists gives the key back (only
// a key taken over from an earlier version can be in that state: a new
// key that cannot be placed is rolled back with its order), so the client
// can fix the cause and retry with the same key; a provider whose answer
// is unknown ends the lease at once, so a retry resumes without waiting.
// Every write is fenced by the attempt's lease generation: one that lost
// its key writes nothing and reports errLeaseLost.
func (s *Orders) finish(ctx context.Context, rec KeyRecord, o Order, outcome error) error {
	ctx = context.WithoutCancel(ctx)
	if errors.Is(outcome, errLeaseLost) {
		return nil // the key is another attempt's now
	}
	var fe *fault.Error
	if outcome != nil && (!errors.As(outcome, &fe) || (fe.Kind != fault.PaymentRequired && fe.Kind != fault.BadGateway)) {
		if rec.OrderID == "" {
			_, err := s.store.DeleteKey(ctx, rec.UserID, rec.Key, rec.LeaseGen)
			return err
		}
		if fault.Is(outcome, fault.Unavailable) {
			// The provider's answer is unknown: the client is told to
			// retry shortly, and that retry must resume now rather than
			// wait out the lease.
			rec.LeaseUntil = s.now().UTC()
			_, err := s.store.UpdateKey(ctx, rec, rec.LeaseGen)
			return err
		}
		return nil // the order exists: leave the lease to expire so a retry resumes it
	}
	if outcome == nil {
		if rec.State == KeyDone {
			return nil // stored in the transaction that recorded the payment
		}
		_, err := s.storeOrder(ctx, rec, o)
		return err
	}
	rec.State = KeyDone
	rec.ErrKind, rec.ErrCode, rec.ErrMessage = int(fe.Kind), fe.CodeOrDefault(), fe.Message
	ok, err := s.store.UpdateKey(ctx, rec, rec.LeaseGen)
	if err == nil && !ok {
		return errLeaseLost
	}
	return err
}

// storeOrder records o as the outcome of the checkout behind rec, fenced
// by its lease generation (errLeaseLost when another attempt has the key),
// and returns the record as stored.
func (s *Orders) storeOrder(ctx context.Context, rec KeyRecord, o Order) (KeyRecord, error) {
	body, err := json.Marshal(o)
	if err != nil {
		return rec, fault.Wrap(err, "encode checkout response")
	}
	rec.State, rec.Response, rec.OrderID = KeyDone, body, o.ID
	ok, err := s.store.UpdateKey(ctx, rec, rec.LeaseGen)
	if err == nil && !ok {
		return rec, errLeaseLost
	}
	return rec, err
}

// renew extends the attempt's lease, fenced by its generation: it fails with
// errLeaseLost when another attempt took the key over.
//
// While more than half the lease is left it writes nothing: no other attempt
// can take a key over before its lease runs out, and a checkout renews
// before each provider call, so skipping the early renewals spares a commit
// each (two per checkout) without weakening the fence.
func (s *Orders) renew(ctx context.Context, rec *KeyRecord) error {
	if rec.LeaseUntil.Sub(s.now()) > s.cfg.KeyLease/2 {
		return nil
	}
	r := *rec
	r.LeaseUntil = s.now().UTC().Add(s.cfg.KeyLease)
	ok, err := s.store.UpdateKey(context.WithoutCancel(ctx), r, rec.LeaseGen)
	if err != nil {
		return err
	}
	if !ok {
		return errLeaseLost
	}
	rec.LeaseUntil = r.LeaseUntil
	return nil
}

// execute runs (or resumes) a claimed checkout: it pays for the order the
// claim placed, or places it, or resumes the one rec is bound to. Placing
// the order sets rec.OrderID, which finish relies on.
func (s *Orders) execute(ctx context.Context, rec *KeyRecord, placed *placement, req CheckoutRequest) (Order, error) {
	var err error
	switch {
	case placed != nil:
	case rec.OrderID == "":
		// A key taken over from an attempt that died before it placed
		// its order, which only an earlier version (that took the key in
		// a transaction of its own) could leave behind.
		if placed, err = s.place(ctx, rec, false); err != nil {
			return Order{}, err
		}
	default:
		o, err := s.store.OrderByID(ctx, rec.OrderID)
		if err != nil {
			return Order{}, err
		}
		placed = &placement{order: o}
	}
	if placed.order.Status != StatusPending {
		return placed.order, nil
	}
	// The order now holds stock: finish paying even if the client hangs up,
	// so its retry gets the stored outcome instead of waiting out the lease
	// of an abandoned payment. Every provider call keeps its own timeout.
	return s.pay(context.WithoutCancel(ctx), placed.order, req.Payment.Token, rec, placed.payment)
}

// place is the stock transaction: reserve, write the order and open its
// payment, take the ordered lines out of the cart, record the event and
// bind the order to the idempotency key, all or nothing. A new key (fresh)
// is inserted first, bound to the order it is about to place, so that a
// request holding the key already makes it fail before any work with
// idempotency_key_in_use; an existing, claimed one is updated at the end,
// fenced by its generation.
func (s *Orders) place(ctx context.Context, rec *KeyRecord, fresh bool) (*placement, error) {
	var o Order
	var opened payment.Payment
	orderID := uuid.Must(uuid.NewV7()).String()
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		if fresh {
			rec.OrderID = orderID
			if err := s.store.InsertKey(ctx, *rec); err != nil {
				return err
			}
		}
		lines, err := s.carts.Lines(ctx, rec.UserID)
		if err != nil {
			return err
		}
		if len(lines) == 0 {
			return fault.New(fault.Invalid, "empty_cart", "the cart is empty")
		}
		want := make([]catalog.Line, len(lines))
		for i, l := range lines {
			want[i] = catalog.Line{ProductID: l.ProductID, Quantity: l.Quantity}
		}
		reserved, err := s.stock.Reserve(ctx, want)
		if err != nil {
			return err
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		o = Order{ID: orderID, UserID: rec.UserID, Status: StatusPending,
			Currency: s.cfg.Currency, PaymentStatus: "none", CreatedAt: now, UpdatedAt: now}
		for _, r := range reserved {
			o.Items = append(o.Items, Item{ProductID: r.ProductID, SKU: r.SKU, Name: r.Name, PriceCents: r.PriceCents, Quantity: r.Quantity})
			o.TotalCents += r.PriceCents * r.Quantity
		}
		if err := s.store.InsertOrder(ctx, o); err != nil {
			return err
		}
		if opened, err = s.payments.Open(ctx, chargeOf(o, "")); err != nil {
			return err
		}
		if err := s.carts.RemoveLines(ctx, rec.UserID, lines); err != nil {
			return err
		}
		if err := s.events.Add(ctx, TopicPlaced, o.ID, payloadOf(o)); err != nil {
			return err
		}
		if fresh {
			return nil
		}
		rec.OrderID = o.ID
		ok, err := s.store.UpdateKey(ctx, *rec, rec.LeaseGen)
		if err == nil && !ok {
			return errLeaseLost // rolls the order back: the key is another attempt's
		}
		return err
	})
	if err != nil {
		rec.OrderID = ""
		return nil, err
	}
	return &placement{order: o, payment: &opened}, nil
}

// chargeOf is the charge that pays for o.
func chargeOf(o Order, token string) payment.Charge {
	return payment.Charge{OrderID: o.ID, UserID: o.UserID, AmountCents: o.TotalCents, Currency: o.Currency, Token: token}
}

func payloadOf(o Order) EventPayload {
	return EventPayload{OrderID: o.ID, UserID: o.UserID, Status: o.Status, TotalCents: o.TotalCents, Currency: o.Currency, Items: o.Items}
}

func linesOf(o Order) []catalog.Line {
	out := make([]catalog.Line, len(o.Items))
	for i, it := range o.Items {
		out[i] = catalog.Line{ProductID: it.ProductID, Quantity: it.Quantity}
	}
	return out
}

// pay charges a pending order outside the stock transaction, so a slow
// provider never holds the database; a refusal is compensated by releasing
// the stock and cancelling the order. Before every provider call the
// attempt renews its key lease, and stops if it lost it. opened is the
// payment placing the order opened, if this attempt placed it.
//
// The order is marked paid, and the checkout's outcome stored on rec, in
// the transaction that records the capture: one commit where three
// followed each other.
func (s *Orders) pay(ctx context.Context, o Order, token string, rec *KeyRecord, opened *payment.Payment) (Order, error) {
	charge := chargeOf(o, token)
	charge.Opened = opened
	if rec != nil { // a job resuming an order whose key was purged has none
		charge.Guard = func(ctx context.Context) error { return s.renew(ctx, rec) }
	}
	// What the capture's transaction did, set only once it commits.
	var paidOrder Order
	var paid bool
	var done *KeyRecord
	charge.Captured = func(ctx context.Context) error {
		po, ok, err := s.markPaid(ctx, o, payment.StatusCaptured)
		if err != nil || !ok {
			return err
		}
		var stored *KeyRecord
		if rec != nil {
			r, err := s.storeOrder(ctx, *rec, po)
			switch {
			case err == nil:
				stored = &r
			case !errors.Is(err, errLeaseLost):
				return err
			}
			// A lost lease leaves the key to the attempt that took it;
			// finish finds it lost, as it would have.
		}
		sqldb.AfterCommit(ctx, func() { paidOrder, paid, done = po, true, stored })
		return nil
	}
	pay, payErr := s.payments.Pay(ctx, charge)
	if payErr != nil {
		if errors.Is(payErr, payment.ErrCancelled) {
			// The order was cancelled while it was being paid for; the
			// payment voided what it had authorized. Nothing was charged.
			return s.store.OrderByID(ctx, o.ID)
		}
		if !fault.Is(payErr, fault.PaymentRequired) && !fault.Is(payErr, fault.BadGateway) {
			return Order{}, payErr // transient: a retry resumes
		}
		if _, err := s.compensate(ctx, o, pay.Status); err != nil {
			return Order{}, err
		}
		return Order{}, payErr
	}
	if paid {
		if done != nil {
			*rec = *done
		}
		// The order as this checkout left it, row for row what reading it
		// back would return, without the two statements that would take.
		return paidOrder, nil
	}
	// The payment was captured before this attempt (by an earlier one, or
	// by a webhook), or the order had left pending, or marking it paid
	// with the capture failed.
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		paidOrder, paid, err = s.markPaid(ctx, o, pay.Status)
		return err
	})
	if err != nil {
		return Order{}, err
	}
	if paid {
		return paidOrder, nil
	}
	cur, err := s.store.OrderByID(ctx, o.ID)
	if err != nil {
		return Order{}, err
	}
	// The order left pending while the payment ran. It may be paid already
	// (a payment.captured webhook, or another attempt of this checkout):
	// then all is well. Only a cancelled order gets its money back.
	if cur.Status == StatusCancelled || cur.Status == StatusRefunded {
		if _, err := s.payments.Cancel(ctx, o.ID); err != nil {
			return Order{}, err
		}
		return s.store.OrderByID(ctx, o.ID)
	}
	return cur, nil
}

// markPaid moves a pending order to paid and records order.paid, in the
// transaction of ctx. It reports false, changing nothing, when the order
// is no longer pending.
func (s *Orders) markPaid(ctx context.Context, o Order, paymentStatus string) (Order, bool, error) {
	now := s.now().UTC().Truncate(time.Microsecond) // as stored
	paid, err := s.store.SetStatus(ctx, o.UserID, o.ID, []string{StatusPending}, StatusPaid, paymentStatus, now)
	if err != nil || !paid {
		return o, false, err
	}
	o.Status, o.PaymentStatus, o.UpdatedAt = StatusPaid, paymentStatus, now
	return o, true, s.events.Add(ctx, TopicPaid, o.ID, payloadOf(o))
}

// compensate cancels a pending order and returns its stock.
func (s *Orders) compensate(ctx context.Context, o Order, paymentStatus string) (bool, error) {
	if paymentStatus == "" {
		paymentStatus = "none"
	}
	var done bool
	err := s.store.InTx(context.WithoutCancel(ctx), func(ctx context.Context) error {
		var err error
		done, err = s.store.SetStatus(ctx, o.UserID, o.ID, []string{StatusPending, StatusPaid}, StatusCancelled, paymentStatus, s.now().UTC())
		if err != nil || !done {
			return err
		}
		if err := s.stock.Release(ctx, linesOf(o)); err != nil {
			return err
		}
		o.Status = StatusCancelled
		return s.events.Add(ctx, TopicCancelled, o.ID, payloadOf(o))
	})
	return done, err
}

// Get implements Service.
func (s *Orders) Get(ctx context.Context, userID, orderID string) (Order, error) {
	return s.store.Order(ctx, userID, orderID)
}

type listPosition struct {
	ID string `json:"id"`
}

// List implements Service.
func (s *Orders) List(ctx context.Context, userID string, limit int, cursor string) (Page, error) {
	before := ""
	if cursor != "" {
		var pos listPosition
		if err := web.DecodeCursor(cursor, &pos); err != nil {
			return Page{}, err
		}
		if !web.ValidID(pos.ID) {
			return Page{}, fault.Fields(fault.FieldError{Field: "cursor", Message: "is not a cursor this list returned"})
		}
		before = pos.ID
	}
	orders, err := s.store.Orders(ctx, userID, before, limit+1)
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: orders}
	if len(orders) > limit {
		page.Items = orders[:limit]
		page.NextCursor = web.EncodeCursor(listPosition{ID: page.Items[limit-1].ID})
	}
	return page, nil
}

// Cancel implements Service.
func (s *Orders) Cancel(ctx context.Context, userID, orderID string) (Order, error) {
	o, err := s.store.Order(ctx, userID, orderID)
	if err != nil {
		return Order{}, err
	}
	switch o.Status {
	case StatusFulfilled:
		return Order{}, fault.New(fault.Conflict, "order_fulfilled", "a fulfilled order cannot be cancelled")
	case StatusCancelled, StatusRefunded:
		return o, nil
	}
	// Money first: if the refund fails the order stays as it was and the
	// client can retry; Cancel on the provider is idempotent.
	pay, err := s.payments.Cancel(ctx, o.ID)
	if err != nil {
		return Order{}, err
	}
	if _, err := s.compensate(ctx, o, pay.Status); err != nil {
		return Order{}, err
	}
	return s.store.Order(ctx, userID, orderID)
}

// PaymentChanged implements payment.OrderNotifier: a webhook moved a
// payment, and the order follows. It runs in the webhook's transaction.
func (s *Orders) PaymentChanged(ctx context.Context, orderID, status string) error {
	o, err := s.store.OrderByID(ctx, orderID)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	switch status {
	case payment.StatusCaptured:
		if o.Status == StatusCancelled || o.Status == StatusRefunded {
			return payment.ErrOrderClosed // the payment service refunds it
		}
		var done bool
		done, err = s.store.SetStatus(ctx, o.UserID, orderID, []string{StatusPending, StatusPaid}, StatusPaid, status, now)
		if err == nil && done && o.Status == StatusPending {
			// Paid by the webhook: announced as checkout announces it.
			o.Status, o.PaymentStatus = StatusPaid, status
			err = s.events.Add(ctx, TopicPaid, o.ID, payloadOf(o))
		}
	case payment.StatusRefunded:
		var done bool
		done, err = s.store.SetStatus(ctx, o.UserID, orderID, []string{StatusPending, StatusPaid, StatusFulfilled}, StatusRefunded, status, now)
		if err == nil && done && o.Status != StatusFulfilled {
			err = s.stock.Release(ctx, linesOf(o))
		}
	case payment.StatusVoided, payment.StatusFailed:
		var done bool
		done, err = s.store.SetStatus(ctx, o.UserID, orderID, []string{StatusPending, StatusPaid}, StatusCancelled, status, now)
		if err == nil && done {
			if err = s.stock.Release(ctx, linesOf(o)); err == nil {
				o.Status = StatusCancelled
				err = s.events.Add(ctx, TopicCancelled, o.ID, payloadOf(o))
			}
		}
	default:
		_, err = s.store.SetStatus(ctx, o.UserID, orderID, []string{o.Status}, o.Status, status, now)
	}
	return err
}
