package ratelimit_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/millionshop/million/ratelimit"
)

// serveLimited sends one request through the middleware as client ip with
// the given verified subject ("" for none) and path.
func serveLimited(h http.Handler, ip, subject, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	r.RemoteAddr = ip + ":5555"
	if subject != "" {
		r.Header.Set("X-Verified-Subject", subject)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestMiddleware: allowed responses carry RateLimit-* of the tighter limit;
// past a limit the answer is 429 problem+json with Retry-After and the
// RateLimit-* fields and the handler never runs; the user's limit follows
// the user across addresses, a refused user does not spend the address's
// quota, requests without a verified subject count against the address
// only, and skipped paths are not counted.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	c := newClock()
	calls := 0
	h := ratelimit.Middleware(ratelimit.HTTPOptions{
		Limiter: ratelimit.NewMemory(c.Now),
		PerIP:   ratelimit.Rate{Limit: 4, Period: time.Hour},
		PerUser: ratelimit.Rate{Limit: 2, Period: time.Hour},
		Subject: func(r *http.Request) string { return r.Header.Get("X-Verified-Subject") },
		Skip:    func(r *http.Request) bool { return r.URL.Path == "/healthz" },
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ }))

	headers := func(w *httptest.ResponseRecorder) string {
		return w.Header().Get("RateLimit-Limit") + "/" + w.Header().Get("RateLimit-Remaining") + "/" + w.Header().Get("RateLimit-Reset")
	}
	// Address A, anonymous: the address's bucket of 4, 15 min per request.
	if w := serveLimited(h, "192.0.2.1", "", "/x"); w.Code != 200 || headers(w) != "4/3/900" {
		t.Fatalf("1st anonymous: %d %s", w.Code, headers(w))
	}
	// User u from A: the user's bucket (2) is the tighter one.
	if w := serveLimited(h, "192.0.2.1", "u", "/x"); w.Code != 200 || headers(w) != "2/1/1800" {
		t.Fatalf("1st as u: %d %s", w.Code, headers(w))
	}
	// u from another address spends the same user bucket.
	if w := serveLimited(h, "192.0.2.2", "u", "/x"); w.Code != 200 || headers(w) != "2/0/3600" {
		t.Fatalf("2nd as u from B: %d %s", w.Code, headers(w))
	}
	before := calls
	w := serveLimited(h, "192.0.2.1", "u", "/x")
	if w.Code != http.StatusTooManyRequests || calls != before {
		t.Fatalf("3rd as u: %d (handler ran: %v), want 429 without running the handler", w.Code, calls != before)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("429 Content-Type = %q", ct)
	}
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != 429 || p.Code != "rate_limited" {
		t.Fatalf("429 body %s: %+v, %v", w.Body, p, err)
	}
	// The next request of u is allowed in 30 minutes.
	if got := w.Header().Get("Retry-After"); got != "1800" || headers(w) != "2/0/1800" {
		t.Fatalf("429 headers: Retry-After %q, RateLimit %s; want 1800 and 2/0/1800", got, headers(w))
	}
	// A's bucket holds 2 spent (anonymous, u's first); u's refusal cost nothing.
	for i, want := range []string{"4/1/2700", "4/0/3600"} {
		if w := serveLimited(h, "192.0.2.1", "", "/x"); w.Code != 200 || headers(w) != want {
			t.Fatalf("anonymous %d from A: %d %s, want 200 %s", i+2, w.Code, headers(w), want)
		}
	}
	w = serveLimited(h, "192.0.2.1", "", "/x")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != strconv.Itoa(900) {
		t.Fatalf("5th from A: %d Retry-After %q, want 429 after 900 s", w.Code, w.Header().Get("Retry-After"))
	}
	// Another address is untouched; skipped paths are never limited.
	if w := serveLimited(h, "192.0.2.3", "", "/x"); w.Code != 200 {
		t.Fatalf("from C: %d", w.Code)
	}
	for range 10 {
		if w := serveLimited(h, "192.0.2.1", "", "/healthz"); w.Code != 200 || w.Header().Get("RateLimit-Limit") != "" {
			t.Fatalf("skipped path: %d %s", w.Code, headers(w))
		}
	}
	// After the wait, A may go again.
	c.Advance(15 * time.Minute)
	if w := serveLimited(h, "192.0.2.1", "", "/x"); w.Code != 200 {
		t.Fatalf("from A after Retry-After: %d", w.Code)
	}
}

// TestMiddlewareDisabled: with both rates zero the handler is served as is.
func TestMiddlewareDisabled(t *testing.T) {
	t.Parallel()
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	h := ratelimit.Middleware(ratelimit.HTTPOptions{Limiter: ratelimit.NewMemory(time.Now)})(next)
	for range 100 {
		if w := serveLimited(h, "192.0.2.1", "", "/x"); w.Code != 200 || w.Header().Get("RateLimit-Limit") != "" {
			t.Fatalf("disabled limits: %d %q", w.Code, w.Header().Get("RateLimit-Limit"))
		}
	}
}

// TestBearerSubject: only a bearer token that verifies names a user.
func TestBearerSubject(t *testing.T) {
	t.Parallel()
	subject := ratelimit.BearerSubject(func(token string) (string, bool) { return "u-" + token, token == "good" })
	for header, want := range map[string]string{
		"Bearer good":    "u-good",
		"bearer   good ": "u-good",
		"Bearer bad":     "",
		"Basic good":     "",
		"Bearer ":        "",
		"good":           "",
		"":               "",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		if got := subject(r); got != want {
			t.Errorf("Authorization %q: subject %q, want %q", header, got, want)
		}
	}
}
