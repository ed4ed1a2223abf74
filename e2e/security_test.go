package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/millionshop/million/app"
)

// secJWTSecret is the access-token key of the in-process servers of the
// forged-token tests, so they can sign tokens exactly as the server does.
const secJWTSecret = "security-e2e-jwt-secret-0123456789abcdef"

// secClaims mirror the server's access token claims.
type secClaims struct {
	SessionID string `json:"sid,omitempty"`
	Role      string `json:"role,omitempty"`
	Type      string `json:"typ,omitempty"`
	jwt.RegisteredClaims
}

// secSign signs claims with the given method and key.
func secSign(t testing.TB, method jwt.SigningMethod, key any, c secClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// secClaimsOf reads a real access token's claims without verifying it.
func secClaimsOf(t testing.TB, token string) secClaims {
	t.Helper()
	var c secClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		t.Fatalf("parse access token: %v", err)
	}
	if c.Subject == "" || c.SessionID == "" {
		t.Fatalf("access token has no sub or sid: %+v", c)
	}
	return c
}

// TestSecurityForgedTokens: only an HS256 token signed with the server's key,
// from the right issuer, unexpired, of type access and naming a live session
// of its subject is accepted. A control token built the same way proves each
// refusal is for the one defect the case carries.
func TestSecurityForgedTokens(t *testing.T) {
	t.Parallel()
	tg := authInProcessTarget(t, func(c *app.Config) { c.JWTSecret = secJWTSecret })
	victim := tg.Register(t)
	other := tg.Register(t)
	real := secClaimsOf(t, victim.Token)
	otherClaims := secClaimsOf(t, other.Token)
	key := []byte(secJWTSecret)
	now := time.Now()

	valid := func(mut func(*secClaims)) secClaims {
		c := secClaims{SessionID: real.SessionID, Role: "customer", Type: "access",
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: "million", Subject: real.Subject,
				IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
				ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)),
			}}
		if mut != nil {
			mut(&c)
		}
		return c
	}
	c := tg.Client()

	control := secSign(t, jwt.SigningMethodHS256, key, valid(nil))
	if me := c.As(control).Expect(t, http.StatusOK, "GET", "/v1/me", nil).JSON(t); me["id"] != victim.UserID {
		t.Fatalf("control token is for %v, want %s", me["id"], victim.UserID)
	}

	// A role claim cannot grant admin: the role comes from the session.
	promoted := secSign(t, jwt.SigningMethodHS256, key, valid(func(c *secClaims) { c.Role = "admin" }))
	c.As(promoted).Expect(t, http.StatusForbidden, "POST", "/v1/categories",
		map[string]string{"slug": "sec-" + uuid.NewString()[:8], "name": "Forged"})

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	seg := strings.Split(victim.Token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(seg[1])
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(payload, []byte(real.Subject), []byte(otherClaims.Subject), 1)
	if bytes.Equal(tampered, payload) {
		t.Fatalf("payload %s does not hold its subject", payload)
	}

	tests := []struct {
		name  string
		token string
	}{
		{"alg none", secSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid(nil))},
		{"alg none with the real payload", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + seg[1] + "."},
		{"HS256 with a wrong key", secSign(t, jwt.SigningMethodHS256, []byte("not-the-server-key-0123456789abcdefgh"), valid(nil))},
		{"HS256 valid signature but expired", secSign(t, jwt.SigningMethodHS256, key, valid(func(c *secClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Hour))
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute))
		}))},
		{"HS256 without expiry", secSign(t, jwt.SigningMethodHS256, key, valid(func(c *secClaims) { c.ExpiresAt = nil }))},
		{"HS384 with the server key", secSign(t, jwt.SigningMethodHS384, key, valid(nil))},
		{"RS256", secSign(t, jwt.SigningMethodRS256, rsaKey, valid(nil))},
		{"wrong issuer", secSign(t, jwt.SigningMethodHS256, key, valid(func(c *secClaims) { c.Issuer = "someone-else" }))},
		{"typ refresh", secSign(t, jwt.SigningMethodHS256, key, valid(func(c *secClaims) { c.Type = "refresh" }))},
		{"unknown session", secSign(t, jwt.SigningMethodHS256, key, valid(func(c *secClaims) { c.SessionID = uuid.NewString() }))},
		{"another user's session", secSign(t, jwt.SigningMethodHS256, key, valid(func(c *secClaims) { c.SessionID = otherClaims.SessionID }))},
		{"real token with a swapped subject", seg[0] + "." + base64.RawURLEncoding.EncodeToString(tampered) + "." + seg[2]},
		{"real token without signature", seg[0] + "." + seg[1] + "."},
		{"refresh token as bearer", victim.RefreshToken},
		{"garbage", "garbage"},
		{"three garbage segments", "a.b.c"},
		{"huge", strings.Repeat("A", 6000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := c.As(tc.token).Expect(t, http.StatusUnauthorized, "GET", "/v1/me", nil)
			if strings.Contains(string(r.Body), victim.Email) {
				t.Errorf("refusal leaks the user: %s", r.Body)
			}
		})
	}
	// None of the forgeries disturbed the real session.
	victim.Expect(t, http.StatusOK, "GET", "/v1/me", nil)
}

// TestSecurityRefreshReuseRevokesSession: presenting a rotated refresh token
// means two parties hold the chain, so the whole session dies: the newer
// refresh token and every access token of the session are refused.
func TestSecurityRefreshReuseRevokesSession(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	s := tg.Register(t)
	bystander := tg.Login(t, s.Email, s.Password) // another session of the same user
	c := tg.Client()

	pair2 := authCheckPair(t, c.Expect(t, http.StatusOK, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.RefreshToken}))
	c.As(pair2.AccessToken).Expect(t, http.StatusOK, "GET", "/v1/me", nil)

	r := c.Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.RefreshToken})
	if code := authProblemCode(t, r); code != "refresh_token_reused" {
		t.Errorf("reuse code = %q, want refresh_token_reused", code)
	}
	c.Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": pair2.RefreshToken})
	c.As(pair2.AccessToken).Expect(t, http.StatusUnauthorized, "GET", "/v1/me", nil)
	s.Expect(t, http.StatusUnauthorized, "GET", "/v1/me", nil)

	bystander.Expect(t, http.StatusOK, "GET", "/v1/me", nil)
	c.Expect(t, http.StatusOK, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": bystander.RefreshToken})
}

// TestSecurityLoginAnswersAlike: an unknown email and a wrong password get
// the same status and the same bytes, so login cannot enumerate accounts.
func TestSecurityLoginAnswersAlike(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	s := tg.Register(t)
	c := tg.Client()
	unknown := map[string]string{"email": authEmail("ghost"), "password": s.Password}
	wrong := map[string]string{"email": s.Email, "password": s.Password + "x"}

	// With the same request ID the answers must be byte-identical.
	reqID := "sec-login-" + uuid.NewString()
	a := c.Do(t, "POST", "/v1/auth/login", unknown, "X-Request-ID", reqID)
	b := c.Do(t, "POST", "/v1/auth/login", wrong, "X-Request-ID", reqID)
	if a.Status != http.StatusUnauthorized || b.Status != http.StatusUnauthorized {
		t.Fatalf("statuses %d (unknown email), %d (wrong password), want 401 for both", a.Status, b.Status)
	}
	CheckProblem(t, a, http.StatusUnauthorized)
	if !bytes.Equal(a.Body, b.Body) {
		t.Errorf("bodies differ:\nunknown email:  %s\nwrong password: %s", a.Body, b.Body)
	}
	for _, h := range []string{"Content-Type", "Content-Length", "Cache-Control", "Retry-After", "WWW-Authenticate"} {
		if a.Header.Get(h) != b.Header.Get(h) {
			t.Errorf("header %s differs: %q vs %q", h, a.Header.Get(h), b.Header.Get(h))
		}
	}
	if !slices.Equal(secHeaderNames(a.Header), secHeaderNames(b.Header)) {
		t.Errorf("header sets differ: %v vs %v", secHeaderNames(a.Header), secHeaderNames(b.Header))
	}

	// With server-chosen request IDs, everything but request_id is identical.
	strip := func(r *Response) string {
		m := r.JSON(t)
		if m["request_id"] == "" || m["request_id"] == nil {
			t.Errorf("problem without request_id: %s", r.Body)
		}
		delete(m, "request_id")
		out, _ := json.Marshal(m)
		return string(out)
	}
	a2 := c.Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/login", unknown)
	b2 := c.Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/login", wrong)
	if strip(a2) != strip(b2) {
		t.Errorf("bodies differ beyond request_id:\n%s\n%s", a2.Body, b2.Body)
	}
}

func secHeaderNames(h http.Header) []string {
	var out []string
	for k := range h {
		if k != "Date" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestSecurityRegisterMassAssignment: fields the endpoint does not name are
// refused with 400 and nothing is written: the same email registers fine
// afterwards, as a customer with a server-chosen id.
func TestSecurityRegisterMassAssignment(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	c := tg.Client()
	email := authEmail("mass")
	chosenID := uuid.NewString()
	for _, extra := range []struct {
		field string
		value any
	}{
		{"role", "admin"},
		{"id", chosenID},
		{"created_at", "2000-01-01T00:00:00Z"},
		{"password_hash", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"},
		{"Role", "admin"},
	} {
		body := map[string]any{"email": email, "password": "password-123", "name": "Mallory", extra.field: extra.value}
		r := c.Expect(t, http.StatusBadRequest, "POST", "/v1/auth/register", body)
		if !slices.Contains(authFieldNames(t, r), extra.field) {
			t.Errorf("%s: problem names %v, want %q", extra.field, authFieldNames(t, r), extra.field)
		}
	}
	c.Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/login", map[string]string{"email": email, "password": "password-123"})
	reg := c.Expect(t, http.StatusCreated, "POST", "/v1/auth/register",
		map[string]string{"email": email, "password": "password-123", "name": "Mallory"}).JSON(t)
	if reg["id"] == chosenID {
		t.Fatalf("the client chose its id")
	}
	s := tg.Login(t, email, "password-123")
	me := s.Expect(t, http.StatusOK, "GET", "/v1/me", nil).JSON(t)
	if me["role"] != "customer" || me["id"] != reg["id"] {
		t.Fatalf("me = %v, want a customer with id %v", me, reg["id"])
	}
	if created, _ := me["created_at"].(string); strings.HasPrefix(created, "2000") {
		t.Fatalf("created_at %s was set by the client", created)
	}
	s.Expect(t, http.StatusForbidden, "POST", "/v1/categories", map[string]string{"slug": "sec-" + uuid.NewString()[:8], "name": "Nope"})
}

// TestSecurityAdminOnlyRoutes: a customer gets 403 problem+json on every
// admin route and changes nothing; an anonymous caller gets 401 on every
// protected route.
func TestSecurityAdminOnlyRoutes(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	admin := tg.Admin(t)
	cat := admin.NewCategory(t)
	p := admin.NewProduct(t, cat, "Guarded Lantern", 4200, 3)
	customer := tg.Register(t)
	slug := "sec-" + uuid.NewString()[:8]

	admins := []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/categories", map[string]string{"slug": slug, "name": "Forbidden"}},
		{"POST", "/v1/products", map[string]any{"sku": "SEC-" + uuid.NewString()[:8], "name": "Forbidden", "description": "x",
			"price_cents": 1, "category": cat, "stock": 1}},
		{"PATCH", "/v1/products/" + p.ID, map[string]any{"price_cents": 1}},
		{"DELETE", "/v1/products/" + p.ID, nil},
	}
	for _, rt := range admins {
		r := customer.Expect(t, http.StatusForbidden, rt.method, rt.path, rt.body)
		if code := authProblemCode(t, r); code != "forbidden" {
			t.Errorf("%s %s as customer: code %q, want forbidden", rt.method, rt.path, code)
		}
		tg.Client().Expect(t, http.StatusUnauthorized, rt.method, rt.path, rt.body)
	}

	var got Product
	tg.Client().Expect(t, http.StatusOK, "GET", "/v1/products/"+p.ID, nil).Decode(t, &got)
	if got.PriceCents != 4200 || got.Stock != 3 || got.Name != "Guarded Lantern" {
		t.Errorf("product after refused writes = %+v, want unchanged", got)
	}
	cats := tg.Client().Expect(t, http.StatusOK, "GET", "/v1/categories", nil)
	if strings.Contains(string(cats.Body), slug) {
		t.Errorf("a customer created category %s", slug)
	}

	// Every route that needs a caller refuses an anonymous one.
	for _, rt := range []struct{ method, path string }{
		{"GET", "/v1/me"}, {"PATCH", "/v1/me"}, {"POST", "/v1/auth/logout"},
		{"GET", "/v1/cart"}, {"DELETE", "/v1/cart"}, {"PUT", "/v1/cart/items/" + p.ID}, {"DELETE", "/v1/cart/items/" + p.ID},
		{"POST", "/v1/checkout"}, {"GET", "/v1/orders"}, {"GET", "/v1/orders/x"}, {"POST", "/v1/orders/x/cancel"},
	} {
		tg.Client().Expect(t, http.StatusUnauthorized, rt.method, rt.path, nil)
	}
}

// TestSecurityNoInternalsInErrors: error answers never show SQL, driver
// names, stack traces or source paths, and hostile input never causes a 5xx.
func TestSecurityNoInternalsInErrors(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	s := tg.Register(t)
	c := tg.Client()
	inj := url.PathEscape("' OR '1'='1")

	probes := []struct {
		name         string
		cl           *Client
		method, path string
		body         any
	}{
		{"duplicate email", c, "POST", "/v1/auth/register", map[string]string{"email": s.Email, "password": "password-123", "name": "Dup"}},
		{"malformed JSON", c, "POST", "/v1/auth/register", `{"email": "a@b.c", "password": `},
		{"wrong types", c, "POST", "/v1/auth/register", `{"email": 1, "password": [], "name": {}}`},
		{"oversized body", c, "POST", "/v1/auth/register", `{"name":"` + strings.Repeat("x", 1<<20+10) + `"}`},
		{"injection in login", c, "POST", "/v1/auth/login", map[string]string{"email": "' OR 1=1 --@example.com", "password": "' OR '1'='1"}},
		{"injection in refresh", c, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": "rt_' OR 1=1 --"}},
		{"injection in name", s.Client, "PATCH", "/v1/me", map[string]string{"name": strings.Repeat("'); DROP TABLE users; --", 3)}},
		{"forged token", c.As("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), "GET", "/v1/me", nil},
		{"unknown route", c, "GET", "/v1/nope", nil},
		{"wrong method", c, "DELETE", "/v1/me", nil},
		{"injection in product id", c, "GET", "/v1/products/" + inj, nil},
		{"injection in order id", s.Client, "GET", "/v1/orders/" + inj, nil},
		{"injection in cart item", s.Client, "PUT", "/v1/cart/items/" + inj, map[string]int{"quantity": 1}},
		{"bad cursor", c, "GET", "/v1/products?cursor=" + inj, nil},
		{"bad limit", c, "GET", "/v1/products?limit=1;DROP", nil},
		{"bad sort", c, "GET", "/v1/products?sort=price;DELETE", nil},
	}
	leaks := []string{"sqlite", "SELECT", "INSERT", "UPDATE ", "UNIQUE", "constraint", "goroutine", "panic", ".go:", "runtime error", "database/sql"}
	for _, p := range probes {
		r := p.cl.Do(t, p.method, p.path, p.body)
		if r.Status >= 500 {
			t.Errorf("%s: status %d; body %s", p.name, r.Status, r.Body)
		}
		body := string(r.Body)
		for _, leak := range leaks {
			if strings.Contains(strings.ToLower(body), strings.ToLower(leak)) {
				t.Errorf("%s: %d body contains %q: %s", p.name, r.Status, leak, body)
			}
		}
		if r.Status >= 400 {
			CheckProblem(t, r, r.Status)
		}
	}
	// The injected name was stored as text, nothing more.
	s.Expect(t, http.StatusOK, "GET", "/v1/me", nil)
	tg.Login(t, s.Email, s.Password)
}
