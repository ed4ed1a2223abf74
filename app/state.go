package app

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millionshop/million/ratelimit"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
	userstore "github.com/millionshop/million/user/store"
	"github.com/millionshop/million/web"
)

// Default request limits. A person clicking through the shop makes a few
// requests a second at most; the per-address limit leaves room for many
// people behind one NAT and for the project's load tests from one machine.
const (
	DefaultRateLimitIP   = "500/s"
	DefaultRateLimitUser = "100/s"
)

// sharedState is the state every instance must agree on, in Redis when the
// App has a client, in-process otherwise: sessions, failed-login and
// registration counters, request-rate buckets.
type sharedState struct {
	users    user.Store
	failures user.FailureLimiter
	limiter  ratelimit.Limiter
	close    func()
}

func (a *App) openSharedState(db *sqldb.DB, now func() time.Time, failureRules []ratelimit.Rule) sharedState {
	if a.Redis == nil {
		return sharedState{users: userstore.New(db), failures: ratelimit.NewFailures(now, failureRules...),
			limiter: ratelimit.NewMemory(now), close: func() {}}
	}
	opts := ratelimit.RedisOptions{Logger: a.logger}
	sessions := userstore.NewRedisSessions(userstore.New(db), a.Redis,
		userstore.RedisSessionsOptions{Logger: a.logger, Now: now, LiveTTL: a.cfg.AccessTokenTTL})
	failures := ratelimit.NewRedisFailures(a.Redis, opts, failureRules...)
	limiter := ratelimit.NewRedis(a.Redis, opts)
	counter := func(name, help string, v func() float64) {
		a.Metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, v))
	}
	counter("million_redis_fallbacks_sessions_total", "Session reads answered by the database because Redis could not.",
		func() float64 { return float64(sessions.Fallbacks()) })
	counter("million_redis_fallbacks_failures_total", "Failed-login and registration counts kept in-process because Redis could not.",
		func() float64 { return float64(failures.Fallbacks()) })
	counter("million_redis_fallbacks_rate_limits_total", "Request-rate decisions made in-process because Redis could not.",
		func() float64 { return float64(limiter.Fallbacks()) })
	a.Metrics.RegisterGauge("million_redis_pending_revocations", "Session revocations committed but not yet written to Redis.",
		func() float64 { return float64(sessions.PendingRevocations()) })
	return sharedState{users: sessions, failures: failures, limiter: limiter, close: sessions.Close}
}

// requestLimits returns the middleware limiting requests per client address
// and per user, keyed by the subject of a verified access token only.
func (a *App) requestLimits(limiter ratelimit.Limiter, tokens *user.Tokens) (func(http.Handler) http.Handler, error) {
	rate := func(flag, v, def string) (ratelimit.Rate, error) {
		if v == "" {
			v = def
		}
		r, err := ratelimit.ParseRate(v)
		if err != nil {
			return r, fmt.Errorf("%s: %w", flag, err)
		}
		return r, nil
	}
	perIP, err := rate("rate limit per IP", a.cfg.RateLimitIP, DefaultRateLimitIP)
	if err != nil {
		return nil, err
	}
	perUser, err := rate("rate limit per user", a.cfg.RateLimitUser, DefaultRateLimitUser)
	if err != nil {
		return nil, err
	}
	return ratelimit.Middleware(ratelimit.HTTPOptions{
		Limiter:  limiter,
		PerIP:    perIP,
		PerUser:  perUser,
		ClientIP: func(r *http.Request) string { return web.ClientIPFrom(r.Context()) },
		Subject: ratelimit.BearerSubject(func(token string) (string, bool) {
			c, err := tokens.Verify(token)
			return c.Subject, err == nil
		}),
		// Load balancers probe these; limiting them would eject healthy instances.
		Skip:   func(r *http.Request) bool { return r.URL.Path == "/healthz" || r.URL.Path == "/readyz" },
		Logger: a.logger,
	}), nil
}
