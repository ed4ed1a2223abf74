package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/millionshop/million/gateway"
	"github.com/millionshop/million/obs"
	"github.com/millionshop/million/ratelimit"
	"github.com/millionshop/million/redisx"
	"github.com/millionshop/million/user"
)

// GatewayCmd runs the reverse proxy in front of several `million serve`.
type GatewayCmd struct {
	Listen       string        `default:":8000" env:"MILLION_GATEWAY_LISTEN" help:"Public listen address."`
	AdminAddr    string        `default:"127.0.0.1:9091" env:"MILLION_GATEWAY_ADMIN_ADDR" help:"Admin listener (metrics, pprof, /backends, health); 'off' disables it. Keep it on loopback."`
	Backend      []string      `placeholder:"URL" help:"Backend base URL (repeat, or comma-separated in the variable)."`
	BackendsFile string        `placeholder:"FILE" help:"File of backend URLs, one per line, '#' comments; reread on SIGHUP and when it changes."`
	FilePoll     time.Duration `default:"1s" help:"How often the backends file is checked for changes."`
	Strategy     string        `default:"rr" enum:"rr,p2c,iphash" help:"Balancing: rr (round robin), p2c (fewer in-flight of two random), iphash (sticky per client IP, rendezvous hashing)."`

	HealthPath     string        `default:"/readyz" help:"Path of the active health check."`
	HealthInterval time.Duration `default:"1s" help:"Interval between health checks of each backend."`
	HealthTimeout  time.Duration `default:"1s" help:"Timeout of one health check."`
	Rise           int           `default:"2" help:"Passing checks in a row that bring a backend back."`
	Fall           int           `default:"2" help:"Failing checks in a row that take a backend out."`

	EjectAfter      int           `default:"5" help:"Consecutive 5xx answers or connection failures that eject a backend."`
	EjectBase       time.Duration `default:"5s" help:"First ejection time; doubled for each ejection in a row."`
	EjectMax        time.Duration `default:"2m" help:"Longest ejection."`
	MaxEjectPercent int           `default:"50" help:"At most this share of the backends is ejected at once (at least one, never all)."`

	MaxAttempts     int      `default:"3" help:"Attempts per request, the first included."`
	RetryRatio      float64  `default:"0.2" help:"Retries allowed as a share of the requests of the last 10 s."`
	RetryMin        int      `default:"30" help:"Retries always allowed per 10 s."`
	MaxRequestBody  int64    `default:"${max_body}" help:"Largest request body in bytes (million serve's own limit, ${max_body}); larger ones get 413. Bodies are read whole, so any request may be retried."`
	MaxResponseBody int64    `default:"67108864" help:"Largest backend answer in bytes; a larger one is a failed attempt (502)."`
	IdempotentPOST  []string `name:"idempotent-post" default:"/v1/checkout" placeholder:"PATH" help:"Paths whose POST handlers deduplicate by Idempotency-Key, so such a POST with the header may be retried (repeat)."`

	DialTimeout           time.Duration `default:"2s" help:"Timeout of a connection to a backend."`
	ResponseHeaderTimeout time.Duration `default:"35s" help:"Wait for a backend's whole answer (read in full before the client gets it)."`
	RequestTimeout        time.Duration `default:"60s" help:"Upper bound on one request, retries included."`
	MaxConnsPerBackend    int           `default:"1024" help:"Connections to one backend, busy or idle (kept alive; idle ones close after 90 s); a request waits up to --dial-timeout for one."`
	ShutdownTimeout       time.Duration `default:"15s" help:"How long in-flight requests may finish after SIGTERM/SIGINT."`

	RateLimitIP   string `name:"rate-limit-ip" default:"500/s" placeholder:"RATE" help:"Requests allowed per client IP (N/s, N/m or N/h, optional :burst); 0 disables. Shared by every gateway with --redis."`
	RateLimitUser string `name:"rate-limit-user" default:"100/s" placeholder:"RATE" help:"Requests allowed per authenticated user; needs --jwt-secret to verify access tokens (an unverifiable token counts against its IP only); 0 disables."`
	JWTSecret     string `name:"jwt-secret" env:"MILLION_JWT_SECRET" help:"The instances' access-token key, so per-user limits key users by verified tokens only."`
	Redis         string `name:"redis" env:"MILLION_REDIS_URL" placeholder:"URL" help:"Redis URL; rate-limit buckets are kept there, shared by every gateway and instance. Without it each gateway limits on its own."`

	TrustForwardedFor bool   `help:"Take the client IP from the last X-Forwarded-For entry (only behind one trusted proxy)."`
	AccessLog         bool   `default:"true" negatable:"" help:"Log every request."`
	LogLevel          string `default:"info" enum:"debug,info,warn,error" help:"Log level (debug, info, warn, error)."`
	GCPercent         int    `name:"gc-percent" default:"400" env:"MILLION_GATEWAY_GC_PERCENT" help:"Go GC target (as GOGC; GOGC in the environment wins): the gateway's live heap is a few MB, so collecting less often trades little memory for CPU per request."`
}

// Run implements the gateway command.
func (c *GatewayCmd) Run(ctx context.Context) error {
	logger := obs.NewLogger(os.Stderr, c.LogLevel)
	if os.Getenv("GOGC") == "" && c.GCPercent > 0 {
		debug.SetGCPercent(c.GCPercent)
	}
	metrics := obs.NewMetrics()
	limits, subject, closeLimits, err := c.limits(ctx, logger)
	if err != nil {
		return err
	}
	defer closeLimits()
	gw, err := gateway.New(gateway.Options{
		RateLimit: limits, Subject: subject,
		Backends: c.Backend, BackendsFile: c.BackendsFile, FilePoll: c.FilePoll, Strategy: gateway.Strategy(c.Strategy),
		HealthPath: c.HealthPath, HealthInterval: c.HealthInterval, HealthTimeout: c.HealthTimeout, Rise: c.Rise, Fall: c.Fall,
		EjectAfter: c.EjectAfter, EjectBase: c.EjectBase, EjectMax: c.EjectMax, MaxEjectPercent: c.MaxEjectPercent,
		MaxAttempts: c.MaxAttempts, RetryRatio: c.RetryRatio, RetryMin: c.RetryMin, MaxRequestBody: c.MaxRequestBody,
		MaxResponseBody: c.MaxResponseBody,
		IdempotentPOST:  c.IdempotentPOST,
		DialTimeout:     c.DialTimeout, ResponseHeaderTimeout: c.ResponseHeaderTimeout, RequestTimeout: c.RequestTimeout,
		MaxConnsPerBackend: c.MaxConnsPerBackend, TrustForwardedFor: c.TrustForwardedFor, AccessLog: c.AccessLog,
		Logger: logger, Registry: metrics.Registry,
	})
	if err != nil {
		return err
	}
	var admin net.Listener
	if c.AdminAddr != "off" {
		if admin, err = net.Listen("tcp", c.AdminAddr); err != nil {
			return fmt.Errorf("listen on admin address %s: %w", c.AdminAddr, err)
		}
	}

	var wg sync.WaitGroup
	workers, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopWorkers(); wg.Wait() }()
	gw.CheckNow(workers) // admit the backends that are up before the first request
	wg.Go(func() { gw.Run(workers) })
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Go(func() {
		for {
			select {
			case <-workers.Done():
				return
			case <-hup:
				if err := gw.Reload(); err != nil {
					logger.Error("reload on SIGHUP failed; keeping the current backends", "error", err.Error())
				} else {
					logger.Info("backends reloaded on SIGHUP", "backends", len(gw.Backends()))
				}
			}
		}
	})

	srv, err := gw.Listen(c.Listen)
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		return err
	}
	adminSrv := &http.Server{Handler: gw.AdminHandler(metrics), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	errs := make(chan error, 2)
	go func() {
		<-srv.Done()
		errs <- srv.Err()
	}()
	if admin != nil {
		go func() { errs <- adminSrv.Serve(admin) }()
		logger.Info("admin listener", "addr", admin.Addr().String())
	}
	logger.Info("gateway serving", "addr", srv.Addr().String(), "strategy", c.Strategy, "backends", len(gw.Backends()))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errs:
	}
	logger.Info("shutting down", "timeout", c.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	err = errors.Join(srv.Shutdown(shutdownCtx), adminSrv.Shutdown(shutdownCtx))
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}

// limits returns the gateway's rate limits, the same limiter as `million
// serve`'s (in Redis when --redis is given), and the per-user key: the
// subject of a bearer token that verifies.
func (c *GatewayCmd) limits(ctx context.Context, logger *slog.Logger) (*ratelimit.Policy, func(string) string, func(), error) {
	perIP, err := ratelimit.ParseRate(c.RateLimitIP)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--rate-limit-ip: %w", err)
	}
	perUser, err := ratelimit.ParseRate(c.RateLimitUser)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--rate-limit-user: %w", err)
	}
	var limiter ratelimit.Limiter = ratelimit.NewMemory(time.Now)
	closeFn := func() {}
	if c.Redis != "" {
		client, err := redisx.Open(ctx, c.Redis, redisx.Options{})
		if err != nil {
			return nil, nil, nil, err
		}
		limiter, closeFn = ratelimit.NewRedis(client, ratelimit.RedisOptions{Logger: logger}), client.Close
	}
	var subject func(string) string
	if c.JWTSecret != "" {
		tokens, err := user.NewTokens([]byte(c.JWTSecret), time.Hour, time.Now)
		if err != nil {
			closeFn()
			return nil, nil, nil, fmt.Errorf("--jwt-secret: %w", err)
		}
		subject = func(token string) string {
			claims, err := tokens.Verify(token)
			if err != nil {
				return ""
			}
			return claims.Subject
		}
	}
	return &ratelimit.Policy{Limiter: limiter, PerIP: perIP, PerUser: perUser, Logger: logger}, subject, closeFn, nil
}
