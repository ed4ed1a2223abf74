package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Client is a small JSON client for the suites.
type Client struct {
	Base  string
	HTTP  *http.Client
	Token string // bearer token sent when non-empty
}

// Response is a finished exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object (%d): %s", r.Status, r.Body)
	}
	return m
}

// Decode decodes the body into v.
func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %T from %d %s: %v", v, r.Status, r.Body, err)
	}
}

// As returns a copy of c that sends token.
func (c *Client) As(token string) *Client {
	cp := *c
	cp.Token = token
	return &cp
}

// Do sends a request. body may be nil, a string or []byte (sent as is), or
// any value (sent as JSON). headers are name, value pairs.
func (c *Client) Do(t testing.TB, method, path string, body any, headers ...string) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
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
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, path, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// Expect sends a request and fails the test unless the status matches.
// Error statuses must come as problem+json with the same status inside.
func (c *Client) Expect(t testing.TB, status int, method, path string, body any, headers ...string) *Response {
	t.Helper()
	r := c.Do(t, method, path, body, headers...)
	if r.Status != status {
		t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, r.Status, status, r.Body)
	}
	if status >= 400 {
		CheckProblem(t, r, status)
	}
	if r.Header.Get("X-Request-ID") == "" {
		t.Fatalf("%s %s: no X-Request-ID header", method, path)
	}
	return r
}

// CheckProblem fails unless r is an RFC 9457 problem with the given status.
func CheckProblem(t testing.TB, r *Response, status int) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("error response has Content-Type %q, want application/problem+json; body %s", ct, r.Body)
	}
	var p struct {
		Type      string `json:"type"`
		Title     string `json:"title"`
		Status    int    `json:"status"`
		Code      string `json:"code"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("problem body is not JSON: %s", r.Body)
	}
	if p.Status != status || p.Type == "" || p.Title == "" || p.Code == "" || p.RequestID == "" {
		t.Fatalf("incomplete problem (want status %d): %s", status, r.Body)
	}
}

// Session is a logged-in user.
type Session struct {
	*Client
	UserID       string
	Email        string
	Password     string
	RefreshToken string
}

// Register creates a fresh customer with a unique email and logs in.
func (tg *Target) Register(t testing.TB) *Session {
	t.Helper()
	c := tg.Client()
	email := "user-" + uuid.NewString() + "@example.com"
	password := "password-" + uuid.NewString()[:8]
	r := c.Expect(t, http.StatusCreated, "POST", "/v1/auth/register",
		map[string]string{"email": email, "password": password, "name": "Test User"})
	id, _ := r.JSON(t)["id"].(string)
	s := tg.Login(t, email, password)
	s.UserID = id
	return s
}

// Login logs in with the given credentials.
func (tg *Target) Login(t testing.TB, email, password string) *Session {
	t.Helper()
	c := tg.Client()
	r := c.Expect(t, http.StatusOK, "POST", "/v1/auth/login", map[string]string{"email": email, "password": password})
	var pair struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	r.Decode(t, &pair)
	s := &Session{Client: c.As(pair.AccessToken), Email: email, Password: password, RefreshToken: pair.RefreshToken}
	me := s.Expect(t, http.StatusOK, "GET", "/v1/me", nil).JSON(t)
	s.UserID, _ = me["id"].(string)
	return s
}

// Admin logs in as the target's admin.
func (tg *Target) Admin(t testing.TB) *Session {
	t.Helper()
	if tg.AdminEmail == "" {
		t.Fatal("the target has no admin credentials (set MILLION_E2E_ADMIN_EMAIL and MILLION_E2E_ADMIN_PASSWORD)")
	}
	return tg.Login(t, tg.AdminEmail, tg.AdminPassword)
}

// Product is a product as the API returns it.
type Product struct {
	ID         string `json:"id"`
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Category   string `json:"category"`
	Stock      int64  `json:"stock"`
}

// NewCategory creates a category with a unique slug and returns the slug.
func (s *Session) NewCategory(t testing.TB) string {
	t.Helper()
	slug := "cat-" + uuid.NewString()[:8]
	s.Expect(t, http.StatusCreated, "POST", "/v1/categories", map[string]string{"slug": slug, "name": "Category " + slug})
	return slug
}

// NewProduct creates a product (s must be an admin).
func (s *Session) NewProduct(t testing.TB, category, name string, priceCents, stock int64) Product {
	t.Helper()
	r := s.Expect(t, http.StatusCreated, "POST", "/v1/products", map[string]any{
		"sku": "SKU-" + uuid.NewString()[:13], "name": name, "description": "A fine " + name + " for testing.",
		"price_cents": priceCents, "category": category, "stock": stock,
	})
	var p Product
	r.Decode(t, &p)
	return p
}
