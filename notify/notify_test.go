package notify_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/notify"
	notifystore "github.com/millionshop/million/notify/store"
	"github.com/millionshop/million/sqldb"
)

// recordingSender is an in-process Sender that keeps what it sent.
type recordingSender struct {
	mu   sync.Mutex
	sent []notify.Message
}

func (s *recordingSender) Send(_ context.Context, m notify.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m)
	return nil
}

func (s *recordingSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

func newNotifier(t *testing.T) (*notify.Notifier, *recordingSender) {
	t.Helper()
	db, err := sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background(), []sqldb.Migrations{notifystore.Migrations()}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	sender := &recordingSender{}
	return notify.NewNotifier(notifystore.New(db), sender, time.Now), sender
}

func orderPayload(t *testing.T, orderID, userID string) []byte {
	t.Helper()
	b, err := json.Marshal(notify.OrderEvent{OrderID: orderID, UserID: userID, Status: "pending", TotalCents: 12345, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHandleOrderEventOncePerEvent proves at-least-once delivery turns into
// exactly one message: the same event ID delivered again, even concurrently,
// records and sends nothing more, while a different event does.
func TestHandleOrderEventOncePerEvent(t *testing.T) {
	t.Parallel()
	n, sender := newNotifier(t)
	ctx := context.Background()
	payload := orderPayload(t, "o-1", "u-1")

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = n.HandleOrderEvent(ctx, "evt-1", "order.placed", payload) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	msgs, err := n.Messages(ctx, "u-1")
	if err != nil {
		t.Fatalf("messages: %v", err)
	}
	if len(msgs) != 1 || sender.count() != 1 {
		t.Fatalf("%d messages stored and %d sent for one event, want 1 and 1", len(msgs), sender.count())
	}
	m := msgs[0]
	if m.Kind != "order.placed" || m.UserID != "u-1" || !strings.Contains(m.Body, "o-1") || !strings.Contains(m.Body, "123.45 USD") {
		t.Fatalf("message = %+v, want an order.placed message about o-1 for 123.45 USD", m)
	}

	if err := n.HandleOrderEvent(ctx, "evt-2", "order.cancelled", payload); err != nil {
		t.Fatalf("cancelled event: %v", err)
	}
	if msgs, _ := n.Messages(ctx, "u-1"); len(msgs) != 2 || msgs[1].Kind != "order.cancelled" {
		t.Fatalf("messages = %+v, want the cancellation added", msgs)
	}
}

// TestHandleOrderEventIgnoresOtherTopics proves topics notify has no message
// for are consumed without effect, and a malformed payload is an error (so
// the outbox retries it) rather than a message to nobody.
func TestHandleOrderEventIgnoresOtherTopics(t *testing.T) {
	t.Parallel()
	n, sender := newNotifier(t)
	ctx := context.Background()
	if err := n.HandleOrderEvent(ctx, "evt-paid", "order.paid", orderPayload(t, "o-2", "u-2")); err != nil {
		t.Fatalf("order.paid: %v", err)
	}
	if err := n.HandleOrderEvent(ctx, "evt-bad", "order.placed", []byte(`{"order_id":`)); err == nil {
		t.Fatal("malformed payload: err = nil, want an error")
	}
	if msgs, _ := n.Messages(ctx, "u-2"); len(msgs) != 0 || sender.count() != 0 {
		t.Fatalf("%d messages stored, %d sent; want none", len(msgs), sender.count())
	}
}
