package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/millionshop/million/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestConcurrentMigrationsApplyOnce starts `million migrate up` from three
// processes at once against one empty PostgreSQL database: the advisory
// lock lets one apply each migration and the others find nothing to do.
func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	bin := buildBinary(t)
	url := pgtest.Cluster(t).NewDatabase(t, "")

	var wg sync.WaitGroup
	outs := make([]string, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			out, err := exec.Command(bin, "migrate", "up", "--database", url, "--data-dir", t.TempDir()).CombinedOutput()
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'goose\_%'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 8 {
		t.Fatalf("version tables = %v, want one per module (8)", tables)
	}
	for _, table := range tables {
		var dups int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT version_id FROM `+pgx.Identifier{table}.Sanitize()+
			` WHERE version_id > 0 GROUP BY version_id HAVING count(*) > 1) d`).Scan(&dups)
		if err != nil || dups != 0 {
			t.Errorf("%s: %d migrations recorded more than once (%v)", table, dups, err)
		}
	}

	status, err := exec.Command(bin, "migrate", "status", "--database", url, "--data-dir", t.TempDir()).CombinedOutput()
	if err != nil || strings.Contains(string(status), "pending") || !strings.Contains(string(status), "applied") {
		t.Fatalf("migrate status after up: %v\n%s", err, status)
	}
}

// TestServeOnPostgres runs the operator's stage 2 path with the built
// binary: `million user create` and `million serve` against a PostgreSQL URL
// given in MILLION_DATABASE_URL, a login, and readiness that names the database.
func TestServeOnPostgres(t *testing.T) {
	bin := buildBinary(t)
	url := pgtest.Cluster(t).NewDatabase(t, "")
	data := t.TempDir()

	create := exec.Command(bin, "user", "create", "--admin", "--email", "ops@example.com", "--password-stdin",
		"--database", url, "--data-dir", data)
	create.Stdin = strings.NewReader("a long admin password\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("user create on postgres: %v\n%s", err, out)
	}

	addr := freeAddr(t)
	serve := exec.Command(bin, "serve", "--addr", addr, "--admin-addr", "off", "--data-dir", data)
	serve.Env = append(serve.Environ(), "MILLION_DATABASE_URL="+url)
	var logs strings.Builder
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		_ = serve.Wait()
	}()
	waitReady(t, "http://"+addr+"/readyz")

	resp, err := http.Post("http://"+addr+"/v1/auth/login", "application/json",
		strings.NewReader(`{"email":"ops@example.com","password":"a long admin password"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login on postgres: %d\n%s", resp.StatusCode, logs.String())
	}
	if _, err := os.Stat(filepath.Join(data, "million.db")); err == nil {
		t.Error("serve --database created an embedded database file as well")
	}
}
