package pgtest_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/millionshop/million/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	})
	return conn
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(ctx(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, conn *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(ctx(t), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestNewDatabaseWriteRead(t *testing.T) {
	t.Parallel()
	srv := pgtest.Cluster(t)
	conn := connect(t, srv.NewDatabase(t, ""))

	mustExec(t, conn, "CREATE TABLE note (id bigint PRIMARY KEY, body text NOT NULL)")
	mustExec(t, conn, "INSERT INTO note VALUES ($1, $2)", 1, "héllo")
	var body string
	if err := conn.QueryRow(ctx(t), "SELECT body FROM note WHERE id = 1").Scan(&body); err != nil {
		t.Fatal(err)
	}
	if body != "héllo" {
		t.Fatalf("body = %q, want %q", body, "héllo")
	}
	var upper string
	if err := conn.QueryRow(ctx(t), "SELECT upper(body) FROM note").Scan(&upper); err != nil {
		t.Fatal(err)
	}
	if upper != "HÉLLO" {
		t.Errorf("upper = %q, want HÉLLO: the cluster's locale is not Unicode-aware", upper)
	}
}

// runs tells the runs of one test apart under -count, since templates are
// built once per process.
var runs atomic.Int32

func TestTemplateClonesTables(t *testing.T) {
	t.Parallel()
	srv := pgtest.Cluster(t)
	name := fmt.Sprintf("clone%d", runs.Add(1))
	var setups atomic.Int32
	setup := func(url string) error {
		setups.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE TABLE product (id bigint PRIMARY KEY, name text NOT NULL);
			INSERT INTO product VALUES (1, 'seeded')`)
		return err
	}

	t.Run("group", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				tpl := srv.NewTemplate(t, name, setup)
				began := time.Now()
				url := srv.NewDatabase(t, tpl)
				t.Logf("NewDatabase from template took %s", time.Since(began).Round(time.Microsecond))
				conn := connect(t, url)
				if n := count(t, conn, "product"); n != 1 {
					t.Fatalf("clone has %d products, want the 1 seeded: another clone's writes leaked", n)
				}
				mustExec(t, conn, "INSERT INTO product VALUES (2, 'mine')")
			})
		}
	})
	if n := setups.Load(); n != 1 {
		t.Errorf("setup ran %d times, want once per process", n)
	}
	// The name given to NewTemplate works as well as the returned one.
	conn := connect(t, srv.NewDatabase(t, name))
	if n := count(t, conn, "product"); n != 1 {
		t.Errorf("clone by name has %d products, want 1", n)
	}
}

func TestParallelTestsGetDifferentDatabases(t *testing.T) {
	t.Parallel()
	srv := pgtest.Cluster(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	t.Run("group", func(t *testing.T) {
		for i := range 2 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				conn := connect(t, srv.NewDatabase(t, ""))
				var name string
				if err := conn.QueryRow(ctx(t), "SELECT current_database()").Scan(&name); err != nil {
					t.Fatal(err)
				}
				mustExec(t, conn, "CREATE TABLE mine (id int)")
				mustExec(t, conn, "INSERT INTO mine VALUES (1)")
				if n := count(t, conn, "mine"); n != 1 {
					t.Errorf("%d rows, want 1", n)
				}
				mu.Lock()
				seen[name] = true
				mu.Unlock()
			})
		}
	})
	if len(seen) != 2 {
		t.Fatalf("parallel tests got databases %v, want 2 different ones", seen)
	}
}

func TestDedicatedStopStart(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewDedicated(t)
	if _, err := os.Stat(filepath.Join(srv.DataDir(), "PG_VERSION")); err != nil {
		t.Errorf("DataDir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(srv.BinDir(), "pg_basebackup")); err != nil {
		t.Errorf("BinDir: %v", err)
	}
	url := srv.NewDatabase(t, "")
	before := connect(t, url)
	mustExec(t, before, "CREATE TABLE kept (id int)")
	mustExec(t, before, "INSERT INTO kept VALUES (1)")

	srv.Stop(t)
	began := time.Now()
	if _, err := before.Exec(ctx(t), "SELECT 1"); err == nil {
		t.Error("a connection opened before Stop still works after it")
	}
	c, err := pgx.Connect(ctx(t), url)
	if err == nil {
		c.Close(ctx(t))
		t.Fatal("connected to a stopped cluster")
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("failing against the stopped cluster took %s, want fast failure", took)
	}

	srv.Start(t)
	if n := count(t, connect(t, url), "kept"); n != 1 {
		t.Errorf("after Start: %d rows, want 1", n)
	}
	srv.Restart(t)
	if n := count(t, connect(t, url), "kept"); n != 1 {
		t.Errorf("after Restart: %d rows, want 1", n)
	}
}

func BenchmarkNewDatabaseFromTemplate(b *testing.B) {
	srv := pgtest.Cluster(b)
	tpl := srv.NewTemplate(b, "bench", func(url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		for i := range 20 {
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE t%d (id bigint PRIMARY KEY, name text, body text)", i)); err != nil {
				return err
			}
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE INDEX ON t%d (name)", i)); err != nil {
				return err
			}
		}
		return nil
	})
	for b.Loop() {
		srv.NewDatabase(b, tpl) // dropped after the loop: creation alone is measured
	}
}

// TestDedicatedTLS proves WithTLS and WithHBA: a cluster that admits TCP
// clients only over TLS serves verified TLS, refuses plain text, keeps both
// across a restart, and still hands out databases (administration goes
// through the Unix socket).
func TestDedicatedTLS(t *testing.T) {
	t.Parallel()
	ca := pgtest.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1", "localhost")
	srv := pgtest.NewDedicated(t, pgtest.WithTLS(cert, key), pgtest.WithHBA("hostssl all all 127.0.0.1/32 trust"))
	plain := srv.NewDatabase(t, "")
	verified := strings.Replace(plain, "sslmode=disable", "sslmode=verify-full&sslrootcert="+url.QueryEscape(ca.CertFile(t)), 1)
	if verified == plain {
		t.Fatalf("URL %s has no sslmode=disable to replace", plain)
	}

	checkTLS := func(when string) {
		t.Helper()
		var ssl bool
		var version string
		if err := connect(t, verified).QueryRow(ctx(t),
			"SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &version); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if !ssl || !strings.HasPrefix(version, "TLS") {
			t.Errorf("%s: pg_stat_ssl says ssl=%v version=%q, want a TLS connection", when, ssl, version)
		}
		c, err := pgx.Connect(ctx(t), plain)
		if err == nil {
			c.Close(ctx(t))
			t.Fatalf("%s: connected without TLS to a hostssl-only server", when)
		}
		if !strings.Contains(err.Error(), "pg_hba.conf") {
			t.Errorf("%s: plain-text connection failed with %v, want a pg_hba.conf refusal", when, err)
		}
	}
	checkTLS("after start")
	srv.Restart(t)
	checkTLS("after restart")
}
