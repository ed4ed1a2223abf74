package ratelimit

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

// HTTPOptions configure Middleware. It depends on no part of the shop but
// the limiter, so million serve and million gateway wrap their handlers
// with the same code.
type HTTPOptions struct {
	// Limiter decides; required.
	Limiter Limiter
	// PerIP limits every request of one client address; zero disables.
	PerIP Rate
	// PerUser limits the requests of one authenticated user, whatever
	// address they come from; zero disables.
	PerUser Rate
	// ClientIP returns the client address of a request; nil takes the host
	// of RemoteAddr. million serve passes the address its middleware
	// resolved (X-Forwarded-For only behind a trusted proxy).
	ClientIP func(*http.Request) string
	// Subject returns the user of a request from a verified credential
	// (an access token whose signature and expiry were checked), or "".
	// A token that does not verify must yield "": anyone can forge an
	// unsigned subject, and a forged one would spend someone else's quota.
	Subject func(*http.Request) string
	// Skip exempts requests, such as health checks of a load balancer.
	Skip func(*http.Request) bool
	// Logger receives limiter errors; nil discards them.
	Logger *slog.Logger
}

// Middleware limits requests per client IP and per authenticated user. A
// request over either limit gets 429 problem+json with Retry-After and the
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset headers;
// allowed requests carry the RateLimit-* headers of the tighter of the two
// limits, so clients can pace themselves before they are refused.
func Middleware(opts HTTPOptions) func(http.Handler) http.Handler {
	if opts.ClientIP == nil {
		opts.ClientIP = remoteHost
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		if opts.Limiter == nil || (!opts.PerIP.Enabled() && !opts.PerUser.Enabled()) {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if opts.Skip != nil && opts.Skip(r) {
				next.ServeHTTP(w, r)
				return
			}
			var (
				tightest Decision
				have     bool
			)
			check := func(key string, rate Rate) bool {
				if !rate.Enabled() {
					return true
				}
				d, err := opts.Limiter.Allow(r.Context(), key, rate)
				if err != nil {
					// Limiters fall back on their own; an error here is a
					// bug, and refusing every request would be worse.
					opts.Logger.ErrorContext(r.Context(), "rate limiter failed", "key", key, "error", err.Error())
					return true
				}
				if !have || !d.Allowed || (tightest.Allowed && d.Remaining < tightest.Remaining) {
					tightest, have = d, true
				}
				return d.Allowed
			}
			// The user's limit first: a refused user does not also spend
			// the quota of everyone behind the same address.
			ok := true
			if opts.Subject != nil && opts.PerUser.Enabled() {
				if sub := opts.Subject(r); sub != "" {
					ok = check("user:"+sub, opts.PerUser)
				}
			}
			if ok {
				ok = check("ip:"+opts.ClientIP(r), opts.PerIP)
			}
			if !have {
				next.ServeHTTP(w, r)
				return
			}
			if !ok {
				// WriteError sets Retry-After and the RateLimit-* fields
				// from RetryAfter and Limit.
				web.WriteError(w, r, nil, &fault.Error{Kind: fault.TooManyRequests, Code: "rate_limited",
					Message:    "too many requests; slow down and retry after the time in Retry-After",
					RetryAfter: max(tightest.RetryAfter, time.Millisecond), Limit: tightest.Limit})
				return
			}
			h := w.Header()
			h.Set("RateLimit-Limit", strconv.Itoa(tightest.Limit))
			h.Set("RateLimit-Remaining", strconv.Itoa(tightest.Remaining))
			h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(tightest.ResetAfter)))
			next.ServeHTTP(w, r)
		})
	}
}

// ceilSeconds rounds d up to whole seconds, as the header fields count.
func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// BearerSubject returns an HTTPOptions.Subject that reads the request's
// "Authorization: Bearer" token and returns the subject verify vouches
// for, or "" when there is no token or it does not verify.
func BearerSubject(verify func(token string) (subject string, ok bool)) func(*http.Request) string {
	return func(r *http.Request) string {
		scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") {
			return ""
		}
		token = strings.TrimSpace(token)
		if token == "" {
			return ""
		}
		if sub, ok := verify(token); ok {
			return sub
		}
		return ""
	}
}
