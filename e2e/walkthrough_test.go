package e2e

import (
	"net/http"
	"testing"
)

// TestWalkthrough is the README's curl walk-through as a test: register, log
// in, browse, search, fill a cart, check out, see the order.
func TestWalkthrough(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	boot := admin.NewProduct(t, cat, "Rugged Leather Hiking Boot", 12999, 5)

	shopper := tg.Register(t)
	page := shopper.Expect(t, http.StatusOK, "GET", "/v1/products?category="+cat, nil).JSON(t)
	if items := page["items"].([]any); len(items) != 1 {
		t.Fatalf("category page has %d items, want 1", len(items))
	}
	shopper.Expect(t, http.StatusOK, "GET", "/v1/search?q=hiking+boot", nil)
	shopper.Expect(t, http.StatusOK, "PUT", "/v1/cart/items/"+boot.ID, map[string]int{"quantity": 2})
	order := shopper.Expect(t, http.StatusCreated, "POST", "/v1/checkout",
		map[string]any{"payment": map[string]string{"method": "card", "token": "tok_visa"}},
		"Idempotency-Key", "walkthrough-1").JSON(t)
	if order["status"] != "paid" || order["total_cents"].(float64) != 2*12999 {
		t.Fatalf("order = %v, want paid for 25998", order)
	}
	got := shopper.Expect(t, http.StatusOK, "GET", "/v1/orders/"+order["id"].(string), nil).JSON(t)
	if got["id"] != order["id"] {
		t.Fatalf("GET order = %v", got)
	}
}
