package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/millionshop/million/app"
)

// TestDefaultRequestLimits: with the default limits in force (their
// RateLimit-* fields on every answer), a client making 100 requests a
// second from one address, half of them as a logged-in user, is never
// refused (api.md: at least 100 requests/s per IP must work).
func TestDefaultRequestLimits(t *testing.T) {
	t.Parallel()
	s := Start(t, func(c *app.Config) { c.RateLimitIP, c.RateLimitUser = "", "" })
	tg := targetFor(t, s)
	u := tg.Register(t)
	anon := tg.Client()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := range 200 {
		<-tick.C
		if i%2 == 0 {
			r := anon.Expect(t, http.StatusOK, "GET", "/openapi.yaml", nil)
			if r.Header.Get("RateLimit-Limit") != "500" {
				t.Fatalf("anonymous request: RateLimit-Limit %q, want the default 500", r.Header.Get("RateLimit-Limit"))
			}
		} else {
			r := u.Expect(t, http.StatusOK, "GET", "/v1/me", nil)
			if r.Header.Get("RateLimit-Limit") != "100" {
				t.Fatalf("user request: RateLimit-Limit %q, want the default 100 (the tighter limit)", r.Header.Get("RateLimit-Limit"))
			}
		}
	}
}
