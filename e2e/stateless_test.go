package e2e

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/app"
)

// metric returns the value of the sample named exactly series (name with
// its labels as Prometheus prints them) on s's /metrics, 0 when absent.
func metric(t *testing.T, s *Server, series string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(get(t, s.MetricsURL())))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

const sessionReads = `million_db_queries_total{outcome="ok",statement="SELECT sessions"}`

type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func refresh(t *testing.T, tg *Target, status int, refreshToken string) tokenPair {
	t.Helper()
	r := tg.Client().Expect(t, status, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": refreshToken})
	var p tokenPair
	if status == http.StatusOK {
		r.Decode(t, &p)
	}
	return p
}

func me(t *testing.T, tg *Target, status int, token string) {
	t.Helper()
	tg.Client().As(token).Expect(t, status, "GET", "/v1/me", nil)
}

// TestStatelessAcrossInstances is acceptance 1 of stage 3 on three
// instances sharing one PostgreSQL and one Redis: log in on A, use the
// token on B, refresh on C, log out on A, and every token of the session
// is refused on B and C at once. Authenticated requests on B are served
// without reading the session from the database (Redis holds it). Reuse
// of a rotated refresh token on one instance revokes the session on all,
// and a failed-login lockout reached across instances holds on each.
func TestStatelessAcrossInstances(t *testing.T) {
	t.Parallel()
	f := StartFleet(t, 3)
	a, b, c := f.Target(0), f.Target(1), f.Target(2)

	s := a.Register(t) // register, log in and GET /v1/me on A
	me(t, b, http.StatusOK, s.Token)
	before := metric(t, b.Server, sessionReads)
	for range 5 {
		me(t, b, http.StatusOK, s.Token)
	}
	if after := metric(t, b.Server, sessionReads); after != before {
		t.Errorf("5 authenticated requests on B read sessions from the database %v times, want 0 (Redis)", after-before)
	}
	next := refresh(t, c, http.StatusOK, s.RefreshToken)
	me(t, a, http.StatusOK, next.AccessToken)
	me(t, b, http.StatusOK, next.AccessToken)
	a.Client().As(next.AccessToken).Expect(t, http.StatusNoContent, "POST", "/v1/auth/logout", nil)
	for _, tg := range []*Target{b, c, a} {
		me(t, tg, http.StatusUnauthorized, next.AccessToken)
		me(t, tg, http.StatusUnauthorized, s.Token)
	}
	refresh(t, c, http.StatusUnauthorized, next.RefreshToken)

	// Reuse detection across instances: rotate on A, replay the old token
	// on C, and the session dies everywhere.
	s2 := b.Login(t, s.Email, s.Password)
	rotated := refresh(t, a, http.StatusOK, s2.RefreshToken)
	r := c.Client().Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": s2.RefreshToken})
	if code, _ := r.JSON(t)["code"].(string); code != "refresh_token_reused" {
		t.Errorf("replayed refresh token: code %q, want refresh_token_reused", code)
	}
	me(t, b, http.StatusUnauthorized, rotated.AccessToken)
	refresh(t, a, http.StatusUnauthorized, rotated.RefreshToken)

	// Failed logins count across instances: 10 spread over A, B and C
	// lock the account on every one of them.
	email := "lockout-" + uuid.NewString() + "@example.com"
	a.Client().Expect(t, http.StatusCreated, "POST", "/v1/auth/register", map[string]string{"email": email, "password": "password-123", "name": "L"})
	targets := []*Target{a, b, c}
	for i := range 10 {
		targets[i%3].Client().Expect(t, http.StatusUnauthorized, "POST", "/v1/auth/login", map[string]string{"email": email, "password": "wrong-password"})
	}
	for _, tg := range targets {
		r := tg.Client().Expect(t, http.StatusTooManyRequests, "POST", "/v1/auth/login", map[string]string{"email": email, "password": "password-123"})
		if r.Header.Get("RateLimit-Limit") != "10" || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: locked login headers RateLimit-Limit=%q Retry-After=%q", tg.BaseURL, r.Header.Get("RateLimit-Limit"), r.Header.Get("Retry-After"))
		}
	}
}

// TestStatelessRedisDown: with Redis stopped in the middle, authenticated
// requests keep working on every instance (the database answers), logging
// in still works, a logout still takes effect on every instance at once,
// the revocation reaches Redis once it is back (empty), and nothing
// changes for clients across that return.
func TestStatelessRedisDown(t *testing.T) {
	t.Parallel()
	f := StartFleet(t, 3)
	a, b, c := f.Target(0), f.Target(1), f.Target(2)
	s := a.Register(t)
	me(t, b, http.StatusOK, s.Token)

	f.Redis.Stop()
	start := time.Now()
	me(t, b, http.StatusOK, s.Token)
	me(t, c, http.StatusOK, s.Token)
	a.Client().As(s.Token).Expect(t, http.StatusNoContent, "POST", "/v1/auth/logout", nil)
	for _, tg := range []*Target{b, c, a} {
		me(t, tg, http.StatusUnauthorized, s.Token)
	}
	refresh(t, c, http.StatusUnauthorized, s.RefreshToken)
	s2 := b.Login(t, s.Email, s.Password)
	me(t, c, http.StatusOK, s2.Token)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the requests with Redis down took %v", took)
	}
	if n := metric(t, b.Server, "million_redis_fallbacks_sessions_total"); n == 0 {
		t.Error("B reports no session reads answered by the database with Redis down")
	}

	if n := metric(t, a.Server, "million_redis_pending_revocations"); n != 1 {
		t.Errorf("A reports %v revocations waiting for Redis, want the logout's 1", n)
	}
	if err := f.Redis.Restart(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); metric(t, a.Server, "million_redis_pending_revocations") != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the logout never reached Redis after it came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Across the instances' return to Redis (their pause is 1 s), answers
	// stay the same.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		for _, tg := range []*Target{a, b, c} {
			me(t, tg, http.StatusUnauthorized, s.Token)
			me(t, tg, http.StatusOK, s2.Token)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRateLimitsAcrossInstances is acceptance 4 of stage 3: the request
// limits of one client are counted once for the whole fleet, so requests
// spread over three instances hit the limit at the configured total (not
// three times it), and a client over the limit gets 429 with Retry-After
// and RateLimit-* from every instance. The user's limit follows the user;
// its refusals do not spend the address's quota.
func TestRateLimitsAcrossInstances(t *testing.T) {
	t.Parallel()
	// Long periods: nothing refills while the test runs.
	f := StartFleet(t, 3, func(c *app.Config) { c.RateLimitIP, c.RateLimitUser = "40/24h", "10/24h" })
	targets := []*Target{f.Target(0), f.Target(1), f.Target(2)}
	email, password := "limits-"+uuid.NewString()+"@example.com", "password-123"
	targets[0].Client().Expect(t, http.StatusCreated, "POST", "/v1/auth/register", map[string]string{"email": email, "password": password, "name": "L"})
	r := targets[1].Client().Expect(t, http.StatusOK, "POST", "/v1/auth/login", map[string]string{"email": email, "password": password})
	var pair tokenPair
	r.Decode(t, &pair)
	ipSpent := 2

	check429 := func(r *Response, limit string, minRetry, maxRetry int) {
		t.Helper()
		CheckProblem(t, r, http.StatusTooManyRequests)
		retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || retry < minRetry || retry > maxRetry {
			t.Fatalf("Retry-After = %q, want %d..%d s", r.Header.Get("Retry-After"), minRetry, maxRetry)
		}
		if got := [3]string{r.Header.Get("RateLimit-Limit"), r.Header.Get("RateLimit-Remaining"), r.Header.Get("RateLimit-Reset")}; got != [3]string{limit, "0", r.Header.Get("Retry-After")} {
			t.Fatalf("RateLimit-Limit/Remaining/Reset = %q, want [%s 0 <Retry-After>]", got, limit)
		}
	}

	// The user: 10 requests over three instances, then 429 on each.
	for i := range 10 {
		r := targets[i%3].Client().As(pair.AccessToken).Expect(t, http.StatusOK, "GET", "/v1/me", nil)
		if got := r.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(9-i) {
			t.Fatalf("user request %d on instance %d: RateLimit-Remaining %q, want %d (one count for the fleet)", i+1, i%3, got, 9-i)
		}
		ipSpent++
	}
	for _, tg := range targets {
		// 24 h / 10 = 8640 s until the next request of this user, less the
		// time since its first (up to 10 min on a slow machine).
		check429(tg.Client().As(pair.AccessToken).Do(t, "GET", "/v1/me", nil), "10", 8040, 8640)
	}
	// A forged token (bad signature) names no user: it counts against the
	// address only, and is refused by authentication as usual.
	forged := pair.AccessToken[:strings.LastIndexByte(pair.AccessToken, '.')+1] + "AAAA"
	targets[0].Client().As(forged).Expect(t, http.StatusUnauthorized, "GET", "/v1/me", nil)
	ipSpent++

	// The address: what is left of its 40 over three instances, then 429 on each.
	for i := ipSpent; i < 40; i++ {
		r := targets[i%3].Client().Expect(t, http.StatusOK, "GET", "/openapi.yaml", nil)
		if got := r.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(39-i) {
			t.Fatalf("request %d from the address on instance %d: RateLimit-Remaining %q, want %d", i+1, i%3, got, 39-i)
		}
	}
	for _, tg := range targets {
		check429(tg.Client().Do(t, "GET", "/openapi.yaml", nil), "40", 1560, 2160) // 24 h / 40, less up to 10 min of a slow run
		tg.Client().Expect(t, http.StatusOK, "GET", "/healthz", nil)               // probes are never limited
	}
}
