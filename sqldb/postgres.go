package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// PostgresOptions tune OpenPostgres. Zero values take the defaults; TLS and
// anything else pgx understands go in the URL (sslmode=verify-full, ...).
type PostgresOptions struct {
	MaxConns          int32         // pool size; 0 means 4 × CPUs (pgx default) or the URL's pool_max_conns
	ConnectTimeout    time.Duration // dialing one connection; 0 means 2 s, so an outage fails requests fast
	HealthCheckPeriod time.Duration // how often idle connections are checked; 0 means 15 s
}

type pgPool struct {
	pool *pgxpool.Pool
}

// closeTimeout bounds how long Close waits for connections still checked
// out of the pool. pgxpool.Close waits for every one of them, so a single
// leaked transaction or unclosed Rows would otherwise hang shutdown forever
// after the HTTP server has long finished draining.
var closeTimeout = 5 * time.Second // a variable so a test can shorten it

func (p *pgPool) close() error {
	if p == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		p.pool.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(closeTimeout):
		return fmt.Errorf("close postgres pool: %d connections still in use after %s (a transaction or rows never closed?)",
			p.pool.Stat().AcquiredConns(), closeTimeout)
	}
}

// IsPostgresURL reports whether a database setting names PostgreSQL.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// OpenPostgres connects a pgx pool to url and checks it answers.
func OpenPostgres(ctx context.Context, url string, opts PostgresOptions) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", redact(err))
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 2 * time.Second
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > opts.ConnectTimeout {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	if opts.HealthCheckPeriod <= 0 {
		opts.HealthCheckPeriod = 15 * time.Second
	}
	cfg.HealthCheckPeriod = opts.HealthCheckPeriod
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", redact(err))
	}
	pingCtx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, redact(err))
	}
	db := stdlib.OpenDBFromPool(pool)
	return &DB{Write: db, Read: db, Dialect: Postgres, pg: &pgPool{pool: pool}}, nil
}

// redact keeps passwords from connection strings out of error messages.
func redact(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if j := strings.Index(msg[i:], "@"); j >= 0 {
			msg = msg[:i+3] + "***" + msg[i+j:]
		}
	}
	return errors.New(msg)
}

// PoolStats reports the PostgreSQL pool (nil on SQLite, whose pools
// database/sql reports).
func (db *DB) PoolStats() *pgxpool.Stat {
	if db.pg == nil {
		return nil
	}
	return db.pg.pool.Stat()
}

// Pool returns the pgx pool for PostgreSQL-only work such as COPY (nil on SQLite).
func (db *DB) Pool() *pgxpool.Pool {
	if db.pg == nil {
		return nil
	}
	return db.pg.pool
}

// IsUniqueViolation reports whether err is a unique-constraint violation on
// either engine.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		return liteErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || liteErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

var rebound sync.Map // query text → rebound text

// rebind turns '?' placeholders into PostgreSQL's $1, $2, ... so every
// store writes its statements once.
func rebind(query string) string {
	if v, ok := rebound.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	inString := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inString = !inString
			b.WriteByte(c)
		case c == '?' && !inString:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	out := b.String()
	rebound.Store(query, out)
	return out
}

var statementNames sync.Map // query text → statement name

// StatementName names a statement by its verb and first table, e.g.
// "SELECT products", "INSERT orders", "UPDATE products": few enough distinct
// values for a metric label, enough to see which statement is slow.
func StatementName(query string) string {
	if v, ok := statementNames.Load(query); ok {
		return v.(string)
	}
	words := strings.Fields(query)
	name := "other"
	if len(words) > 0 {
		verb := strings.ToUpper(words[0])
		name = verb
		after := map[string]string{"SELECT": "FROM", "DELETE": "FROM", "INSERT": "INTO", "UPDATE": ""}
		if kw, ok := after[verb]; ok {
			for i, w := range words {
				if (kw == "" && i == 1) || (i > 0 && strings.EqualFold(words[i-1], kw)) {
					name = verb + " " + strings.Trim(strings.ToLower(w), "(),;")
					break
				}
			}
		}
	}
	statementNames.Store(query, name)
	return name
}

// boundQuerier rebinds placeholders for PostgreSQL and times statements.
type boundQuerier struct {
	q      Querier
	rebind bool
	obs    Observer
}

func (b boundQuerier) text(query string) string {
	if b.rebind {
		return rebind(query)
	}
	return query
}

func (b boundQuerier) observe(query string, start time.Time, err error) {
	if b.obs != nil {
		b.obs.ObserveQuery(StatementName(query), time.Since(start), err)
	}
}

func (b boundQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	start := time.Now()
	res, err := b.q.ExecContext(ctx, b.text(query), args...)
	b.observe(query, start, err)
	return res, err
}

func (b boundQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	start := time.Now()
	rows, err := b.q.QueryContext(ctx, b.text(query), args...)
	b.observe(query, start, err)
	return rows, err
}

func (b boundQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	start := time.Now()
	row := b.q.QueryRowContext(ctx, b.text(query), args...)
	b.observe(query, start, row.Err())
	return row
}
