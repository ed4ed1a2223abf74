package bus_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/millionshop/million/bus"
	"github.com/millionshop/million/outbox"
)

// TestPublishRunsEverySubscriber proves an event reaches every subscriber
// of its topic and no other, and that one failing consumer makes Publish
// fail (so the outbox retries) without keeping the event from the others.
func TestPublishRunsEverySubscriber(t *testing.T) {
	t.Parallel()
	b := bus.New()
	var got []string
	b.Subscribe("order.placed", "mailer", func(_ context.Context, e outbox.Event) error {
		got = append(got, "mailer:"+e.ID)
		return nil
	})
	b.Subscribe("order.placed", "ledger", func(_ context.Context, e outbox.Event) error {
		got = append(got, "ledger:"+e.ID)
		return errors.New("ledger down")
	})
	b.Subscribe("order.cancelled", "mailer", func(_ context.Context, e outbox.Event) error {
		got = append(got, "cancel:"+e.ID)
		return nil
	})

	err := b.Publish(context.Background(), outbox.Event{ID: "e1", Topic: "order.placed"})
	if err == nil || !strings.Contains(err.Error(), "ledger") || !strings.Contains(err.Error(), "ledger down") {
		t.Fatalf("Publish err = %v, want the ledger's failure named", err)
	}
	if want := []string{"mailer:e1", "ledger:e1"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	if err := b.Publish(context.Background(), outbox.Event{ID: "e2", Topic: "order.shipped"}); err != nil {
		t.Fatalf("Publish to a topic nobody reads: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("deliveries = %v, want none for order.shipped", got)
	}
}
