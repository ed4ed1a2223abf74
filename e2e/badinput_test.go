package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// badInputMaxBody mirrors the documented 1 MiB request body limit.
const badInputMaxBody = 1 << 20

// badInputRoute is one JSON-body endpoint and the shapes of body it takes.
type badInputRoute struct {
	name   string
	method string
	path   string
	client *Client
	// valid is a body the endpoint would accept. Variants of it that must
	// be refused (trailing data, an extra field, too big, wrong media type)
	// would therefore write something if they were wrongly accepted, which
	// the after-checks see.
	valid string
	// strSlots and numSlots are valid bodies with one %s where a string
	// (respectively integer) value goes.
	strSlots, numSlots []string
	// refuse lists further bodies the endpoint must refuse once decoded:
	// unicode edge cases and out-of-range values specific to it.
	refuse []string
	// checked lists the statuses allowed for a body that decodes but breaks
	// the endpoint's rules (always 400, plus 401 for credentials).
	checked    []int
	idempotent bool // send a fresh Idempotency-Key
	signed     bool // sign like the payment provider
}

// badInputCase is one request of the suite.
type badInputCase struct {
	name        string
	body        []byte
	contentType string
	want        []int
}

// badInputNest returns n levels of {"a": ... } around inner.
func badInputNest(n int, inner string) string {
	return strings.Repeat(`{"a":`, n) + inner + strings.Repeat(`}`, n)
}

// badInputCases expands a route into every body it must refuse.
func badInputCases(rt badInputRoute) []badInputCase {
	dec := []int{http.StatusBadRequest}
	checked := rt.checked
	if len(checked) == 0 {
		checked = dec
	}
	var cs []badInputCase
	add := func(name string, want []int, body string) {
		cs = append(cs, badInputCase{name: name, body: []byte(body), want: want})
	}
	// Not JSON, not an object, or not only one object.
	for i, b := range []string{
		`{`, `{"`, `}`, `{"a" 1}`, `{,}`, `not json`, `{'a':1}`, `{"a":1,}`, `{"a":01}`, `{"a":NaN}`,
		`{"a":Infinity}`, `{"a":0x10}`, `{"a":"\x"}`, `[]`, `[` + rt.valid + `]`, `null`, `"str"`, `42`, `-1`, `true`, ``, " \n\t ",
		rt.valid + `{}`, rt.valid + ` x`, rt.valid + `}`, strings.TrimSuffix(rt.valid, `}`) + `,}`,
		"\xef\xbb\xbf" + rt.valid,
		badInputNest(20000, `1`),
		strings.Repeat(`[`, 20000) + strings.Repeat(`]`, 20000),
		`{"role":"admin",` + rt.valid[1:],
		`{"stock":5,"price_cents":1,"user_id":"x",` + rt.valid[1:],
		`{"__proto__":{"admin":true},` + rt.valid[1:],
		`{"` + strings.Repeat("k", 5000) + `":1,` + rt.valid[1:],
		"{\"\xff\":1," + rt.valid[1:],
	} {
		add(fmt.Sprintf("body#%d", i), dec, b)
	}
	if !strings.Contains(rt.valid, `"id":`) { // mass assignment of the object's ID
		add("injected id", dec, `{"id":"0190f0e4-7b1c-7c3a-9f00-000000000000",`+rt.valid[1:])
	}
	for _, slot := range rt.strSlots {
		for _, v := range []string{
			`123`, `-1`, `1e400`, `9223372036854775808`, `-9223372036854775809`, `1.5`, `true`, `{}`, `[]`, `["a"]`,
			badInputNest(50, `"x"`), `"\xff\xfe"`, `"a\xc0\xafb"`, `"\xed\xa0\x80"`, `"\ud800"`, `"x\udfff"`, `"\ud83d\u0041"`,
		} {
			add("string slot "+v, dec, fmt.Sprintf(slot, v))
		}
		for _, v := range []string{`null`, `""`} {
			add("string slot "+v, checked, fmt.Sprintf(slot, v))
		}
	}
	for _, slot := range rt.numSlots {
		for _, v := range []string{
			`"12"`, `"😀"`, `1e400`, `-1e400`, `9223372036854775808`, `-9223372036854775809`, `18446744073709551616`,
			`1.5`, `1e2`, `-0.0`, `true`, `{}`, `[1]`, badInputNest(50, `1`),
		} {
			add("number slot "+v, dec, fmt.Sprintf(slot, v))
		}
		for _, v := range []string{`-1`, `-9223372036854775808`, `9223372036854775807`, `null`} {
			add("number slot "+v, checked, fmt.Sprintf(slot, v))
		}
	}
	for i, b := range rt.refuse {
		add(fmt.Sprintf("refuse#%d", i), checked, b)
	}
	cs = append(cs, badInputCase{name: "text/plain", body: []byte(rt.valid), contentType: "text/plain", want: dec})
	cs = append(cs, badInputCase{name: "form", body: []byte(rt.valid), contentType: "application/x-www-form-urlencoded", want: dec})
	// A valid body padded with whitespace to one byte over the limit: only
	// the size is wrong.
	pad := badInputMaxBody + 1 - len(rt.valid)
	big := rt.valid[:len(rt.valid)-1] + strings.Repeat(" ", pad) + "}"
	cs = append(cs, badInputCase{name: "1 MiB + 1", body: []byte(big), want: []int{http.StatusRequestEntityTooLarge}})
	big2 := strings.Replace(rt.valid, `{`, `{"pad":"`+strings.Repeat("x", badInputMaxBody)+`",`, 1)
	cs = append(cs, badInputCase{name: "over 1 MiB string", body: []byte(big2), want: []int{http.StatusRequestEntityTooLarge}})
	return cs
}

// badInputSign signs body as the payment provider does.
func badInputSign(secret, body []byte) string {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// badInputSnapshot is every piece of state a bad request could have
// written, as the API shows it.
func badInputSnapshot(t *testing.T, anon *Client, user *Session, productID string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, req := range map[string]struct {
		c    *Client
		path string
	}{
		"products":   {anon, "/v1/products?limit=100"},
		"product":    {anon, "/v1/products/" + productID},
		"categories": {anon, "/v1/categories"},
		"me":         {user.Client, "/v1/me"},
		"cart":       {user.Client, "/v1/cart"},
		"orders":     {user.Client, "/v1/orders"},
	} {
		out[name] = string(req.c.Expect(t, http.StatusOK, "GET", req.path, nil).Body)
	}
	return out
}

// TestBadInputNeverWrites sends every JSON-body endpoint malformed JSON,
// non-objects, wrong types, overflowing and negative numbers, nulls, deep
// nesting, invalid UTF-8, unicode edge cases and bodies over 1 MiB, each
// with the credentials the route needs. Every answer must be a 4xx
// problem+json (400, or 413 for size; never 5xx), and nothing may change.
func TestBadInputNeverWrites(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	anon := tg.Client()
	admin := tg.Admin(t)
	user := tg.Register(t)
	refresher := tg.Login(t, user.Email, user.Password) // own session: a wrongly accepted refresh cannot revoke user's
	cat := admin.NewCategory(t)
	prod := admin.NewProduct(t, cat, "Bad Input Lamp", 1999, 5)
	user.Expect(t, http.StatusOK, "PUT", "/v1/cart/items/"+prod.ID, map[string]int{"quantity": 1})
	freshEmail := "badinput-" + uuid.NewString() + "@example.com"
	sku := "BAD-" + uuid.NewString()[:8]
	before := badInputSnapshot(t, anon, user, prod.ID)

	routes := []badInputRoute{
		{
			name: "register", method: "POST", path: "/v1/auth/register", client: anon,
			valid:    `{"email":"` + freshEmail + `","password":"password-123","name":"Bad Input"}`,
			strSlots: []string{`{"email":"` + freshEmail + `","password":"password-123","name":%s}`},
			refuse: []string{
				`{"email":"` + freshEmail + `","password":"password-123","name":"a\u0000b"}`,
				`{"email":"` + freshEmail + `","password":"password-123","name":"\u001b[31mred"}`,
				`{"email":"` + freshEmail + `","password":"password-123","name":"\u0085"}`,
				`{"email":"` + freshEmail + `","password":"short","name":"Bad Input"}`,
				`{"email":"` + freshEmail + `","password":"` + strings.Repeat("😀", 129) + `","name":"Bad Input"}`,
				`{"email":"a\u0000b@example.com","password":"password-123","name":"Bad Input"}`,
				`{"email":"not-an-email","password":"password-123","name":"Bad Input"}`,
			},
		},
		{
			name: "login", method: "POST", path: "/v1/auth/login", client: anon,
			valid:    `{"email":"` + user.Email + `","password":"` + user.Password + `"}`,
			strSlots: []string{`{"email":%s,"password":"wrong-password"}`},
			refuse:   []string{`{"email":"a\u0000@example.com","password":"x"}`, `{"email":"` + user.Email + `","password":"\u202e😀\u0000"}`},
			checked:  []int{http.StatusBadRequest, http.StatusUnauthorized},
		},
		{
			name: "refresh", method: "POST", path: "/v1/auth/refresh", client: anon,
			valid:    `{"refresh_token":"` + refresher.RefreshToken + `"}`,
			strSlots: []string{`{"refresh_token":%s}`},
			refuse:   []string{`{"refresh_token":"\u0000"}`, `{"refresh_token":"😀\u202e"}`, `{"refresh_token":"` + refresher.RefreshToken + `\u0000"}`},
			checked:  []int{http.StatusBadRequest, http.StatusUnauthorized},
		},
		{
			name: "update me", method: "PATCH", path: "/v1/me", client: user.Client,
			valid:    `{"name":"Changed By Bad Input"}`,
			strSlots: []string{`{"name":%s}`},
			refuse:   []string{`{"name":"a\u0000b"}`, `{"name":"\u0007"}`, `{"name":"   "}`, `{"name":"` + strings.Repeat("n", 101) + `"}`, `{}`},
		},
		{
			name: "create category", method: "POST", path: "/v1/categories", client: admin.Client,
			valid:    `{"slug":"bad-` + uuid.NewString()[:8] + `","name":"Bad Input"}`,
			strSlots: []string{`{"slug":%s,"name":"Bad Input"}`, `{"slug":"bad-slot","name":%s}`},
			refuse: []string{
				`{"slug":"😀","name":"Bad"}`, `{"slug":"\u202ebad","name":"Bad"}`, `{"slug":"bad\u0000","name":"Bad"}`,
				`{"slug":"ſlug","name":"Bad"}`, `{"slug":"BAD","name":"Bad"}`, `{"slug":"bad--slug","name":"Bad"}`,
				`{"slug":"bad-name","name":"a\u0000b"}`, `{"slug":"` + cat + `","name":"Duplicate"}`,
			},
			checked: []int{http.StatusBadRequest, http.StatusConflict},
		},
		{
			name: "create product", method: "POST", path: "/v1/products", client: admin.Client,
			valid: `{"sku":"` + sku + `","name":"Bad","description":"d","price_cents":100,"category":"` + cat + `","stock":1}`,
			strSlots: []string{
				`{"sku":%s,"name":"Bad","description":"d","price_cents":100,"category":"` + cat + `","stock":1}`,
				`{"sku":"` + sku + `","name":%s,"description":"d","price_cents":100,"category":"` + cat + `","stock":1}`,
				`{"sku":"` + sku + `","name":"Bad","description":"d","price_cents":100,"category":%s,"stock":1}`,
			},
			numSlots: []string{
				`{"sku":"` + sku + `","name":"Bad","description":"d","price_cents":%s,"category":"` + cat + `","stock":1}`,
				`{"sku":"` + sku + `","name":"Bad","description":"d","price_cents":100,"category":"` + cat + `","stock":%s}`,
			},
			refuse: []string{
				`{"sku":"😀","name":"Bad","description":"d","price_cents":100,"category":"` + cat + `","stock":1}`,
				`{"sku":"\u202eSKU","name":"Bad","description":"d","price_cents":100,"category":"` + cat + `","stock":1}`,
				`{"sku":"SKU\u0000","name":"Bad","description":"d","price_cents":100,"category":"` + cat + `","stock":1}`,
				`{"sku":"` + sku + `","name":"a\u0000b","description":"d","price_cents":100,"category":"` + cat + `","stock":1}`,
				`{"sku":"` + sku + `","name":"Bad","description":"\u0000","price_cents":100,"category":"` + cat + `","stock":1}`,
				`{"sku":"` + sku + `","name":"Bad","description":"d","price_cents":100,"currency":"€","category":"` + cat + `","stock":1}`,
				`{"sku":"` + sku + `","name":"Bad","description":"d","price_cents":100,"category":"no-such-` + cat + `","stock":1}`,
				`{"sku":"` + sku + `","name":"Bad","description":"d","price_cents":100,"category":"` + cat + `","stock":1,"image_url":"javascript:alert(1)"}`,
				`{"sku":"` + prod.SKU + `","name":"Bad","description":"d","price_cents":100,"category":"` + cat + `","stock":1}`,
			},
			checked: []int{http.StatusBadRequest, http.StatusConflict},
		},
		{
			name: "update product", method: "PATCH", path: "/v1/products/" + prod.ID, client: admin.Client,
			valid:    `{"price_cents":4242}`,
			strSlots: []string{`{"name":%s}`, `{"category":%s}`},
			numSlots: []string{`{"price_cents":%s}`, `{"stock":%s}`},
			refuse: []string{
				`{}`, `{"name":"a\u0000b"}`, `{"name":"\u001b"}`, `{"image_url":"ftp://x"}`, `{"category":"no-such-` + cat + `"}`,
				`{"price_cents":100000001}`, `{"stock":1000001}`,
			},
		},
		{
			name: "put cart item", method: "PUT", path: "/v1/cart/items/" + prod.ID, client: user.Client,
			valid:    `{"quantity":3}`,
			numSlots: []string{`{"quantity":%s}`},
			refuse:   []string{`{}`, `{"quantity":0}`, `{"quantity":100}`},
		},
		{
			name: "checkout", method: "POST", path: "/v1/checkout", client: user.Client, idempotent: true,
			valid: `{"payment":{"method":"card","token":"tok_visa"}}`,
			strSlots: []string{
				`{"payment":{"method":"card","token":%s}}`,
				`{"payment":{"method":%s,"token":"tok_visa"}}`,
			},
			refuse: []string{
				`{}`, `{"payment":null}`, `{"payment":{}}`,
				`{"payment":{"method":"card\u0000","token":"tok_visa"}}`,
				`{"payment":{"method":"\u202ecard","token":"tok_visa"}}`,
				`{"payment":{"method":"😀","token":"tok_visa"}}`,
				`{"payment":{"method":"CARD","token":"tok_visa"}}`,
				`{"payment":{"method":"card","token":"` + strings.Repeat("😀", 64) + `"}}`,
				`{"payment":{"method":"card","token":"tok_visa","amount":1}}`,
				`{"payment":"card"}`, `{"payment":[]}`,
			},
		},
		{
			name: "payment webhook", method: "POST", path: "/v1/payments/webhook", client: anon, signed: true,
			valid: `{"id":"evt-` + uuid.NewString() + `","type":"payment.captured","data":{"payment_id":"pay-missing"}}`,
			strSlots: []string{
				`{"id":"evt-bad","type":%s,"data":{"payment_id":"pay-missing"}}`,
				`{"id":%s,"type":"payment.captured","data":{"payment_id":"pay-missing"}}`,
				`{"id":"evt-bad","type":"payment.captured","data":{"payment_id":%s}}`,
			},
			refuse: []string{
				`{"id":"evt-bad","type":"payment.captured\u0000","data":{"payment_id":"pay-missing"}}`,
				`{"id":"evt-bad","type":"\u202epayment.captured","data":{"payment_id":"pay-missing"}}`,
				`{"id":"evt-bad","type":"😀","data":{"payment_id":"pay-missing"}}`,
				`{"id":"evt-bad","type":"payment.captured","data":null}`,
				`{"id":"evt-bad","type":"payment.captured","data":"pay-missing"}`,
				`{"id":"evt-bad","type":"payment.captured","created_at":"yesterday","data":{"payment_id":"pay-missing"}}`,
				`{"id":"evt-bad","type":"payment.captured","created_at":1700000000,"data":{"payment_id":"pay-missing"}}`,
				`{"id":"` + strings.Repeat("e", 256) + `","type":"payment.captured","data":{"payment_id":"pay-missing"}}`,
			},
		},
	}

	t.Run("routes", func(t *testing.T) {
		for _, rt := range routes {
			t.Run(rt.name, func(t *testing.T) {
				t.Parallel()
				for _, c := range badInputCases(rt) {
					headers := []string{}
					if c.contentType != "" {
						headers = append(headers, "Content-Type", c.contentType)
					}
					if rt.idempotent {
						headers = append(headers, "Idempotency-Key", "badinput-"+uuid.NewString())
					}
					if rt.signed {
						headers = append(headers, "Payment-Signature", badInputSign(tg.WebhookSecret, c.body))
					}
					r := rt.client.Do(t, rt.method, rt.path, c.body, headers...)
					label := fmt.Sprintf("%s %s [%s] %.120q", rt.method, rt.path, c.name, c.body)
					if !slices.Contains(c.want, r.Status) {
						t.Errorf("%s: status %d, want one of %v; body %.300s", label, r.Status, c.want, r.Body)
						continue
					}
					CheckProblem(t, r, r.Status)
					if bytes.Contains(r.Body, []byte("goroutine")) || bytes.Contains(r.Body, []byte("sqlite")) {
						t.Errorf("%s: the problem leaks internals: %s", label, r.Body)
					}
				}
			})
		}
	})

	after := badInputSnapshot(t, anon, user, prod.ID)
	for name, b := range before {
		if after[name] != b {
			t.Errorf("bad input changed %s:\nbefore %s\nafter  %s", name, b, after[name])
		}
	}
	// No user was created under the email every bad registration carried.
	anon.Expect(t, http.StatusCreated, "POST", "/v1/auth/register",
		map[string]string{"email": freshEmail, "password": "password-123", "name": "Bad Input"})
	// The sessions still work: no bad request revoked or rotated anything.
	user.Expect(t, http.StatusOK, "GET", "/v1/me", nil)
	anon.Expect(t, http.StatusOK, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": refresher.RefreshToken})
}
