package main

import (
	"context"
	"os"
	"time"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/obs"
)

// StorageFlags select the database, shared by every command that opens it.
type StorageFlags struct {
	DataDir    string `default:"./data" help:"Directory of the embedded database and generated secrets."`
	Database   string `name:"database" env:"MILLION_DATABASE_URL" placeholder:"URL" help:"PostgreSQL URL (postgres://user:pass@host:5432/db?sslmode=verify-full) instead of the embedded database."`
	DBMaxConns int32  `name:"db-max-conns" default:"0" help:"PostgreSQL pool size (0: 4 per CPU)."`
}

// config returns the storage part of the app configuration.
func (f StorageFlags) config() app.Config {
	return app.Config{DataDir: f.DataDir, DatabaseURL: f.Database, DBMaxConns: f.DBMaxConns}
}

// ServeCmd runs the server.
type ServeCmd struct {
	StorageFlags
	CacheFlags
	Addr                 string        `default:":8080" help:"Public API listen address."`
	AdminAddr            string        `default:"127.0.0.1:9090" help:"Admin listener (metrics, pprof, health); 'off' disables it. Keep it on loopback."`
	Currency             string        `default:"USD" help:"Store currency (ISO 4217); every price is in it."`
	JWTSecret            string        `help:"HS256 key for access tokens (at least 32 bytes). Generated and kept in the data directory when empty."`
	PaymentWebhookSecret string        `help:"HMAC key that signs payment webhooks. Generated and kept in the data directory when empty."`
	AccessTokenTTL       time.Duration `default:"15m" help:"Lifetime of access tokens."`
	SessionTTL           time.Duration `default:"720h" help:"Lifetime of a login session (its refresh tokens)."`
	PaymentLatency       time.Duration `default:"0s" help:"Latency the simulated payment provider adds to each call."`
	PaymentTimeout       time.Duration `default:"10s" help:"Timeout of every payment provider call."`
	RequestTimeout       time.Duration `default:"30s" help:"Upper bound on one request's work."`
	ShutdownTimeout      time.Duration `default:"15s" help:"How long in-flight requests may finish after SIGTERM/SIGINT."`
	DrainDelay           time.Duration `default:"5s" help:"After SIGTERM/SIGINT, keep serving this long with /readyz answering 503, so a gateway or load balancer takes the instance out before it stops accepting."`
	RegistrationsPerHour int           `default:"100" help:"Self-registrations allowed per client IP and hour."`
	TrustProxy           bool          `help:"Take the client IP from the last X-Forwarded-For entry, as appended by the one trusted proxy in front (never enable without one)."`
	AccessLog            bool          `default:"true" negatable:"" help:"Log every request."`
	Redis                string        `name:"redis" env:"MILLION_REDIS_URL" placeholder:"URL" help:"Redis URL (redis://host:6379/0) for state shared by several instances: sessions, rate limits, cache. Without it all state is in-process."`
	Shed                 bool          `default:"true" negatable:"" help:"Refuse requests with 503 and Retry-After when the instance is CPU-bound and has more in flight than it can finish in time (adaptive load shedding)."`
	ShedCPUThreshold     float64       `default:"0.9" help:"CPU share (of GOMAXPROCS) above which load shedding may start."`
	ShedMaxWait          time.Duration `default:"100ms" help:"How long a request of an overloaded instance may wait for a free slot before it is refused; also sizes the queue (what the instance finishes in that time). Keep it well under the clients' timeout."`
	RateLimitIP          string        `name:"rate-limit-ip" default:"500/s" placeholder:"RATE" help:"Requests allowed per client IP, as N/s, N/m or N/h with an optional :burst (200/s:400); 0 disables; default 500/s. Shared by every instance with --redis."`
	RateLimitUser        string        `name:"rate-limit-user" default:"100/s" placeholder:"RATE" help:"Requests allowed per authenticated user (verified access token), same syntax; 0 disables; default 100/s."`
	NATSURL              string        `name:"nats-url" env:"MILLION_NATS_URL" placeholder:"URL" help:"External NATS server with JetStream (nats://host:4222, comma-separated for a cluster) for events and jobs. Without it a NATS server runs inside the process, its store in the data directory."`
	SMTPURL              string        `name:"smtp-url" env:"MILLION_SMTP_URL" placeholder:"URL" help:"SMTP server for order emails (smtp://user:pass@host:587 with STARTTLS, smtps://… for TLS from the start). Without it emails are written to the log."`
	MailFrom             string        `default:"million <no-reply@localhost>" help:"Sender address of emails."`
	PaymentCaptureAfter  time.Duration `default:"30s" help:"How long a payment may stay authorized before the payment-capture job captures it and marks its order paid."`
	CheckoutAbandonAfter time.Duration `default:"15m" help:"How old an unpaid pending order (an abandoned checkout) gets before the checkout-reaper cancels it and returns its stock."`
	KeyRetention         time.Duration `name:"idempotency-key-retention" default:"48h" help:"How long finished checkout idempotency keys are kept before the purge job deletes them (at least 24h)."`
	LogLevel             string        `default:"info" enum:"debug,info,warn,error" help:"Log level (debug, info, warn, error)."`
}

// Run implements the serve command.
func (c *ServeCmd) Run(ctx context.Context) error {
	logger := obs.NewLogger(os.Stderr, c.LogLevel)
	cfg := c.config()
	cfg.Addr, cfg.AdminAddr, cfg.Currency = c.Addr, c.AdminAddr, c.Currency
	cfg.JWTSecret, cfg.PaymentWebhookSecret = c.JWTSecret, c.PaymentWebhookSecret
	cfg.AccessTokenTTL, cfg.SessionTTL = c.AccessTokenTTL, c.SessionTTL
	cfg.PaymentLatency, cfg.PaymentTimeout = c.PaymentLatency, c.PaymentTimeout
	cfg.RequestTimeout, cfg.ShutdownTimeout = c.RequestTimeout, c.ShutdownTimeout
	cfg.DrainDelay = c.DrainDelay
	cfg.TrustProxy, cfg.AccessLog = c.TrustProxy, c.AccessLog
	cfg.RegistrationsPerHour = c.RegistrationsPerHour
	cfg.RedisURL = c.Redis
	cfg.NoShedding, cfg.ShedCPUThreshold, cfg.ShedMaxWait = !c.Shed, c.ShedCPUThreshold, c.ShedMaxWait
	cfg.RateLimitIP, cfg.RateLimitUser = c.RateLimitIP, c.RateLimitUser
	cfg.Cache = c.cacheConfig()
	cfg.NATSURL = c.NATSURL
	cfg.SMTPURL, cfg.MailFrom = c.SMTPURL, c.MailFrom
	cfg.PaymentCaptureAfter, cfg.CheckoutAbandonAfter = c.PaymentCaptureAfter, c.CheckoutAbandonAfter
	cfg.IdempotencyKeyRetention = c.KeyRetention
	a, err := app.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.ListenAndServe(ctx)
}
