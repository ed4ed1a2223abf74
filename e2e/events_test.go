package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/events/natstest"
	"github.com/millionshop/million/notify/smtptest"
)

// TestOrderEmailsOverSMTP: with --smtp-url, a checkout mails the customer
// a confirmation and a cancellation mails them again, through the events
// stream and the notify consumer. While the mail server refuses, the
// handler is retried with backoff and the confirmation still arrives,
// once.
func TestOrderEmailsOverSMTP(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	sink.RequireAuth("shop", "mail-secret")
	srv := Start(t, func(c *app.Config) { c.SMTPURL, c.MailFrom = sink.URL(), "Shop <shop@example.com>" })
	tg := targetFor(t, srv)
	admin := tg.Admin(t)
	p := admin.NewProduct(t, admin.NewCategory(t), "Kettle", 2500, 10)
	customer := tg.Register(t)

	mailsTo := func(subject string) []smtptest.Mail {
		var out []smtptest.Mail
		for _, m := range sink.Mail() {
			if len(m.To) == 1 && m.To[0] == customer.Email && m.Msg != nil && m.Msg.Header.Get("Subject") == subject {
				out = append(out, m)
			}
		}
		return out
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("within 30 s: %s", what)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}

	sink.Refuse(true)
	checkoutPut(t, customer, p.ID, 1)
	o := checkoutPaid(t, customer, "smtp-1")
	wait("the mail server is tried and refuses", func() bool {
		v, ok := metricValue(t, srv, "million_events_handler_failures_total")
		return ok && v >= 2
	})
	sink.Refuse(false)
	wait("the confirmation arrives", func() bool { return len(mailsTo("We received your order")) == 1 })
	if m := mailsTo("We received your order")[0]; !strings.Contains(m.Raw, o.ID) || m.From != "shop@example.com" {
		t.Fatalf("confirmation = %+v", m)
	}

	customer.Expect(t, http.StatusOK, "POST", "/v1/orders/"+o.ID+"/cancel", nil)
	wait("the cancellation arrives", func() bool { return len(mailsTo("Your order was cancelled")) == 1 })
	for _, consumer := range []string{"notify", "search"} {
		wait("the "+consumer+" consumer settles", func() bool {
			v, ok := metricValue(t, srv, `million_events_consumer_lag{consumer="`+consumer+`"}`)
			return ok && v == 0
		})
	}
	for sample, want := range map[string]func(float64) bool{
		"million_events_published_total":        func(v float64) bool { return v >= 3 }, // placed, paid, cancelled
		"million_events_handled_total":          func(v float64) bool { return v == 3 }, // notify: placed, cancelled; search: product.created
		"million_events_handler_failures_total": func(v float64) bool { return v >= 2 },
		"million_events_redeliveries_total":     func(v float64) bool { return v >= 2 },
		"million_events_dlq_messages":           func(v float64) bool { return v == 0 },
		"million_events_dead_lettered_total":    func(v float64) bool { return v == 0 },
		"million_outbox_pending":                func(v float64) bool { return v == 0 },
		"million_outbox_oldest_pending_seconds": func(v float64) bool { return v == 0 },
	} {
		if v, ok := metricValue(t, srv, sample); !ok || !want(v) {
			t.Errorf("metric %s = %v (present: %v)", sample, v, ok)
		}
	}
	if n := len(sink.Mail()); n != 2 {
		t.Fatalf("%d mails sent, want the confirmation and the cancellation", n)
	}
	msgs, err := srv.App.Notifier.Messages(context.Background(), customer.UserID)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("stored messages = %+v, %v", msgs, err)
	}
}

// metricValue reads one sample of the server's metrics (labels included
// in sample), false when absent.
func metricValue(t *testing.T, s *Server, sample string) (float64, bool) {
	t.Helper()
	v, err := strconv.ParseFloat(outageMetric(t, s, sample), 64)
	return v, err == nil
}

// TestOutboxCleanupJob: the periodic cleanup (run by the instance holding
// its lease, at once when it gets it) deletes events published more than
// app.OutboxRetention ago and keeps recent and pending ones.
func TestOutboxCleanupJob(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	ctx := context.Background()
	db := srv.App.DB
	old := time.Now().Add(-app.OutboxRetention - time.Hour).UnixMicro()
	for i, published := range []any{old, time.Now().UnixMicro(), nil} {
		if _, err := db.Writer(ctx).ExecContext(ctx, `INSERT INTO outbox_events (id, topic, event_key, payload, created_at, published_at)
			VALUES (?, 'test.cleanup', 'k', '{}', ?, ?)`, "cleanup-"+strconv.Itoa(i), old, published); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		var n int
		if err := db.Reader(ctx).QueryRowContext(ctx, `SELECT count(*) FROM outbox_events WHERE id LIKE 'cleanup-%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The job ran once at startup, maybe before these rows existed; restart
	// so that it runs again with them there.
	srv.Restart(t)
	db = srv.App.DB
	deadline := time.Now().Add(20 * time.Second)
	for count() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d cleanup rows left after 20 s, want the recent and the pending one", count())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var pending int
	if err := db.Reader(ctx).QueryRowContext(ctx, `SELECT count(*) FROM outbox_events WHERE id = 'cleanup-2'`).Scan(&pending); err != nil || pending != 1 {
		t.Fatalf("the pending event was deleted (%v)", err)
	}
}

// TestServeStartsWhileNATSIsDown: with --nats-url pointing at a server that
// is down, million still starts and takes orders; their events wait in the
// outbox and are handled once the server comes up.
func TestServeStartsWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	nats := natstest.Start(t)
	nats.Stop()
	srv := Start(t, func(c *app.Config) { c.NATSURL = nats.URL() })
	tg := targetFor(t, srv)
	admin := tg.Admin(t)
	p := admin.NewProduct(t, admin.NewCategory(t), "Kettle", 2500, 10)
	customer := tg.Register(t)
	checkoutPut(t, customer, p.ID, 1)
	o := checkoutPaid(t, customer, "nats-down-1")
	if v, ok := metricValue(t, srv, "million_outbox_pending"); !ok || v < 1 {
		t.Fatalf("outbox pending = %v (%v) while NATS is down, want the order's events", v, ok)
	}
	if err := nats.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deadline := time.Now().Add(45 * time.Second)
	for {
		msgs, err := srv.App.Notifier.Messages(ctx, customer.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 1 && strings.Contains(msgs[0].Body, o.ID) {
			break
		}
		if len(msgs) > 1 || time.Now().After(deadline) {
			t.Fatalf("messages after NATS came up: %+v", msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
