package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Database names carry the pid so that test binaries sharing an external
// server cannot collide, and the test name so a leftover is traceable.
var dbSeq atomic.Int64

// NewDatabase creates an empty database for this test and returns its URL;
// it is dropped (WITH (FORCE), so leaked connections do not block it) at
// t.Cleanup. template is a name given to NewTemplate, or any database to
// copy; "" copies template1.
func (s *Server) NewDatabase(t testing.TB, template string) string {
	t.Helper()
	src, err := s.resolveTemplate(template)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := s.databaseName(t.Name())
	stmt := "CREATE DATABASE " + quote(name)
	if src != "" {
		stmt += " TEMPLATE " + quote(src)
	}
	if !s.external {
		// FILE_COPY copies the files and checkpoints, which fsync=off makes
		// cheap; the default WAL_LOG writes the whole template to WAL, about
		// 3x slower here. External servers may well fsync, so they keep it.
		stmt += " STRATEGY FILE_COPY"
	}
	if err := s.createDatabase(stmt); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// A stopped own cluster is deleted whole later; nothing to drop.
		if !s.external && !s.running() {
			return
		}
		if err := s.dropDatabase(name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s.URL(name)
}

func (s *Server) databaseName(testName string) string {
	name := fmt.Sprintf("pgtest_%d_%d_%s", os.Getpid(), dbSeq.Add(1), sanitize(testName))
	return name[:min(len(name), 63)] // NAMEDATALEN-1: longer would be truncated by the server
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

func sanitize(s string) string {
	return strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(s), "_"), "_")
}

func quote(ident string) string { return pgx.Identifier{ident}.Sanitize() }

// createDatabase retries while the source is briefly in use (SQLSTATE
// 55006), as when a template's last setup connection is still closing.
func (s *Server) createDatabase(stmt string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.exec(time.Minute, stmt)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) dropDatabase(name string) error {
	return s.exec(time.Minute, "DROP DATABASE IF EXISTS "+quote(name)+" WITH (FORCE)")
}

// exec runs one admin statement on a connection of its own: CREATE and DROP
// DATABASE cannot run in a transaction, and a fresh connection also works
// after a dedicated cluster was restarted.
func (s *Server) exec(timeout time.Duration, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// template is one NewTemplate name, built once per Server.
type template struct {
	ready chan struct{} // closed when db and err are set
	db    string
	err   error
}

var templateName = regexp.MustCompile(`^[A-Za-z0-9_]{1,40}$`)

// NewTemplate creates database name once per process and server, runs setup
// on its URL (typically the migrations), and turns it into a template, so
// NewDatabase(t, name) copies the migrated schema in milliseconds instead of
// migrating per test. Concurrent callers wait for the first; later calls
// reuse the result, setup included, so every caller must pass the same
// setup. setup must close its connections before returning: a template
// cannot be copied while someone is connected to it (leftovers are
// terminated). It returns the template's database name, which NewDatabase
// also accepts.
func (s *Server) NewTemplate(t testing.TB, name string, setup func(url string) error) string {
	t.Helper()
	if !templateName.MatchString(name) {
		t.Fatalf("pgtest: template name %q: use 1-40 letters, digits or _", name)
	}
	s.tmplMu.Lock()
	if s.templates == nil {
		s.templates = map[string]*template{}
	}
	tp, building := s.templates[name]
	if !building {
		tp = &template{ready: make(chan struct{})}
		s.templates[name] = tp
	}
	s.tmplMu.Unlock()
	if building {
		<-tp.ready
	} else {
		func() {
			defer close(tp.ready)
			tp.db = fmt.Sprintf("pgtest_tpl_%d_%s", os.Getpid(), name)
			tp.err = s.buildTemplate(tp.db, setup)
		}()
	}
	if tp.err != nil {
		t.Fatalf("pgtest: template %s: %v", name, tp.err)
	}
	return tp.db
}

func (s *Server) buildTemplate(db string, setup func(url string) error) error {
	// A pid can be reused on an external server after a binary was killed.
	if err := s.dropTemplate(db); err != nil {
		return err
	}
	if err := s.createDatabase("CREATE DATABASE " + quote(db)); err != nil {
		return err
	}
	if err := setup(s.URL(db)); err != nil {
		return errors.Join(fmt.Errorf("setup: %w", err), s.dropDatabase(db))
	}
	// Refusing connections first keeps a stray pool from reconnecting
	// between the terminate and the copies.
	if err := s.exec(30*time.Second, "ALTER DATABASE "+quote(db)+" ALLOW_CONNECTIONS false"); err != nil {
		return err
	}
	if err := s.exec(30*time.Second, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1", db); err != nil {
		return err
	}
	return s.exec(30*time.Second, "ALTER DATABASE "+quote(db)+" IS_TEMPLATE true")
}

func (s *Server) resolveTemplate(name string) (string, error) {
	s.tmplMu.Lock()
	tp := s.templates[name]
	s.tmplMu.Unlock()
	if tp == nil {
		return name, nil
	}
	<-tp.ready
	if tp.err != nil {
		return "", fmt.Errorf("template %s: %w", name, tp.err)
	}
	return tp.db, nil
}

// dropTemplate drops a database that may be marked as a template, which
// DROP DATABASE refuses.
func (s *Server) dropTemplate(db string) error {
	err := s.exec(30*time.Second, "ALTER DATABASE "+quote(db)+" IS_TEMPLATE false")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name: it does not exist
		return nil
	}
	if err != nil {
		return err
	}
	return s.dropDatabase(db)
}

// dropTemplates removes this process's templates from an external server,
// where nothing else would.
func (s *Server) dropTemplates() error {
	s.tmplMu.Lock()
	defer s.tmplMu.Unlock()
	var errs []error
	for _, tp := range s.templates {
		<-tp.ready
		if tp.err == nil {
			errs = append(errs, s.dropTemplate(tp.db))
		}
	}
	return errors.Join(errs...)
}
