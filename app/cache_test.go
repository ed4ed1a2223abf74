package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/redistest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// lockedBuffer is a log sink safe for the app's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCacheDefaultFollowsTheDatabase: the in-process cache is on where one
// process owns the data (embedded SQLite) or where Redis carries the
// invalidations; on a PostgreSQL without Redis, which several instances
// may share without hearing each other's writes, it is off unless forced,
// and the start says how to turn it on.
func TestCacheDefaultFollowsTheDatabase(t *testing.T) {
	t.Parallel()
	pg := pgtest.Cluster(t)
	redis := redistest.Start(t)
	for _, tc := range []struct {
		name     string
		postgres bool
		redis    bool
		local    bool
		want     string // "off", "local", "distributed"
		log      string
	}{
		{"sqlite", false, false, false, "local", ""},
		{"postgres", true, false, false, "off", "--redis"},
		{"postgres forced", true, false, true, "local", "only while one instance"},
		{"postgres with redis", true, true, false, "distributed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := app.Config{DataDir: t.TempDir()}
			if tc.postgres {
				cfg.DatabaseURL = pg.NewDatabase(t, "")
			}
			if tc.redis {
				cfg.RedisURL = redis.URL()
			}
			cfg.Cache.Local = tc.local
			var logs lockedBuffer
			a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			got := "off"
			if a.Cache != nil {
				got = "local"
				if a.Cache.Distributed() {
					got = "distributed"
				}
			}
			if got != tc.want {
				t.Fatalf("cache %s, want %s", got, tc.want)
			}
			if tc.log != "" && !strings.Contains(logs.String(), tc.log) {
				t.Fatalf("the start log does not mention %q:\n%s", tc.log, logs.String())
			}
		})
	}
}
