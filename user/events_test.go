package user_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/user"
)

// sentEvents is the bus as the outbox sees it: it keeps what the relay
// published.
type sentEvents struct {
	mu     sync.Mutex
	events []outbox.Event
}

// Publish implements outbox.Publisher.
func (s *sentEvents) Publish(_ context.Context, e outbox.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

// TestRegisterRecordsEvent checks that a registration records
// user.registered in its transaction, and that a refused one records
// nothing.
func TestRegisterRecordsEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newAccountsFixture(t)
	u, err := f.a.Register(ctx, user.Registration{Email: "New@Example.com", Password: "password-123", Name: "New"})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	// The same address again is refused after the insert fails: nothing is
	// recorded for it.
	if _, err := f.a.Register(ctx, user.Registration{Email: "new@example.com", Password: "password-123", Name: "Again"}); !fault.Is(err, fault.Conflict) {
		t.Fatalf("Register of a taken email = %v, want fault.Conflict", err)
	}
	if _, err := f.outbox.RelayOnce(ctx, 100); err != nil {
		t.Fatalf("relay: %v", err)
	}
	f.sent.mu.Lock()
	defer f.sent.mu.Unlock()
	if len(f.sent.events) != 1 {
		t.Fatalf("published %d events, want 1: %v", len(f.sent.events), f.sent.events)
	}
	e := f.sent.events[0]
	var got user.Registered
	if err := json.Unmarshal(e.Payload, &got); err != nil {
		t.Fatalf("payload %s: %v", e.Payload, err)
	}
	if e.Topic != user.TopicRegistered || e.Key != u.ID || got.ID != u.ID || got.Email != "new@example.com" || !got.CreatedAt.Equal(u.CreatedAt) {
		t.Fatalf("event %s key %s payload %s; want %s of %+v", e.Topic, e.Key, e.Payload, user.TopicRegistered, u)
	}
}
