package e2e

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/uuid"
)

// cartBody is the cart representation.
type cartBody struct {
	Items []struct {
		ProductID  string `json:"product_id"`
		Name       string `json:"name"`
		PriceCents int64  `json:"price_cents"`
		Quantity   int64  `json:"quantity"`
	} `json:"items"`
	TotalCents int64  `json:"total_cents"`
	Currency   string `json:"currency"`
}

// cartLine is one expected line: product and quantity.
type cartLine struct {
	p   Product
	qty int64
}

// cartDecode checks the exact shape of a cart body and decodes it.
func cartDecode(t testing.TB, r *Response) cartBody {
	t.Helper()
	var raw map[string]json.RawMessage
	r.Decode(t, &raw)
	for _, k := range []string{"items", "total_cents", "currency"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("cart lacks %q: %s", k, r.Body)
		}
	}
	if string(raw["items"]) == "null" {
		t.Fatalf("cart items is null, want an array: %s", r.Body)
	}
	var c cartBody
	r.Decode(t, &c)
	return c
}

// cartWant fails unless c holds exactly lines, in order, priced at the
// products' current prices, with the matching total.
func cartWant(t testing.TB, c cartBody, lines ...cartLine) {
	t.Helper()
	if c.Currency != "USD" {
		t.Fatalf("cart currency = %q, want USD", c.Currency)
	}
	if len(c.Items) != len(lines) {
		t.Fatalf("cart has %d items, want %d: %+v", len(c.Items), len(lines), c.Items)
	}
	var total int64
	for i, l := range lines {
		it := c.Items[i]
		if it.ProductID != l.p.ID || it.Name != l.p.Name || it.PriceCents != l.p.PriceCents || it.Quantity != l.qty {
			t.Fatalf("cart item %d = %+v, want %s %q at %d × %d", i, it, l.p.ID, l.p.Name, l.p.PriceCents, l.qty)
		}
		total += l.p.PriceCents * l.qty
	}
	if c.TotalCents != total {
		t.Fatalf("cart total = %d, want %d", c.TotalCents, total)
	}
}

// cartGet returns the caller's cart.
func cartGet(t testing.TB, s *Session) cartBody {
	t.Helper()
	return cartDecode(t, s.Expect(t, http.StatusOK, "GET", "/v1/cart", nil))
}

// cartPut sets a quantity and returns the cart the PUT answered.
func cartPut(t testing.TB, s *Session, productID string, qty int64) cartBody {
	t.Helper()
	return cartDecode(t, s.Expect(t, http.StatusOK, "PUT", "/v1/cart/items/"+productID, map[string]int64{"quantity": qty}))
}

func TestCartLifecycle(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	tent := admin.NewProduct(t, cat, "Cart Tent", 19999, 10)
	stove := admin.NewProduct(t, cat, "Cart Stove", 4550, 10)
	s := tg.Register(t)

	r := s.Expect(t, http.StatusOK, "GET", "/v1/cart", nil)
	cartWant(t, cartDecode(t, r))
	if cc := r.Header.Get("Cache-Control"); cc == "" {
		t.Fatal("a private cart is served without Cache-Control")
	}

	cartWant(t, cartPut(t, s, tent.ID, 1), cartLine{tent, 1})
	cartWant(t, cartPut(t, s, stove.ID, 3), cartLine{tent, 1}, cartLine{stove, 3})
	// PUT sets the quantity, it does not add to it, and keeps the line's place.
	cartWant(t, cartPut(t, s, tent.ID, 2), cartLine{tent, 2}, cartLine{stove, 3})
	cartWant(t, cartPut(t, s, tent.ID, 99), cartLine{tent, 99}, cartLine{stove, 3})
	cartWant(t, cartGet(t, s), cartLine{tent, 99}, cartLine{stove, 3})

	cartWant(t, cartDecode(t, s.Expect(t, http.StatusOK, "DELETE", "/v1/cart/items/"+tent.ID, nil)), cartLine{stove, 3})
	// Removing what is not in the cart changes nothing.
	cartWant(t, cartDecode(t, s.Expect(t, http.StatusOK, "DELETE", "/v1/cart/items/"+tent.ID, nil)), cartLine{stove, 3})
	cartWant(t, cartDecode(t, s.Expect(t, http.StatusOK, "DELETE", "/v1/cart/items/"+uuid.NewString(), nil)), cartLine{stove, 3})
	cartWant(t, cartGet(t, s), cartLine{stove, 3})

	cartPut(t, s, tent.ID, 1)
	r = s.Expect(t, http.StatusNoContent, "DELETE", "/v1/cart", nil)
	if len(r.Body) != 0 {
		t.Fatalf("204 has a body: %q", r.Body)
	}
	cartWant(t, cartGet(t, s))
	s.Expect(t, http.StatusNoContent, "DELETE", "/v1/cart", nil)
	cartWant(t, cartGet(t, s))
}

func TestCartRejectsBadItems(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	p := admin.NewProduct(t, cat, "Cart Lamp", 1500, 10)
	s := tg.Register(t)
	cartPut(t, s, p.ID, 4)

	for _, tc := range []struct {
		name string
		body any
	}{
		{"zero", map[string]any{"quantity": 0}},
		{"over 99", map[string]any{"quantity": 100}},
		{"negative", map[string]any{"quantity": -1}},
		{"huge", json.RawMessage(`{"quantity": 99999999999999999999}`)},
		{"fraction", map[string]any{"quantity": 1.5}},
		{"string", map[string]any{"quantity": "2"}},
		{"null", map[string]any{"quantity": nil}},
		{"missing", map[string]any{}},
		{"unknown field", map[string]any{"quantity": 2, "price_cents": 1}},
		{"array", []int{2}},
		{"not JSON", "quantity=2"},
		{"two objects", `{"quantity":2}{"quantity":3}`},
	} {
		r := s.Do(t, "PUT", "/v1/cart/items/"+p.ID, tc.body)
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400; body %s", tc.name, r.Status, r.Body)
			continue
		}
		CheckProblem(t, r, http.StatusBadRequest)
	}
	for _, id := range []string{uuid.NewString(), "nope"} {
		s.Expect(t, http.StatusNotFound, "PUT", "/v1/cart/items/"+id, map[string]any{"quantity": 1})
	}
	// Nothing above touched the cart.
	cartWant(t, cartGet(t, s), cartLine{p, 4})
}

func TestCartNeedsAuthentication(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	p := admin.NewProduct(t, admin.NewCategory(t), "Cart Mug", 900, 10)
	for _, c := range []*Client{tg.Client(), tg.Client().As("not-a-token"), tg.Client().As(uuid.NewString())} {
		c.Expect(t, http.StatusUnauthorized, "GET", "/v1/cart", nil)
		c.Expect(t, http.StatusUnauthorized, "PUT", "/v1/cart/items/"+p.ID, map[string]any{"quantity": 1})
		c.Expect(t, http.StatusUnauthorized, "DELETE", "/v1/cart/items/"+p.ID, nil)
		c.Expect(t, http.StatusUnauthorized, "DELETE", "/v1/cart", nil)
	}
}

func TestCartOwnDataOnly(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	shared := admin.NewProduct(t, cat, "Cart Shared", 1000, 10)
	onlyA := admin.NewProduct(t, cat, "Cart Only A", 2000, 10)
	a, b := tg.Register(t), tg.Register(t)

	cartPut(t, a, shared.ID, 2)
	cartPut(t, a, onlyA.ID, 1)
	cartWant(t, cartGet(t, b))

	// B's writes on the same products touch only B's cart.
	cartWant(t, cartPut(t, b, shared.ID, 5), cartLine{shared, 5})
	cartWant(t, cartGet(t, a), cartLine{shared, 2}, cartLine{onlyA, 1})
	cartWant(t, cartDecode(t, b.Expect(t, http.StatusOK, "DELETE", "/v1/cart/items/"+onlyA.ID, nil)), cartLine{shared, 5})
	cartWant(t, cartDecode(t, b.Expect(t, http.StatusOK, "DELETE", "/v1/cart/items/"+shared.ID, nil)))
	cartWant(t, cartGet(t, a), cartLine{shared, 2}, cartLine{onlyA, 1})

	cartPut(t, b, onlyA.ID, 3)
	b.Expect(t, http.StatusNoContent, "DELETE", "/v1/cart", nil)
	cartWant(t, cartGet(t, a), cartLine{shared, 2}, cartLine{onlyA, 1})
	a.Expect(t, http.StatusNoContent, "DELETE", "/v1/cart", nil)
	cartWant(t, cartGet(t, a))
}

func TestCartFollowsTheCatalog(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	kept := admin.NewProduct(t, cat, "Cart Kept", 1200, 10)
	gone := admin.NewProduct(t, cat, "Cart Gone", 3400, 10)
	s := tg.Register(t)
	cartPut(t, s, kept.ID, 2)
	cartWant(t, cartPut(t, s, gone.ID, 1), cartLine{kept, 2}, cartLine{gone, 1})

	// The cart is priced when read: a new price or name shows at once.
	admin.Expect(t, http.StatusOK, "PATCH", "/v1/products/"+kept.ID, map[string]any{"price_cents": 1100, "name": "Cart Kept II"})
	kept.PriceCents, kept.Name = 1100, "Cart Kept II"
	cartWant(t, cartGet(t, s), cartLine{kept, 2}, cartLine{gone, 1})

	admin.Expect(t, http.StatusNoContent, "DELETE", "/v1/products/"+gone.ID, nil)
	cartWant(t, cartGet(t, s), cartLine{kept, 2})
	s.Expect(t, http.StatusNotFound, "PUT", "/v1/cart/items/"+gone.ID, map[string]any{"quantity": 1})
	cartWant(t, cartGet(t, s), cartLine{kept, 2})

	// Checkout buys what the cart shows: the deleted product neither blocks
	// it nor appears in the order.
	order := s.Expect(t, http.StatusCreated, "POST", "/v1/checkout",
		map[string]any{"payment": map[string]string{"method": "card", "token": "tok_visa"}},
		"Idempotency-Key", "cart-"+uuid.NewString()).JSON(t)
	items, _ := order["items"].([]any)
	if order["total_cents"] != float64(2*1100) || len(items) != 1 {
		t.Fatalf("order = %v, want one line totalling %d", order, 2*1100)
	}
	cartWant(t, cartGet(t, s))
}
