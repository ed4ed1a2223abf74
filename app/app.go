// Package app assembles million from its modules for one configuration: it
// opens the database, applies migrations, wires every module through the
// interfaces each declares, and serves the public and admin listeners.
// cmd/million parses the command line into a Config and calls it; tests
// start the same App on :0.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/millionshop/million/api"
	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/cart"
	carthttp "github.com/millionshop/million/cart/httpapi"
	cartstore "github.com/millionshop/million/cart/store"
	"github.com/millionshop/million/catalog"
	cataloghttp "github.com/millionshop/million/catalog/httpapi"
	catalogstore "github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/notify"
	notifystore "github.com/millionshop/million/notify/store"
	"github.com/millionshop/million/obs"
	"github.com/millionshop/million/order"
	orderhttp "github.com/millionshop/million/order/httpapi"
	orderstore "github.com/millionshop/million/order/store"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/payment"
	paymenthttp "github.com/millionshop/million/payment/httpapi"
	"github.com/millionshop/million/payment/simulated"
	paymentstore "github.com/millionshop/million/payment/store"
	"github.com/millionshop/million/ratelimit"
	"github.com/millionshop/million/redisx"
	"github.com/millionshop/million/search"
	searchhttp "github.com/millionshop/million/search/httpapi"
	searchstore "github.com/millionshop/million/search/store"
	"github.com/millionshop/million/shed"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
	userhttp "github.com/millionshop/million/user/httpapi"
	userstore "github.com/millionshop/million/user/store"
	"github.com/millionshop/million/web"
)

// Config is everything that selects and tunes a deployment. Zero values
// mean the documented defaults.
type Config struct {
	Addr                 string        // public listener
	AdminAddr            string        // admin listener (metrics, pprof); keep it on loopback
	DataDir              string        // embedded database and generated secrets
	DatabaseURL          string        // postgres://… selects PostgreSQL instead of the embedded database
	DBMaxConns           int32         // PostgreSQL pool size; 0 means the pgx default (4 × CPUs)
	Currency             string        // the store currency
	JWTSecret            string        // HS256 key for access tokens; generated and kept in DataDir when empty
	PaymentWebhookSecret string        // HMAC key of payment webhooks; generated and kept in DataDir when empty
	AccessTokenTTL       time.Duration // access token lifetime
	SessionTTL           time.Duration // refresh chain lifetime
	PaymentLatency       time.Duration // simulated provider latency
	PaymentTimeout       time.Duration // bound on every provider call
	ShutdownTimeout      time.Duration // how long in-flight requests may take after a stop signal
	DrainDelay           time.Duration // after a stop signal, keep serving this long with /readyz at 503 so load balancers notice; 0: none
	RequestTimeout       time.Duration // bound on one request's work
	TrustProxy           bool          // take the client IP from X-Forwarded-For
	AccessLog            bool          // log every request
	PasswordParams       user.PasswordParams
	RegistrationsPerHour int // self-registrations allowed per client IP and hour; 0 means 100
	// RedisURL (redis://host:port/db) makes Redis the state shared by every
	// instance (sessions, limits, cache); empty keeps everything in-process.
	RedisURL string
	// NoShedding turns adaptive load shedding off (package shed); it is on
	// by default, refusing work the instance cannot finish in time.
	NoShedding bool
	// ShedCPUThreshold is the CPU share above which shedding may start; 0 means 0.9.
	ShedCPUThreshold float64
	// ShedMaxWait is how long a request over an overloaded instance's
	// in-flight limit waits for a slot before it is refused; 0 means 100 ms.
	ShedMaxWait time.Duration
	// RateLimitIP and RateLimitUser are request limits per client address
	// and per authenticated user ("200/s", "6000/m:500" with a burst; "0"
	// disables); empty means DefaultRateLimitIP and DefaultRateLimitUser.
	RateLimitIP, RateLimitUser string
	// Cache tunes the read cache (app/cache.go); on by default.
	Cache CacheConfig
	// NATSURL (nats://host:4222) connects the event backbone to an external
	// NATS cluster; empty runs a NATS server inside the process, its
	// JetStream store in DataDir/nats.
	NATSURL string
	// SMTPURL (smtp://user:pass@host:587, smtps://…) mails notifications;
	// empty logs them instead. MailFrom is their sender address.
	SMTPURL, MailFrom string
	// Background jobs (app/jobs.go); zero means the order module's
	// default. PaymentCaptureAfter: how long a payment may stay authorized
	// before the payment-capture job finishes its checkout (30 s).
	// CheckoutAbandonAfter: how old an unpaid pending order gets before the
	// checkout-reaper cancels it (15 min). IdempotencyKeyRetention: how
	// long finished checkout keys are kept (48 h, never below 24 h).
	PaymentCaptureAfter, CheckoutAbandonAfter, IdempotencyKeyRetention time.Duration
}

func (c *Config) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = "127.0.0.1:9090"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.Currency == "" {
		c.Currency = "USD"
	}
	if c.RegistrationsPerHour <= 0 {
		c.RegistrationsPerHour = 100
	}
	set(&c.AccessTokenTTL, 15*time.Minute)
	set(&c.SessionTTL, 30*24*time.Hour)
	set(&c.PaymentTimeout, 10*time.Second)
	set(&c.ShutdownTimeout, 15*time.Second)
	set(&c.RequestTimeout, 30*time.Second)
	if c.PasswordParams == (user.PasswordParams{}) {
		c.PasswordParams = user.DefaultPasswordParams
	}
}

// Migrations lists every module's schema, in dependency order.
func Migrations() []sqldb.Migrations {
	return []sqldb.Migrations{
		userstore.Migrations(), catalogstore.Migrations(), searchstore.Migrations(),
		cartstore.Migrations(), orderstore.Migrations(), paymentstore.Migrations(),
		notifystore.Migrations(), outbox.Migrations(), cache.Migrations(),
	}
}

// App is one running million process.
type App struct {
	cfg      Config
	logger   *slog.Logger
	DB       *sqldb.DB
	Metrics  *obs.Metrics
	Users    *user.Accounts
	Catalog  *catalog.Catalog
	Search   *search.Index
	Carts    *cart.Carts
	Orders   *order.Orders
	Payments *payment.Payments
	Provider *simulated.Provider
	Notifier *notify.Notifier
	Outbox   *outbox.Outbox
	// Redis is the shared-state client, nil without Config.RedisURL.
	Redis rueidis.Client
	// Cache is the read cache, nil when off: Config.Cache.Disabled, or
	// PostgreSQL without Redis unless Config.Cache.Local.
	Cache    *cache.Cache
	events   *eventBackbone
	router   *web.Router
	shedder  *shed.Shedder // nil when shedding is off
	limits   func(http.Handler) http.Handler
	state    sharedState
	draining atomic.Bool
	inFlight atomic.Int64
}

// Open opens the database, applies pending migrations and wires the modules.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*App, error) {
	cfg.defaults()
	db, err := openDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if n, err := db.Migrate(ctx, Migrations()); err != nil {
		db.Close()
		return nil, err
	} else if n > 0 {
		logger.Info("migrations applied", "count", n)
	}
	var redis rueidis.Client
	if cfg.RedisURL != "" {
		if redis, err = redisx.Open(ctx, cfg.RedisURL, redisx.Options{}); err != nil {
			db.Close()
			return nil, err
		}
	}
	a, err := wire(cfg, db, redis, logger)
	if err != nil {
		if redis != nil {
			redis.Close()
		}
		db.Close()
		return nil, err
	}
	return a, nil
}

func openDB(ctx context.Context, cfg Config) (*sqldb.DB, error) {
	if cfg.DatabaseURL == "" {
		return sqldb.OpenSQLite(cfg.DataDir, sqldb.Options{})
	}
	if !sqldb.IsPostgresURL(cfg.DatabaseURL) {
		return nil, fmt.Errorf("database URL must start with postgres:// or postgresql://")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return sqldb.OpenPostgres(ctx, cfg.DatabaseURL, sqldb.PostgresOptions{MaxConns: cfg.DBMaxConns})
}

func wire(cfg Config, db *sqldb.DB, redis rueidis.Client, logger *slog.Logger) (*App, error) {
	now := time.Now
	secrets, err := loadSecrets(cfg)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, logger: logger, DB: db, Redis: redis, Metrics: obs.NewMetrics()}
	db.SetObserver(a.Metrics)
	if db.Dialect == sqldb.Postgres {
		a.Metrics.RegisterDBPool("primary", db.Write)
		a.Metrics.RegisterPgxPool(db.PoolStats)
	} else {
		a.Metrics.RegisterDBPool("write", db.Write)
		a.Metrics.RegisterDBPool("read", db.Read)
	}

	tokens, err := user.NewTokens(secrets.jwt, cfg.AccessTokenTTL, now)
	if err != nil {
		return nil, err
	}
	a.state = a.openSharedState(db, now, []ratelimit.Rule{
		{Prefix: "login:account:", Limit: 10, Window: time.Minute},
		{Prefix: "login:ip:", Limit: 50, Window: time.Minute},
		{Prefix: "register:ip:", Limit: cfg.RegistrationsPerHour, Window: time.Hour}})
	if a.limits, err = a.requestLimits(a.state.limiter, tokens); err != nil {
		return nil, err
	}
	stores, err := openStores(cfg, db, redis, a.state.users, a.Metrics, logger)
	if err != nil {
		return nil, err
	}
	a.Cache = stores.cache
	events := a.newEvents(cfg)
	a.events = events
	a.Outbox = outbox.New(db, events, logger, now)
	a.Users, err = user.NewAccounts(stores.users, a.Outbox, tokens, a.state.failures, user.Config{
		AccessTTL: cfg.AccessTokenTTL, SessionTTL: cfg.SessionTTL, PasswordParams: cfg.PasswordParams,
	}, now)
	if err != nil {
		return nil, err
	}
	a.Catalog = catalog.NewCatalog(stores.catalog, a.Outbox, cfg.Currency, now)
	a.Search = search.NewIndex(stores.search, a.Catalog)
	// Search follows the catalog through its events, never in the
	// catalog's transaction: it owns its index.
	for _, topic := range []string{catalog.TopicProductCreated, catalog.TopicProductUpdated, catalog.TopicProductDeleted} {
		events.Subscribe(topic, search.Consumer, func(ctx context.Context, e outbox.Event) error {
			return a.Search.HandleProductEvent(ctx, e.Topic, e.Payload)
		})
	}
	a.Carts = cart.NewCarts(stores.carts, a.Catalog, cfg.Currency, now)

	a.Metrics.RegisterGauge("million_outbox_pending", "Events recorded but not yet published (queue depth).", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := a.Outbox.Pending(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	a.Metrics.RegisterGauge("million_http_in_flight_requests", "Public requests being served right now.",
		func() float64 { return float64(a.InFlight()) })
	a.Provider = simulated.New(cfg.PaymentLatency)
	a.Payments = payment.NewPayments(paymentstore.New(db), a.Provider, a.Outbox, secrets.webhook, cfg.PaymentTimeout, now)
	a.Orders = order.NewOrders(stores.orders, a.Catalog, a.Carts, a.Payments, a.Outbox,
		// The key lease outlasts a whole payment (authorize, capture, void).
		order.Config{Currency: cfg.Currency, KeyLease: 3*cfg.PaymentTimeout + 15*time.Second, CaptureAfter: cfg.PaymentCaptureAfter,
			AbandonAfter: cfg.CheckoutAbandonAfter, KeyRetention: cfg.IdempotencyKeyRetention}, logger, now)
	a.Payments.SetOrderNotifier(a.Orders)
	events.jobs = append(events.jobs, a.orderJobs()...)
	sender, err := a.newSender(cfg)
	if err != nil {
		return nil, err
	}
	a.Notifier = notify.NewNotifier(notifystore.New(db), sender, now)
	for _, topic := range []string{order.TopicPlaced, order.TopicCancelled} {
		events.Subscribe(topic, "notify", func(ctx context.Context, e outbox.Event) error {
			return a.Notifier.HandleOrderEvent(ctx, e.ID, e.Topic, e.Payload)
		})
	}

	if !cfg.NoShedding {
		a.shedder = newShedder(cfg, a.Metrics)
	}
	a.router = web.NewRouter(logger, a.Users, a.Metrics)
	userhttp.Mount(a.router, a.Users)
	cataloghttp.Mount(a.router, a.Catalog, cataloghttp.Options{AnswerBytes: a.cfg.Cache.AnswerBytes})
	searchhttp.Mount(a.router, a.Search)
	carthttp.Mount(a.router, a.Carts)
	orderhttp.Mount(a.router, a.Orders)
	paymenthttp.Mount(a.router, a.Payments)
	a.router.Handle("GET /healthz", web.Public, a.healthz)
	a.router.Handle("GET /readyz", web.Public, a.readyz)
	a.router.Handle("GET /openapi.yaml", web.Public, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/yaml")
		_, err := w.Write(api.Spec)
		return err
	})
	return a, nil
}

// InFlight returns how many public requests are being served right now.
func (a *App) InFlight() int64 { return a.inFlight.Load() }

// Routes returns every public route pattern ("METHOD /path").
func (a *App) Routes() []string { return a.router.Patterns() }

// Handler returns the public HTTP handler with all middleware.
func (a *App) Handler() http.Handler {
	opts := web.MiddlewareOptions{TrustProxy: a.cfg.TrustProxy, AccessLog: a.cfg.AccessLog, Timeout: a.cfg.RequestTimeout}
	var h http.Handler = a.limits(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.inFlight.Add(1)
		defer a.inFlight.Add(-1)
		a.router.ServeHTTP(w, r)
	}))
	h = web.Middleware(a.logger, opts, h)
	if a.shedder != nil {
		// Outermost, so that a refusal costs as little CPU as possible: it
		// is what an overloaded instance does most.
		h = a.shedder.Handler(h, isHealthProbe, http.HandlerFunc(refuseOverloaded))
	}
	return h
}

func (a *App) healthz(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	web.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (a *App) readyz(w http.ResponseWriter, r *http.Request) error {
	checks := map[string]string{"database": "ok", "draining": "no"}
	ready := true
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := a.DB.Ping(ctx); err != nil {
		checks["database"], ready = "unreachable", false
	}
	if a.draining.Load() {
		checks["draining"], ready = "yes", false
	}
	w.Header().Set("Cache-Control", "no-store")
	if !ready {
		w.Header().Set("Retry-After", "1")
		body, _ := json.Marshal(map[string]any{
			"type": "urn:million:problem:unavailable", "title": "Service Unavailable", "status": 503,
			"code": "unavailable", "detail": "a dependency is unavailable or the instance is draining",
			"request_id": web.RequestIDFrom(r.Context()), "checks": checks,
		})
		w.Header().Set("Content-Type", web.ProblemContentType)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write(body)
		return nil
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
	return nil
}

// Serve runs the listeners and background workers until ctx ends, then
// drains: readiness turns 503 and requests are still served for DrainDelay,
// then listeners stop accepting, in-flight requests get up to
// ShutdownTimeout, workers stop. The caller closes the App.
func (a *App) Serve(ctx context.Context, public, admin net.Listener) error {
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      a.cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	adminSrv := &http.Server{
		Handler:           a.Metrics.AdminHandler(http.HandlerFunc(a.adminHealth), http.HandlerFunc(a.adminReady)),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	if err := a.events.start(ctx, a.Metrics); err != nil {
		public.Close()
		if admin != nil {
			admin.Close()
		}
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	workers, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { a.Outbox.Run(workers, 250*time.Millisecond) })
	if a.shedder != nil {
		wg.Go(func() { a.shedder.Run(workers.Done()) })
	}
	wg.Go(func() { a.events.run(workers) })

	errs := make(chan error, 2)
	go func() { errs <- srv.Serve(public) }()
	if admin != nil {
		go func() { errs <- adminSrv.Serve(admin) }()
	}
	a.logger.Info("serving", "addr", public.Addr().String(), "data_dir", a.cfg.DataDir)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errs:
	}
	a.draining.Store(true)
	if serveErr == nil && a.cfg.DrainDelay > 0 {
		// Readiness is 503 from now on, but new requests are still served
		// until the load balancers' health checks have taken this instance
		// out; closing the listener at once would refuse requests already
		// on their way. Keep-alives end so that pooled connections move to
		// other instances.
		a.logger.Info("draining", "delay", a.cfg.DrainDelay.String())
		srv.SetKeepAlivesEnabled(false)
		time.Sleep(a.cfg.DrainDelay)
	}
	a.logger.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	err := errors.Join(srv.Shutdown(shutdownCtx), adminSrv.Shutdown(shutdownCtx))
	stopWorkers()
	wg.Wait()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}

func (a *App) adminHealth(w http.ResponseWriter, r *http.Request) { _ = a.healthz(w, r) }
func (a *App) adminReady(w http.ResponseWriter, r *http.Request)  { _ = a.readyz(w, r) }

// Close releases the event broker, the database and the Redis client.
func (a *App) Close() error {
	a.state.close()
	if a.Cache != nil {
		a.Cache.Close()
	}
	a.events.close()
	if a.Redis != nil {
		a.Redis.Close()
	}
	return a.DB.Close()
}

// ListenAndServe listens on the configured addresses and serves until ctx ends.
func (a *App) ListenAndServe(ctx context.Context) error {
	public, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.Addr, err)
	}
	var admin net.Listener
	if a.cfg.AdminAddr != "off" {
		if admin, err = net.Listen("tcp", a.cfg.AdminAddr); err != nil {
			public.Close()
			return fmt.Errorf("listen on admin address %s: %w", a.cfg.AdminAddr, err)
		}
		a.logger.Info("admin listener", "addr", admin.Addr().String())
	}
	return a.Serve(ctx, public, admin)
}

type secrets struct {
	jwt, webhook []byte
}

type secretsFile struct {
	JWT     string `json:"jwt_secret"`
	Webhook string `json:"payment_webhook_secret"`
}

// SecretsFile is where generated secrets are kept, so tokens survive restarts.
const SecretsFile = "secrets.json"

// loadSecrets returns the configured secrets, generating and persisting any
// that are not configured. Nothing is ever a built-in default.
func loadSecrets(cfg Config) (secrets, error) {
	path := filepath.Join(cfg.DataDir, SecretsFile)
	var stored secretsFile
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &stored); err != nil {
			return secrets{}, fmt.Errorf("read %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return secrets{}, err
	}
	changed := false
	gen := func(v *string) {
		if *v == "" {
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			*v, changed = hex.EncodeToString(b), true
		}
	}
	gen(&stored.JWT)
	gen(&stored.Webhook)
	if changed {
		b, _ := json.MarshalIndent(stored, "", "  ")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return secrets{}, fmt.Errorf("write %s: %w", path, err)
		}
	}
	out := secrets{jwt: []byte(stored.JWT), webhook: []byte(stored.Webhook)}
	if cfg.JWTSecret != "" {
		out.jwt = []byte(cfg.JWTSecret)
	}
	if cfg.PaymentWebhookSecret != "" {
		out.webhook = []byte(cfg.PaymentWebhookSecret)
	}
	if len(out.jwt) < 32 {
		return secrets{}, fault.New(fault.Invalid, "", "the JWT secret must be at least 32 bytes")
	}
	return out, nil
}
