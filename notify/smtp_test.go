package notify_test

import (
	"context"
	"errors"
	"mime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/notify"
	"github.com/millionshop/million/notify/smtptest"
	notifystore "github.com/millionshop/million/notify/store"
	"github.com/millionshop/million/sqldb"
)

// directory maps user IDs to addresses.
type directory map[string]string

func (d directory) Email(_ context.Context, userID string) (string, error) {
	if e, ok := d[userID]; ok {
		return e, nil
	}
	return "", errors.New("no such user")
}

var users = directory{"u-1": "ada@example.com"}

// TestSMTPSenderDelivers: a message reaches the SMTP server authenticated,
// addressed to the user, with its subject, body and ID as Message-ID.
func TestSMTPSenderDelivers(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	sink.RequireAuth("shop", "s3cret")
	s, err := notify.NewSMTPSender(sink.URL(), "Million Shop <shop@example.com>", users, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := notify.Message{ID: "m-1", UserID: "u-1", Kind: "order.placed", Subject: "We received your order ✓",
		Body: "Order o-1 for 12.50 USD is placed.", CreatedAt: time.Now()}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := sink.Mail()
	if len(got) != 1 {
		t.Fatalf("sink got %d mails", len(got))
	}
	g := got[0]
	if g.From != "shop@example.com" || len(g.To) != 1 || g.To[0] != "ada@example.com" || g.Msg == nil {
		t.Fatalf("mail envelope = %+v", g)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(g.Msg.Header.Get("Subject"))
	if err != nil || subject != m.Subject || g.Msg.Header.Get("Message-Id") != "<m-1@million>" ||
		!strings.Contains(g.Raw, m.Body) || g.Msg.Header.Get("To") != "<ada@example.com>" {
		t.Fatalf("mail = %q (subject %q, %v)", g.Raw, subject, err)
	}

	bad, err := notify.NewSMTPSender("smtp://shop:wrong@"+sink.Addr, "shop@example.com", users, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Send(context.Background(), m); err == nil || !strings.Contains(err.Error(), "auth") {
		t.Fatalf("send with wrong credentials: %v", err)
	}
	if len(sink.Mail()) != 1 {
		t.Fatal("a mail was accepted without authentication")
	}
}

// TestSMTPSenderFailures: a refused recipient, an unknown user and a server
// that stops answering are errors, the last one within the timeout.
func TestSMTPSenderFailures(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	s, err := notify.NewSMTPSender(sink.URL(), "shop@example.com", users, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	m := notify.Message{ID: "m-1", UserID: "u-1", Subject: "s", Body: "b", CreatedAt: time.Now()}
	sink.Refuse(true)
	if err := s.Send(context.Background(), m); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("refused recipient: %v", err)
	}
	sink.Refuse(false)
	if err := s.Send(context.Background(), notify.Message{ID: "m-2", UserID: "nobody"}); err == nil {
		t.Fatal("send to an unknown user succeeded")
	}
	sink.Stall(true)
	start := time.Now()
	if err := s.Send(context.Background(), m); err == nil {
		t.Fatal("send to a stalled server succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("send to a stalled server took %s with a 500ms timeout", d)
	}
	for _, bad := range []string{"http://x", "smtp://", "::"} {
		if _, err := notify.NewSMTPSender(bad, "shop@example.com", users, time.Second); err == nil {
			t.Errorf("NewSMTPSender(%q) succeeded", bad)
		}
	}
	if _, err := notify.NewSMTPSender("smtp://h", "not an address", users, time.Second); err == nil {
		t.Error("a bad from address was accepted")
	}
}

// flakySender fails its first n sends.
type flakySender struct {
	mu   sync.Mutex
	n    int
	sent []notify.Message
}

func (s *flakySender) Send(_ context.Context, m notify.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n > 0 {
		s.n--
		return errors.New("mail server unavailable")
	}
	s.sent = append(s.sent, m)
	return nil
}

// TestHandleOrderEventRetriesFailedSend: when sending fails the event is
// not left handled, so the redelivery sends it; the result is one message
// stored and one sent.
func TestHandleOrderEventRetriesFailedSend(t *testing.T) {
	t.Parallel()
	db, err := sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background(), []sqldb.Migrations{notifystore.Migrations()}); err != nil {
		t.Fatal(err)
	}
	flaky := &flakySender{n: 2}
	n := notify.NewNotifier(notifystore.New(db), flaky, time.Now)
	ctx := context.Background()
	payload := orderPayload(t, "o-1", "u-1")
	for i := range 2 {
		if err := n.HandleOrderEvent(ctx, "evt-1", "order.placed", payload); err == nil {
			t.Fatalf("delivery %d succeeded while the sender fails", i)
		}
		if msgs, _ := n.Messages(ctx, "u-1"); len(msgs) != 0 {
			t.Fatalf("a failed send left %d messages recorded", len(msgs))
		}
	}
	for range 2 {
		if err := n.HandleOrderEvent(ctx, "evt-1", "order.placed", payload); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := n.Messages(ctx, "u-1")
	if err != nil || len(msgs) != 1 || len(flaky.sent) != 1 || flaky.sent[0].ID != msgs[0].ID {
		t.Fatalf("after recovery: %d stored (%v), %d sent", len(msgs), err, len(flaky.sent))
	}
}
