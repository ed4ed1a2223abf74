// Package store persists the order module: orders, their items and
// checkout idempotency keys.
package store

import (
	"context"
	"embed"
	"io/fs"
	"strings"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/order"
	"github.com/millionshop/million/sqldb"
)

//go:embed sqlite/*.sql postgres/*.sql
var migrationsFS embed.FS

// Migrations are the order module's schema, for each engine.
func Migrations() sqldb.Migrations {
	lite, _ := fs.Sub(migrationsFS, "sqlite")
	pg, _ := fs.Sub(migrationsFS, "postgres")
	return sqldb.Migrations{Module: "order", SQLite: lite, Postgres: pg}
}

// Store is the order store on SQLite or PostgreSQL.
type Store struct {
	db *sqldb.DB
}

var _ order.Store = (*Store)(nil)

// New returns the store over db.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// InTx implements order.Store.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.db.InTx(ctx, fn)
}

// InsertOrder implements order.Store.
func (s *Store) InsertOrder(ctx context.Context, o order.Order) error {
	if !sqldb.Storable(o.ID, o.UserID, o.Status, o.Currency, o.PaymentStatus) {
		return sqldb.ErrUnstorable
	}
	for _, it := range o.Items {
		if !sqldb.Storable(it.ProductID, it.SKU, it.Name) {
			return sqldb.ErrUnstorable
		}
	}
	return s.db.InTx(ctx, func(ctx context.Context) error {
		w := s.db.Writer(ctx)
		if _, err := w.ExecContext(ctx, `INSERT INTO orders (id, user_id, status, total_cents, currency, payment_status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, o.ID, o.UserID, o.Status, o.TotalCents, o.Currency, o.PaymentStatus,
			o.CreatedAt.UnixMicro(), o.UpdatedAt.UnixMicro()); err != nil {
			return fault.Wrap(err, "insert order")
		}
		// All items in one statement, or a few for a very long order: seven
		// parameters a row stay far below either engine's limit.
		const rowsPerInsert = 500
		for first := 0; first < len(o.Items); first += rowsPerInsert {
			items := o.Items[first:min(first+rowsPerInsert, len(o.Items))]
			args := make([]any, 0, 7*len(items))
			for i, it := range items {
				args = append(args, o.ID, first+i, it.ProductID, it.SKU, it.Name, it.PriceCents, it.Quantity)
			}
			if _, err := w.ExecContext(ctx, `INSERT INTO order_items (order_id, line, product_id, sku, name, price_cents, quantity)
				VALUES (?, ?, ?, ?, ?, ?, ?)`+strings.Repeat(", (?, ?, ?, ?, ?, ?, ?)", len(items)-1), args...); err != nil {
				return fault.Wrap(err, "insert order items")
			}
		}
		return nil
	})
}

const orderColumns = `id, user_id, status, total_cents, currency, payment_status, created_at, updated_at`

func (s *Store) selectOrders(ctx context.Context, where string, args ...any) ([]order.Order, error) {
	q := s.db.Reader(ctx)
	rows, err := q.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE `+where, args...)
	if err != nil {
		return nil, fault.Wrap(err, "select orders")
	}
	out := []order.Order{}
	index := map[string]int{}
	for rows.Next() {
		var o order.Order
		var created, updated int64
		if err := rows.Scan(&o.ID, &o.UserID, &o.Status, &o.TotalCents, &o.Currency, &o.PaymentStatus, &created, &updated); err != nil {
			rows.Close()
			return nil, fault.Wrap(err, "scan order")
		}
		o.CreatedAt, o.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
		o.Items = []order.Item{}
		index[o.ID] = len(out)
		out = append(out, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fault.Wrap(err, "select orders")
	}
	if len(out) == 0 {
		return out, nil
	}
	args = args[:0]
	for _, o := range out {
		args = append(args, o.ID)
	}
	items, err := q.QueryContext(ctx, `SELECT order_id, product_id, sku, name, price_cents, quantity FROM order_items
		WHERE order_id IN (?`+strings.Repeat(", ?", len(out)-1)+`) ORDER BY order_id, line`, args...)
	if err != nil {
		return nil, fault.Wrap(err, "select order items")
	}
	defer items.Close()
	for items.Next() {
		var orderID string
		var it order.Item
		if err := items.Scan(&orderID, &it.ProductID, &it.SKU, &it.Name, &it.PriceCents, &it.Quantity); err != nil {
			return nil, fault.Wrap(err, "scan order item")
		}
		o := &out[index[orderID]]
		o.Items = append(o.Items, it)
	}
	return out, fault.Wrap(items.Err(), "select order items")
}

var errNoOrder = fault.New(fault.NotFound, "", "no such order")

// lockInTx locks the rows a single-row read returns when ctx carries a
// transaction: the caller is about to change them (a status transition, a
// lease takeover) from what it read. SQLite's write transactions are
// exclusive already; on PostgreSQL a plain read would let two transactions
// act on the same stale row.
func (s *Store) lockInTx(ctx context.Context) string {
	if !sqldb.InTransaction(ctx) {
		return ""
	}
	return s.db.ForUpdate()
}

// Order implements order.Store. Inside a transaction it locks the order.
func (s *Store) Order(ctx context.Context, userID, orderID string) (order.Order, error) {
	if !sqldb.Storable(userID, orderID) {
		return order.Order{}, errNoOrder
	}
	found, err := s.selectOrders(ctx, `id = ? AND user_id = ?`+s.lockInTx(ctx), orderID, userID)
	if err != nil {
		return order.Order{}, err
	}
	if len(found) == 0 {
		return order.Order{}, errNoOrder
	}
	return found[0], nil
}

// OrderByID implements order.Store. Inside a transaction it locks the order.
func (s *Store) OrderByID(ctx context.Context, orderID string) (order.Order, error) {
	if !sqldb.Storable(orderID) {
		return order.Order{}, errNoOrder
	}
	found, err := s.selectOrders(ctx, `id = ?`+s.lockInTx(ctx), orderID)
	if err != nil {
		return order.Order{}, err
	}
	if len(found) == 0 {
		return order.Order{}, errNoOrder
	}
	return found[0], nil
}

// Orders implements order.Store.
func (s *Store) Orders(ctx context.Context, userID, beforeID string, limit int) ([]order.Order, error) {
	if !sqldb.Storable(beforeID) {
		return nil, fault.New(fault.Invalid, "", "the list position is not one a list returned")
	}
	if !sqldb.Storable(userID) {
		return []order.Order{}, nil
	}
	if beforeID == "" {
		return s.selectOrders(ctx, `user_id = ? ORDER BY id DESC LIMIT ?`, userID, limit)
	}
	return s.selectOrders(ctx, `user_id = ? AND id < ? ORDER BY id DESC LIMIT ?`, userID, beforeID, limit)
}

// SetStatus implements order.Store.
func (s *Store) SetStatus(ctx context.Context, userID, orderID string, from []string, status, paymentStatus string, now time.Time) (bool, error) {
	if !sqldb.Storable(status, paymentStatus) {
		return false, sqldb.ErrUnstorable
	}
	args := []any{status, paymentStatus, now.UnixMicro(), orderID, userID}
	for _, f := range from {
		if sqldb.Storable(f) {
			args = append(args, f)
		}
	}
	n := len(args) - 5
	if n == 0 || !sqldb.Storable(orderID, userID) {
		return false, nil // no stored order can match; and "IN ()" is not SQL
	}
	res, err := s.db.Writer(ctx).ExecContext(ctx, `UPDATE orders SET status = ?, payment_status = ?, updated_at = ?
		WHERE id = ? AND user_id = ? AND status IN (?`+strings.Repeat(", ?", n-1)+`)`, args...)
	if err != nil {
		return false, fault.Wrap(err, "update order status")
	}
	changed, _ := res.RowsAffected()
	return changed == 1, nil
}

// PendingOrders implements order.Store.
func (s *Store) PendingOrders(ctx context.Context, before time.Time, limit int) ([]order.Order, error) {
	return s.selectOrders(ctx, `status = ? AND created_at < ? ORDER BY created_at, id LIMIT ?`, order.StatusPending, before.UnixMicro(), limit)
}

const keyColumns = `user_id, key, request_hash, state, order_id, lease_until, lease_gen,
		err_kind, err_code, err_message, response, created_at`

func (s *Store) oneKey(ctx context.Context, where string, args ...any) (order.KeyRecord, error) {
	var r order.KeyRecord
	var lease, created int64
	err := s.db.Reader(ctx).QueryRowContext(ctx, `SELECT `+keyColumns+` FROM order_idempotency_keys WHERE `+where+s.lockInTx(ctx), args...).
		Scan(&r.UserID, &r.Key, &r.RequestHash, &r.State, &r.OrderID, &lease, &r.LeaseGen, &r.ErrKind, &r.ErrCode, &r.ErrMessage, &r.Response, &created)
	if sqldb.NoRows(err) {
		return r, errNoKey
	}
	if err != nil {
		return r, fault.Wrap(err, "select idempotency key")
	}
	r.LeaseUntil, r.CreatedAt = time.UnixMicro(lease).UTC(), time.UnixMicro(created).UTC()
	return r, nil
}

// KeyByOrder implements order.Store. Inside a transaction it locks the record.
func (s *Store) KeyByOrder(ctx context.Context, orderID string) (order.KeyRecord, error) {
	if orderID == "" || !sqldb.Storable(orderID) {
		return order.KeyRecord{}, errNoKey
	}
	// "<> ''" matches the partial index's condition: SQLite uses a
	// partial index only when the query implies it, and "= ?" does not.
	return s.oneKey(ctx, `order_id = ? AND order_id <> ''`, orderID)
}

// PurgeKeys implements order.Store. The batch is chosen and deleted in one
// statement, so a record taken over between the two cannot be caught.
func (s *Store) PurgeKeys(ctx context.Context, before, now time.Time, limit int) (int, error) {
	res, err := s.db.Writer(ctx).ExecContext(ctx, `DELETE FROM order_idempotency_keys WHERE (user_id, key) IN (
		SELECT user_id, key FROM order_idempotency_keys WHERE created_at < ? AND (state = ? OR lease_until < ?)
		ORDER BY created_at LIMIT ?) AND (state = ? OR lease_until < ?)`,
		before.UnixMicro(), order.KeyDone, now.UnixMicro(), limit, order.KeyDone, now.UnixMicro())
	if err != nil {
		return 0, fault.Wrap(err, "purge idempotency keys")
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Key implements order.Store. Inside a transaction it locks the record, so
// of two checkouts that find the same expired lease only one takes it over.
func (s *Store) Key(ctx context.Context, userID, key string) (order.KeyRecord, error) {
	if !sqldb.Storable(userID, key) {
		return order.KeyRecord{}, errNoKey
	}
	return s.oneKey(ctx, `user_id = ? AND key = ?`, userID, key)
}

var errNoKey = fault.New(fault.NotFound, "", "no such idempotency key")

// InsertKey implements order.Store.
func (s *Store) InsertKey(ctx context.Context, r order.KeyRecord) error {
	if !sqldb.Storable(r.UserID, r.Key, r.RequestHash, r.State, r.OrderID) {
		return sqldb.ErrUnstorable
	}
	// A key in use is an expected outcome (checkout inserts first and
	// looks only when that fails), not an error for PostgreSQL to log and
	// abort the transaction on: ON CONFLICT turns it into no row written.
	res, err := s.db.Writer(ctx).ExecContext(ctx, `INSERT INTO order_idempotency_keys
		(user_id, key, request_hash, state, order_id, lease_until, lease_gen, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id, key) DO NOTHING`,
		r.UserID, r.Key, r.RequestHash, r.State, r.OrderID, r.LeaseUntil.UnixMicro(), r.LeaseGen, r.CreatedAt.UnixMicro())
	if err != nil {
		return fault.Wrap(err, "insert idempotency key")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fault.Wrap(err, "insert idempotency key")
	}
	if n == 0 {
		return fault.New(fault.Conflict, "idempotency_key_in_use", "this Idempotency-Key is in use")
	}
	return nil
}

// UpdateKey implements order.Store.
func (s *Store) UpdateKey(ctx context.Context, r order.KeyRecord, gen int64) (bool, error) {
	if !sqldb.Storable(r.State, r.OrderID, r.ErrCode, r.ErrMessage) {
		return false, sqldb.ErrUnstorable
	}
	if !sqldb.Storable(r.UserID, r.Key) {
		return false, nil // no such record, as for any unknown key
	}
	res, err := s.db.Writer(ctx).ExecContext(ctx, `UPDATE order_idempotency_keys SET state = ?, order_id = ?, lease_until = ?, lease_gen = ?,
		err_kind = ?, err_code = ?, err_message = ?, response = ? WHERE user_id = ? AND key = ? AND lease_gen = ? AND state = ?`,
		r.State, r.OrderID, r.LeaseUntil.UnixMicro(), r.LeaseGen, r.ErrKind, r.ErrCode, r.ErrMessage, r.Response, r.UserID, r.Key, gen, order.KeyRunning)
	if err != nil {
		return false, fault.Wrap(err, "update idempotency key")
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DeleteKey implements order.Store.
func (s *Store) DeleteKey(ctx context.Context, userID, key string, gen int64) (bool, error) {
	if !sqldb.Storable(userID, key) {
		return false, nil // no such record, as for any unknown key
	}
	res, err := s.db.Writer(ctx).ExecContext(ctx, `DELETE FROM order_idempotency_keys WHERE user_id = ? AND key = ? AND lease_gen = ?`, userID, key, gen)
	if err != nil {
		return false, fault.Wrap(err, "delete idempotency key")
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
