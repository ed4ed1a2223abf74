// Package e2e holds the end-to-end API suites. They speak HTTP to a target
// and nothing else, so the same suites run against the real program started
// in-process on :0 with a temporary data directory (the default), against
// another storage backend, or through a gateway: set MILLION_E2E_BASE_URL
// (plus MILLION_E2E_ADMIN_EMAIL, MILLION_E2E_ADMIN_PASSWORD and
// MILLION_E2E_WEBHOOK_SECRET) to point them at a running deployment.
package e2e

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/app"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/seed"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
)

// WebhookSecret is the payment webhook secret of in-process servers.
const WebhookSecret = "e2e-webhook-secret-0123456789abcdef"

// Target is a running deployment the suites talk to.
type Target struct {
	BaseURL       string
	WebhookSecret []byte
	AdminEmail    string
	AdminPassword string
	// Server is the in-process server, nil for an external target. Tests
	// that need to restart the process or inspect it use it (and skip on
	// external targets only when the test is about process control).
	Server *Server
}

// Server is million started in-process on a loopback port.
type Server struct {
	Config  app.Config
	App     *app.App
	BaseURL string
	addr    string
	admin   string
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
}

// fastPasswords keeps argon2id real but cheap in tests, so suites can log in
// hundreds of times; production uses user.DefaultPasswordParams.
var fastPasswords = user.PasswordParams{MemoryKiB: 1024, Iterations: 1, Parallelism: 1}

// Backend is the storage the in-process servers use: "sqlite" (the
// default) or "postgres" (MILLION_TEST_BACKEND=postgres), on a throwaway
// cluster started by package pgtest.
func Backend() string {
	if b := os.Getenv("MILLION_TEST_BACKEND"); b != "" {
		return b
	}
	return "sqlite"
}

// PostgresDatabase returns the URL of a fresh, migrated database on the
// test binary's throwaway cluster, for several instances to share.
func PostgresDatabase(t testing.TB) string { return postgresDatabase(t) }

// postgresDatabase returns a fresh database cloned from one migrated template.
func postgresDatabase(t testing.TB) string {
	t.Helper()
	srv := pgtest.Cluster(t)
	template := srv.NewTemplate(t, "million_e2e", func(url string) error {
		ctx := context.Background()
		db, err := sqldb.OpenPostgres(ctx, url, sqldb.PostgresOptions{MaxConns: 2})
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.Migrate(ctx, app.Migrations())
		return err
	})
	return srv.NewDatabase(t, template)
}

// Start runs million in-process with a fresh data directory and stops it
// when the test ends.
func Start(t testing.TB, mutate ...func(*app.Config)) *Server {
	t.Helper()
	cfg := app.Config{
		DataDir:              t.TempDir(),
		Addr:                 "127.0.0.1:0",
		AdminAddr:            "127.0.0.1:0",
		PaymentWebhookSecret: WebhookSecret,
		PasswordParams:       fastPasswords,
		RegistrationsPerHour: 1_000_000, // suites register many users from 127.0.0.1
		ShutdownTimeout:      15 * time.Second,
		// The suites fire bursts of concurrent requests on a CI machine
		// whose CPUs other test packages share, and count exact statuses
		// (200 checkouts: 10 × 201, 190 × 409). Shedding may rightly refuse
		// some of those with 503; it has its own test (cmd/million,
		// TestOverloadShedsAndRecovers).
		NoShedding: true,
		// Suites drive the API at machine speed from 127.0.0.1, as no one
		// client does; tests of the request limits set their own.
		RateLimitIP:   "0",
		RateLimitUser: "0",
	}
	if Backend() == "postgres" {
		cfg.DatabaseURL = postgresDatabase(t)
	}
	for _, m := range mutate {
		m(&cfg)
	}
	s := &Server{Config: cfg}
	if err := s.start(); err != nil {
		t.Fatalf("start million: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop million: %v", err)
		}
	})
	return s
}

func (s *Server) start() error {
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if os.Getenv("MILLION_E2E_LOG") != "" {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.Open(ctx, s.Config, logger)
	if err != nil {
		cancel()
		return err
	}
	addr := s.addr
	if addr == "" {
		addr = s.Config.Addr
	}
	public, err := net.Listen("tcp", addr)
	if err != nil {
		cancel()
		a.Close()
		return err
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		public.Close()
		a.Close()
		return err
	}
	s.App, s.cancel, s.done = a, cancel, make(chan error, 1)
	s.addr, s.admin = public.Addr().String(), admin.Addr().String()
	s.BaseURL = "http://" + s.addr
	go func() {
		err := a.Serve(ctx, public, admin)
		s.done <- errors.Join(err, a.Close())
	}()
	return nil
}

// AdminAddr returns the admin listener's address (metrics, pprof).
func (s *Server) AdminAddr() string { return s.admin }

// Stop shuts the server down gracefully; it is safe to call twice.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	err := <-s.done
	s.cancel = nil
	return err
}

// Restart stops the server and starts it again on the same address and data
// directory, as an operator restarting the process would.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
}

// NewTarget returns the deployment under test: the external one named by
// MILLION_E2E_BASE_URL, or a fresh in-process server.
func NewTarget(t testing.TB) *Target {
	t.Helper()
	if base := os.Getenv("MILLION_E2E_BASE_URL"); base != "" {
		return &Target{
			BaseURL:       base,
			WebhookSecret: []byte(os.Getenv("MILLION_E2E_WEBHOOK_SECRET")),
			AdminEmail:    os.Getenv("MILLION_E2E_ADMIN_EMAIL"),
			AdminPassword: os.Getenv("MILLION_E2E_ADMIN_PASSWORD"),
		}
	}
	return targetFor(t, Start(t))
}

// targetFor makes a Target of an in-process server, with a fresh admin.
func targetFor(t testing.TB, s *Server) *Target {
	t.Helper()
	email, password := "admin-"+uuid.NewString()[:8]+"@example.com", "admin-password-"+uuid.NewString()[:8]
	if _, err := s.App.Users.Register(context.Background(), user.Registration{
		Email: email, Password: password, Name: "Admin", Role: user.RoleAdmin,
	}); err != nil {
		t.Fatalf("create admin: %v", err)
	}
	return &Target{BaseURL: s.BaseURL, WebhookSecret: []byte(WebhookSecret), AdminEmail: email, AdminPassword: password, Server: s}
}

// Client returns an HTTP client for the target with a bounded timeout.
func (tg *Target) Client() *Client {
	return &Client{Base: tg.BaseURL, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// StartSeeded is Start with users and products created by package seed
// (users userN@seed.million.test, password seed.DefaultPassword), for tests
// that drive load through the real server.
func StartSeeded(t testing.TB, users, products int) *Server {
	t.Helper()
	// Load tests run at the production request limits (empty: the
	// defaults), which must not bother them.
	s := Start(t, func(c *app.Config) { c.RateLimitIP, c.RateLimitUser = "", "" })
	if _, err := seed.Run(context.Background(), s.App.DB, seed.Options{Users: users, Products: products, Seed: 1}, nil); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return s
}

// MetricsURL is the admin listener's Prometheus endpoint.
func (s *Server) MetricsURL() string { return "http://" + s.admin + "/metrics" }

// StartCluster runs n instances of million in-process on one PostgreSQL
// database (whatever Backend says: instances of a fleet share a server) and
// one JWT secret, each with its own data directory, as a fleet behind a load
// balancer would run. mutate applies to every instance (e.g. RedisURL).
// The returned Target is the first instance, with an admin.
func StartCluster(t testing.TB, n int, mutate ...func(*app.Config)) (*Target, []*Server) {
	t.Helper()
	servers := startCluster(t, n, mutate...)
	return targetFor(t, servers[0]), servers
}

// startCluster starts the instances of StartCluster.
func startCluster(t testing.TB, n int, mutate ...func(*app.Config)) []*Server {
	t.Helper()
	dbURL := postgresDatabase(t)
	secret := "e2e-cluster-jwt-secret-" + uuid.NewString()
	servers := make([]*Server, n)
	for i := range servers {
		servers[i] = Start(t, append([]func(*app.Config){func(c *app.Config) {
			c.DatabaseURL, c.JWTSecret = dbURL, secret
		}}, mutate...)...)
	}
	return servers
}
