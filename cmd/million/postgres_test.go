package main

import (
	"context"
	"os/exec"
	"strings"
	"sync"
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
