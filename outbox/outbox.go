// Package outbox is the transactional outbox: a module records an event in
// the same transaction as the change it describes, and a relay publishes it
// after commit. An event is never published for a rolled-back transaction
// and never lost when the bus is down; consumers deduplicate by event ID.
package outbox

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/sqldb"
)

//go:embed sqlite/*.sql postgres/*.sql
var migrationsFS embed.FS

// Migrations are the outbox's schema, for each engine.
func Migrations() sqldb.Migrations {
	lite, _ := fs.Sub(migrationsFS, "sqlite")
	pg, _ := fs.Sub(migrationsFS, "postgres")
	return sqldb.Migrations{Module: "outbox", SQLite: lite, Postgres: pg}
}

// Event is one recorded fact.
type Event struct {
	ID        string          `json:"id"`
	Topic     string          `json:"topic"`
	Key       string          `json:"key"` // the entity the event is about, e.g. an order ID
	Payload   json.RawMessage `json:"payload"`
	CreatedAt time.Time       `json:"created_at"`
}

// Publisher delivers events to consumers (the in-process bus, or NATS).
type Publisher interface {
	Publish(ctx context.Context, e Event) error
}

// Outbox records events and relays them.
type Outbox struct {
	db     *sqldb.DB
	pub    Publisher
	logger *slog.Logger
	now    func() time.Time
	poke   chan struct{}
	// pokes counts Pokes. A relay pass that read it before its query and
	// then drained the outbox saw every event whose commit had poked by
	// then, so a wake-up with the count unchanged has nothing to look for.
	pokes atomic.Uint64
}

// New returns an outbox over db that relays to pub.
func New(db *sqldb.DB, pub Publisher, logger *slog.Logger, now func() time.Time) *Outbox {
	return &Outbox{db: db, pub: pub, logger: logger, now: now, poke: make(chan struct{}, 1)}
}

// Add records an event; it joins the transaction in ctx, which callers
// should always have, or the event is not atomic with their change. The
// events of one transaction are written together, in the order they were
// added, by one statement just before it commits (a checkout's capture
// records payment.captured and order.paid): an error writing them rolls
// the transaction back and is what its commit returns.
func (o *Outbox) Add(ctx context.Context, topic, key string, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return fault.Wrap(err, "encode event")
	}
	e := pendingEvent{id: uuid.Must(uuid.NewV7()).String(), topic: topic, key: key, payload: string(body), created: o.now().UnixMicro()}
	v, inTx := sqldb.TxValue(ctx, o, func() any {
		b := &pendingEvents{}
		_ = sqldb.BeforeCommit(ctx, func(ctx context.Context) error {
			b.written = true
			return o.insert(ctx, b.events)
		})
		sqldb.AfterCommit(ctx, o.Poke)
		return b
	})
	if !inTx {
		if err := o.insert(ctx, []pendingEvent{e}); err != nil {
			return err
		}
		o.Poke()
		return nil
	}
	b := v.(*pendingEvents)
	if b.written {
		// Added by another before-commit step, after this outbox's own.
		return o.insert(ctx, []pendingEvent{e})
	}
	b.events = append(b.events, e)
	return nil
}

// pendingEvent is an event added in a transaction that has not written it yet.
type pendingEvent struct {
	id, topic, key, payload string
	created                 int64
}

// pendingEvents are the events of one transaction, written before it commits.
type pendingEvents struct {
	events  []pendingEvent
	written bool
}

// insertBatch bounds the events of one statement: five parameters each, far
// below either engine's limit.
const insertBatch = 200

// insert writes events, in their order, in as few statements as insertBatch allows.
func (o *Outbox) insert(ctx context.Context, events []pendingEvent) error {
	for batch := range slices.Chunk(events, insertBatch) {
		args := make([]any, 0, 5*len(batch))
		for _, e := range batch {
			args = append(args, e.id, e.topic, e.key, e.payload, e.created)
		}
		_, err := o.db.Writer(ctx).ExecContext(ctx, `INSERT INTO outbox_events (id, topic, event_key, payload, created_at)
			VALUES (?, ?, ?, ?, ?)`+strings.Repeat(", (?, ?, ?, ?, ?)", len(batch)-1), args...)
		if err != nil {
			return fault.Wrap(err, "record event")
		}
	}
	return nil
}

// Poke wakes the relay early; without it the relay still polls.
func (o *Outbox) Poke() {
	o.pokes.Add(1)
	select {
	case o.poke <- struct{}{}:
	default:
	}
}

// IdlePoll is how often an idle relay looks for events nobody told it
// about. Every Add wakes the relay of its own process once its transaction
// commits, so the poll only finds events recorded by another process: an
// instance that stopped before relaying them (PostgreSQL), or a command
// with no relay of its own (million user create). It costs a query each
// time otherwise: polled every interval, an idle shop ran four queries a second
// per instance for nothing.
const IdlePoll = 5 * time.Second

// relayLinger is how long a relay woken by a commit waits for the commits
// right behind it before it reads the outbox. An event is relayed that much
// later, and a burst of them costs one pass instead of one each.
const relayLinger = time.Millisecond

// relayBatch is how many events one pass of the relay publishes at most.
const relayBatch = 100

// Run relays events until ctx ends. Events are published in order. A pass
// that fails is retried after interval, one that left events behind (a full
// batch) at once; otherwise the relay waits to be woken by an Add or for
// IdlePoll (at least interval). A wake-up lingers for the commits right
// behind it (relayLinger), and one by Adds that the last pass already saw
// runs no query: a burst of commits (a checkout records four events in
// three transactions within a millisecond) is one pass, not one each and
// then one more that finds nothing. Several instances may run it against
// one PostgreSQL database: each claims its own batch, so an event is
// normally published once, and order then holds within a batch but not
// across the instances' batches.
func (o *Outbox) Run(ctx context.Context, interval time.Duration) {
	idle := max(IdlePoll, interval)
	timer := time.NewTimer(idle)
	defer timer.Stop()
	linger := time.NewTimer(relayLinger)
	defer linger.Stop()
	var seen uint64  // Pokes before the last pass that drained the outbox
	drained := false // whether the last pass did
	for pass := true; ; {
		if pass {
			wait := idle
			pokes := o.pokes.Load()
			n, err := o.RelayOnce(ctx, relayBatch)
			drained = false
			switch {
			case err != nil:
				if ctx.Err() == nil {
					o.logger.WarnContext(ctx, "outbox relay failed; will retry", "error", err.Error())
				}
				wait = interval
			case n == relayBatch:
				wait = 0
			default:
				seen, drained = pokes, true
			}
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			pass = true
		case <-o.poke:
			// The timer keeps running when this runs no pass: a retry or
			// the idle poll still comes when it is due.
			pass = !drained || o.pokes.Load() != seen
			if pass {
				// The commits of one request come close together: a
				// checkout's three within a millisecond. Waiting
				// that long lets one pass relay them all.
				linger.Reset(relayLinger)
				select {
				case <-ctx.Done():
					return
				case <-linger.C:
				}
			}
		}
	}
}

// pending is an event read from the outbox with its position.
type pending struct {
	seq int64
	ev  Event
}

// RelayOnce publishes up to batch pending events and reports how many it
// published. Delivery is at least once: an event whose publish fails, or
// whose mark is lost to a crash, stays pending and is published again.
func (o *Outbox) RelayOnce(ctx context.Context, batch int) (int, error) {
	if o.db.Dialect != sqldb.Postgres {
		// SQLite has one writer per database, and so one relay: reading
		// outside a transaction keeps the write connection free while
		// publishing, for the handlers that write.
		list, err := o.claim(ctx, o.db.Reader(ctx), batch, "")
		if err != nil {
			return 0, err
		}
		n, pubErr, dbErr := o.publish(ctx, ctx, list)
		if dbErr != nil {
			return n, dbErr
		}
		return n, pubErr
	}
	// On PostgreSQL every instance runs a relay. The batch is claimed with
	// row locks held until commit, and SKIP LOCKED makes a concurrent relay
	// take the next events instead of waiting for these or publishing them
	// again. A relay that dies mid-batch rolls back, releasing its claim.
	var (
		n      int
		pubErr error
	)
	err := o.db.InTx(ctx, func(txCtx context.Context) error {
		list, err := o.claim(txCtx, o.db.Writer(txCtx), batch, " FOR UPDATE SKIP LOCKED")
		if err != nil {
			return err
		}
		// Handlers get ctx, not txCtx: they must not join the relay's
		// transaction, or their writes would commit or roll back with it.
		var dbErr error
		n, pubErr, dbErr = o.publish(ctx, txCtx, list)
		// A failed publish still commits: the events before it are marked
		// published and its attempt is counted.
		return dbErr
	})
	if err != nil {
		// Nothing was marked: the events published in this batch go out
		// again, which at-least-once delivery allows.
		return 0, err
	}
	return n, pubErr
}

// claim reads up to batch pending events, oldest first, with lock appended
// to the query.
func (o *Outbox) claim(ctx context.Context, q sqldb.Querier, batch int, lock string) ([]pending, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, id, topic, event_key, payload, created_at
		FROM outbox_events WHERE published_at IS NULL ORDER BY seq LIMIT ?`+lock, batch)
	if err != nil {
		return nil, fault.Wrap(err, "read outbox")
	}
	defer rows.Close()
	var list []pending
	for rows.Next() {
		var p pending
		var payload string
		var created int64
		if err := rows.Scan(&p.seq, &p.ev.ID, &p.ev.Topic, &p.ev.Key, &payload, &created); err != nil {
			return nil, fault.Wrap(err, "scan outbox")
		}
		p.ev.Payload, p.ev.CreatedAt = json.RawMessage(payload), time.UnixMicro(created).UTC()
		list = append(list, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fault.Wrap(err, "read outbox")
	}
	return list, nil
}

// publish publishes list in order with pubCtx, then marks the published
// events in one statement through dbCtx, and stops at the first failure.
// pubErr is a publish failure (its attempt is counted); dbErr is a failure
// to record a result. Marking the batch at once, not each event, spares a
// write per event; a crash before the mark publishes the batch again, which
// JetStream's deduplication by event ID absorbs.
func (o *Outbox) publish(pubCtx, dbCtx context.Context, list []pending) (n int, pubErr, dbErr error) {
	for _, p := range list {
		if pubErr = o.pub.Publish(pubCtx, p.ev); pubErr != nil {
			break
		}
		n++
	}
	if n > 0 {
		seqs := make([]any, 0, n+1)
		seqs = append(seqs, o.now().UnixMicro())
		for _, p := range list[:n] {
			seqs = append(seqs, p.seq)
		}
		if _, err := o.db.Writer(dbCtx).ExecContext(dbCtx, `UPDATE outbox_events SET published_at = ? WHERE seq IN (?`+
			strings.Repeat(", ?", n-1)+`)`, seqs...); err != nil {
			return 0, nil, fault.Wrap(err, "mark events published")
		}
	}
	if pubErr != nil {
		if _, err := o.db.Writer(dbCtx).ExecContext(dbCtx, `UPDATE outbox_events SET attempts = attempts + 1 WHERE seq = ?`, list[n].seq); err != nil {
			return n, nil, errors.Join(pubErr, fault.Wrap(err, "count publish attempt"))
		}
		return n, pubErr, nil
	}
	return n, nil, nil
}

// Pending returns how many events wait to be published (queue depth).
func (o *Outbox) Pending(ctx context.Context) (int, error) {
	var n int
	err := o.db.Reader(ctx).QueryRowContext(ctx, `SELECT count(*) FROM outbox_events WHERE published_at IS NULL`).Scan(&n)
	return n, fault.Wrap(err, "count outbox")
}

// OldestPending returns when the oldest event still waiting to be published
// was recorded; ok is false when none waits. Its age is the relay's delay.
func (o *Outbox) OldestPending(ctx context.Context) (at time.Time, ok bool, err error) {
	var created sql.NullInt64
	err = o.db.Reader(ctx).QueryRowContext(ctx, `SELECT min(created_at) FROM outbox_events WHERE published_at IS NULL`).Scan(&created)
	if err != nil {
		return time.Time{}, false, fault.Wrap(err, "read oldest pending event")
	}
	if !created.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMicro(created.Int64).UTC(), true, nil
}

// Purge deletes events published before before, a thousand per statement
// so that a large backlog never holds the write lock for long, and reports
// how many it deleted. Published events are kept a while for inspection;
// nothing reads them.
func (o *Outbox) Purge(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		res, err := o.db.Writer(ctx).ExecContext(ctx, `DELETE FROM outbox_events WHERE seq IN
			(SELECT seq FROM outbox_events WHERE published_at IS NOT NULL AND published_at < ? ORDER BY seq LIMIT 1000)`,
			before.UnixMicro())
		if err != nil {
			return total, fault.Wrap(err, "purge outbox")
		}
		n, _ := res.RowsAffected()
		total += int(n)
		if n < 1000 {
			return total, nil
		}
	}
}
