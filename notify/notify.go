// Package notify turns domain events into messages for customers (order
// confirmations and cancellations). It consumes events at least once and
// handles each exactly once by recording the event ID with its effect.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/fault"
)

// OrderEvent is the part of an order event notify reads.
type OrderEvent struct {
	OrderID    string `json:"order_id"`
	UserID     string `json:"user_id"`
	Status     string `json:"status"`
	TotalCents int64  `json:"total_cents"`
	Currency   string `json:"currency"`
}

// Message is one notification to a user.
type Message struct {
	ID        string
	UserID    string
	Kind      string
	Subject   string
	Body      string
	CreatedAt time.Time
}

// Store persists sent messages and handled event IDs.
type Store interface {
	// InTx runs fn in one transaction.
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// MarkHandled records that consumer handled eventID; false when it already had.
	MarkHandled(ctx context.Context, consumer, eventID string, now time.Time) (bool, error)
	// InsertMessage stores a message.
	InsertMessage(ctx context.Context, m Message) error
	// Unmark forgets that consumer handled eventID, so that a redelivery
	// handles it again.
	Unmark(ctx context.Context, consumer, eventID string) error
	// DeleteMessage removes a message that could not be sent.
	DeleteMessage(ctx context.Context, id string) error
	// Messages lists a user's messages, oldest first.
	Messages(ctx context.Context, userID string) ([]Message, error)
}

// Sender delivers a message (the log in the embedded mode; SMTP or a
// provider later).
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// LogSender "sends" messages to the log, for development.
type LogSender struct{ Logger *slog.Logger }

// Send implements Sender.
func (s LogSender) Send(ctx context.Context, m Message) error {
	s.Logger.InfoContext(ctx, "notification", "message_id", m.ID, "user_id", m.UserID, "kind", m.Kind, "subject", m.Subject)
	return nil
}

// Notifier handles order events.
type Notifier struct {
	store  Store
	sender Sender
	now    func() time.Time
}

// NewNotifier returns the notify service.
func NewNotifier(store Store, sender Sender, now func() time.Time) *Notifier {
	return &Notifier{store: store, sender: sender, now: now}
}

const consumer = "notify"

// HandleOrderEvent records and sends the message for an order event, once per event ID.
func (n *Notifier) HandleOrderEvent(ctx context.Context, eventID, topic string, payload []byte) error {
	var ev OrderEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return fault.Wrap(err, "decode order event")
	}
	m := Message{ID: uuid.Must(uuid.NewV7()).String(), UserID: ev.UserID, Kind: topic, CreatedAt: n.now().UTC()}
	amount := fmt.Sprintf("%d.%02d %s", ev.TotalCents/100, ev.TotalCents%100, ev.Currency)
	switch topic {
	case "order.placed":
		m.Subject, m.Body = "We received your order", "Order "+ev.OrderID+" for "+amount+" is placed."
	case "order.cancelled":
		m.Subject, m.Body = "Your order was cancelled", "Order "+ev.OrderID+" is cancelled; any payment is returned."
	default:
		return nil
	}
	sent := false
	err := n.store.InTx(ctx, func(ctx context.Context) error {
		fresh, err := n.store.MarkHandled(ctx, consumer, eventID, m.CreatedAt)
		if err != nil || !fresh {
			return err
		}
		sent = true
		return n.store.InsertMessage(ctx, m)
	})
	if err != nil || !sent {
		return err
	}
	if err := n.sender.Send(ctx, m); err != nil {
		// Undo the record, so that the redelivery the error causes sends
		// the message instead of finding the event handled. Sending stays
		// at most once only across a crash between record and send.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		undo := n.store.InTx(uctx, func(ctx context.Context) error {
			if err := n.store.Unmark(ctx, consumer, eventID); err != nil {
				return err
			}
			return n.store.DeleteMessage(ctx, m.ID)
		})
		return errors.Join(fmt.Errorf("send message: %w", err), undo)
	}
	return nil
}

// Messages lists a user's messages.
func (n *Notifier) Messages(ctx context.Context, userID string) ([]Message, error) {
	return n.store.Messages(ctx, userID)
}
