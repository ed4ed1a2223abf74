package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/user"
)

// invResult is one finished exchange of a concurrent run. Goroutines other
// than the test's own may not call t.Fatal, so they collect these instead.
type invResult struct {
	Status int
	Header http.Header
	Body   []byte
	Err    error
}

// invSend sends a JSON request without touching testing.T, for goroutines.
func invSend(c *Client, method, path string, body any, headers ...string) invResult {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return invResult{Err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		return invResult{Err: err}
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return invResult{Err: err}
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return invResult{Status: resp.StatusCode, Header: resp.Header, Body: out, Err: err}
}

// invTransport returns a connection pool for one test's concurrent
// clients, sized to keep their connections, and closes them before the
// server stops: a connection the client dialed but never used counts as
// active during graceful shutdown for 5 s, which would stall the server's
// stop (and its restart) past the shutdown timeout. Call it after
// NewTarget so its cleanup runs first.
func invTransport(t *testing.T) *http.Transport {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 512
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// invOver returns a copy of c that uses tr.
func invOver(c *Client, tr *http.Transport) *Client {
	cp := *c
	cp.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	return &cp
}

// invCode returns the problem code of an error answer.
func invCode(body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &p)
	return p.Code
}

// invShopper is a customer prepared for a concurrent run.
type invShopper struct {
	userID string
	client *Client
}

// invShoppers registers n customers in-process (HTTP registration of
// hundreds of users would dominate the test), logs each in over HTTP and
// puts quantity of productID in each cart.
func invShoppers(t *testing.T, tg *Target, tr *http.Transport, n int, productID string, quantity int) []invShopper {
	t.Helper()
	if tg.Server == nil {
		t.Fatal("this invariant test registers users in-process and needs the in-process server")
	}
	out := make([]invShopper, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			email, password := "inv-"+uuid.NewString()+"@example.com", "password-"+uuid.NewString()[:8]
			u, err := tg.Server.App.Users.Register(context.Background(), user.Registration{Email: email, Password: password, Name: "Shopper"})
			if err != nil {
				errs[i] = fmt.Errorf("register: %w", err)
				return
			}
			c := invOver(tg.Client(), tr)
			r := invSend(c, "POST", "/v1/auth/login", map[string]string{"email": email, "password": password})
			var pair struct {
				AccessToken string `json:"access_token"`
			}
			if r.Err != nil || r.Status != http.StatusOK || json.Unmarshal(r.Body, &pair) != nil {
				errs[i] = fmt.Errorf("login: %d %s %v", r.Status, r.Body, r.Err)
				return
			}
			c = c.As(pair.AccessToken)
			r = invSend(c, "PUT", "/v1/cart/items/"+productID, map[string]int{"quantity": quantity})
			if r.Err != nil || r.Status != http.StatusOK {
				errs[i] = fmt.Errorf("fill cart: %d %s %v", r.Status, r.Body, r.Err)
				return
			}
			out[i] = invShopper{userID: u.ID, client: c}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("shopper %d: %v", i, err)
		}
	}
	return out
}

// TestInvariantNoOversell holds the shop to "no oversell": 200 customers
// race for 10 units; exactly 10 orders are placed and charged, 190 are told
// insufficient_stock with nothing reserved, and stock ends at 0 without ever
// going negative.
func TestInvariantNoOversell(t *testing.T) {
	t.Parallel()
	const customers, stock = 200, 10
	tg := NewTarget(t)
	admin := tg.Admin(t)
	p := admin.NewProduct(t, admin.NewCategory(t), "Limited Edition Jacket", 19900, stock)
	tr := invTransport(t)
	shoppers := invShoppers(t, tg, tr, customers, p.ID, 1)
	authBefore := tg.Server.App.Provider.Authorizations()

	// A watcher reads the stock throughout the storm: a negative value at
	// any moment is an oversell even if the end state looks right.
	watchDone := make(chan struct{})
	var watchWG sync.WaitGroup
	minSeen, watchErr := int64(stock), error(nil)
	watchWG.Go(func() {
		c := invOver(tg.Client(), tr)
		for {
			select {
			case <-watchDone:
				return
			default:
			}
			r := invSend(c, "GET", "/v1/products/"+p.ID, nil)
			var got Product
			if r.Err != nil || r.Status != http.StatusOK || json.Unmarshal(r.Body, &got) != nil {
				watchErr = fmt.Errorf("read stock: %d %s %v", r.Status, r.Body, r.Err)
				return
			}
			minSeen = min(minSeen, got.Stock)
			time.Sleep(5 * time.Millisecond)
		}
	})

	results := make([]invResult, customers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range shoppers {
		wg.Go(func() {
			<-start
			results[i] = invSend(s.client, "POST", "/v1/checkout", checkoutBody("tok_visa"), "Idempotency-Key", "storm")
		})
	}
	close(start)
	wg.Wait()
	close(watchDone)
	watchWG.Wait()
	if watchErr != nil {
		t.Fatal(watchErr)
	}

	won := map[int]string{}
	lost := 0
	for i, r := range results {
		switch {
		case r.Err != nil:
			t.Fatalf("checkout %d: %v", i, r.Err)
		case r.Status == http.StatusCreated:
			var o checkoutOrder
			if err := json.Unmarshal(r.Body, &o); err != nil || o.Status != "paid" {
				t.Fatalf("checkout %d answered 201 with %s, want a paid order", i, r.Body)
			}
			won[i] = o.ID
		case r.Status == http.StatusConflict && invCode(r.Body) == "insufficient_stock":
			lost++
		default:
			t.Fatalf("checkout %d answered %d %s, want 201 or 409 insufficient_stock", i, r.Status, r.Body)
		}
	}
	if len(won) != stock || lost != customers-stock {
		t.Fatalf("%d checkouts succeeded and %d were refused, want %d and %d", len(won), lost, stock, customers-stock)
	}
	checkoutWantStock(t, tg.Client(), p.ID, 0)
	if minSeen < 0 {
		t.Fatalf("stock was seen at %d during the run, want never negative", minSeen)
	}
	if d := tg.Server.App.Provider.Authorizations() - authBefore; d != stock {
		t.Fatalf("provider authorized %d charges, want %d", d, stock)
	}

	// Every winner has exactly its order; every loser has no order and
	// still has the jacket in the cart.
	errs := make([]error, customers)
	var check sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, s := range shoppers {
		check.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r := invSend(s.client, "GET", "/v1/orders", nil)
			var page checkoutOrderPage
			if r.Err != nil || r.Status != http.StatusOK || json.Unmarshal(r.Body, &page) != nil {
				errs[i] = fmt.Errorf("list orders: %d %s %v", r.Status, r.Body, r.Err)
				return
			}
			if id, ok := won[i]; ok {
				if len(page.Items) != 1 || page.Items[0].ID != id || page.Items[0].Items[0].Quantity != 1 {
					errs[i] = fmt.Errorf("winner's orders = %+v, want just %s", page.Items, id)
				}
				return
			}
			if len(page.Items) != 0 {
				errs[i] = fmt.Errorf("refused customer has orders %+v", page.Items)
				return
			}
			r = invSend(s.client, "GET", "/v1/cart", nil)
			if r.Err != nil || r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(p.ID)) {
				errs[i] = fmt.Errorf("refused customer's cart = %d %s, want the jacket kept", r.Status, r.Body)
			}
		})
	}
	check.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("customer %d: %v", i, err)
		}
	}
}

// TestInvariantOneOrderPerKey holds the shop to "no duplicate order or
// charge": 50 identical checkouts with one key at once, and the key again
// after a restart, make one order and one authorization.
func TestInvariantOneOrderPerKey(t *testing.T) {
	t.Parallel()
	const attempts = 50
	tg := NewTarget(t)
	if tg.Server == nil {
		t.Fatal("this invariant test counts provider authorizations and restarts the in-process server")
	}
	admin := tg.Admin(t)
	p := admin.NewProduct(t, admin.NewCategory(t), "Espresso Machine", 45000, 5)
	u := tg.Register(t)
	checkoutPut(t, u, p.ID, 2)
	authBefore := tg.Server.App.Provider.Authorizations()
	tr := invTransport(t)
	racer := invOver(u.Client, tr)

	results := make([]invResult, attempts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Go(func() {
			<-start
			results[i] = invSend(racer, "POST", "/v1/checkout", checkoutBody("tok_visa"), "Idempotency-Key", "one-key")
		})
	}
	close(start)
	wg.Wait()

	var first []byte // the 201 body every replay must equal
	executed, created := 0, 0
	orderID := ""
	for i, r := range results {
		switch {
		case r.Err != nil:
			t.Fatalf("attempt %d: %v", i, r.Err)
		case r.Status == http.StatusCreated:
			created++
			var o checkoutOrder
			if err := json.Unmarshal(r.Body, &o); err != nil || o.ID == "" {
				t.Fatalf("attempt %d: 201 body %s", i, r.Body)
			}
			if orderID == "" {
				orderID, first = o.ID, r.Body
			}
			if o.ID != orderID || !bytes.Equal(r.Body, first) {
				t.Fatalf("attempt %d answered %s, want the same order as %s", i, r.Body, first)
			}
			if r.Header.Get("Idempotent-Replayed") != "true" {
				executed++
			}
		case r.Status == http.StatusConflict && invCode(r.Body) == "idempotency_key_in_use":
			if r.Header.Get("Retry-After") == "" {
				t.Fatalf("attempt %d: 409 idempotency_key_in_use without Retry-After", i)
			}
		default:
			t.Fatalf("attempt %d answered %d %s, want 201 or 409 idempotency_key_in_use", i, r.Status, r.Body)
		}
	}
	if created == 0 || executed != 1 {
		t.Fatalf("%d answers were 201 and %d of them not replays, want at least 1 and exactly 1", created, executed)
	}
	invOneOrder := func(when string) {
		t.Helper()
		list := checkoutOrders(t, u)
		if len(list) != 1 || list[0].ID != orderID || list[0].Status != "paid" {
			t.Fatalf("%s: orders = %+v, want only paid %s", when, list, orderID)
		}
		checkoutWantStock(t, u.Client, p.ID, 3)
	}
	invOneOrder("after the concurrent run")
	if d := tg.Server.App.Provider.Authorizations() - authBefore; d != 1 {
		t.Fatalf("provider authorized %d charges, want 1", d)
	}

	tr.CloseIdleConnections()
	tg.Server.Restart(t)
	// The restarted process has a fresh provider; any authorization it
	// makes would be a second charge for the same key.
	again := checkoutPlace(t, u, http.StatusCreated, "one-key", checkoutBody("tok_visa"))
	if again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, first) {
		t.Fatalf("after restart: %s (replayed %q), want the first answer %s replayed",
			again.Body, again.Header.Get("Idempotent-Replayed"), first)
	}
	invOneOrder("after restart")
	if n := tg.Server.App.Provider.Authorizations(); n != 0 {
		t.Fatalf("after restart the provider authorized %d charges, want 0", n)
	}
}

// TestInvariantOwnOrdersOnly holds the shop to "own data only" for every
// route that takes an order ID: another customer gets 404 and the order is
// untouched. Idempotency keys are per customer too.
func TestInvariantOwnOrdersOnly(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	p := admin.NewProduct(t, admin.NewCategory(t), "Canoe Paddle", 8000, 4)
	owner, stranger := tg.Register(t), tg.Register(t)
	checkoutPut(t, owner, p.ID, 1)
	placed := checkoutPaid(t, owner, "mine")
	before := owner.Expect(t, http.StatusOK, "GET", "/v1/orders/"+placed.ID, nil).Body

	for _, route := range []struct{ method, path string }{
		{"GET", "/v1/orders/" + placed.ID},
		{"POST", "/v1/orders/" + placed.ID + "/cancel"},
	} {
		t.Run(route.method+" "+route.path, func(t *testing.T) {
			r := stranger.Expect(t, http.StatusNotFound, route.method, route.path, nil)
			if bytes.Contains(r.Body, []byte(placed.ID)) {
				t.Fatalf("404 leaks the order: %s", r.Body)
			}
		})
	}
	if list := checkoutOrders(t, stranger); len(list) != 0 {
		t.Fatalf("stranger lists %+v, want no orders", list)
	}
	// The stranger reusing the owner's key is a new request of the
	// stranger's (an empty cart), never a replay of the owner's order.
	checkoutWantCode(t, checkoutPlace(t, stranger, http.StatusBadRequest, "mine", checkoutBody("tok_visa")), "empty_cart")

	after := owner.Expect(t, http.StatusOK, "GET", "/v1/orders/"+placed.ID, nil).Body
	if !bytes.Equal(before, after) {
		t.Fatalf("order changed after a stranger's requests:\n%s\nwant\n%s", after, before)
	}
	checkoutWantStock(t, owner.Client, p.ID, 3)
}

// Stock restored on decline, on provider failure and on cancel (the fourth
// stage-1 invariant here) is held by TestCheckoutPaymentRefused and
// TestOrderCancel in checkout_test.go, which also prove it is restored
// only once.
