// Package sqldb opens million's databases and carries transactions across
// module boundaries. The embedded mode uses one SQLite file in WAL mode with
// two pools: a single-connection write pool, so writers queue in Go instead
// of failing with SQLITE_BUSY, and a read pool sized to the CPUs.
//
// A transaction travels in the context: a store method called with a context
// from InTx joins that transaction, otherwise it uses the right pool. This is
// how checkout spans catalog, cart and order in one transaction while each
// module keeps its own tables and its own store.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/millionshop/million/fault"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Querier is what stores run statements on: a pool or a transaction.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Dialect is the SQL engine behind a DB.
type Dialect int

// The supported engines.
const (
	SQLite Dialect = iota
	Postgres
)

// String names the dialect.
func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// DB is an open database. On SQLite, Write has one connection and Read is a
// read-only pool; on PostgreSQL both are the same connection pool.
type DB struct {
	Write   *sql.DB // SQLite: exactly one connection, since SQLite allows one writer at a time
	Read    *sql.DB // SQLite: read-only connections, served concurrently in WAL mode
	Path    string  // the SQLite database file; "" on PostgreSQL
	Dialect Dialect
	pg      *pgPool  // PostgreSQL only
	obs     Observer // nil: statements are not timed
	// SQLite only: the prepared statements of each pool.
	writeStmts, readStmts *stmtCache
}

// Observer receives the duration and outcome of every statement, by a
// short statement name such as "SELECT products" (for metrics).
type Observer interface {
	ObserveQuery(statement string, elapsed time.Duration, err error)
}

// SetObserver makes db report every statement to o. Call it before use.
func (db *DB) SetObserver(o Observer) { db.obs = o }

// Options tunes OpenSQLite.
type Options struct {
	ReadConns   int           // read pool size; 0 means max(4, 2×CPUs)
	BusyTimeout time.Duration // how long a statement waits for a lock; 0 means 5 s
}

// FileName is the database file inside the data directory.
const FileName = "million.db"

// OpenSQLite opens (creating if needed) the database in dataDir.
func OpenSQLite(dataDir string, opts Options) (*DB, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = max(4, 2*runtime.NumCPU())
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	path := filepath.Join(dataDir, FileName)
	pragmas := url.Values{}
	for _, p := range []string{
		fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()),
		"journal_mode(WAL)",
		"synchronous(NORMAL)",
		"foreign_keys(ON)",
		"temp_store(MEMORY)",
		"cache_size(-16000)",
	} {
		pragmas.Add("_pragma", p)
	}
	writeDSN := "file:" + path + "?" + pragmas.Encode() + "&_txlock=immediate"
	pragmas.Add("_pragma", "query_only(1)")
	readDSN := "file:" + path + "?" + pragmas.Encode()

	w, err := sql.Open("sqlite", writeDSN)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", readDSN)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	r.SetConnMaxLifetime(0)
	return &DB{Write: w, Read: r, Path: path, Dialect: SQLite, writeStmts: newStmtCache(w), readStmts: newStmtCache(r)}, nil
}

// Close closes the pools; on SQLite it first checkpoints the WAL so the
// database file is complete on its own.
func (db *DB) Close() error {
	if db.Dialect == Postgres {
		return errors.Join(db.Write.Close(), db.pg.close())
	}
	db.readStmts.close()
	db.writeStmts.close()
	_, _ = db.Write.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return errors.Join(db.Read.Close(), db.Write.Close())
}

// Ping checks that both pools can reach the database.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.Write.PingContext(ctx); err != nil {
		return err
	}
	if db.Read == db.Write {
		return nil
	}
	return db.Read.PingContext(ctx)
}

// ForUpdate is the clause that locks selected rows for the rest of a
// transaction: needed on PostgreSQL for read-modify-write; SQLite's write
// transactions are exclusive already and do not know the clause.
// With table names, only rows of those tables are locked.
func (db *DB) ForUpdate(of ...string) string {
	if db.Dialect != Postgres {
		return ""
	}
	if len(of) > 0 {
		return " FOR UPDATE OF " + strings.Join(of, ", ")
	}
	return " FOR UPDATE"
}

type txKey struct{}

// txState is the transaction of a context and what to run once it commits.
type txState struct {
	tx           *sql.Tx
	beforeCommit []func(ctx context.Context) error
	afterCommit  []func()
	values       map[any]any
	// ended is set once the transaction committed or rolled back: a
	// context kept past that (in an after-commit action, say) carries a
	// transaction that takes no more work.
	ended bool
}

func stateOf(ctx context.Context) *txState {
	st, _ := ctx.Value(txKey{}).(*txState)
	return st
}

// InTx runs fn in a write transaction carried by the context passed to fn.
// When ctx already carries a transaction, fn joins it, so callers compose.
// The transaction commits when fn returns nil and rolls back otherwise.
func (db *DB) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if stateOf(ctx) != nil {
		return fn(ctx)
	}
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	st := &txState{tx: tx}
	committed := false
	defer func() {
		st.ended = true
		// A panic in fn must not leave the transaction open: on SQLite it
		// would hold the only write connection and stop every write.
		if !committed {
			_ = tx.Rollback()
		}
	}()
	txCtx := context.WithValue(ctx, txKey{}, st)
	if err := fn(txCtx); err != nil {
		return err
	}
	// By index: a hook may add another.
	for i := 0; i < len(st.beforeCommit); i++ {
		if err := st.beforeCommit[i](txCtx); err != nil {
			return err
		}
	}
	committed = true
	err = tx.Commit()
	st.ended = true // before the after-commit actions, which may hold txCtx
	if err != nil {
		return fault.Wrap(err, "commit")
	}
	for _, f := range st.afterCommit {
		f()
	}
	return nil
}

// BeforeCommit runs f inside the transaction of ctx once its work is done,
// just before it commits; an error from f rolls the transaction back and
// is what InTx returns. Without a transaction it runs f at once and
// returns its error. It lets several writes of one transaction share one
// statement (one journal row for all their cache invalidations).
func BeforeCommit(ctx context.Context, f func(ctx context.Context) error) error {
	if st := stateOf(ctx); st != nil {
		st.beforeCommit = append(st.beforeCommit, f)
		return nil
	}
	return f(ctx)
}

// AfterCommit runs f once the transaction of ctx commits, and never if it
// rolls back; without a transaction it runs f at once. It is how a writer
// wakes a worker (the outbox relay) only when there is something to see.
func AfterCommit(ctx context.Context, f func()) {
	if st := stateOf(ctx); st != nil {
		st.afterCommit = append(st.afterCommit, f)
		return
	}
	f()
}

// TxValue returns the value kept under key for the transaction of ctx,
// made by init the first time, so that several writes of one transaction
// share one after-commit action: init registers it with AfterCommit, and
// each write adds to the value it returns. Without a transaction, or with
// one that has ended, it returns ok false: the caller then writes at once,
// and a write through an ended transaction fails as it should instead of
// waiting for a commit that already happened. Like the transaction, the
// value belongs to one goroutine.
func TxValue(ctx context.Context, key any, init func() any) (v any, ok bool) {
	st := stateOf(ctx)
	if st == nil || st.ended {
		return nil, false
	}
	if v, ok := st.values[key]; ok {
		return v, true
	}
	if st.values == nil {
		st.values = map[any]any{}
	}
	v = init()
	st.values[key] = v
	return v, true
}

// Writer returns the transaction of ctx, or the write pool. Statements use
// '?' placeholders on every dialect.
func (db *DB) Writer(ctx context.Context) Querier {
	if st := stateOf(ctx); st != nil {
		return db.bind(db.Write, db.writeStmts, st.tx)
	}
	return db.bind(db.Write, db.writeStmts, nil)
}

// Reader returns the transaction of ctx (so a transaction reads its own
// writes), or the read pool. Statements use '?' placeholders on every dialect.
func (db *DB) Reader(ctx context.Context) Querier {
	if st := stateOf(ctx); st != nil {
		// A transaction is always of the write pool.
		return db.bind(db.Write, db.writeStmts, st.tx)
	}
	return db.bind(db.Read, db.readStmts, nil)
}

// bind returns the querier of pool, or of tx when it is set: through the
// pool's statement cache when it has one, rebinding placeholders for
// PostgreSQL and timing statements when an observer is set.
func (db *DB) bind(pool *sql.DB, stmts *stmtCache, tx *sql.Tx) Querier {
	var q Querier
	switch {
	case stmts != nil:
		q = preparedQuerier{cache: stmts, tx: tx}
	case tx != nil:
		q = tx
	default:
		q = pool
	}
	if db.Dialect == Postgres || db.obs != nil {
		return boundQuerier{q: q, rebind: db.Dialect == Postgres, obs: db.obs}
	}
	return q
}

// InTransaction reports whether ctx carries a transaction.
func InTransaction(ctx context.Context) bool {
	return stateOf(ctx) != nil
}

func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &fault.Error{Kind: fault.Unavailable, Message: "the request timed out waiting for the database", RetryAfter: time.Second, Err: err}
	}
	return fault.Wrap(err, "begin transaction")
}

// NoRows reports whether err means a query found nothing.
func NoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
