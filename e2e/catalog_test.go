package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// catalogProduct is the full product shape of the catalog API.
type catalogProduct struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	PriceCents  int64  `json:"price_cents"`
	Currency    string `json:"currency"`
	Category    string `json:"category"`
	Stock       int64  `json:"stock"`
	ImageURL    string `json:"image_url"`
	UpdatedAt   string `json:"updated_at"`
}

// catalogPage is one page of a product list or of search results.
type catalogPage struct {
	Items      []catalogProduct `json:"items"`
	NextCursor *string          `json:"next_cursor"`
}

// catalogProductKeys are the members every product representation must carry.
var catalogProductKeys = []string{"id", "sku", "name", "description", "price_cents", "currency", "category", "stock", "image_url", "updated_at"}

// catalogCheckShape fails unless body is a product object with every member
// of the contract, of the right JSON type, and a UTC RFC 3339 updated_at.
func catalogCheckShape(t testing.TB, body []byte) catalogProduct {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("product is not a JSON object: %s", body)
	}
	for _, k := range catalogProductKeys {
		v, ok := m[k]
		if !ok {
			t.Fatalf("product lacks %q: %s", k, body)
		}
		switch k {
		case "price_cents", "stock":
			if _, ok := v.(float64); !ok {
				t.Fatalf("product %q is %T, want a number: %s", k, v, body)
			}
		default:
			if _, ok := v.(string); !ok {
				t.Fatalf("product %q is %T, want a string: %s", k, v, body)
			}
		}
	}
	var p catalogProduct
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("decode product: %v", err)
	}
	ts, err := time.Parse(time.RFC3339Nano, p.UpdatedAt)
	if err != nil || !strings.HasSuffix(p.UpdatedAt, "Z") {
		t.Fatalf("updated_at = %q, want RFC 3339 in UTC", p.UpdatedAt)
	}
	if d := time.Since(ts); d < -time.Minute || d > time.Hour {
		t.Fatalf("updated_at = %s, not around now", p.UpdatedAt)
	}
	return p
}

// catalogFieldErrors returns the field names of a problem's errors member.
func catalogFieldErrors(t testing.TB, r *Response) []string {
	t.Helper()
	var p struct {
		Errors []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	r.Decode(t, &p)
	var out []string
	for _, e := range p.Errors {
		if e.Message == "" {
			t.Fatalf("field error for %q has no message: %s", e.Field, r.Body)
		}
		out = append(out, e.Field)
	}
	return out
}

// catalogWantField fails unless the 400 problem r names field among its errors.
func catalogWantField(t testing.TB, r *Response, field string) {
	t.Helper()
	if got := catalogFieldErrors(t, r); !slices.Contains(got, field) {
		t.Fatalf("problem names fields %q, want %q among them: %s", got, field, r.Body)
	}
}

// catalogValidProduct returns a complete, valid create body in category.
func catalogValidProduct(category string) map[string]any {
	return map[string]any{
		"sku": "SKU-" + uuid.NewString(), "name": "Trail Lantern", "description": "Bright, light, waterproof.",
		"price_cents": 4599, "currency": "USD", "category": category, "stock": 12,
		"image_url": "https://img.example.com/lantern.png",
	}
}

// catalogCreate creates a product from body and returns it.
func catalogCreate(t testing.TB, admin *Session, body map[string]any) catalogProduct {
	t.Helper()
	r := admin.Expect(t, http.StatusCreated, "POST", "/v1/products", body)
	return catalogCheckShape(t, r.Body)
}

// catalogGet fetches a product.
func catalogGet(t testing.TB, c *Client, id string) (catalogProduct, *Response) {
	t.Helper()
	r := c.Expect(t, http.StatusOK, "GET", "/v1/products/"+id, nil)
	return catalogCheckShape(t, r.Body), r
}

func TestCatalogCategories(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	customer := tg.Register(t)
	anon := tg.Client()

	slug := "cat-" + uuid.NewString()[:8]
	r := admin.Expect(t, http.StatusCreated, "POST", "/v1/categories", map[string]string{"slug": slug, "name": "  Camping Gear  "})
	var created struct{ ID, Slug, Name string }
	r.Decode(t, &created)
	if created.ID == "" || created.Slug != slug || created.Name != "Camping Gear" {
		t.Fatalf("created category = %+v, want id, slug %q and the trimmed name", created, slug)
	}

	t.Run("list", func(t *testing.T) {
		t.Parallel()
		var list struct {
			Items []struct{ ID, Slug, Name string } `json:"items"`
		}
		anon.Expect(t, http.StatusOK, "GET", "/v1/categories", nil).Decode(t, &list)
		found := 0
		for _, c := range list.Items {
			if c.ID == "" || c.Slug == "" || c.Name == "" {
				t.Fatalf("category with an empty member in %+v", list.Items)
			}
			if c.Slug == slug {
				found++
				if c.ID != created.ID || c.Name != created.Name {
					t.Fatalf("listed %+v, created %+v", c, created)
				}
			}
		}
		if found != 1 {
			t.Fatalf("new category listed %d times, want 1", found)
		}
	})

	t.Run("duplicate slug", func(t *testing.T) {
		t.Parallel()
		admin.Expect(t, http.StatusConflict, "POST", "/v1/categories", map[string]string{"slug": slug, "name": "Another"})
	})

	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name  string
			body  any
			field string
		}{
			{"slug with a space and capitals", map[string]string{"slug": "Bad Slug", "name": "X"}, "slug"},
			{"slug with a trailing hyphen", map[string]string{"slug": "bad-", "name": "X"}, "slug"},
			{"slug over 64 characters", map[string]string{"slug": strings.Repeat("a", 65), "name": "X"}, "slug"},
			{"missing slug", map[string]string{"name": "X"}, "slug"},
			{"empty name", map[string]string{"slug": "ok-" + uuid.NewString()[:8], "name": ""}, "name"},
			{"blank name", map[string]string{"slug": "ok-" + uuid.NewString()[:8], "name": "   "}, "name"},
			{"missing name", map[string]string{"slug": "ok-" + uuid.NewString()[:8]}, "name"},
			{"unknown field", map[string]string{"slug": "ok-" + uuid.NewString()[:8], "name": "X", "id": "mine"}, "id"},
			{"slug of the wrong type", map[string]any{"slug": 7, "name": "X"}, "slug"},
		} {
			r := admin.Expect(t, http.StatusBadRequest, "POST", "/v1/categories", tc.body)
			if tc.field != "" {
				catalogWantField(t, r, tc.field)
			}
		}
		admin.Expect(t, http.StatusBadRequest, "POST", "/v1/categories", "not json")
	})

	t.Run("auth", func(t *testing.T) {
		t.Parallel()
		body := map[string]string{"slug": "auth-" + uuid.NewString()[:8], "name": "Nope"}
		anon.Expect(t, http.StatusUnauthorized, "POST", "/v1/categories", body)
		anon.As("not-a-token").Expect(t, http.StatusUnauthorized, "POST", "/v1/categories", body)
		customer.Expect(t, http.StatusForbidden, "POST", "/v1/categories", body)
		var list struct {
			Items []struct{ Slug string } `json:"items"`
		}
		anon.Expect(t, http.StatusOK, "GET", "/v1/categories", nil).Decode(t, &list)
		for _, c := range list.Items {
			if c.Slug == body["slug"] {
				t.Fatalf("a refused request created category %q", c.Slug)
			}
		}
	})
}

func TestCatalogCreateProduct(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)

	t.Run("created", func(t *testing.T) {
		t.Parallel()
		body := catalogValidProduct(cat)
		r := admin.Expect(t, http.StatusCreated, "POST", "/v1/products", body)
		p := catalogCheckShape(t, r.Body)
		want := catalogProduct{ID: p.ID, SKU: body["sku"].(string), Name: "Trail Lantern", Description: "Bright, light, waterproof.",
			PriceCents: 4599, Currency: "USD", Category: cat, Stock: 12, ImageURL: "https://img.example.com/lantern.png", UpdatedAt: p.UpdatedAt}
		if p.ID == "" || p != want {
			t.Fatalf("created product = %+v, want %+v", p, want)
		}
		if loc := r.Header.Get("Location"); loc != "/v1/products/"+p.ID {
			t.Fatalf("Location = %q, want /v1/products/%s", loc, p.ID)
		}
		if got, _ := catalogGet(t, tg.Client(), p.ID); got != p {
			t.Fatalf("GET after create = %+v, want %+v", got, p)
		}
	})

	t.Run("optional fields default", func(t *testing.T) {
		t.Parallel()
		body := catalogValidProduct(cat)
		delete(body, "currency")
		delete(body, "image_url")
		body["price_cents"], body["stock"] = 0, 0
		p := catalogCreate(t, admin, body)
		if p.Currency != "USD" || p.ImageURL != "" || p.PriceCents != 0 || p.Stock != 0 {
			t.Fatalf("product = %+v, want currency USD, no image, free and out of stock", p)
		}
	})

	t.Run("largest price and stock", func(t *testing.T) {
		t.Parallel()
		body := catalogValidProduct(cat)
		body["price_cents"], body["stock"] = 100_000_000, 1_000_000
		if p := catalogCreate(t, admin, body); p.PriceCents != 100_000_000 || p.Stock != 1_000_000 {
			t.Fatalf("product = %+v, want the maximum price and stock", p)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name  string
			edit  func(m map[string]any)
			field string
		}{
			{"unknown category", func(m map[string]any) { m["category"] = "no-such-" + uuid.NewString()[:8] }, "category"},
			{"missing category", func(m map[string]any) { delete(m, "category") }, "category"},
			{"other currency", func(m map[string]any) { m["currency"] = "EUR" }, "currency"},
			{"lowercase currency", func(m map[string]any) { m["currency"] = "usd" }, "currency"},
			{"negative price", func(m map[string]any) { m["price_cents"] = -1 }, "price_cents"},
			{"price over the maximum", func(m map[string]any) { m["price_cents"] = 100_000_001 }, "price_cents"},
			{"price beyond int64", func(m map[string]any) { m["price_cents"] = json.Number("99999999999999999999") }, "price_cents"},
			{"fractional price", func(m map[string]any) { m["price_cents"] = 12.5 }, "price_cents"},
			{"price as a string", func(m map[string]any) { m["price_cents"] = "4599" }, "price_cents"},
			{"missing price", func(m map[string]any) { delete(m, "price_cents") }, "price_cents"},
			{"negative stock", func(m map[string]any) { m["stock"] = -1 }, "stock"},
			{"stock over the maximum", func(m map[string]any) { m["stock"] = 1_000_001 }, "stock"},
			{"missing stock", func(m map[string]any) { delete(m, "stock") }, "stock"},
			{"missing sku", func(m map[string]any) { delete(m, "sku") }, "sku"},
			{"sku with a space", func(m map[string]any) { m["sku"] = "SKU " + uuid.NewString()[:8] }, "sku"},
			{"missing name", func(m map[string]any) { delete(m, "name") }, "name"},
			{"blank name", func(m map[string]any) { m["name"] = "  " }, "name"},
			{"name with a control character", func(m map[string]any) { m["name"] = "Bad\x00Name" }, "name"},
			{"missing description", func(m map[string]any) { delete(m, "description") }, "description"},
			{"ftp image", func(m map[string]any) { m["image_url"] = "ftp://x" }, "image_url"},
			{"relative image", func(m map[string]any) { m["image_url"] = "/img/a.png" }, "image_url"},
			{"unknown field id", func(m map[string]any) { m["id"] = uuid.NewString() }, "id"},
			{"unknown field stock_level", func(m map[string]any) { m["stock_level"] = 5 }, "stock_level"},
			{"unknown field created_at", func(m map[string]any) { m["created_at"] = "2020-01-01T00:00:00Z" }, "created_at"},
		} {
			body := catalogValidProduct(cat)
			tc.edit(body)
			r := admin.Do(t, "POST", "/v1/products", body)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("%s: status %d, want 400; body %s", tc.name, r.Status, r.Body)
			}
			CheckProblem(t, r, http.StatusBadRequest)
			catalogWantField(t, r, tc.field)
		}
		for _, raw := range []string{"", "null", "[]", `{"sku":`, `{} {}`} {
			r := admin.Do(t, "POST", "/v1/products", raw)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("body %q: status %d, want 400; %s", raw, r.Status, r.Body)
			}
			CheckProblem(t, r, http.StatusBadRequest)
		}
	})

	t.Run("duplicate sku", func(t *testing.T) {
		t.Parallel()
		body := catalogValidProduct(cat)
		first := catalogCreate(t, admin, body)
		body["name"] = "Impostor"
		admin.Expect(t, http.StatusConflict, "POST", "/v1/products", body)
		if got, _ := catalogGet(t, tg.Client(), first.ID); got.Name != "Trail Lantern" {
			t.Fatalf("the original product changed: %+v", got)
		}
	})

	t.Run("auth", func(t *testing.T) {
		t.Parallel()
		body := catalogValidProduct(cat)
		tg.Client().Expect(t, http.StatusUnauthorized, "POST", "/v1/products", body)
		tg.Register(t).Expect(t, http.StatusForbidden, "POST", "/v1/products", body)
		// The SKU is still free: the refused requests wrote nothing.
		catalogCreate(t, admin, body)
	})
}

func TestCatalogGetProduct(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	p := catalogCreate(t, admin, catalogValidProduct(cat))
	anon := tg.Client()

	_, r := catalogGet(t, anon, p.ID)
	etag := r.Header.Get("ETag")
	if len(etag) < 3 || !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) {
		t.Fatalf("ETag = %q, want a quoted entity tag", etag)
	}
	if r.Header.Get("Cache-Control") == "" {
		t.Fatal("GET product has no Cache-Control")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q", ct)
	}
	if _, again := catalogGet(t, anon, p.ID); again.Header.Get("ETag") != etag {
		t.Fatalf("ETag of an unchanged product changed: %q then %q", etag, again.Header.Get("ETag"))
	}

	nm := anon.Expect(t, http.StatusNotModified, "GET", "/v1/products/"+p.ID, nil, "If-None-Match", etag)
	if len(nm.Body) != 0 {
		t.Fatalf("304 has a body: %q", nm.Body)
	}
	if nm.Header.Get("ETag") != etag {
		t.Fatalf("304 ETag = %q, want %q", nm.Header.Get("ETag"), etag)
	}
	anon.Expect(t, http.StatusNotModified, "GET", "/v1/products/"+p.ID, nil, "If-None-Match", `"other", `+etag)
	anon.Expect(t, http.StatusOK, "GET", "/v1/products/"+p.ID, nil, "If-None-Match", `"not-the-tag"`)

	for _, id := range []string{uuid.NewString(), "nope", url.PathEscape("' OR 1=1 --")} {
		anon.Expect(t, http.StatusNotFound, "GET", "/v1/products/"+id, nil)
		anon.Expect(t, http.StatusNotFound, "GET", "/v1/products/"+id, nil, "If-None-Match", etag)
	}
}

func TestCatalogPatchProduct(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	other := admin.NewCategory(t)
	anon := tg.Client()

	t.Run("only given fields change", func(t *testing.T) {
		t.Parallel()
		p := catalogCreate(t, admin, catalogValidProduct(cat))
		_, r := catalogGet(t, anon, p.ID)
		etag := r.Header.Get("ETag")

		time.Sleep(2 * time.Millisecond) // so that updated_at can move
		patched := catalogCheckShape(t, admin.Expect(t, http.StatusOK, "PATCH", "/v1/products/"+p.ID, map[string]any{"price_cents": 3999}).Body)
		want := p
		want.PriceCents, want.UpdatedAt = 3999, patched.UpdatedAt
		if patched != want {
			t.Fatalf("PATCH price answered %+v, want %+v", patched, want)
		}
		before, _ := time.Parse(time.RFC3339Nano, p.UpdatedAt)
		after, _ := time.Parse(time.RFC3339Nano, patched.UpdatedAt)
		if !after.After(before) {
			t.Fatalf("updated_at did not advance: %s then %s", p.UpdatedAt, patched.UpdatedAt)
		}
		got, r2 := catalogGet(t, anon, p.ID)
		if got != patched {
			t.Fatalf("GET after PATCH = %+v, want %+v", got, patched)
		}
		if r2.Header.Get("ETag") == etag {
			t.Fatalf("ETag %q unchanged after a price change", etag)
		}
		// A client holding the old version must get the new one, not 304.
		fresh := anon.Expect(t, http.StatusOK, "GET", "/v1/products/"+p.ID, nil, "If-None-Match", etag)
		if catalogCheckShape(t, fresh.Body).PriceCents != 3999 {
			t.Fatalf("revalidation served the old price: %s", fresh.Body)
		}

		all := catalogCheckShape(t, admin.Expect(t, http.StatusOK, "PATCH", "/v1/products/"+p.ID, map[string]any{
			"name": "  Storm Lantern ", "description": "", "category": other, "stock": 0, "image_url": "",
		}).Body)
		want = patched
		want.Name, want.Description, want.Category, want.Stock, want.ImageURL, want.UpdatedAt = "Storm Lantern", "", other, 0, "", all.UpdatedAt
		if all != want {
			t.Fatalf("PATCH of every other field answered %+v, want %+v", all, want)
		}
		if got, _ := catalogGet(t, anon, p.ID); got != all {
			t.Fatalf("GET after PATCH = %+v, want %+v", got, all)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		p := catalogCreate(t, admin, catalogValidProduct(cat))
		for _, tc := range []struct {
			name  string
			body  any
			field string // "" when the problem need not name one
		}{
			{"empty object", map[string]any{}, ""},
			{"only nulls", map[string]any{"name": nil}, ""},
			{"negative price", map[string]any{"price_cents": -1}, "price_cents"},
			{"price over the maximum", map[string]any{"price_cents": 100_000_001}, "price_cents"},
			{"price as a string", map[string]any{"price_cents": "10"}, "price_cents"},
			{"negative stock", map[string]any{"stock": -1}, "stock"},
			{"blank name", map[string]any{"name": " "}, "name"},
			{"unknown category", map[string]any{"category": "no-such-" + uuid.NewString()[:8]}, "category"},
			{"ftp image", map[string]any{"image_url": "ftp://x"}, "image_url"},
			{"sku is not patchable", map[string]any{"sku": "NEW-SKU"}, "sku"},
			{"currency is not patchable", map[string]any{"currency": "USD"}, "currency"},
			{"id is not patchable", map[string]any{"id": uuid.NewString()}, "id"},
			{"one bad field spoils the rest", map[string]any{"name": "Fine", "price_cents": -5}, "price_cents"},
		} {
			r := admin.Do(t, "PATCH", "/v1/products/"+p.ID, tc.body)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("%s: status %d, want 400; body %s", tc.name, r.Status, r.Body)
			}
			CheckProblem(t, r, http.StatusBadRequest)
			if tc.field != "" {
				catalogWantField(t, r, tc.field)
			}
		}
		if got, _ := catalogGet(t, anon, p.ID); got != p {
			t.Fatalf("refused PATCHes changed the product: %+v, was %+v", got, p)
		}
	})

	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		admin.Expect(t, http.StatusNotFound, "PATCH", "/v1/products/"+uuid.NewString(), map[string]any{"price_cents": 1})
	})

	t.Run("auth", func(t *testing.T) {
		t.Parallel()
		p := catalogCreate(t, admin, catalogValidProduct(cat))
		body := map[string]any{"price_cents": 1}
		anon.Expect(t, http.StatusUnauthorized, "PATCH", "/v1/products/"+p.ID, body)
		tg.Register(t).Expect(t, http.StatusForbidden, "PATCH", "/v1/products/"+p.ID, body)
		if got, _ := catalogGet(t, anon, p.ID); got != p {
			t.Fatalf("refused PATCHes changed the product: %+v, was %+v", got, p)
		}
	})
}

func TestCatalogDeleteProduct(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	anon := tg.Client()
	p := catalogCreate(t, admin, catalogValidProduct(cat))
	keep := catalogCreate(t, admin, catalogValidProduct(cat))

	anon.Expect(t, http.StatusUnauthorized, "DELETE", "/v1/products/"+p.ID, nil)
	tg.Register(t).Expect(t, http.StatusForbidden, "DELETE", "/v1/products/"+p.ID, nil)
	catalogGet(t, anon, p.ID)

	r := admin.Expect(t, http.StatusNoContent, "DELETE", "/v1/products/"+p.ID, nil)
	if len(r.Body) != 0 {
		t.Fatalf("204 has a body: %q", r.Body)
	}
	anon.Expect(t, http.StatusNotFound, "GET", "/v1/products/"+p.ID, nil)
	admin.Expect(t, http.StatusNotFound, "DELETE", "/v1/products/"+p.ID, nil)
	admin.Expect(t, http.StatusNotFound, "PATCH", "/v1/products/"+p.ID, map[string]any{"stock": 3})
	admin.Expect(t, http.StatusNotFound, "DELETE", "/v1/products/"+uuid.NewString(), nil)

	var page catalogPage
	anon.Expect(t, http.StatusOK, "GET", "/v1/products?category="+cat, nil).Decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != keep.ID {
		t.Fatalf("category lists %+v after the delete, want only %s", page.Items, keep.ID)
	}
	// The SKU of a deleted product is free again.
	body := catalogValidProduct(cat)
	body["sku"] = p.SKU
	catalogCreate(t, admin, body)
}

// catalogWalk follows next_cursor from the first page of query until the
// last page and returns every item in order. Every page but the last must be
// full; the last must not carry a cursor.
func catalogWalk(t testing.TB, c *Client, path string, limit int) []catalogProduct {
	t.Helper()
	var all []catalogProduct
	next := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("%s: more than 100 pages, the cursor does not advance", path)
		}
		p := path + "&limit=" + strconv.Itoa(limit)
		if next != "" {
			p += "&cursor=" + url.QueryEscape(next)
		}
		var page catalogPage
		c.Expect(t, http.StatusOK, "GET", p, nil).Decode(t, &page)
		if page.Items == nil {
			t.Fatalf("%s: items is not an array", p)
		}
		if len(page.Items) > limit {
			t.Fatalf("%s: %d items, over the limit %d", p, len(page.Items), limit)
		}
		all = append(all, page.Items...)
		if page.NextCursor == nil {
			return all
		}
		if *page.NextCursor == "" {
			t.Fatalf("%s: next_cursor is present but empty", p)
		}
		if len(page.Items) != limit {
			t.Fatalf("%s: a page with a next_cursor has %d items, want %d", p, len(page.Items), limit)
		}
		next = *page.NextCursor
	}
}

func TestCatalogListPagination(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	otherCat := admin.NewCategory(t)
	anon := tg.Client()

	// Prices repeat so that the keyset's tie-breaker is exercised, and one
	// product is free so that a zero price travels through a cursor.
	const n = 25
	created := make([]catalogProduct, 0, n)
	for i := range n {
		body := catalogValidProduct(cat)
		body["name"] = "Listed " + strconv.Itoa(i)
		body["price_cents"] = (i * 7 % 5) * 250
		created = append(created, catalogCreate(t, admin, body))
	}
	for range 3 {
		catalogCreate(t, admin, catalogValidProduct(otherCat))
	}
	byID := map[string]catalogProduct{}
	for _, p := range created {
		byID[p.ID] = p
	}

	check := func(t *testing.T, sort string, items []catalogProduct) {
		t.Helper()
		if len(items) != n {
			t.Fatalf("sort=%s: walked %d items, want %d", sort, len(items), n)
		}
		seen := map[string]bool{}
		for i, p := range items {
			want, ok := byID[p.ID]
			if !ok {
				t.Fatalf("sort=%s: item %d is %s (%s), not a product of the category", sort, i, p.ID, p.Category)
			}
			if seen[p.ID] {
				t.Fatalf("sort=%s: %s appears twice", sort, p.ID)
			}
			seen[p.ID] = true
			if p != want {
				t.Fatalf("sort=%s: listed %+v, created %+v", sort, p, want)
			}
		}
	}

	t.Run("newest", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/v1/products?category=" + cat + "&sort=newest", "/v1/products?category=" + cat} {
			items := catalogWalk(t, anon, path, 10)
			check(t, "newest", items)
			for i, p := range items {
				if want := created[n-1-i]; p.ID != want.ID {
					t.Fatalf("%s: item %d is %q, want %q (newest first)", path, i, p.Name, want.Name)
				}
			}
		}
	})

	for _, tc := range []struct {
		sort    string
		ordered func(a, b int64) bool
	}{
		{"price", func(a, b int64) bool { return a <= b }},
		{"-price", func(a, b int64) bool { return a >= b }},
	} {
		t.Run(tc.sort, func(t *testing.T) {
			t.Parallel()
			for _, limit := range []int{10, 1, 3, 25, 100} {
				items := catalogWalk(t, anon, "/v1/products?category="+cat+"&sort="+url.QueryEscape(tc.sort), limit)
				check(t, tc.sort, items)
				for i := 1; i < len(items); i++ {
					if !tc.ordered(items[i-1].PriceCents, items[i].PriceCents) {
						t.Fatalf("sort=%s limit=%d: price %d before %d", tc.sort, limit, items[i-1].PriceCents, items[i].PriceCents)
					}
				}
			}
		})
	}

	t.Run("category filter", func(t *testing.T) {
		t.Parallel()
		items := catalogWalk(t, anon, "/v1/products?category="+otherCat, 2)
		if len(items) != 3 {
			t.Fatalf("other category lists %d items, want 3", len(items))
		}
		for _, p := range items {
			if p.Category != otherCat {
				t.Fatalf("category %s lists a product of %s", otherCat, p.Category)
			}
		}
	})

	t.Run("unknown category", func(t *testing.T) {
		t.Parallel()
		r := anon.Expect(t, http.StatusOK, "GET", "/v1/products?category=no-such-"+uuid.NewString()[:8], nil)
		m := r.JSON(t)
		items, ok := m["items"].([]any)
		if !ok || len(items) != 0 {
			t.Fatalf("unknown category answered %s, want an empty items array", r.Body)
		}
		if _, has := m["next_cursor"]; has {
			t.Fatalf("empty page has a next_cursor: %s", r.Body)
		}
	})

	t.Run("default limit", func(t *testing.T) {
		t.Parallel()
		var page catalogPage
		anon.Expect(t, http.StatusOK, "GET", "/v1/products", nil).Decode(t, &page)
		if len(page.Items) != 20 || page.NextCursor == nil {
			t.Fatalf("unfiltered first page has %d items (cursor %v), want 20 and a cursor", len(page.Items), page.NextCursor != nil)
		}
	})
}

func TestCatalogListErrors(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	for range 3 {
		catalogCreate(t, admin, catalogValidProduct(cat))
	}
	anon := tg.Client()

	cursorOf := func(sort string) string {
		var page catalogPage
		anon.Expect(t, http.StatusOK, "GET", "/v1/products?limit=1&category="+cat+"&sort="+url.QueryEscape(sort), nil).Decode(t, &page)
		if page.NextCursor == nil {
			t.Fatalf("sort=%s: no next_cursor after 1 of 3 items", sort)
		}
		return url.QueryEscape(*page.NextCursor)
	}
	priceCursor, newestCursor := cursorOf("price"), cursorOf("newest")

	for _, tc := range []struct {
		query string
		field string
	}{
		{"limit=0", "limit"},
		{"limit=101", "limit"},
		{"limit=-1", "limit"},
		{"limit=abc", "limit"},
		{"limit=", "limit"},
		{"limit=1.5", "limit"},
		{"limit=99999999999999999999", "limit"},
		{"limit=10&limit=20", "limit"},
		{"sort=bogus", "sort"},
		{"sort=PRICE", "sort"},
		{"sort=price&sort=newest", "sort"},
		{"cursor=garbage", "cursor"},
		{"cursor=", "cursor"},
		{"cursor=" + strings.Repeat("A", 600), "cursor"},
		{"cursor=%FF%FE", "cursor"},
		{"sort=newest&cursor=" + priceCursor, "cursor"},
		{"sort=-price&cursor=" + priceCursor, "cursor"},
		{"sort=price&cursor=" + newestCursor, "cursor"},
		{"category=a&category=b", "category"},
	} {
		r := anon.Do(t, "GET", "/v1/products?"+tc.query, nil)
		if r.Status != http.StatusBadRequest {
			t.Fatalf("?%s: status %d, want 400; body %s", tc.query, r.Status, r.Body)
		}
		CheckProblem(t, r, http.StatusBadRequest)
		catalogWantField(t, r, tc.field)
	}
	// The cursors themselves are good on the sort they came from.
	anon.Expect(t, http.StatusOK, "GET", "/v1/products?sort=price&category="+cat+"&cursor="+priceCursor, nil)
	anon.Expect(t, http.StatusOK, "GET", "/v1/products?category="+cat+"&cursor="+newestCursor, nil)
}
