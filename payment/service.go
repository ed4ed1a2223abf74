package payment

import (
	"context"
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
	secret   []byte
	timeout  time.Duration
	now      func() time.Time
}

var _ Service = (*Payments)(nil)

// NewPayments returns the payment service. secret verifies webhooks; timeout
// bounds every provider call.
func NewPayments(store Store, provider Provider, secret []byte, timeout time.Duration, now func() time.Time) *Payments {
	return &Payments{store: store, provider: provider, secret: secret, timeout: timeout, now: now}
}

// SetOrderNotifier sets who hears about webhook changes (wired after the
// order module exists, since the two depend on each other).
func (p *Payments) SetOrderNotifier(n OrderNotifier) { p.orders = n }

func (p *Payments) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	err := fn(ctx)
	if err != nil && ctx.Err() != nil && !fault.Is(err, fault.PaymentRequired) {
		return &fault.Error{Kind: fault.BadGateway, Code: "payment_provider_error", Message: "the payment provider timed out; nothing was charged", Err: err}
	}
	return err
}

// Pay implements Service.
func (p *Payments) Pay(ctx context.Context, c Charge) (Payment, error) {
	pay, err := p.store.ByOrder(ctx, c.OrderID)
	switch {
	case err == nil:
		switch pay.Status {
		case StatusCaptured:
			return pay, nil
		case StatusDeclined:
			return pay, ErrDeclined
		case StatusFailed, StatusVoided, StatusRefunded:
			return pay, ErrProvider
		}
	case fault.Is(err, fault.NotFound):
		now := p.now().UTC()
		pay = Payment{ID: uuid.Must(uuid.NewV7()).String(), OrderID: c.OrderID, UserID: c.UserID,
			AmountCents: c.AmountCents, Currency: c.Currency, Status: StatusPending, Provider: p.provider.Name(),
			CreatedAt: now, UpdatedAt: now}
		if err := p.store.Insert(ctx, pay); err != nil {
			return Payment{}, err
		}
	default:
		return Payment{}, err
	}
	if pay.Status == StatusPending {
		// The payment ID is the provider's idempotency key: a retry after a
		// crash gets the same authorization, never a second one.
		var ref string
		err := p.call(ctx, func(ctx context.Context) error {
			var err error
			ref, err = p.provider.Authorize(ctx, pay.ID, pay.AmountCents, pay.Currency, c.Token)
			return err
		})
		if err != nil {
			status := StatusFailed
			if fault.Is(err, fault.PaymentRequired) {
				status = StatusDeclined
			}
			if serr := p.setStatus(ctx, &pay, status, ""); serr != nil {
				return pay, serr
			}
			return pay, err
		}
		if err := p.setStatus(ctx, &pay, StatusAuthorized, ref); err != nil {
			return pay, err
		}
	}
	if err := p.call(ctx, func(ctx context.Context) error { return p.provider.Capture(ctx, pay.ProviderRef) }); err != nil {
		_ = p.call(ctx, func(ctx context.Context) error { return p.provider.Void(ctx, pay.ProviderRef) })
		_ = p.setStatus(ctx, &pay, StatusFailed, pay.ProviderRef)
		return pay, ErrProvider
	}
	if err := p.setStatus(ctx, &pay, StatusCaptured, pay.ProviderRef); err != nil {
		return pay, err
	}
	return pay, nil
}

func (p *Payments) setStatus(ctx context.Context, pay *Payment, status, ref string) error {
	now := p.now().UTC()
	if err := p.store.SetStatus(ctx, pay.ID, status, ref, now); err != nil {
		return err
	}
	pay.Status, pay.ProviderRef, pay.UpdatedAt = status, ref, now
	return nil
}

// Cancel implements Service.
func (p *Payments) Cancel(ctx context.Context, orderID string) (Payment, error) {
	pay, err := p.store.ByOrder(ctx, orderID)
	if fault.Is(err, fault.NotFound) {
		return Payment{}, nil
	}
	if err != nil {
		return Payment{}, err
	}
	// setStatus updates pay; it runs before the return statement so the
	// caller gets the new status (the order of evaluating "return pay,
	// p.setStatus(&pay)" is unspecified in Go).
	switch pay.Status {
	case StatusAuthorized:
		if err := p.call(ctx, func(ctx context.Context) error { return p.provider.Void(ctx, pay.ProviderRef) }); err != nil {
			return pay, err
		}
		err = p.setStatus(ctx, &pay, StatusVoided, pay.ProviderRef)
		return pay, err
	case StatusCaptured:
		if err := p.call(ctx, func(ctx context.Context) error { return p.provider.Refund(ctx, pay.ProviderRef) }); err != nil {
			return pay, err
		}
		err = p.setStatus(ctx, &pay, StatusRefunded, pay.ProviderRef)
		return pay, err
	case StatusPending:
		// The authorization never finished: mark it failed so a late
		// answer cannot turn into a charge.
		err = p.setStatus(ctx, &pay, StatusFailed, pay.ProviderRef)
		return pay, err
	default:
		return pay, nil
	}
}

// ByOrder implements Service.
func (p *Payments) ByOrder(ctx context.Context, orderID string) (Payment, error) {
	return p.store.ByOrder(ctx, orderID)
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
		if pay.Status == status {
			return nil
		}
		if err := p.store.SetStatus(ctx, pay.ID, status, pay.ProviderRef, now.UTC()); err != nil {
			return err
		}
		if p.orders != nil {
			return p.orders.PaymentChanged(ctx, pay.OrderID, status)
		}
		return nil
	})
	return duplicate, err
}
