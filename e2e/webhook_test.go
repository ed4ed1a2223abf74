package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/payment"
)

// webhookEvent is a provider event body for paymentID.
func webhookEvent(id, eventType, paymentID string) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "type": eventType, "created_at": time.Now().UTC().Format(time.RFC3339),
		"data": map[string]string{"payment_id": paymentID},
	})
	return b
}

// webhookPaidOrder places a paid order and returns it with its payment ID,
// which only the server knows (the provider would send it in events).
func webhookPaidOrder(t *testing.T, sh *checkoutShop, u *Session, key string) (checkoutOrder, string) {
	t.Helper()
	if sh.tg.Server == nil {
		t.Fatal("webhook tests look payment IDs up in the in-process server")
	}
	p := sh.product(t, "Sleeping Bag "+key, 15000, 5)
	checkoutPut(t, u, p.ID, 1)
	o := checkoutPaid(t, u, key)
	pay, err := sh.tg.Server.App.Payments.ByOrder(context.Background(), o.ID)
	if err != nil {
		t.Fatalf("payment of %s: %v", o.ID, err)
	}
	return o, pay.ID
}

// webhookPost sends body with the Payment-Signature header sig ("" for none).
func webhookPost(t *testing.T, c *Client, status int, body []byte, sig string) *Response {
	t.Helper()
	var headers []string
	if sig != "" {
		headers = []string{"Payment-Signature", sig}
	}
	return c.Expect(t, status, "POST", "/v1/payments/webhook", body, headers...)
}

func webhookWantAck(t *testing.T, r *Response, duplicate bool) {
	t.Helper()
	var ack map[string]any
	r.Decode(t, &ack)
	if ack["received"] != true || ack["duplicate"] != duplicate || len(ack) != 2 {
		t.Fatalf("webhook answered %s, want {received: true, duplicate: %v}", r.Body, duplicate)
	}
}

// TestWebhookRefund proves a signed payment.refunded event moves the order
// to refunded, and the same event again is acknowledged as a duplicate
// without changing anything.
func TestWebhookRefund(t *testing.T) {
	t.Parallel()
	sh := newCheckoutShop(t)
	u := sh.tg.Register(t)
	o, payID := webhookPaidOrder(t, sh, u, "wh-refund")
	c := sh.tg.Client()

	body := webhookEvent("evt_"+uuid.NewString(), "payment.refunded", payID)
	webhookWantAck(t, webhookPost(t, c, http.StatusOK, body, payment.Sign(sh.tg.WebhookSecret, time.Now(), body)), false)
	got := checkoutDecode(t, u.Expect(t, http.StatusOK, "GET", "/v1/orders/"+o.ID, nil))
	if got.Status != "refunded" || got.PaymentStatus != "refunded" {
		t.Fatalf("order after refund event = %+v, want refunded/refunded", got)
	}
	before := u.Expect(t, http.StatusOK, "GET", "/v1/orders/"+o.ID, nil).Body

	// A provider retries deliveries; a later signature over the same
	// event must change nothing.
	webhookWantAck(t, webhookPost(t, c, http.StatusOK, body, payment.Sign(sh.tg.WebhookSecret, time.Now(), body)), true)
	// The same event ID is the same event, whatever else the body says.
	other := webhookEvent(mustEventID(t, body), "payment.captured", payID)
	webhookWantAck(t, webhookPost(t, c, http.StatusOK, other, payment.Sign(sh.tg.WebhookSecret, time.Now(), other)), true)
	if after := u.Expect(t, http.StatusOK, "GET", "/v1/orders/"+o.ID, nil).Body; !bytes.Equal(before, after) {
		t.Fatalf("order changed after a duplicate event:\n%s\nwant\n%s", after, before)
	}
	pay, err := sh.tg.Server.App.Payments.ByOrder(context.Background(), o.ID)
	if err != nil || pay.Status != payment.StatusRefunded {
		t.Fatalf("payment = %+v, %v; want refunded", pay, err)
	}
}

func mustEventID(t *testing.T, body []byte) string {
	t.Helper()
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("event body: %v", err)
	}
	return ev.ID
}

// TestWebhookRejects proves that a webhook which is unsigned, badly signed,
// stale, malformed or about an unknown payment is refused with a problem and
// leaves the order as it was.
func TestWebhookRejects(t *testing.T) {
	t.Parallel()
	sh := newCheckoutShop(t)
	u := sh.tg.Register(t)
	o, payID := webhookPaidOrder(t, sh, u, "wh-reject")
	c := sh.tg.Client()
	secret := sh.tg.WebhookSecret
	refund := func() []byte { return webhookEvent("evt_"+uuid.NewString(), "payment.refunded", payID) }
	sign := func(body []byte) string { return payment.Sign(secret, time.Now(), body) }

	cases := []struct {
		name   string
		status int
		body   func() (body []byte, signature string)
	}{
		{"missing header", http.StatusBadRequest, func() ([]byte, string) { return refund(), "" }},
		{"malformed header", http.StatusBadRequest, func() ([]byte, string) { return refund(), "garbage" }},
		{"header without v1", http.StatusBadRequest, func() ([]byte, string) {
			return refund(), "t=" + strconv.FormatInt(time.Now().Unix(), 10)
		}},
		{"header with a non-hex v1", http.StatusBadRequest, func() ([]byte, string) {
			return refund(), "t=" + strconv.FormatInt(time.Now().Unix(), 10) + ",v1=zz"
		}},
		{"wrong secret", http.StatusBadRequest, func() ([]byte, string) {
			b := refund()
			return b, payment.Sign([]byte("not-the-secret"), time.Now(), b)
		}},
		{"body changed after signing", http.StatusBadRequest, func() ([]byte, string) {
			b := refund()
			sig := sign(b)
			return bytes.Replace(b, []byte("payment.refunded"), []byte("payment.captured"), 1), sig
		}},
		{"timestamp 6 minutes old", http.StatusBadRequest, func() ([]byte, string) {
			b := refund()
			return b, payment.Sign(secret, time.Now().Add(-6*time.Minute), b)
		}},
		{"timestamp 6 minutes ahead", http.StatusBadRequest, func() ([]byte, string) {
			b := refund()
			return b, payment.Sign(secret, time.Now().Add(6*time.Minute), b)
		}},
		{"malformed JSON", http.StatusBadRequest, func() ([]byte, string) {
			b := []byte(`{"id": "evt_x", "type": "payment.refunded", "data": {`)
			return b, sign(b)
		}},
		{"unknown type", http.StatusBadRequest, func() ([]byte, string) {
			b := webhookEvent("evt_"+uuid.NewString(), "payment.teleported", payID)
			return b, sign(b)
		}},
		{"missing event id", http.StatusBadRequest, func() ([]byte, string) {
			b := webhookEvent("", "payment.refunded", payID)
			return b, sign(b)
		}},
		{"unknown payment", http.StatusNotFound, func() ([]byte, string) {
			b := webhookEvent("evt_"+uuid.NewString(), "payment.refunded", uuid.NewString())
			return b, sign(b)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, sig := tc.body()
			webhookPost(t, c, tc.status, body, sig)
			got := checkoutDecode(t, u.Expect(t, http.StatusOK, "GET", "/v1/orders/"+o.ID, nil))
			if got.Status != "paid" || got.PaymentStatus != "captured" {
				t.Fatalf("order after a refused webhook = %s/%s, want paid/captured", got.Status, got.PaymentStatus)
			}
		})
	}

	// A refused delivery must not burn its event ID: the same event,
	// correctly signed, is then applied.
	b := refund()
	webhookPost(t, c, http.StatusBadRequest, b, payment.Sign([]byte("not-the-secret"), time.Now(), b))
	webhookWantAck(t, webhookPost(t, c, http.StatusOK, b, sign(b)), false)
	if got := checkoutDecode(t, u.Expect(t, http.StatusOK, "GET", "/v1/orders/"+o.ID, nil)); got.Status != "refunded" {
		t.Fatalf("order after the valid event = %s, want refunded", got.Status)
	}
}
