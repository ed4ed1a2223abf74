package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/app"
	"github.com/millionshop/million/user"
)

// authEmail returns a unique address, so tests never collide on a shared target.
func authEmail(tag string) string {
	return "auth-" + tag + "-" + uuid.NewString()[:12] + "@example.com"
}

// authFieldNames returns the field names of a validation problem's errors.
func authFieldNames(t testing.TB, r *Response) []string {
	t.Helper()
	var p struct {
		Errors []struct {
			Field string `json:"field"`
		} `json:"errors"`
	}
	r.Decode(t, &p)
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}

// authProblemCode returns the code of a problem body.
func authProblemCode(t testing.TB, r *Response) string {
	t.Helper()
	var p struct {
		Code string `json:"code"`
	}
	r.Decode(t, &p)
	return p.Code
}

// authPair is a token pair as login and refresh return it.
type authPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// authCheckPair fails unless r is a complete, non-cacheable token pair.
func authCheckPair(t testing.TB, r *Response) authPair {
	t.Helper()
	var p authPair
	r.Decode(t, &p)
	if p.AccessToken == "" || p.RefreshToken == "" || p.TokenType != "Bearer" || p.ExpiresIn <= 0 {
		t.Fatalf("token pair = %s, want access_token, refresh_token, token_type Bearer and a positive expires_in", r.Body)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("token response Cache-Control = %q, want no-store", cc)
	}
	return p
}

// authInProcessTarget starts an in-process server with the given config
// changes and an admin account, as NewTarget does. Tests that must know the
// server's secrets or own its limiters use it whatever MILLION_E2E_BASE_URL says.
func authInProcessTarget(t testing.TB, mutate ...func(*app.Config)) *Target {
	t.Helper()
	s := Start(t, mutate...)
	email, password := authEmail("admin"), "admin-password-"+uuid.NewString()[:8]
	if _, err := s.App.Users.Register(context.Background(), user.Registration{
		Email: email, Password: password, Name: "Admin", Role: user.RoleAdmin,
	}); err != nil {
		t.Fatalf("create admin: %v", err)
	}
	return &Target{BaseURL: s.BaseURL, WebhookSecret: []byte(WebhookSecret), AdminEmail: email, AdminPassword: password, Server: s}
}

func TestAuthRegister(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	c := tg.Client()

	t.Run("created", func(t *testing.T) {
		t.Parallel()
		email := authEmail("Created")
		before := time.Now().Add(-time.Minute)
		r := c.Expect(t, http.StatusCreated, "POST", "/v1/auth/register",
			map[string]string{"email": "  " + strings.ToUpper(email) + " ", "password": "password-123", "name": "  Ada Lovelace "})
		var got map[string]any
		r.Decode(t, &got)
		if id, _ := got["id"].(string); id == "" {
			t.Errorf("register response has no id: %s", r.Body)
		}
		if got["email"] != strings.ToLower(email) {
			t.Errorf("email = %v, want it trimmed and lowercased: %q", got["email"], strings.ToLower(email))
		}
		if got["name"] != "Ada Lovelace" {
			t.Errorf("name = %v, want %q (trimmed)", got["name"], "Ada Lovelace")
		}
		created, _ := got["created_at"].(string)
		at, err := time.Parse(time.RFC3339Nano, created)
		if err != nil || !strings.HasSuffix(created, "Z") || at.Before(before) || at.After(time.Now().Add(time.Minute)) {
			t.Errorf("created_at = %q, want a current RFC 3339 UTC time", created)
		}
		for _, secret := range []string{"password", "password_hash", "hash"} {
			if _, ok := got[secret]; ok {
				t.Errorf("register response exposes %q: %s", secret, r.Body)
			}
		}
		if strings.Contains(string(r.Body), "password-123") || strings.Contains(string(r.Body), "argon2") {
			t.Errorf("register response leaks the password or its hash: %s", r.Body)
		}
		// The account works with the address in any case.
		s := tg.Login(t, strings.ToUpper(email), "password-123")
		if s.UserID != got["id"] {
			t.Errorf("logged-in user %s, want the registered %v", s.UserID, got["id"])
		}
	})

	t.Run("password length bounds", func(t *testing.T) {
		t.Parallel()
		for _, pw := range []string{"12345678", strings.Repeat("p", 128), strings.Repeat("é", 128)} {
			c.Expect(t, http.StatusCreated, "POST", "/v1/auth/register",
				map[string]string{"email": authEmail("bounds"), "password": pw, "name": "Bounds"})
		}
	})

	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name  string
			body  any
			field string // the field the problem must name; "" when the body is not an object
		}{
			{"email without at", map[string]string{"email": "not-an-email", "password": "password-123", "name": "N"}, "email"},
			{"email without domain dot", map[string]string{"email": "a@localhost", "password": "password-123", "name": "N"}, "email"},
			{"email with display name", map[string]string{"email": "Ada <ada@example.com>", "password": "password-123", "name": "N"}, "email"},
			{"email with space", map[string]string{"email": "a b@example.com", "password": "password-123", "name": "N"}, "email"},
			{"email with zero-width space", map[string]string{"email": "a\u200b@example.com", "password": "password-123", "name": "N"}, "email"},
			{"email with bidi override", map[string]string{"email": "\u202eevil@example.com", "password": "password-123", "name": "N"}, "email"},
			{"name with bidi override", map[string]string{"email": authEmail("bidi"), "password": "password-123", "name": "abc\u202egpj.exe"}, "name"},
			{"email empty", map[string]string{"email": "", "password": "password-123", "name": "N"}, "email"},
			{"email too long", map[string]string{"email": strings.Repeat("a", 250) + "@example.com", "password": "password-123", "name": "N"}, "email"},
			{"email missing", map[string]string{"password": "password-123", "name": "N"}, "email"},
			{"password 7 chars", map[string]string{"email": authEmail("pw7"), "password": "1234567", "name": "N"}, "password"},
			{"password 129 chars", map[string]string{"email": authEmail("pw129"), "password": strings.Repeat("p", 129), "name": "N"}, "password"},
			{"password empty", map[string]string{"email": authEmail("pw0"), "password": "", "name": "N"}, "password"},
			{"name empty", map[string]string{"email": authEmail("name0"), "password": "password-123", "name": ""}, "name"},
			{"name blank", map[string]string{"email": authEmail("blank"), "password": "password-123", "name": "   "}, "name"},
			{"name 101 chars", map[string]string{"email": authEmail("name101"), "password": "password-123", "name": strings.Repeat("n", 101)}, "name"},
			{"name with control char", map[string]string{"email": authEmail("ctl"), "password": "password-123", "name": "a\x00b"}, "name"},
			{"name missing", map[string]string{"email": authEmail("noname"), "password": "password-123"}, "name"},
			{"unknown field", map[string]string{"email": authEmail("unknown"), "password": "password-123", "name": "N", "nickname": "x"}, "nickname"},
			{"wrong type", map[string]any{"email": authEmail("type"), "password": 12345678, "name": "N"}, "password"},
			{"malformed JSON", `{"email": "x@example.com",`, ""},
			{"array body", `[]`, ""},
			{"empty body", ``, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				r := c.Expect(t, http.StatusBadRequest, "POST", "/v1/auth/register", tc.body)
				if tc.field != "" && !slices.Contains(authFieldNames(t, r), tc.field) {
					t.Errorf("problem names fields %v, want %q: %s", authFieldNames(t, r), tc.field, r.Body)
				}
			})
		}
	})

	t.Run("duplicate email any case", func(t *testing.T) {
		t.Parallel()
		local := "Dup-" + uuid.NewString()[:12]
		c.Expect(t, http.StatusCreated, "POST", "/v1/auth/register",
			map[string]string{"email": local + "@Example.com", "password": "password-123", "name": "First"})
		for _, again := range []string{strings.ToLower(local) + "@example.com", strings.ToUpper(local) + "@EXAMPLE.COM", local + "@Example.com"} {
			r := c.Expect(t, http.StatusConflict, "POST", "/v1/auth/register",
				map[string]string{"email": again, "password": "other-password", "name": "Second"})
			if code := authProblemCode(t, r); code != "email_taken" {
				t.Errorf("duplicate %s: code %q, want email_taken", again, code)
			}
		}
		// The first account keeps its password: the conflict wrote nothing.
		tg.Login(t, local+"@example.com", "password-123")
	})
}

func TestAuthLogin(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	c := tg.Client()
	email := authEmail("login")
	c.Expect(t, http.StatusCreated, "POST", "/v1/auth/register",
		map[string]string{"email": email, "password": "password-123", "name": "Login"})

	r := c.Expect(t, http.StatusOK, "POST", "/v1/auth/login", map[string]string{"email": email, "password": "password-123"})
	pair := authCheckPair(t, r)
	c.As(pair.AccessToken).Expect(t, http.StatusOK, "GET", "/v1/me", nil)

	// Two logins are two sessions with distinct tokens.
	pair2 := authCheckPair(t, c.Expect(t, http.StatusOK, "POST", "/v1/auth/login",
		map[string]string{"email": strings.ToUpper(email), "password": "password-123"}))
	if pair2.AccessToken == pair.AccessToken || pair2.RefreshToken == pair.RefreshToken {
		t.Errorf("second login returned the first login's tokens")
	}

	for _, tc := range []struct {
		name string
		body map[string]string
	}{
		{"wrong password", map[string]string{"email": email, "password": "password-124"}},
		{"unknown email", map[string]string{"email": authEmail("nobody"), "password": "password-123"}},
		{"empty password", map[string]string{"email": email, "password": ""}},
		{"no fields", map[string]string{}},
	} {
		r := c.Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/login", tc.body)
		if code := authProblemCode(t, r); code != "invalid_credentials" {
			t.Errorf("%s: code %q, want invalid_credentials", tc.name, code)
		}
		if strings.Contains(string(r.Body), "token") {
			t.Errorf("%s: failed login body mentions a token: %s", tc.name, r.Body)
		}
	}
	c.Expect(t, http.StatusBadRequest, "POST", "/v1/auth/login",
		map[string]string{"email": email, "password": "password-123", "role": "admin"})
	c.Expect(t, http.StatusBadRequest, "POST", "/v1/auth/login", `{"email":`)
}

// TestAuthLoginRateLimit locks a dedicated account: 10 failures within a
// minute, then even the right password gets 429 with Retry-After, while
// other accounts on the same client still log in.
func TestAuthLoginRateLimit(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	c := tg.Client()
	email := authEmail("lockout")
	c.Expect(t, http.StatusCreated, "POST", "/v1/auth/register",
		map[string]string{"email": email, "password": "password-123", "name": "Lockout"})
	bystander := tg.Register(t)

	for i := 1; i <= 10; i++ {
		r := c.Do(t, "POST", "/v1/auth/login", map[string]string{"email": email, "password": "wrong-password"})
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("failed login #%d: status %d, want 401; body %s", i, r.Status, r.Body)
		}
	}
	for _, tc := range []struct{ name, email, password string }{
		{"right password", email, "password-123"},
		{"right password, other case", strings.ToUpper(email), "password-123"},
		{"wrong password", email, "wrong-password"},
	} {
		r := c.Expect(t, http.StatusTooManyRequests, "POST", "/v1/auth/login",
			map[string]string{"email": tc.email, "password": tc.password})
		secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || secs < 1 || secs > 60 {
			t.Errorf("%s: Retry-After = %q, want 1..60 seconds", tc.name, r.Header.Get("Retry-After"))
		}
		if strings.Contains(string(r.Body), "access_token") {
			t.Errorf("%s: a locked login returned tokens: %s", tc.name, r.Body)
		}
		if got := [3]string{r.Header.Get("RateLimit-Limit"), r.Header.Get("RateLimit-Remaining"), r.Header.Get("RateLimit-Reset")}; got != [3]string{"10", "0", r.Header.Get("Retry-After")} {
			t.Errorf("%s: RateLimit-Limit/Remaining/Reset = %q, want [10 0 <Retry-After>]", tc.name, got)
		}
	}
	// The limit is per account: another account from the same client is unaffected.
	tg.Login(t, bystander.Email, bystander.Password)
}

// TestAuthLoginRateLimitPerIP: 50 failures from one client within a minute,
// spread over accounts so no account limit is reached, block that client's
// next login. It runs on its own in-process server so the block cannot
// disturb other suites sharing an external target's address.
func TestAuthLoginRateLimitPerIP(t *testing.T) {
	t.Parallel()
	tg := authInProcessTarget(t)
	c := tg.Client()
	victim := tg.Register(t)
	for i := range 50 {
		r := c.Do(t, "POST", "/v1/auth/login",
			map[string]string{"email": "ip-" + strconv.Itoa(i%10) + "-" + victim.Email, "password": "wrong-password"})
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("failed login #%d: status %d, want 401; body %s", i+1, r.Status, r.Body)
		}
	}
	r := c.Expect(t, http.StatusTooManyRequests, "POST", "/v1/auth/login",
		map[string]string{"email": victim.Email, "password": victim.Password})
	if r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit-Limit") != "50" {
		t.Errorf("429 headers Retry-After=%q RateLimit-Limit=%q, want a delay and 50",
			r.Header.Get("Retry-After"), r.Header.Get("RateLimit-Limit"))
	}
}

func TestAuthRefresh(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	s := tg.Register(t)
	c := tg.Client()

	r := c.Expect(t, http.StatusOK, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.RefreshToken})
	pair := authCheckPair(t, r)
	if pair.RefreshToken == s.RefreshToken {
		t.Fatalf("refresh returned the same refresh token")
	}
	me := c.As(pair.AccessToken).Expect(t, http.StatusOK, "GET", "/v1/me", nil).JSON(t)
	if me["id"] != s.UserID {
		t.Fatalf("refreshed access token is for %v, want %s", me["id"], s.UserID)
	}
	// The new refresh token rotates again.
	pair3 := authCheckPair(t, c.Expect(t, http.StatusOK, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": pair.RefreshToken}))
	c.As(pair3.AccessToken).Expect(t, http.StatusOK, "GET", "/v1/me", nil)

	// The rotated first token stops working.
	c.Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.RefreshToken})

	other := tg.Register(t)
	for _, tc := range []struct {
		name, token string
	}{
		{"empty", ""},
		{"garbage", "garbage"},
		{"unknown", "rt_" + strings.Repeat("A", 43)},
		{"access token", other.Token},
		{"over-long", "rt_" + strings.Repeat("A", 5000)},
	} {
		r := c.Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": tc.token})
		if strings.Contains(string(r.Body), "access_token") {
			t.Errorf("%s: refused refresh returned tokens: %s", tc.name, r.Body)
		}
	}
	// A refused refresh of garbage does not disturb someone else's session.
	c.Expect(t, http.StatusOK, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": other.RefreshToken})

	c.Expect(t, http.StatusBadRequest, "POST", "/v1/auth/refresh", map[string]any{"refresh_token": 42})
	c.Expect(t, http.StatusBadRequest, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": "x", "user_id": s.UserID})
	c.Expect(t, http.StatusBadRequest, "POST", "/v1/auth/refresh", nil)
}

func TestAuthLogout(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	s := tg.Register(t)
	// A second session of the same user must survive the first one's logout.
	second := tg.Login(t, s.Email, s.Password)

	r := s.Expect(t, http.StatusNoContent, "POST", "/v1/auth/logout", nil)
	if len(r.Body) != 0 {
		t.Errorf("logout body = %q, want empty", r.Body)
	}
	s.Expect(t, http.StatusUnauthorized, "GET", "/v1/me", nil)
	s.Expect(t, http.StatusUnauthorized, "PATCH", "/v1/me", map[string]string{"name": "After Logout"})
	s.Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/logout", nil)
	tg.Client().Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": s.RefreshToken})

	second.Expect(t, http.StatusOK, "GET", "/v1/me", nil)
	tg.Client().Expect(t, http.StatusOK, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": second.RefreshToken})

	// Logging out a refreshed session also kills the refreshed tokens.
	pair := authCheckPair(t, tg.Client().Expect(t, http.StatusOK, "POST", "/v1/auth/login",
		map[string]string{"email": s.Email, "password": s.Password}))
	pair2 := authCheckPair(t, tg.Client().Expect(t, http.StatusOK, "POST", "/v1/auth/refresh",
		map[string]string{"refresh_token": pair.RefreshToken}))
	tg.Client().As(pair.AccessToken).Expect(t, http.StatusNoContent, "POST", "/v1/auth/logout", nil)
	tg.Client().As(pair2.AccessToken).Expect(t, http.StatusUnauthorized, "GET", "/v1/me", nil)
	tg.Client().Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": pair2.RefreshToken})
}

func TestAuthMe(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	c := tg.Client()
	email := authEmail("me")
	reg := c.Expect(t, http.StatusCreated, "POST", "/v1/auth/register",
		map[string]string{"email": email, "password": "password-123", "name": "Grace Hopper"}).JSON(t)
	s := tg.Login(t, email, "password-123")

	r := s.Expect(t, http.StatusOK, "GET", "/v1/me", nil)
	me := r.JSON(t)
	for _, k := range []string{"id", "email", "name", "created_at"} {
		if me[k] != reg[k] {
			t.Errorf("GET /v1/me %s = %v, want %v as registered", k, me[k], reg[k])
		}
	}
	if me["role"] != "customer" {
		t.Errorf("role = %v, want customer", me["role"])
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") && !strings.Contains(cc, "private") {
		t.Errorf("GET /v1/me Cache-Control = %q, want private or no-store", cc)
	}

	upd := s.Expect(t, http.StatusOK, "PATCH", "/v1/me", map[string]string{"name": "  Rear Admiral Hopper "}).JSON(t)
	if upd["name"] != "Rear Admiral Hopper" || upd["id"] != reg["id"] || upd["email"] != email || upd["role"] != "customer" {
		t.Fatalf("PATCH /v1/me = %v, want the user with the trimmed new name", upd)
	}
	if got := s.Expect(t, http.StatusOK, "GET", "/v1/me", nil).JSON(t)["name"]; got != "Rear Admiral Hopper" {
		t.Fatalf("name after PATCH = %v, want Rear Admiral Hopper", got)
	}
	s.Expect(t, http.StatusOK, "PATCH", "/v1/me", map[string]string{"name": strings.Repeat("ü", 100)})
	s.Expect(t, http.StatusOK, "PATCH", "/v1/me", map[string]string{"name": "Grace"})

	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"empty name", map[string]string{"name": ""}, "name"},
		{"blank name", map[string]string{"name": "  \t "}, "name"},
		{"101-char name", map[string]string{"name": strings.Repeat("n", 101)}, "name"},
		{"control char", map[string]string{"name": "a\nb"}, "name"},
		{"null name", map[string]any{"name": nil}, "name"},
		{"missing name", map[string]any{}, "name"},
		{"number name", map[string]any{"name": 7}, "name"},
		{"role", map[string]string{"role": "admin"}, "role"},
		{"role with a valid name", map[string]string{"name": "Valid", "role": "admin"}, "role"},
		{"email", map[string]string{"email": authEmail("taken")}, "email"},
		{"id", map[string]string{"name": "Valid", "id": uuid.NewString()}, "id"},
		{"malformed", `{"name": "x"`, ""},
	} {
		r := s.Expect(t, http.StatusBadRequest, "PATCH", "/v1/me", tc.body)
		if tc.field != "" && !slices.Contains(authFieldNames(t, r), tc.field) {
			t.Errorf("%s: problem names fields %v, want %q", tc.name, authFieldNames(t, r), tc.field)
		}
	}
	after := s.Expect(t, http.StatusOK, "GET", "/v1/me", nil).JSON(t)
	if after["name"] != "Grace" || after["role"] != "customer" || after["email"] != email || after["id"] != reg["id"] {
		t.Fatalf("user after rejected PATCHes = %v, want unchanged (Grace, customer, %s)", after, email)
	}
	// The rejected role change gave no admin power either.
	s.Expect(t, http.StatusForbidden, "POST", "/v1/categories", map[string]string{"slug": "auth-" + uuid.NewString()[:8], "name": "Nope"})
}

// TestAuthRequiresToken: every authenticated user route answers 401
// problem+json to a request without a usable bearer token.
func TestAuthRequiresToken(t *testing.T) {
	t.Parallel()
	tg := NewTarget(t)
	c := tg.Client()
	routes := []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/auth/logout", nil},
		{"GET", "/v1/me", nil},
		{"PATCH", "/v1/me", map[string]string{"name": "Anonymous"}},
	}
	auths := []struct{ name, header string }{
		{"no header", ""},
		{"empty bearer", "Bearer "},
		{"basic scheme", "Basic dXNlcjpwYXNz"},
		{"token without scheme", "eyJhbGciOiJIUzI1NiJ9.e30.x"},
		{"garbage bearer", "Bearer garbage"},
	}
	for _, rt := range routes {
		for _, a := range auths {
			var headers []string
			if a.header != "" {
				headers = []string{"Authorization", a.header}
			}
			r := c.Expect(t, http.StatusUnauthorized, rt.method, rt.path, rt.body, headers...)
			var p struct {
				Detail string `json:"detail"`
			}
			if err := json.Unmarshal(r.Body, &p); err != nil || p.Detail == "" {
				t.Errorf("%s %s (%s): 401 problem without detail: %s", rt.method, rt.path, a.name, r.Body)
			}
		}
	}
}
