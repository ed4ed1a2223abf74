package sqldb

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// maxCachedStatements bounds the prepared statements kept per pool. The
// stores' statements are fixed texts, a few hundred in all; a text built
// with a variable number of placeholders (IN lists) may add one per
// length, and past the bound such texts are prepared per call as before.
const maxCachedStatements = 1024

// stmtCache keeps a prepared statement per query text for one SQLite pool.
// SQLite compiles every statement it runs (parsing and planning were about
// 7 % of the CPU of the journey mix), and the driver keeps none: a
// statement prepared once is reused on every connection of the pool, which
// prepares it on a connection the first time that connection runs it.
// PostgreSQL needs none of this: pgx caches statements per connection.
type stmtCache struct {
	pool  *sql.DB
	stmts sync.Map // query text → *sql.Stmt
	n     atomic.Int32
	// pending holds the texts being prepared in the background.
	pending sync.Map
	mu      sync.Mutex // guards keeping a statement against a concurrent one and close
	closed  bool
}

func newStmtCache(pool *sql.DB) *stmtCache { return &stmtCache{pool: pool} }

// get returns the prepared statement of query, or nil when it has none
// yet, the cache is full or the text does not prepare (the caller then
// runs it as text, and gets any error from there). Inside a transaction
// of a one-connection pool (SQLite's writer), preparing on the pool would
// wait for the connection the transaction holds: the statement is then
// prepared in the background once the connection is free, for the next
// transaction.
func (c *stmtCache) get(ctx context.Context, query string, inTx bool) *sql.Stmt {
	if s, ok := c.stmts.Load(query); ok {
		return s.(*sql.Stmt)
	}
	if c.n.Load() >= maxCachedStatements {
		return nil
	}
	if inTx {
		if _, busy := c.pending.LoadOrStore(query, true); !busy {
			go func() {
				defer c.pending.Delete(query)
				ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
				defer cancel()
				c.prepare(ctx, query)
			}()
		}
		return nil
	}
	return c.prepare(ctx, query)
}

// prepareTimeout bounds a background prepare's wait for the connection.
const prepareTimeout = 10 * time.Second

func (c *stmtCache) prepare(ctx context.Context, query string) *sql.Stmt {
	s, err := c.pool.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if kept, ok := c.stmts.Load(query); ok {
		_ = s.Close() // another caller prepared it meanwhile
		return kept.(*sql.Stmt)
	}
	if c.closed || c.n.Load() >= maxCachedStatements {
		_ = s.Close()
		return nil
	}
	c.stmts.Store(query, s)
	c.n.Add(1)
	return s
}

// close closes the kept statements.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.stmts.Range(func(_, s any) bool {
		_ = s.(*sql.Stmt).Close()
		return true
	})
}

// preparedQuerier runs statements through the statement cache of a pool,
// inside tx when it is set (a transaction of that pool). Within one
// transaction every use of a query text shares one compiled statement on
// the transaction's connection, so a store must not run a query text again
// while rows of it are still open in the same transaction (none does: rows
// are read to the end before the next statement).
type preparedQuerier struct {
	cache *stmtCache
	tx    *sql.Tx
}

// stmt returns the statement to run query with, or nil to run it as text.
func (p preparedQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	s := p.cache.get(ctx, query, p.tx != nil)
	if s != nil && p.tx != nil {
		// The transaction's connection has the statement prepared after
		// its first use; StmtContext reuses it.
		s = p.tx.StmtContext(ctx, s)
	}
	return s
}

func (p preparedQuerier) text() Querier {
	if p.tx != nil {
		return p.tx
	}
	return p.cache.pool
}

func (p preparedQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := p.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return p.text().ExecContext(ctx, query, args...)
}

func (p preparedQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := p.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return p.text().QueryContext(ctx, query, args...)
}

func (p preparedQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := p.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return p.text().QueryRowContext(ctx, query, args...)
}
