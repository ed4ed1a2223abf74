// Package store persists the notify module.
package store

import (
	"context"
	"embed"
	"io/fs"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/notify"
	"github.com/millionshop/million/sqldb"
)

//go:embed sqlite/*.sql postgres/*.sql
var migrationsFS embed.FS

// Migrations are the notify module's schema, for each engine.
func Migrations() sqldb.Migrations {
	lite, _ := fs.Sub(migrationsFS, "sqlite")
	pg, _ := fs.Sub(migrationsFS, "postgres")
	return sqldb.Migrations{Module: "notify", SQLite: lite, Postgres: pg}
}

// Store is the notify store on SQLite or PostgreSQL.
type Store struct {
	db *sqldb.DB
}

var _ notify.Store = (*Store)(nil)

// New returns the store over db.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// InTx implements notify.Store.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.db.InTx(ctx, fn)
}

// MarkHandled implements notify.Store.
func (s *Store) MarkHandled(ctx context.Context, consumer, eventID string, now time.Time) (bool, error) {
	if !sqldb.Storable(consumer, eventID) {
		return false, sqldb.ErrUnstorable
	}
	res, err := s.db.Writer(ctx).ExecContext(ctx, `INSERT INTO notify_handled_events (consumer, event_id, handled_at)
		VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, consumer, eventID, now.UnixMicro())
	if err != nil {
		return false, fault.Wrap(err, "mark event handled")
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// InsertMessage implements notify.Store.
func (s *Store) InsertMessage(ctx context.Context, m notify.Message) error {
	if !sqldb.Storable(m.ID, m.UserID, m.Kind, m.Subject, m.Body) {
		return sqldb.ErrUnstorable
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx, `INSERT INTO notify_messages (id, user_id, kind, subject, body, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, m.ID, m.UserID, m.Kind, m.Subject, m.Body, m.CreatedAt.UnixMicro())
	return fault.Wrap(err, "insert message")
}

// Unmark implements notify.Store.
func (s *Store) Unmark(ctx context.Context, consumer, eventID string) error {
	if !sqldb.Storable(consumer, eventID) {
		return nil // never marked
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx, `DELETE FROM notify_handled_events WHERE consumer = ? AND event_id = ?`, consumer, eventID)
	return fault.Wrap(err, "unmark event")
}

// DeleteMessage implements notify.Store.
func (s *Store) DeleteMessage(ctx context.Context, id string) error {
	if !sqldb.Storable(id) {
		return nil // never stored
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx, `DELETE FROM notify_messages WHERE id = ?`, id)
	return fault.Wrap(err, "delete message")
}

// Messages implements notify.Store.
func (s *Store) Messages(ctx context.Context, userID string) ([]notify.Message, error) {
	if !sqldb.Storable(userID) {
		return nil, nil // no stored message can belong to it
	}
	// Oldest means created_at: ordering by the (time-based) ID alone would
	// trust two clocks to agree, the ID generator's and the caller's.
	rows, err := s.db.Reader(ctx).QueryContext(ctx, `SELECT id, user_id, kind, subject, body, created_at
		FROM notify_messages WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fault.Wrap(err, "select messages")
	}
	defer rows.Close()
	var out []notify.Message
	for rows.Next() {
		var m notify.Message
		var created int64
		if err := rows.Scan(&m.ID, &m.UserID, &m.Kind, &m.Subject, &m.Body, &created); err != nil {
			return nil, fault.Wrap(err, "scan message")
		}
		m.CreatedAt = time.UnixMicro(created).UTC()
		out = append(out, m)
	}
	return out, fault.Wrap(rows.Err(), "select messages")
}
