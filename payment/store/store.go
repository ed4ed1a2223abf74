// Package store persists the payment module.
package store

import (
	"context"
	"embed"
	"io/fs"
	"strings"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/payment"
	"github.com/millionshop/million/sqldb"
)

//go:embed sqlite/*.sql postgres/*.sql
var migrationsFS embed.FS

// Migrations are the payment module's schema, for each engine.
func Migrations() sqldb.Migrations {
	lite, _ := fs.Sub(migrationsFS, "sqlite")
	pg, _ := fs.Sub(migrationsFS, "postgres")
	return sqldb.Migrations{Module: "payment", SQLite: lite, Postgres: pg}
}

// Store is the payment store on SQLite or PostgreSQL.
type Store struct {
	db *sqldb.DB
}

var _ payment.Store = (*Store)(nil)

// New returns the store over db.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// InTx implements payment.Store.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.db.InTx(ctx, fn)
}

// Insert implements payment.Store.
func (s *Store) Insert(ctx context.Context, p payment.Payment) error {
	if !sqldb.Storable(p.ID, p.OrderID, p.UserID, p.Currency, p.Status, p.Provider, p.ProviderRef) {
		return sqldb.ErrUnstorable
	}
	// An order's second payment is an expected outcome (a resumed
	// checkout tries the insert first), not an error for PostgreSQL to
	// log: ON CONFLICT turns it into no row written.
	res, err := s.db.Writer(ctx).ExecContext(ctx, `INSERT INTO payments
		(id, order_id, user_id, amount_cents, currency, status, provider, provider_ref, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING`,
		p.ID, p.OrderID, p.UserID, p.AmountCents, p.Currency, p.Status, p.Provider, p.ProviderRef,
		p.CreatedAt.UnixMicro(), p.UpdatedAt.UnixMicro())
	if sqldb.IsUniqueViolation(err) {
		return paymentExists()
	}
	if err != nil {
		return fault.Wrap(err, "insert payment")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fault.Wrap(err, "insert payment")
	}
	if n == 0 {
		return paymentExists()
	}
	return nil
}

func paymentExists() error {
	return fault.New(fault.Conflict, "payment_exists", "the order already has a payment")
}

// one reads a payment. Inside a transaction it locks the row: the caller
// (a webhook) is about to change the payment from what it read. SQLite's
// write transactions are exclusive already; on PostgreSQL a plain read would
// let two webhooks act on the same stale status.
func (s *Store) one(ctx context.Context, where string, arg string) (payment.Payment, error) {
	var p payment.Payment
	var created, updated int64
	if !sqldb.Storable(arg) {
		return p, errNoPayment
	}
	lock := ""
	if sqldb.InTransaction(ctx) {
		lock = s.db.ForUpdate()
	}
	err := s.db.Reader(ctx).QueryRowContext(ctx, `SELECT id, order_id, user_id, amount_cents, currency, status,
		provider, provider_ref, created_at, updated_at FROM payments WHERE `+where+` = ?`+lock, arg).
		Scan(&p.ID, &p.OrderID, &p.UserID, &p.AmountCents, &p.Currency, &p.Status, &p.Provider, &p.ProviderRef, &created, &updated)
	if sqldb.NoRows(err) {
		return p, errNoPayment
	}
	if err != nil {
		return p, fault.Wrap(err, "select payment")
	}
	p.CreatedAt, p.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return p, nil
}

var errNoPayment = fault.New(fault.NotFound, "", "no such payment")

// ByOrder implements payment.Store. Inside a transaction it locks the payment.
func (s *Store) ByOrder(ctx context.Context, orderID string) (payment.Payment, error) {
	return s.one(ctx, "order_id", orderID)
}

// ByID implements payment.Store. Inside a transaction it locks the payment.
func (s *Store) ByID(ctx context.Context, id string) (payment.Payment, error) {
	return s.one(ctx, "id", id)
}

// SetStatus implements payment.Store. The from condition is in the UPDATE
// itself, so of two writers that read the same status only one moves it.
func (s *Store) SetStatus(ctx context.Context, id string, from []string, status, providerRef string, now time.Time) (bool, error) {
	if !sqldb.Storable(status, providerRef) {
		return false, sqldb.ErrUnstorable
	}
	var in []any
	for _, f := range from {
		if sqldb.Storable(f) { // no stored status can be unstorable text
			in = append(in, f)
		}
	}
	if !sqldb.Storable(id) || len(in) == 0 {
		return false, nil // no such payment, or no status it can be in
	}
	args := append([]any{status, providerRef, now.UnixMicro(), id}, in...)
	res, err := s.db.Writer(ctx).ExecContext(ctx, `UPDATE payments SET status = ?, provider_ref = ?, updated_at = ?
		WHERE id = ? AND status IN (?`+strings.Repeat(", ?", len(in)-1)+`)`, args...)
	if err != nil {
		return false, fault.Wrap(err, "update payment")
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Stalled implements payment.Store.
func (s *Store) Stalled(ctx context.Context, status string, before time.Time, limit int) ([]payment.Payment, error) {
	if !sqldb.Storable(status) {
		return nil, sqldb.ErrUnstorable
	}
	rows, err := s.db.Reader(ctx).QueryContext(ctx, `SELECT id, order_id, user_id, amount_cents, currency, status,
		provider, provider_ref, created_at, updated_at FROM payments WHERE status = ? AND updated_at < ?
		ORDER BY updated_at, id LIMIT ?`, status, before.UnixMicro(), limit)
	if err != nil {
		return nil, fault.Wrap(err, "select stalled payments")
	}
	defer rows.Close()
	out := []payment.Payment{}
	for rows.Next() {
		var p payment.Payment
		var created, updated int64
		if err := rows.Scan(&p.ID, &p.OrderID, &p.UserID, &p.AmountCents, &p.Currency, &p.Status, &p.Provider, &p.ProviderRef, &created, &updated); err != nil {
			return nil, fault.Wrap(err, "scan payment")
		}
		p.CreatedAt, p.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
		out = append(out, p)
	}
	return out, fault.Wrap(rows.Err(), "select stalled payments")
}

// RecordEvent implements payment.Store.
func (s *Store) RecordEvent(ctx context.Context, eventID, eventType string, now time.Time) (bool, error) {
	if !sqldb.Storable(eventID, eventType) {
		return false, sqldb.ErrUnstorable
	}
	res, err := s.db.Writer(ctx).ExecContext(ctx,
		`INSERT INTO payment_webhook_events (id, type, received_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		eventID, eventType, now.UnixMicro())
	if err != nil {
		return false, fault.Wrap(err, "record webhook event")
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
