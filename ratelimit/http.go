package ratelimit

import (
	"context"
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

// Policy is the pair of limits a request passes: one per client address,
// one per authenticated user. Middleware applies it to net/http handlers;
// million gateway calls Check on its own request path.
type Policy struct {
	// Limiter decides; required.
	Limiter Limiter
	// PerIP and PerUser are the limits; zero disables either.
	PerIP, PerUser Rate
	// Logger receives limiter errors; nil discards them.
	Logger *slog.Logger
}

// Enabled reports whether the policy limits anything.
func (p *Policy) Enabled() bool {
	return p != nil && p.Limiter != nil && (p.PerIP.Enabled() || p.PerUser.Enabled())
}

// Check counts one request from ip by subject ("" when anonymous) and
// returns the decision of the tighter limit; applied is false when no limit
// applied to the request.
func (p *Policy) Check(ctx context.Context, ip, subject string) (d Decision, applied bool) {
	check := func(key string, rate Rate) bool {
		if !rate.Enabled() {
			return true
		}
		got, err := p.Limiter.Allow(ctx, key, rate)
		if err != nil {
			// Limiters fall back on their own; an error here is a bug, and
			// refusing every request would be worse.
			if p.Logger != nil {
				p.Logger.ErrorContext(ctx, "rate limiter failed", "key", key, "error", err.Error())
			}
			return true
		}
		if !applied || !got.Allowed || (d.Allowed && got.Remaining < d.Remaining) {
			d, applied = got, true
		}
		return got.Allowed
	}
	// The user's limit first: a refused user does not also spend the quota
	// of everyone behind the same address.
	if subject != "" && !check("user:"+subject, p.PerUser) {
		return d, applied
	}
	check("ip:"+ip, p.PerIP)
	return d, applied
}

// Refusal is the error of a request d did not allow, as web.WriteError
// answers it: 429 with Retry-After and the RateLimit-* fields.
func (d Decision) Refusal() *fault.Error {
	return &fault.Error{Kind: fault.TooManyRequests, Code: "rate_limited",
		Message:    "too many requests; slow down and retry after the time in Retry-After",
		RetryAfter: max(d.RetryAfter, time.Millisecond), Limit: d.Limit}
}

// Headers returns the RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset field values of an allowed request's decision.
func (d Decision) Headers() (limit, remaining, reset string) {
	return strconv.Itoa(d.Limit), strconv.Itoa(d.Remaining), strconv.Itoa(ceilSeconds(d.ResetAfter))
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
	policy := &Policy{Limiter: opts.Limiter, PerIP: opts.PerIP, PerUser: opts.PerUser, Logger: opts.Logger}
	return func(next http.Handler) http.Handler {
		if !policy.Enabled() {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if opts.Skip != nil && opts.Skip(r) {
				next.ServeHTTP(w, r)
				return
			}
			subject := ""
			if opts.Subject != nil && opts.PerUser.Enabled() {
				subject = opts.Subject(r)
			}
			d, applied := policy.Check(r.Context(), opts.ClientIP(r), subject)
			if !applied {
				next.ServeHTTP(w, r)
				return
			}
			if !d.Allowed {
				web.WriteError(w, r, nil, d.Refusal())
				return
			}
			limit, remaining, reset := d.Headers()
			h := w.Header()
			h.Set("RateLimit-Limit", limit)
			h.Set("RateLimit-Remaining", remaining)
			h.Set("RateLimit-Reset", reset)
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

// BearerToken returns the token of an "Authorization: Bearer" field value,
// or "".
func BearerToken(authorization string) string {
	scheme, token, found := strings.Cut(authorization, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// BearerSubject returns an HTTPOptions.Subject that reads the request's
// "Authorization: Bearer" token and returns the subject verify vouches
// for, or "" when there is no token or it does not verify.
func BearerSubject(verify func(token string) (subject string, ok bool)) func(*http.Request) string {
	return func(r *http.Request) string {
		token := BearerToken(r.Header.Get("Authorization"))
		if token == "" {
			return ""
		}
		if sub, ok := verify(token); ok {
			return sub
		}
		return ""
	}
}
