// Package pgtest gives tests real PostgreSQL without Docker: it starts
// throwaway clusters from the server binaries installed on the machine and
// hands each test its own database, cloned in milliseconds from a migrated
// template.
//
// A test binary that uses it routes TestMain through Main, so the shared
// cluster is stopped and its directory removed when the tests end:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestStore(t *testing.T) {
//		t.Parallel()
//		srv := pgtest.Cluster(t)
//		tpl := srv.NewTemplate(t, "million", migrate) // once per process
//		url := srv.NewDatabase(t, tpl)                 // dropped at t.Cleanup
//		...
//	}
//
// Setting MILLION_TEST_POSTGRES_URL (for example
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) makes Cluster
// use that server instead of starting one, which saves the start-up second
// on a developer machine. Its role must be allowed to create databases.
// NewDedicated always starts its own cluster, because its tests stop it;
// WithTLS, WithHBA and NewCA set one up for tests of TLS to the database.
//
// Clusters live in /dev/shm when it is writable, else in os.TempDir(), or
// in the directory named by MILLION_TEST_POSTGRES_DIR; each in its own
// million-pgtest-* directory, removed when the cluster stops.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvURL names the environment variable that points Cluster at an existing
// server instead of a throwaway one.
const EnvURL = "MILLION_TEST_POSTGRES_URL"

// Server is a PostgreSQL server that tests create databases on: the shared
// cluster of the test binary, a dedicated cluster, or an external server
// named by EnvURL. Its methods are safe for concurrent use.
type Server struct {
	base     url.URL // URL(db) swaps the path of this
	adminURL string  // where CREATE/DROP DATABASE are sent
	external bool    // not ours: never started, stopped or removed here
	shared   bool    // used by every test of the binary: must not be stopped by one of them

	binDir  string
	version int                 // major version of the binaries in binDir
	root    string              // temp dir holding data, socket dir and log; removed with the cluster
	port    int                 // kept across Stop/Start so URLs handed out stay valid
	cred    *syscall.Credential // the postgres OS user, when running as root

	mu      sync.Mutex
	proc    *process // nil while stopped
	removed bool

	tmplMu    sync.Mutex
	templates map[string]*template
}

// shared is the lazily started cluster of this test binary. A mutex rather
// than sync.Once, so Main can also close it off after the tests have run.
var shared struct {
	mu   sync.Mutex
	done bool
	srv  *Server
	err  error
}

// Cluster returns the server shared by every test of this test binary,
// starting a throwaway cluster on first use (about a second). It fails the
// test when no server can be had; it never skips, so a machine without
// PostgreSQL shows up as a failure rather than as silently untested code.
func Cluster(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.done {
		shared.done = true
		began := time.Now()
		if raw := os.Getenv(EnvURL); raw != "" {
			shared.srv, shared.err = openExternal(raw)
		} else {
			shared.srv, shared.err = startCluster(true, options{})
			if shared.err == nil {
				t.Logf("pgtest: started PostgreSQL %d on port %d in %s (%s)",
					shared.srv.version, shared.srv.port, time.Since(began).Round(time.Millisecond), shared.srv.root)
			}
		}
	}
	if shared.err != nil {
		t.Fatalf("pgtest: %v", shared.err)
	}
	return shared.srv
}

// Main runs the tests and then stops the shared cluster and removes its
// directory; call it from TestMain. Go has no suite-wide teardown, and a
// cluster left running would outlive the test binary. If the binary dies
// before Main's teardown, the kernel stops postgres (parent-death signal)
// and the next cluster start removes the leftover directory.
func Main(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	srv := shared.srv
	shared.done, shared.srv = true, nil
	shared.err = errors.New("the shared cluster was already stopped by pgtest.Main")
	shared.mu.Unlock()
	if srv != nil {
		if err := srv.close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	os.Exit(code)
}

// NewDedicated starts a cluster for this test alone and removes it at
// t.Cleanup. Tests that stop or restart the database use one, so the outage
// does not hit tests sharing Cluster; it ignores EnvURL for the same reason.
// Tests of connection security pass WithTLS and WithHBA.
func NewDedicated(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	began := time.Now()
	s, err := startCluster(false, o)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Logf("pgtest: started dedicated PostgreSQL %d on port %d in %s",
		s.version, s.port, time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// openExternal checks the server named by EnvURL up front, so a wrong URL
// fails the first test with the reason instead of every test obscurely.
func openExternal(raw string) (*Server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvURL, err)
	}
	port := 5432
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("%s: port %q: %w", EnvURL, p, err)
		}
	}
	s := &Server{base: *u, adminURL: raw, external: true, shared: true, port: port}
	// Binaries are optional here: only tools like pg_basebackup need them.
	s.binDir, s.version, _ = findBinDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ping(ctx, raw); err != nil {
		return nil, fmt.Errorf("%s=%s: %w", EnvURL, u.Redacted(), err)
	}
	return s, nil
}

// URL returns the connection string of database db on this server.
func (s *Server) URL(db string) string {
	u := s.base
	u.Path = "/" + db
	u.RawPath = ""
	return u.String()
}

// Port returns the TCP port the server listens on at 127.0.0.1 (or the
// port of the external server). It stays the same across Stop and Start.
func (s *Server) Port() int { return s.port }

// BinDir returns the directory of the PostgreSQL binaries that run the
// cluster, for tools such as pg_basebackup; "" for an external server when
// no binaries are installed.
func (s *Server) BinDir() string { return s.binDir }

// DataDir returns the cluster's data directory; "" for an external server.
func (s *Server) DataDir() string {
	if s.external {
		return ""
	}
	return dataDir(s.root)
}

// Stop shuts a dedicated cluster down (fast shutdown: open sessions are
// terminated), so new connections are refused at once. Call it from the
// test goroutine. Stopping the shared cluster or an external server fails
// the test: every other test would fail with it.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mustOwn(t, "Stop")
	if err := s.stop(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Start starts a dedicated cluster stopped by Stop again, on the same port
// and data, and waits until it accepts connections (at most 30 s).
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mustOwn(t, "Start")
	if err := s.start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Restart stops and starts a dedicated cluster, as a database restart
// under load would.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mustOwn(t, "Restart")
	if err := s.stop(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

func (s *Server) mustOwn(t testing.TB, op string) {
	t.Helper()
	if s.external || s.shared {
		t.Fatalf("pgtest: %s needs a cluster of the test's own: use pgtest.NewDedicated", op)
	}
}
