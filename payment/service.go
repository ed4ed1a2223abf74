package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

// Payments implements Service.
type Payments struct {
	store    Store
	provider Provider
	orders   OrderNotifier
	events   Events
	secret   []byte
	timeout  time.Duration
	now      func() time.Time
}

var _ Service = (*Payments)(nil)

// NewPayments returns the payment service. events records the payment.*
// events with each status change; secret verifies webhooks; timeout bounds
// every provider call.
func NewPayments(store Store, provider Provider, events Events, secret []byte, timeout time.Duration, now func() time.Time) *Payments {
	return &Payments{store: store, provider: provider, events: events, secret: secret, timeout: timeout, now: now}
}

// SetOrderNotifier sets who hears about webhook changes (wired after the
// order module exists, since the two depend on each other).
func (p *Payments) SetOrderNotifier(n OrderNotifier) { p.orders = n }

// call runs one provider call under the payment timeout. An answer the
// provider gave (a decline, an explicit failure) comes back as is; anything
// else (a timeout, a transport failure) says nothing about whether the call
// took effect, and becomes ErrUnknown: the caller keeps the payment where it
// was, and a retry repeats the call, which the provider treats idempotently.
func (p *Payments) call(ctx context.Context, guard func(context.Context) error, fn func(ctx context.Context) error) error {
	if guard != nil {
		if err := guard(ctx); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	err := fn(ctx)
	if err == nil || fault.Is(err, fault.PaymentRequired) || fault.Is(err, fault.BadGateway) {
		return err
	}
	e := *ErrUnknown
	e.Err = err
	return &e
}

// move compare-and-sets the payment's status along an allowed transition.
// When another writer moved it first it reports false, with pay reloaded.
//
// then, when set, runs in the same transaction once the move is recorded.
func (p *Payments) move(ctx context.Context, pay *Payment, to, ref string, then func(context.Context) error) (bool, error) {
	if !CanMove(pay.Status, to) {
		return false, fmt.Errorf("payment %s cannot go from %s to %s", pay.ID, pay.Status, to)
	}
	now := p.now().UTC()
	var ok bool
	err := p.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		ok, err = p.store.SetStatus(ctx, pay.ID, []string{pay.Status}, to, ref, now)
		if err != nil || !ok {
			return err
		}
		if pay.Status == StatusRefunding && to == StatusCaptured {
			// A refused refund going back: the payment was captured
			// once, and payment.captured already said so.
			return nil
		}
		if err := p.announce(ctx, *pay, to); err != nil || then == nil {
			return err
		}
		return then(ctx)
	})
	if err != nil {
		return false, err
	}
	if ok {
		pay.Status, pay.ProviderRef, pay.UpdatedAt = to, ref, now
		return true, nil
	}
	cur, err := p.store.ByID(ctx, pay.ID)
	if err != nil {
		return false, err
	}
	*pay = cur
	return false, nil
}

// announce records the event of pay reaching status, in the transaction of
// ctx: the status change and its event commit together.
func (p *Payments) announce(ctx context.Context, pay Payment, status string) error {
	topic, ok := topics[status]
	if !ok || p.events == nil {
		return nil
	}
	return p.events.Add(ctx, topic, pay.OrderID, EventPayload{PaymentID: pay.ID, OrderID: pay.OrderID,
		Status: status, AmountCents: pay.AmountCents, Currency: pay.Currency})
}

// Open implements Service.
func (p *Payments) Open(ctx context.Context, c Charge) (Payment, error) {
	now := p.now().UTC()
	pay := Payment{ID: uuid.Must(uuid.NewV7()).String(), OrderID: c.OrderID, UserID: c.UserID,
		AmountCents: c.AmountCents, Currency: c.Currency, Status: StatusPending, Provider: p.provider.Name(),
		CreatedAt: now, UpdatedAt: now}
	if err := p.store.Insert(ctx, pay); err != nil {
		return Payment{}, err
	}
	return pay, nil
}

// Pay implements Service. It walks the payment forward from whatever status
// it finds, so a retry resumes where an earlier attempt stopped; every step
// is a compare-and-set, and a step that loses (a cancel, a webhook, another
// attempt got there first) re-reads the payment and goes on from there.
func (p *Payments) Pay(ctx context.Context, c Charge) (Payment, error) {
	var pay Payment
	var err error
	if c.Opened != nil {
		pay = *c.Opened
	} else if pay, err = p.store.ByOrder(ctx, c.OrderID); fault.Is(err, fault.NotFound) {
		// An order placed without its payment (before orders opened
		// theirs in the same transaction) gets one now.
		if pay, err = p.Open(ctx, c); fault.Is(err, fault.Conflict) {
			pay, err = p.store.ByOrder(ctx, c.OrderID) // another attempt opened it first
		}
	}
	if err != nil {
		return Payment{}, err
	}
	for {
		switch pay.Status {
		case StatusCaptured:
			return pay, nil
		case StatusDeclined:
			return pay, ErrDeclined
		case StatusFailed:
			return pay, ErrProvider
		case StatusVoided, StatusRefunding, StatusRefunded:
			return pay, ErrCancelled
		case StatusPending:
			// The payment ID is the provider's idempotency key: a retry
			// after a crash or a timeout gets the same authorization,
			// never a second one.
			var ref string
			err := p.call(ctx, c.Guard, func(ctx context.Context) error {
				var err error
				ref, err = p.provider.Authorize(ctx, pay.ID, pay.AmountCents, pay.Currency, c.Token)
				return err
			})
			if err != nil && !fault.Is(err, fault.PaymentRequired) && !fault.Is(err, fault.BadGateway) {
				return pay, err // unknown outcome, or the guard stopped us: stay pending
			}
			if err != nil {
				to := StatusFailed
				if fault.Is(err, fault.PaymentRequired) {
					to = StatusDeclined
				}
				ok, serr := p.move(ctx, &pay, to, "", nil)
				if serr != nil {
					return pay, serr
				}
				if ok {
					return pay, err
				}
				continue
			}
			ok, err := p.move(ctx, &pay, StatusAuthorized, ref, nil)
			if err != nil {
				return pay, err
			}
			if !ok && (pay.Status == StatusVoided || pay.Status == StatusFailed) {
				// Cancelled while the provider was authorizing: give the
				// hold back. Should the void fail the hold lapses on its
				// own, and nothing is ever captured on it.
				_ = p.call(ctx, nil, func(ctx context.Context) error { return p.provider.Void(ctx, ref) })
				// Keep the reference on record, for reconciliation.
				if ok, err := p.store.SetStatus(ctx, pay.ID, []string{pay.Status}, pay.Status, ref, p.now().UTC()); err != nil {
					return pay, err
				} else if ok {
					pay.ProviderRef = ref
				}
				return pay, ErrCancelled
			}
		case StatusAuthorized:
			err := p.call(ctx, c.Guard, func(ctx context.Context) error { return p.provider.Capture(ctx, pay.ProviderRef) })
			if err != nil && !fault.Is(err, fault.BadGateway) {
				// Unknown: the capture may have happened. The payment
				// stays authorized and a retry captures again (a no-op
				// at the provider if it did happen).
				return pay, err
			}
			to, then := StatusCaptured, c.Captured
			if err != nil {
				// A definite refusal: release the hold and fail.
				_ = p.call(ctx, nil, func(ctx context.Context) error { return p.provider.Void(ctx, pay.ProviderRef) })
				to, then = StatusFailed, nil
			}
			ok, serr := p.move(ctx, &pay, to, pay.ProviderRef, then)
			if serr != nil && then != nil {
				// The caller's step failed, and with it the record of a
				// capture the provider made: record the capture alone,
				// so that a cancel refunds it and no job has to find it,
				// and the caller, finding it captured, does its part in
				// a transaction of its own.
				ok, serr = p.move(ctx, &pay, to, pay.ProviderRef, nil)
			}
			if serr != nil {
				return pay, serr
			}
			if ok && err != nil {
				return pay, ErrProvider
			}
		default:
			return pay, fmt.Errorf("payment %s has unknown status %q", pay.ID, pay.Status)
		}
	}
}

// Cancel implements Service. Of concurrent cancels exactly one moves a
// captured payment to refunding and asks the provider for the refund; the
// others wait for its outcome instead of refunding again.
func (p *Payments) Cancel(ctx context.Context, orderID string) (Payment, error) {
	return p.cancel(ctx, orderID, true)
}

// Void implements Service: Cancel without the refund. A capture that wins
// the race at the provider makes the provider refuse the void, so the
// payment is never both captured and voided.
func (p *Payments) Void(ctx context.Context, orderID string) (Payment, error) {
	return p.cancel(ctx, orderID, false)
}

// cancel voids the order's payment, or with refund also refunds a captured one.
func (p *Payments) cancel(ctx context.Context, orderID string, refund bool) (Payment, error) {
	pay, err := p.store.ByOrder(ctx, orderID)
	if fault.Is(err, fault.NotFound) {
		return Payment{}, nil
	}
	if err != nil {
		return Payment{}, err
	}
	waitUntil := p.now().Add(p.timeout + time.Second)
	for {
		if !refund && (pay.Status == StatusCaptured || pay.Status == StatusRefunding || pay.Status == StatusRefunded) {
			return pay, ErrCaptured
		}
		switch pay.Status {
		case StatusPending:
			// The authorization never finished: mark it voided so a late
			// answer cannot turn into a charge (Pay voids what it gets).
			if ok, err := p.move(ctx, &pay, StatusVoided, pay.ProviderRef, nil); err != nil || ok {
				return pay, err
			}
		case StatusAuthorized:
			if err := p.call(ctx, nil, func(ctx context.Context) error { return p.provider.Void(ctx, pay.ProviderRef) }); err != nil {
				return pay, err
			}
			if ok, err := p.move(ctx, &pay, StatusVoided, pay.ProviderRef, nil); err != nil || ok {
				return pay, err
			}
		case StatusCaptured:
			ok, err := p.move(ctx, &pay, StatusRefunding, pay.ProviderRef, nil)
			if err != nil {
				return pay, err
			}
			if ok {
				return p.refund(ctx, pay)
			}
		case StatusRefunding:
			if p.now().Before(waitUntil) {
				// Another cancel is refunding: wait for its outcome.
				time.Sleep(20 * time.Millisecond)
				if pay, err = p.store.ByOrder(ctx, orderID); err != nil {
					return pay, err
				}
				continue
			}
			// Its refund never finished (it crashed): refunds are
			// idempotent at the provider, so finish it here.
			return p.refund(ctx, pay)
		default:
			return pay, nil
		}
	}
}

// refund asks the provider to refund a payment this caller moved to
// refunding. A definite refusal moves it back to captured so a later cancel
// can try again; an unknown outcome leaves it refunding for a retry.
func (p *Payments) refund(ctx context.Context, pay Payment) (Payment, error) {
	err := p.call(ctx, nil, func(ctx context.Context) error { return p.provider.Refund(ctx, pay.ProviderRef) })
	if err != nil {
		if fault.Is(err, fault.BadGateway) {
			_, _ = p.move(ctx, &pay, StatusCaptured, pay.ProviderRef, nil)
		}
		return pay, err
	}
	if _, err := p.move(ctx, &pay, StatusRefunded, pay.ProviderRef, nil); err != nil {
		return pay, err
	}
	return pay, nil
}

// ByOrder implements Service.
func (p *Payments) ByOrder(ctx context.Context, orderID string) (Payment, error) {
	return p.store.ByOrder(ctx, orderID)
}

// Stalled implements Service.
func (p *Payments) Stalled(ctx context.Context, status string, before time.Time, limit int) ([]Payment, error) {
	return p.store.Stalled(ctx, status, before, limit)
}

// HandleWebhook implements Service.
func (p *Payments) HandleWebhook(ctx context.Context, signature string, body []byte) (bool, error) {
	now := p.now()
	if err := VerifySignature(p.secret, signature, body, now); err != nil {
		return false, err
	}
	var ev Event
	if err := web.DecodeBytes(body, &ev); err != nil {
		return false, err
	}
	var v fault.Validator
	v.Check(ev.ID != "" && len(ev.ID) <= 255, "id", "is required: up to 255 characters")
	_, known := eventStatus[ev.Type]
	v.Check(known, "type", "must be payment.captured, payment.voided, payment.refunded or payment.failed")
	v.Check(ev.Data.PaymentID != "" && len(ev.Data.PaymentID) <= 255, "data.payment_id", "is required")
	if err := v.Err(); err != nil {
		return false, err
	}
	duplicate := false
	orderID := "" // set when a captured payment's order is cancelled: refund it
	err := p.store.InTx(ctx, func(ctx context.Context) error {
		pay, err := p.store.ByID(ctx, ev.Data.PaymentID)
		if err != nil {
			return err
		}
		fresh, err := p.store.RecordEvent(ctx, ev.ID, ev.Type, now.UTC())
		if err != nil {
			return err
		}
		if !fresh {
			duplicate = true
			return nil
		}
		status := eventStatus[ev.Type]
		if pay.Status == status || !CanMove(pay.Status, status) {
			// Already there, or an event that cannot follow the payment's
			// status (a late capture of a refunded payment): recorded as
			// seen and ignored, never applied backwards.
			return nil
		}
		moved, err := p.store.SetStatus(ctx, pay.ID, []string{pay.Status}, status, pay.ProviderRef, now.UTC())
		if err != nil || !moved {
			return err // the payment is locked: the compare-and-set applies
		}
		if err := p.announce(ctx, pay, status); err != nil {
			return err
		}
		if p.orders == nil {
			return nil
		}
		err = p.orders.PaymentChanged(ctx, pay.OrderID, status)
		if errors.Is(err, ErrOrderClosed) {
			// Captured for an order that was cancelled: keep the capture
			// on record and give the money back once it is committed.
			orderID, err = pay.OrderID, nil
		}
		return err
	})
	if err == nil && orderID != "" {
		_, err = p.Cancel(context.WithoutCancel(ctx), orderID)
	}
	return duplicate, err
}
