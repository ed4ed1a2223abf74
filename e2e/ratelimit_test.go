package e2e

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/millionshop/million/app"
)

// TestRegistrationRateLimit: each registration costs a password hash, so a
// client gets 429 with Retry-After and RateLimit-* headers once it used its
// hourly quota, and nothing is created by the refused request.
func TestRegistrationRateLimit(t *testing.T) {
	t.Parallel()
	s := Start(t, func(c *app.Config) { c.RegistrationsPerHour = 3 })
	c := targetFor(t, s).Client()
	register := func(email string) *Response {
		return c.Do(t, "POST", "/v1/auth/register", map[string]string{"email": email, "password": "password-123", "name": "R"})
	}
	for i := range 3 {
		if r := register("reg-" + uuid.NewString() + "@example.com"); r.Status != http.StatusCreated {
			t.Fatalf("registration %d: %d %s", i+1, r.Status, r.Body)
		}
	}
	refused := "refused-" + uuid.NewString() + "@example.com"
	r := register(refused)
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("4th registration: %d %s, want 429", r.Status, r.Body)
	}
	CheckProblem(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit-Limit") != "3" || r.Header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("429 headers: Retry-After=%q RateLimit-Limit=%q RateLimit-Remaining=%q",
			r.Header.Get("Retry-After"), r.Header.Get("RateLimit-Limit"), r.Header.Get("RateLimit-Remaining"))
	}
	if r := c.Do(t, "POST", "/v1/auth/login", map[string]string{"email": refused, "password": "password-123"}); r.Status != http.StatusUnauthorized {
		t.Errorf("login as the refused registration: %d, want 401 (no account was created)", r.Status)
	}
}
