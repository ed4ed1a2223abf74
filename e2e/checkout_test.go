package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/user"
)

// checkoutOrder is an order as the API returns it.
type checkoutOrder struct {
	ID            string         `json:"id"`
	Status        string         `json:"status"`
	Items         []checkoutItem `json:"items"`
	TotalCents    int64          `json:"total_cents"`
	Currency      string         `json:"currency"`
	PaymentStatus string         `json:"payment_status"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

// checkoutItem is one line of an order as the API returns it.
type checkoutItem struct {
	ProductID  string `json:"product_id"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Quantity   int64  `json:"quantity"`
}

// checkoutOrderPage is a page of GET /v1/orders.
type checkoutOrderPage struct {
	Items      []checkoutOrder `json:"items"`
	NextCursor string          `json:"next_cursor"`
}

// checkoutBody is a checkout request paying with token.
func checkoutBody(token string) map[string]any {
	return map[string]any{"payment": map[string]string{"method": "card", "token": token}}
}

// checkoutShop is a fresh deployment with an admin and a category to sell in.
type checkoutShop struct {
	tg    *Target
	admin *Session
	cat   string
}

func newCheckoutShop(t *testing.T) *checkoutShop {
	t.Helper()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	return &checkoutShop{tg: tg, admin: admin, cat: admin.NewCategory(t)}
}

func (sh *checkoutShop) product(t *testing.T, name string, priceCents, stock int64) Product {
	t.Helper()
	return sh.admin.NewProduct(t, sh.cat, name, priceCents, stock)
}

// checkoutStock reads a product's stock through the public API.
func checkoutStock(t *testing.T, c *Client, productID string) int64 {
	t.Helper()
	var p Product
	c.Expect(t, http.StatusOK, "GET", "/v1/products/"+productID, nil).Decode(t, &p)
	return p.Stock
}

func checkoutWantStock(t *testing.T, c *Client, productID string, want int64) {
	t.Helper()
	if got := checkoutStock(t, c, productID); got != want {
		t.Fatalf("stock of %s = %d, want %d", productID, got, want)
	}
}

func checkoutPut(t *testing.T, s *Session, productID string, quantity int) {
	t.Helper()
	s.Expect(t, http.StatusOK, "PUT", "/v1/cart/items/"+productID, map[string]int{"quantity": quantity})
}

// checkoutCart returns the caller's cart as product ID → quantity.
func checkoutCart(t *testing.T, s *Session) map[string]int64 {
	t.Helper()
	var c struct {
		Items []struct {
			ProductID string `json:"product_id"`
			Quantity  int64  `json:"quantity"`
		} `json:"items"`
	}
	s.Expect(t, http.StatusOK, "GET", "/v1/cart", nil).Decode(t, &c)
	out := map[string]int64{}
	for _, it := range c.Items {
		out[it.ProductID] = it.Quantity
	}
	return out
}

// checkoutPlace posts a checkout and expects status.
func checkoutPlace(t *testing.T, s *Session, status int, key string, body any) *Response {
	t.Helper()
	return s.Expect(t, status, "POST", "/v1/checkout", body, "Idempotency-Key", key)
}

func checkoutDecode(t *testing.T, r *Response) checkoutOrder {
	t.Helper()
	var o checkoutOrder
	r.Decode(t, &o)
	return o
}

// checkoutPaid places the caller's cart with a card that is authorized.
func checkoutPaid(t *testing.T, s *Session, key string) checkoutOrder {
	t.Helper()
	o := checkoutDecode(t, checkoutPlace(t, s, http.StatusCreated, key, checkoutBody("tok_visa")))
	if o.Status != "paid" || o.PaymentStatus != "captured" {
		t.Fatalf("checkout answered status %q payment_status %q, want paid/captured", o.Status, o.PaymentStatus)
	}
	return o
}

// checkoutCode returns the code member of a problem response.
func checkoutCode(t *testing.T, r *Response) string {
	t.Helper()
	code, _ := r.JSON(t)["code"].(string)
	return code
}

func checkoutWantCode(t *testing.T, r *Response, want string) {
	t.Helper()
	if got := checkoutCode(t, r); got != want {
		t.Fatalf("problem code = %q, want %q; body %s", got, want, r.Body)
	}
}

// checkoutOrders returns every order of the caller, newest first.
func checkoutOrders(t *testing.T, s *Session) []checkoutOrder {
	t.Helper()
	var all []checkoutOrder
	path := "/v1/orders?limit=100"
	for {
		var p checkoutOrderPage
		s.Expect(t, http.StatusOK, "GET", path, nil).Decode(t, &p)
		all = append(all, p.Items...)
		if p.NextCursor == "" {
			return all
		}
		path = "/v1/orders?limit=100&cursor=" + url.QueryEscape(p.NextCursor)
	}
}

// checkoutMessage waits up to 5 s for notify to record a message of kind
// about orderID for the user; events travel through the outbox relay, so
// they arrive shortly after the request, not during it.
func checkoutMessage(t *testing.T, tg *Target, userID, kind, orderID string) {
	t.Helper()
	if tg.Server == nil {
		return // an external target's notifier is not reachable from here
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		msgs, err := tg.Server.App.Notifier.Messages(context.Background(), userID)
		if err != nil {
			t.Fatalf("notify messages: %v", err)
		}
		for _, m := range msgs {
			if m.Kind == kind && strings.Contains(m.Body, orderID) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s message for order %s within 5 s; messages: %+v", kind, orderID, msgs)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestCheckoutPlacesPaidOrder proves the happy path: the answer has the
// documented shape and prices, the order is paid and captured, the cart is
// emptied, stock is taken, the order reads back identically and notify hears
// of it.
func TestCheckoutPlacesPaidOrder(t *testing.T) {
	t.Parallel()
	sh := newCheckoutShop(t)
	boot := sh.product(t, "Trail Boot", 12999, 5)
	sock := sh.product(t, "Wool Sock", 1250, 10)
	u := sh.tg.Register(t)
	checkoutPut(t, u, boot.ID, 2)
	checkoutPut(t, u, sock.ID, 3)

	started := time.Now()
	r := checkoutPlace(t, u, http.StatusCreated, "place-1", checkoutBody("tok_visa"))
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	if got := r.Header.Get("Idempotent-Replayed"); got != "" {
		t.Fatalf("first checkout has Idempotent-Replayed %q, want none", got)
	}
	raw := r.JSON(t)
	for _, field := range []string{"id", "status", "items", "total_cents", "currency", "payment_status", "created_at"} {
		if _, ok := raw[field]; !ok {
			t.Fatalf("order lacks %q: %s", field, r.Body)
		}
	}
	if _, ok := raw["user_id"]; ok {
		t.Fatalf("order exposes user_id: %s", r.Body)
	}
	o := checkoutDecode(t, r)
	if o.ID == "" || o.Status != "paid" || o.PaymentStatus != "captured" || o.Currency != "USD" {
		t.Fatalf("order = %+v, want an id, paid, captured, USD", o)
	}
	if want := int64(2*12999 + 3*1250); o.TotalCents != want {
		t.Fatalf("total_cents = %d, want %d", o.TotalCents, want)
	}
	if loc := r.Header.Get("Location"); loc != "/v1/orders/"+o.ID {
		t.Fatalf("Location = %q, want /v1/orders/%s", loc, o.ID)
	}
	if !strings.HasSuffix(raw["created_at"].(string), "Z") || o.CreatedAt.Before(started.Add(-time.Minute)) || o.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Fatalf("created_at = %v, want RFC 3339 UTC close to now", raw["created_at"])
	}
	want := []checkoutItem{
		{ProductID: boot.ID, SKU: boot.SKU, Name: "Trail Boot", PriceCents: 12999, Quantity: 2},
		{ProductID: sock.ID, SKU: sock.SKU, Name: "Wool Sock", PriceCents: 1250, Quantity: 3},
	}
	got := slices.Clone(o.Items)
	slices.SortFunc(got, func(a, b checkoutItem) int { return strings.Compare(a.ProductID, b.ProductID) })
	slices.SortFunc(want, func(a, b checkoutItem) int { return strings.Compare(a.ProductID, b.ProductID) })
	if !slices.Equal(got, want) {
		t.Fatalf("items = %+v, want %+v", got, want)
	}

	if cart := checkoutCart(t, u); len(cart) != 0 {
		t.Fatalf("cart after checkout = %v, want empty", cart)
	}
	checkoutWantStock(t, u.Client, boot.ID, 3)
	checkoutWantStock(t, u.Client, sock.ID, 7)

	back := u.Expect(t, http.StatusOK, "GET", "/v1/orders/"+o.ID, nil)
	var fromCheckout, fromGet map[string]any
	r.Decode(t, &fromCheckout)
	back.Decode(t, &fromGet)
	if !jsonEqual(fromCheckout, fromGet) {
		t.Fatalf("GET order = %s, want what checkout answered: %s", back.Body, r.Body)
	}
	if list := checkoutOrders(t, u); len(list) != 1 || list[0].ID != o.ID {
		t.Fatalf("orders = %+v, want just %s", list, o.ID)
	}
	checkoutMessage(t, sh.tg, u.UserID, "order.placed", o.ID)
}

// jsonEqual compares two decoded JSON values by their canonical encoding.
func jsonEqual(a, b any) bool {
	ea, _ := json.Marshal(a)
	eb, _ := json.Marshal(b)
	return bytes.Equal(ea, eb)
}

// TestCheckoutRejectsBadRequests proves that malformed checkouts answer 400
// before anything happens: the cart stays, no stock is taken, no order exists.
func TestCheckoutRejectsBadRequests(t *testing.T) {
	t.Parallel()
	sh := newCheckoutShop(t)
	p := sh.product(t, "Lantern", 4500, 4)
	u := sh.tg.Register(t)
	checkoutPut(t, u, p.ID, 1)

	cases := []struct {
		name    string
		body    any
		headers []string
	}{
		{"missing Idempotency-Key", checkoutBody("tok_visa"), nil},
		{"Idempotency-Key too long", checkoutBody("tok_visa"), []string{"Idempotency-Key", strings.Repeat("k", 256)}},
		{"Idempotency-Key with a space", checkoutBody("tok_visa"), []string{"Idempotency-Key", "has space"}},
		{"method cash", map[string]any{"payment": map[string]string{"method": "cash", "token": "tok_visa"}}, []string{"Idempotency-Key", "bad-cash"}},
		{"missing token", map[string]any{"payment": map[string]string{"method": "card"}}, []string{"Idempotency-Key", "bad-token"}},
		{"missing payment", map[string]any{}, []string{"Idempotency-Key", "bad-payment"}},
		{"unknown top-level field", map[string]any{"payment": map[string]string{"method": "card", "token": "tok_visa"}, "total_cents": 1}, []string{"Idempotency-Key", "bad-field"}},
		{"unknown nested field", map[string]any{"payment": map[string]string{"method": "card", "token": "tok_visa", "amount": "1"}}, []string{"Idempotency-Key", "bad-nested"}},
		{"malformed JSON", `{"payment": {"method": "card",`, []string{"Idempotency-Key", "bad-json"}},
		{"payment not an object", `{"payment": "card"}`, []string{"Idempotency-Key", "bad-type"}},
		{"two JSON values", `{"payment":{"method":"card","token":"t"}} {}`, []string{"Idempotency-Key", "bad-trailing"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u.Expect(t, http.StatusBadRequest, "POST", "/v1/checkout", tc.body, tc.headers...)
		})
	}
	if cart := checkoutCart(t, u); cart[p.ID] != 1 {
		t.Fatalf("cart = %v, want %s×1 kept", cart, p.ID)
	}
	checkoutWantStock(t, u.Client, p.ID, 4)
	if list := checkoutOrders(t, u); len(list) != 0 {
		t.Fatalf("orders after bad requests = %+v, want none", list)
	}
	// None of the rejected keys was consumed: the valid request with one
	// of them goes through.
	checkoutPaid(t, u, "bad-cash")
}

// TestCheckoutEmptyCart proves that an empty cart answers 400 empty_cart and
// gives the key back, so the same key works once the cart is filled.
func TestCheckoutEmptyCart(t *testing.T) {
	t.Parallel()
	sh := newCheckoutShop(t)
	p := sh.product(t, "Compass", 2000, 3)
	u := sh.tg.Register(t)

	r := checkoutPlace(t, u, http.StatusBadRequest, "empty-1", checkoutBody("tok_visa"))
	checkoutWantCode(t, r, "empty_cart")
	if list := checkoutOrders(t, u); len(list) != 0 {
		t.Fatalf("orders = %+v, want none", list)
	}
	checkoutPut(t, u, p.ID, 1)
	o := checkoutPaid(t, u, "empty-1")
	if len(o.Items) != 1 || o.Items[0].ProductID != p.ID {
		t.Fatalf("order items = %+v, want %s", o.Items, p.ID)
	}
	checkoutWantStock(t, u.Client, p.ID, 2)
}

// TestCheckoutInsufficientStock proves 409 insufficient_stock reserves
// nothing, not even the lines that were available, keeps the cart, and gives
// the key back for a corrected retry.
func TestCheckoutInsufficientStock(t *testing.T) {
	t.Parallel()
	sh := newCheckoutShop(t)
	plenty := sh.product(t, "Tent Peg", 300, 50)
	scarce := sh.product(t, "Tent", 25000, 2)
	u := sh.tg.Register(t)
	checkoutPut(t, u, plenty.ID, 4)
	checkoutPut(t, u, scarce.ID, 3)

	r := checkoutPlace(t, u, http.StatusConflict, "short-1", checkoutBody("tok_visa"))
	checkoutWantCode(t, r, "insufficient_stock")
	checkoutWantStock(t, u.Client, plenty.ID, 50)
	checkoutWantStock(t, u.Client, scarce.ID, 2)
	if cart := checkoutCart(t, u); cart[plenty.ID] != 4 || cart[scarce.ID] != 3 || len(cart) != 2 {
		t.Fatalf("cart after 409 = %v, want both lines kept", cart)
	}
	if list := checkoutOrders(t, u); len(list) != 0 {
		t.Fatalf("orders after 409 = %+v, want none", list)
	}
	if tg := sh.tg; tg.Server != nil {
		if n := tg.Server.App.Provider.Authorizations(); n != 0 {
			t.Fatalf("provider authorizations = %d, want 0 (nothing charged)", n)
		}
	}

	checkoutPut(t, u, scarce.ID, 2)
	o := checkoutPaid(t, u, "short-1")
	if o.TotalCents != 4*300+2*25000 {
		t.Fatalf("total_cents = %d, want %d", o.TotalCents, 4*300+2*25000)
	}
	checkoutWantStock(t, u.Client, plenty.ID, 46)
	checkoutWantStock(t, u.Client, scarce.ID, 0)
}

// TestCheckoutPaymentRefused proves the compensation path: a declined card
// (402) and a failing provider (502) both leave the stock where it was, the
// order visible as cancelled, and a replay of the key answers the same
// refusal without releasing the stock a second time.
func TestCheckoutPaymentRefused(t *testing.T) {
	t.Parallel()
	sh := newCheckoutShop(t)
	cases := []struct {
		token         string
		status        int
		code          string
		paymentStatus string
	}{
		{"tok_decline", http.StatusPaymentRequired, "payment_declined", "declined"},
		{"tok_error", http.StatusBadGateway, "payment_provider_error", "failed"},
	}
	for _, tc := range cases {
		t.Run(tc.token, func(t *testing.T) {
			t.Parallel()
			p := sh.product(t, "Stove "+tc.token, 7000, 6)
			u := sh.tg.Register(t)
			checkoutPut(t, u, p.ID, 2)

			first := checkoutPlace(t, u, tc.status, "refused-1", checkoutBody(tc.token))
			checkoutWantCode(t, first, tc.code)
			checkoutWantStock(t, u.Client, p.ID, 6)
			list := checkoutOrders(t, u)
			if len(list) != 1 || list[0].Status != "cancelled" || list[0].PaymentStatus != tc.paymentStatus {
				t.Fatalf("orders = %+v, want one cancelled order with payment_status %s", list, tc.paymentStatus)
			}
			got := checkoutDecode(t, u.Expect(t, http.StatusOK, "GET", "/v1/orders/"+list[0].ID, nil))
			if got.Status != "cancelled" {
				t.Fatalf("GET order status = %q, want cancelled", got.Status)
			}

			again := checkoutPlace(t, u, tc.status, "refused-1", checkoutBody(tc.token))
			if again.Header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("replayed refusal has Idempotent-Replayed %q, want true", again.Header.Get("Idempotent-Replayed"))
			}
			a, b := first.JSON(t), again.JSON(t)
			delete(a, "request_id")
			delete(b, "request_id")
			if !jsonEqual(a, b) {
				t.Fatalf("replayed problem = %s, want %s (apart from request_id)", again.Body, first.Body)
			}
			checkoutWantStock(t, u.Client, p.ID, 6)
			if list := checkoutOrders(t, u); len(list) != 1 {
				t.Fatalf("orders after replay = %d, want 1", len(list))
			}
			// Cancelling an order the payment already cancelled changes nothing.
			c := checkoutDecode(t, u.Expect(t, http.StatusOK, "POST", "/v1/orders/"+list[0].ID+"/cancel", nil))
			if c.Status != "cancelled" {
				t.Fatalf("cancel answered %q, want cancelled", c.Status)
			}
			checkoutWantStock(t, u.Client, p.ID, 6)
		})
	}
}

// TestCheckoutReplay proves the idempotency contract of one key: the same
// body replays the first answer byte for byte (even after the cart changed),
// a different body is 422, and only one order and one charge ever exist.
func TestCheckoutReplay(t *testing.T) {
	t.Parallel()
	sh := newCheckoutShop(t)
	p := sh.product(t, "Headlamp", 3500, 10)
	u := sh.tg.Register(t)
	checkoutPut(t, u, p.ID, 2)
	authBefore := 0
	if sh.tg.Server != nil {
		authBefore = sh.tg.Server.App.Provider.Authorizations()
	}

	first := checkoutPlace(t, u, http.StatusCreated, "replay-1", checkoutBody("tok_visa"))
	o := checkoutDecode(t, first)
	// A full cart again must not turn the replay into a second order.
	checkoutPut(t, u, p.ID, 1)

	bodies := []struct {
		name string
		body any
	}{
		{"same value", checkoutBody("tok_visa")},
		{"same request, other member order", `{"payment":{"token":"tok_visa","method":"card"}}`},
	}
	for _, b := range bodies {
		again := checkoutPlace(t, u, http.StatusCreated, "replay-1", b.body)
		if again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s: Idempotent-Replayed = %q, want true", b.name, again.Header.Get("Idempotent-Replayed"))
		}
		if !bytes.Equal(again.Body, first.Body) {
			t.Fatalf("%s: replayed body\n%s\nwant\n%s", b.name, again.Body, first.Body)
		}
	}

	for _, body := range []any{checkoutBody("tok_mastercard"), checkoutBody("tok_decline")} {
		r := checkoutPlace(t, u, http.StatusUnprocessableEntity, "replay-1", body)
		checkoutWantCode(t, r, "idempotency_key_reused")
	}

	checkoutWantStock(t, u.Client, p.ID, 8)
	if cart := checkoutCart(t, u); cart[p.ID] != 1 {
		t.Fatalf("cart = %v, want the line added after checkout kept", cart)
	}
	if list := checkoutOrders(t, u); len(list) != 1 || list[0].ID != o.ID {
		t.Fatalf("orders = %+v, want only %s", list, o.ID)
	}
	if sh.tg.Server != nil {
		if d := sh.tg.Server.App.Provider.Authorizations() - authBefore; d != 1 {
			t.Fatalf("provider authorizations grew by %d, want 1", d)
		}
	}

	// Keys are per user: another user's same key is a different request.
	other := sh.tg.Register(t)
	checkoutWantCode(t, checkoutPlace(t, other, http.StatusBadRequest, "replay-1", checkoutBody("tok_visa")), "empty_cart")
}

// TestOrdersList proves GET /v1/orders pages the caller's orders newest
// first with an opaque cursor, and rejects malformed paging parameters.
func TestOrdersList(t *testing.T) {
	t.Parallel()
	sh := newCheckoutShop(t)
	p := sh.product(t, "Map", 900, 20)
	u := sh.tg.Register(t)
	var ids []string
	for _, key := range []string{"list-1", "list-2", "list-3"} {
		checkoutPut(t, u, p.ID, 1)
		ids = append(ids, checkoutPaid(t, u, key).ID)
	}

	var first checkoutOrderPage
	u.Expect(t, http.StatusOK, "GET", "/v1/orders?limit=2", nil).Decode(t, &first)
	if len(first.Items) != 2 || first.Items[0].ID != ids[2] || first.Items[1].ID != ids[1] || first.NextCursor == "" {
		t.Fatalf("first page = %+v, want %s, %s and a cursor", first, ids[2], ids[1])
	}
	r := u.Expect(t, http.StatusOK, "GET", "/v1/orders?limit=2&cursor="+url.QueryEscape(first.NextCursor), nil)
	var second checkoutOrderPage
	r.Decode(t, &second)
	if len(second.Items) != 1 || second.Items[0].ID != ids[0] {
		t.Fatalf("second page = %+v, want %s", second, ids[0])
	}
	if _, ok := r.JSON(t)["next_cursor"]; ok {
		t.Fatalf("last page has next_cursor: %s", r.Body)
	}
	var all checkoutOrderPage
	u.Expect(t, http.StatusOK, "GET", "/v1/orders", nil).Decode(t, &all)
	if len(all.Items) != 3 || all.NextCursor != "" {
		t.Fatalf("default page = %+v, want all 3 orders and no cursor", all)
	}
	for _, o := range all.Items {
		if len(o.Items) != 1 || o.Items[0].ProductID != p.ID || o.Status != "paid" {
			t.Fatalf("listed order = %+v, want a paid order of %s", o, p.ID)
		}
	}

	for _, q := range []string{
		"limit=0", "limit=101", "limit=-1", "limit=abc", "limit=1.5", "limit=", "limit=1&limit=2",
		"cursor=", "cursor=not-a-cursor", "cursor=" + strings.Repeat("A", 600), "cursor=e30", // e30 is {}
		"cursor=" + url.QueryEscape(first.NextCursor) + "&cursor=" + url.QueryEscape(first.NextCursor),
	} {
		t.Run(q, func(t *testing.T) {
			u.Expect(t, http.StatusBadRequest, "GET", "/v1/orders?"+q, nil)
		})
	}
	u.Client.As("").Expect(t, http.StatusUnauthorized, "GET", "/v1/orders", nil)
}

// TestOrderCancel proves cancelling a paid order refunds the capture,
// returns the stock once however often it is repeated, and notifies the
// customer; unknown IDs are 404.
func TestOrderCancel(t *testing.T) {
	t.Parallel()
	sh := newCheckoutShop(t)
	p := sh.product(t, "Kayak", 99000, 3)
	u := sh.tg.Register(t)
	checkoutPut(t, u, p.ID, 2)
	o := checkoutPaid(t, u, "cancel-1")
	checkoutWantStock(t, u.Client, p.ID, 1)

	c := checkoutDecode(t, u.Expect(t, http.StatusOK, "POST", "/v1/orders/"+o.ID+"/cancel", nil))
	if c.ID != o.ID || c.Status != "cancelled" || c.PaymentStatus != "refunded" {
		t.Fatalf("cancel answered %+v, want %s cancelled with payment_status refunded", c, o.ID)
	}
	checkoutWantStock(t, u.Client, p.ID, 3)
	if sh.tg.Server != nil {
		pay, err := sh.tg.Server.App.Payments.ByOrder(context.Background(), o.ID)
		if err != nil || pay.Status != "refunded" {
			t.Fatalf("payment = %+v, %v; want refunded", pay, err)
		}
	}

	twice := checkoutDecode(t, u.Expect(t, http.StatusOK, "POST", "/v1/orders/"+o.ID+"/cancel", nil))
	if twice.Status != "cancelled" || twice.PaymentStatus != "refunded" {
		t.Fatalf("second cancel answered %+v, want cancelled/refunded", twice)
	}
	checkoutWantStock(t, u.Client, p.ID, 3)
	got := checkoutDecode(t, u.Expect(t, http.StatusOK, "GET", "/v1/orders/"+o.ID, nil))
	if got.Status != "cancelled" || got.PaymentStatus != "refunded" {
		t.Fatalf("GET after cancel = %+v, want cancelled/refunded", got)
	}
	checkoutMessage(t, sh.tg, u.UserID, "order.cancelled", o.ID)

	for _, id := range []string{"00000000-0000-7000-8000-000000000000", "nope", "%20"} {
		u.Expect(t, http.StatusNotFound, "GET", "/v1/orders/"+id, nil)
		u.Expect(t, http.StatusNotFound, "POST", "/v1/orders/"+id+"/cancel", nil)
	}
}

// TestCheckoutClientGivesUp proves that a client which hangs up while the
// provider is still working does not strand its order: the retry with the
// same key gets the one paid order, and the stock is taken once.
func TestCheckoutClientGivesUp(t *testing.T) {
	t.Parallel()
	srv := Start(t, func(c *app.Config) { c.PaymentLatency = 300 * time.Millisecond })
	email, password := "admin-giveup@example.com", "admin-password-giveup"
	if _, err := srv.App.Users.Register(context.Background(), user.Registration{
		Email: email, Password: password, Name: "Admin", Role: user.RoleAdmin,
	}); err != nil {
		t.Fatalf("create admin: %v", err)
	}
	tg := &Target{BaseURL: srv.BaseURL, WebhookSecret: []byte(WebhookSecret), AdminEmail: email, AdminPassword: password, Server: srv}
	admin := tg.Admin(t)
	p := admin.NewProduct(t, admin.NewCategory(t), "Drybag", 2500, 5)
	u := tg.Register(t)
	checkoutPut(t, u, p.ID, 1)

	impatient := *u.Client
	impatient.HTTP = &http.Client{Timeout: 100 * time.Millisecond}
	if r := invSend(&impatient, "POST", "/v1/checkout", checkoutBody("tok_visa"), "Idempotency-Key", "give-up"); r.Err == nil {
		t.Fatalf("the impatient checkout finished (%d) within 100 ms; the provider latency should outlast it", r.Status)
	}
	o := checkoutPaid(t, u, "give-up")
	if list := checkoutOrders(t, u); len(list) != 1 || list[0].ID != o.ID || list[0].Status != "paid" {
		t.Fatalf("orders = %+v, want only paid %s", list, o.ID)
	}
	checkoutWantStock(t, u.Client, p.ID, 4)
	if n := srv.App.Provider.Authorizations(); n != 1 {
		t.Fatalf("authorizations = %d, want 1", n)
	}
}
