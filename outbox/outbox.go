// Package outbox is the transactional outbox: a module records an event in
// the same transaction as the change it describes, and a relay publishes it
// after commit. An event is never published for a rolled-back transaction
// and never lost when the bus is down; consumers deduplicate by event ID.
package outbox

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
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
}

// New returns an outbox over db that relays to pub.
func New(db *sqldb.DB, pub Publisher, logger *slog.Logger, now func() time.Time) *Outbox {
	return &Outbox{db: db, pub: pub, logger: logger, now: now, poke: make(chan struct{}, 1)}
}

// Add records an event; it joins the transaction in ctx, which callers
// should always have, or the event is not atomic with their change.
func (o *Outbox) Add(ctx context.Context, topic, key string, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return fault.Wrap(err, "encode event")
	}
	_, err = o.db.Writer(ctx).ExecContext(ctx,
		`INSERT INTO outbox_events (id, topic, event_key, payload, created_at) VALUES (?, ?, ?, ?, ?)`,
		uuid.Must(uuid.NewV7()).String(), topic, key, string(body), o.now().UnixMicro())
	if err != nil {
		return fault.Wrap(err, "record event")
	}
	sqldb.AfterCommit(ctx, o.Poke)
	return nil
}

// Poke wakes the relay early; without it the relay still polls.
func (o *Outbox) Poke() {
	select {
	case o.poke <- struct{}{}:
	default:
	}
}

// Run relays events until ctx ends. Events are published in order; a
// failure stops the batch and is retried after the next interval.
func (o *Outbox) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := o.RelayOnce(ctx, 100); err != nil && ctx.Err() == nil {
			o.logger.WarnContext(ctx, "outbox relay failed; will retry", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.poke:
		}
	}
}

// RelayOnce publishes up to batch pending events and reports how many it published.
func (o *Outbox) RelayOnce(ctx context.Context, batch int) (int, error) {
	rows, err := o.db.Reader(ctx).QueryContext(ctx, `SELECT seq, id, topic, event_key, payload, created_at
		FROM outbox_events WHERE published_at IS NULL ORDER BY seq LIMIT ?`, batch)
	if err != nil {
		return 0, fault.Wrap(err, "read outbox")
	}
	type pending struct {
		seq int64
		ev  Event
	}
	var list []pending
	for rows.Next() {
		var p pending
		var payload string
		var created int64
		if err := rows.Scan(&p.seq, &p.ev.ID, &p.ev.Topic, &p.ev.Key, &payload, &created); err != nil {
			rows.Close()
			return 0, fault.Wrap(err, "scan outbox")
		}
		p.ev.Payload, p.ev.CreatedAt = json.RawMessage(payload), time.UnixMicro(created).UTC()
		list = append(list, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fault.Wrap(err, "read outbox")
	}
	for i, p := range list {
		if err := o.pub.Publish(ctx, p.ev); err != nil {
			_, _ = o.db.Writer(ctx).ExecContext(ctx, `UPDATE outbox_events SET attempts = attempts + 1 WHERE seq = ?`, p.seq)
			return i, err
		}
		if _, err := o.db.Writer(ctx).ExecContext(ctx, `UPDATE outbox_events SET published_at = ? WHERE seq = ?`,
			o.now().UnixMicro(), p.seq); err != nil {
			return i, fault.Wrap(err, "mark event published")
		}
	}
	return len(list), nil
}

// Pending returns how many events wait to be published (queue depth).
func (o *Outbox) Pending(ctx context.Context) (int, error) {
	var n int
	err := o.db.Reader(ctx).QueryRowContext(ctx, `SELECT count(*) FROM outbox_events WHERE published_at IS NULL`).Scan(&n)
	return n, fault.Wrap(err, "count outbox")
}
