package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/app"
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
	wait("the notify consumer settles", func() bool {
		v, ok := metricValue(t, srv, `million_events_consumer_lag{consumer="notify"}`)
		return ok && v == 0
	})
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
