// Package store persists the cart module.
package store

import (
	"context"
	"embed"
	"io/fs"
	"strings"
	"time"

	"github.com/millionshop/million/cart"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/sqldb"
)

//go:embed sqlite/*.sql postgres/*.sql
var migrationsFS embed.FS

// Migrations are the cart module's schema, for each engine.
func Migrations() sqldb.Migrations {
	lite, _ := fs.Sub(migrationsFS, "sqlite")
	pg, _ := fs.Sub(migrationsFS, "postgres")
	return sqldb.Migrations{Module: "cart", SQLite: lite, Postgres: pg}
}

// Store is the cart store on SQLite or PostgreSQL.
type Store struct {
	db *sqldb.DB
}

var _ cart.Store = (*Store)(nil)

// New returns the store over db.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// Lines implements cart.Store.
func (s *Store) Lines(ctx context.Context, userID string) ([]cart.Line, error) {
	if !sqldb.Storable(userID) {
		return nil, nil // no stored line can belong to it
	}
	rows, err := s.db.Reader(ctx).QueryContext(ctx,
		`SELECT product_id, quantity FROM cart_items WHERE user_id = ? ORDER BY added_at, product_id`, userID)
	if err != nil {
		return nil, fault.Wrap(err, "select cart")
	}
	defer rows.Close()
	var out []cart.Line
	for rows.Next() {
		var l cart.Line
		if err := rows.Scan(&l.ProductID, &l.Quantity); err != nil {
			return nil, fault.Wrap(err, "scan cart line")
		}
		out = append(out, l)
	}
	return out, fault.Wrap(rows.Err(), "select cart")
}

// Set implements cart.Store.
func (s *Store) Set(ctx context.Context, userID, productID string, quantity int64, now time.Time) error {
	if !sqldb.Storable(userID, productID) {
		return sqldb.ErrUnstorable
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx, `INSERT INTO cart_items (user_id, product_id, quantity, added_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = excluded.quantity`,
		userID, productID, quantity, now.UnixMicro())
	return fault.Wrap(err, "set cart line")
}

// Remove implements cart.Store.
func (s *Store) Remove(ctx context.Context, userID, productID string) error {
	if !sqldb.Storable(userID, productID) {
		return nil // no such line, as for any unknown product
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx, `DELETE FROM cart_items WHERE user_id = ? AND product_id = ?`, userID, productID)
	return fault.Wrap(err, "remove cart line")
}

// RemoveLines implements cart.Store. A cart holds at most cart.MaxLines
// lines, so one statement always fits every engine's parameter limit.
func (s *Store) RemoveLines(ctx context.Context, userID string, lines []cart.Line) error {
	if !sqldb.Storable(userID) {
		return nil // no stored line can belong to it
	}
	args := make([]any, 0, 1+2*len(lines))
	args = append(args, userID)
	var match strings.Builder
	for _, l := range lines {
		if !sqldb.Storable(l.ProductID) {
			continue // no such line, as for any unknown product
		}
		if len(args) > 1 {
			match.WriteString(" OR ")
		}
		match.WriteString("(product_id = ? AND quantity = ?)")
		args = append(args, l.ProductID, l.Quantity)
	}
	if len(args) == 1 {
		return nil
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx, `DELETE FROM cart_items WHERE user_id = ? AND (`+match.String()+`)`, args...)
	return fault.Wrap(err, "remove cart lines")
}

// Clear implements cart.Store.
func (s *Store) Clear(ctx context.Context, userID string) error {
	if !sqldb.Storable(userID) {
		return nil // no stored line can belong to it
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx, `DELETE FROM cart_items WHERE user_id = ?`, userID)
	return fault.Wrap(err, "clear cart")
}
