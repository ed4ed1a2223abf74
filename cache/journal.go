package cache

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/millionshop/million/sqldb"
)

//go:embed sqlite/*.sql postgres/*.sql
var migrationsFS embed.FS

// Migrations are the schema of the invalidation journal, for each engine.
func Migrations() sqldb.Migrations {
	lite, _ := fs.Sub(migrationsFS, "sqlite")
	pg, _ := fs.Sub(migrationsFS, "postgres")
	return sqldb.Migrations{Module: "cache", SQLite: lite, Postgres: pg}
}

// deferred is what one transaction invalidates once it commits, and the
// journal rows that record it.
type deferred struct {
	targets []Target
	ids     []string
}

// Defer invalidates targets once the transaction of ctx commits, in one
// message with every other target deferred in that transaction (a checkout
// of ten lines waits for one round of acknowledgements). Outside a
// transaction it invalidates at once.
//
// With a journal (Options.DB) and Redis, Defer also records the targets in
// the transaction: one row for all the targets deferred in it, written
// just before it commits (sqldb.BeforeCommit), and deleted once Redis took
// the message. A row still there when Options.InvalidateWait has passed
// since it was written is delivered by whichever instance replays first:
// the invalidation survives a writer that stops, or that cannot reach
// Redis while others can. When the record fails, the transaction rolls
// back and InTx returns the error, so no write commits without its
// invalidation on record.
//
// Errors of the invalidation itself, after the commit, are not returned:
// the write is committed. Invalidate logs and counts them, and the journal
// delivers them later.
func (c *Cache) Defer(ctx context.Context, targets ...Target) error {
	if len(targets) == 0 {
		return nil
	}
	v, inTx := sqldb.TxValue(ctx, c, func() any {
		d := &deferred{}
		if c.journaled() {
			_ = sqldb.BeforeCommit(ctx, func(ctx context.Context) error {
				id, err := c.record(ctx, d.targets)
				if id != "" {
					d.ids = append(d.ids, id)
				}
				return err
			})
		}
		sqldb.AfterCommit(ctx, func() { c.flush(ctx, d) })
		return d
	})
	if !inTx {
		d := &deferred{targets: targets}
		if id, err := c.record(ctx, targets); err != nil {
			c.log.Warn("cache invalidation not journaled; delivering it now", "err", err)
		} else if id != "" {
			d.ids = append(d.ids, id)
		}
		c.flush(ctx, d)
		return nil
	}
	d := v.(*deferred)
	d.targets = append(d.targets, targets...)
	return nil
}

func (c *Cache) journaled() bool { return c.opts.DB != nil && c.redis != nil }

// record writes targets to the journal through ctx's transaction, if any.
func (c *Cache) record(ctx context.Context, targets []Target) (string, error) {
	if !c.journaled() {
		return "", nil
	}
	var m message
	for _, t := range targets {
		m.Keys = append(m.Keys, t.keys...)
		if t.all != nil {
			m.Entities = append(m.Entities, t.name)
		}
	}
	body, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := c.opts.DB.Writer(ctx).ExecContext(ctx,
		`INSERT INTO cache_invalidations (id, message, created_at) VALUES (?, ?, ?)`,
		id, string(body), time.Now().UnixMicro()); err != nil {
		return "", err
	}
	return id, nil
}

// flush runs a transaction's invalidation after its commit and deletes its
// journal rows once Redis took it.
func (c *Cache) flush(ctx context.Context, d *deferred) {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.InvalidateWait)
	defer cancel()
	if err := c.Invalidate(ictx, d.targets...); err != nil {
		return // logged and counted; the journal rows stay for the replay
	}
	c.forget(d.ids)
}

// forget deletes delivered journal rows. A failure only means one more
// delivery by the replay, which is harmless.
func (c *Cache) forget(ids []string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	if _, err := c.opts.DB.Writer(ctx).ExecContext(ctx,
		`DELETE FROM cache_invalidations WHERE id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, args...); err != nil {
		c.log.Warn("cache journal rows not deleted; they will be delivered again", "err", err)
	}
}

// replayLoop delivers journal rows their writer did not, every second.
func (c *Cache) replayLoop() {
	defer c.done.Done()
	// Close must not wait for a whole batch of deliveries.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.stop
		cancel()
	}()
	t := time.NewTicker(c.opts.ReplayEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if n, err := c.replayOnce(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("cache journal replay failed; will retry", "err", err, "delivered", n)
		} else if n > 0 {
			c.log.Info("cache journal replayed invalidations other writers did not deliver", "count", n)
		}
	}
}

// journalRow is one undelivered invalidation.
type journalRow struct {
	id string
	m  message
}

// replayOnce delivers the rows older than the writers' own deadline, oldest
// first, and deletes each once Redis took it. On PostgreSQL, which several
// instances share, the rows are claimed with SKIP LOCKED so two instances
// do not deliver the same ones; SQLite has one process.
func (c *Cache) replayOnce(ctx context.Context) (int, error) {
	db := c.opts.DB
	cutoff := time.Now().Add(-c.opts.InvalidateWait - 2*c.opts.Bound).UnixMicro()
	const query = `SELECT id, message FROM cache_invalidations WHERE created_at < ? ORDER BY created_at, id LIMIT 100`
	deliver := func(ctx context.Context, q sqldb.Querier, rows []journalRow) (int, error) {
		for i, r := range rows {
			if err := ctx.Err(); err != nil {
				return i, err
			}
			r.m.Node = c.node
			if len(r.m.Keys) > 0 || len(r.m.Entities) > 0 {
				if err := c.send(ctx, r.m); err != nil {
					return i, err
				}
			}
			if _, err := q.ExecContext(ctx, `DELETE FROM cache_invalidations WHERE id = ?`, r.id); err != nil {
				return i, err
			}
			c.metrics.replayed.Inc()
		}
		return len(rows), nil
	}
	if db.Dialect != sqldb.Postgres {
		rows, err := c.claim(ctx, db.Reader(ctx), query, cutoff)
		if err != nil {
			return 0, err
		}
		return deliver(ctx, db.Writer(ctx), rows)
	}
	n := 0
	err := db.InTx(ctx, func(ctx context.Context) error {
		rows, err := c.claim(ctx, db.Writer(ctx), query+` FOR UPDATE SKIP LOCKED`, cutoff)
		if err != nil {
			return err
		}
		var derr error
		n, derr = deliver(ctx, db.Writer(ctx), rows)
		if n > 0 {
			return nil // keep the deletions of what was delivered
		}
		return derr
	})
	return n, err
}

func (c *Cache) claim(ctx context.Context, q sqldb.Querier, query string, cutoff int64) ([]journalRow, error) {
	rs, err := q.QueryContext(ctx, query, cutoff)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []journalRow
	for rs.Next() {
		var r journalRow
		var body string
		if err := rs.Scan(&r.id, &body); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(body), &r.m); err != nil {
			// Only this package writes rows; one it cannot read is dropped
			// rather than blocking every later one.
			c.log.Error("cache journal row unreadable; dropped", "id", r.id, "err", err)
			r.m = message{}
		}
		out = append(out, r)
	}
	return out, rs.Err()
}
