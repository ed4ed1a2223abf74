// Package store persists the catalog module: categories, products and stock.
package store

import (
	"context"
	"embed"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/sqldb"
)

//go:embed sqlite/*.sql postgres/*.sql
var migrationsFS embed.FS

// Migrations are the catalog module's schema, for each engine.
func Migrations() sqldb.Migrations {
	lite, _ := fs.Sub(migrationsFS, "sqlite")
	pg, _ := fs.Sub(migrationsFS, "postgres")
	return sqldb.Migrations{Module: "catalog", SQLite: lite, Postgres: pg}
}

// Store is the catalog store on SQLite or PostgreSQL.
type Store struct {
	db *sqldb.DB
}

var _ catalog.Store = (*Store)(nil)

// New returns the store over db.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

// InTx implements catalog.Store.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.db.InTx(ctx, fn)
}

// Categories implements catalog.Store.
func (s *Store) Categories(ctx context.Context) ([]catalog.Category, error) {
	rows, err := s.db.Reader(ctx).QueryContext(ctx, `SELECT id, slug, name FROM categories ORDER BY name, slug`)
	if err != nil {
		return nil, fault.Wrap(err, "list categories")
	}
	defer rows.Close()
	out := []catalog.Category{}
	for rows.Next() {
		var c catalog.Category
		if err := rows.Scan(&c.ID, &c.Slug, &c.Name); err != nil {
			return nil, fault.Wrap(err, "scan category")
		}
		out = append(out, c)
	}
	return out, fault.Wrap(rows.Err(), "list categories")
}

// CategoryBySlug implements catalog.Store.
func (s *Store) CategoryBySlug(ctx context.Context, slug string) (catalog.Category, error) {
	var c catalog.Category
	if !sqldb.Storable(slug) {
		return c, fault.New(fault.NotFound, "", "no such category")
	}
	err := s.db.Reader(ctx).QueryRowContext(ctx, `SELECT id, slug, name FROM categories WHERE slug = ?`, slug).Scan(&c.ID, &c.Slug, &c.Name)
	if sqldb.NoRows(err) {
		return c, fault.New(fault.NotFound, "", "no such category")
	}
	return c, fault.Wrap(err, "select category")
}

// CreateCategory implements catalog.Store.
func (s *Store) CreateCategory(ctx context.Context, c catalog.Category) error {
	if !sqldb.Storable(c.ID, c.Slug, c.Name) {
		return sqldb.ErrUnstorable
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx, `INSERT INTO categories (id, slug, name) VALUES (?, ?, ?)`, c.ID, c.Slug, c.Name)
	if sqldb.IsUniqueViolation(err) {
		return fault.New(fault.Conflict, "slug_taken", "a category with this slug already exists")
	}
	return fault.Wrap(err, "insert category")
}

const productSelect = `SELECT p.id, p.sku, p.name, p.description, p.price_cents, p.currency, c.slug,
	p.stock, p.image_url, p.created_at, p.updated_at
	FROM products p JOIN categories c ON c.id = p.category_id`

func scanProducts(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}) ([]catalog.Product, error) {
	out := []catalog.Product{}
	for rows.Next() {
		var p catalog.Product
		var created, updated int64
		if err := rows.Scan(&p.ID, &p.SKU, &p.Name, &p.Description, &p.PriceCents, &p.Currency,
			&p.Category, &p.Stock, &p.ImageURL, &created, &updated); err != nil {
			return nil, fault.Wrap(err, "scan product")
		}
		p.CreatedAt, p.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
		out = append(out, p)
	}
	return out, fault.Wrap(rows.Err(), "list products")
}

// ListProducts implements catalog.Store with keyset pagination: each page
// seeks past the last row of the previous one through an index, so page 1000
// costs what page 1 costs.
func (s *Store) ListProducts(ctx context.Context, categoryID, sort string, after *catalog.Position, limit int) ([]catalog.Product, error) {
	if after != nil && !sqldb.Storable(after.ID) {
		return nil, fault.New(fault.Invalid, "", "the list position is not one a list returned")
	}
	if !sqldb.Storable(categoryID) {
		return []catalog.Product{}, nil
	}
	var where []string
	var args []any
	if categoryID != "" {
		where = append(where, "p.category_id = ?")
		args = append(args, categoryID)
	}
	order := "p.id DESC"
	switch sort {
	case catalog.SortPrice:
		order = "p.price_cents ASC, p.id ASC"
		if after != nil {
			where = append(where, "(p.price_cents, p.id) > (?, ?)")
			args = append(args, after.PriceCents, after.ID)
		}
	case catalog.SortPriceDesc:
		order = "p.price_cents DESC, p.id DESC"
		if after != nil {
			where = append(where, "(p.price_cents, p.id) < (?, ?)")
			args = append(args, after.PriceCents, after.ID)
		}
	default:
		if after != nil {
			where = append(where, "p.id < ?")
			args = append(args, after.ID)
		}
	}
	q := productSelect
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + order + " LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.Reader(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fault.Wrap(err, "list products")
	}
	defer rows.Close()
	return scanProducts(rows)
}

// ProductsByID implements catalog.Store.
func (s *Store) ProductsByID(ctx context.Context, ids []string) ([]catalog.Product, error) {
	args := make([]any, 0, len(ids))
	for _, id := range ids {
		if sqldb.Storable(id) {
			args = append(args, id)
		}
	}
	if len(args) == 0 {
		return []catalog.Product{}, nil
	}
	q := productSelect + " WHERE p.id IN (?" + strings.Repeat(", ?", len(args)-1) + ")"
	if sqldb.InTransaction(ctx) {
		// Inside a write transaction the caller is about to change these
		// rows (reserve, update): lock them, in ID order so two
		// transactions never wait on each other in opposite orders.
		q += " ORDER BY p.id" + s.db.ForUpdate("p")
	}
	rows, err := s.db.Reader(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fault.Wrap(err, "select products")
	}
	defer rows.Close()
	return scanProducts(rows)
}

// Product implements catalog.Store.
func (s *Store) Product(ctx context.Context, id string) (catalog.Product, bool, error) {
	ps, err := s.ProductsByID(ctx, []string{id})
	if err != nil || len(ps) == 0 {
		return catalog.Product{}, false, err
	}
	return ps[0], true, nil
}

// InsertProduct implements catalog.Store.
func (s *Store) InsertProduct(ctx context.Context, p catalog.ProductRow) error {
	if !sqldb.Storable(p.ID, p.SKU, p.Name, p.Description, p.Currency, p.CategoryID, p.ImageURL) {
		return sqldb.ErrUnstorable
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx, `INSERT INTO products
		(id, sku, name, description, price_cents, currency, category_id, stock, image_url, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.SKU, p.Name, p.Description, p.PriceCents, p.Currency, p.CategoryID, p.Stock, p.ImageURL,
		p.CreatedAt.UnixMicro(), p.UpdatedAt.UnixMicro())
	if sqldb.IsUniqueViolation(err) {
		return fault.New(fault.Conflict, "sku_taken", "a product with this sku already exists")
	}
	return fault.Wrap(err, "insert product")
}

// UpdateProduct implements catalog.Store.
func (s *Store) UpdateProduct(ctx context.Context, p catalog.ProductRow) (int64, error) {
	if !sqldb.Storable(p.ID) {
		return 0, errNoProduct
	}
	if !sqldb.Storable(p.Name, p.Description, p.CategoryID, p.ImageURL) {
		return 0, sqldb.ErrUnstorable
	}
	var version int64
	err := s.db.Writer(ctx).QueryRowContext(ctx, `UPDATE products SET name = ?, description = ?, price_cents = ?,
		category_id = ?, stock = ?, image_url = ?, updated_at = ?, version = version + 1 WHERE id = ?
		RETURNING version`,
		p.Name, p.Description, p.PriceCents, p.CategoryID, p.Stock, p.ImageURL, p.UpdatedAt.UnixMicro(), p.ID).Scan(&version)
	if sqldb.NoRows(err) {
		return 0, errNoProduct
	}
	return version, fault.Wrap(err, "update product")
}

var errNoProduct = fault.New(fault.NotFound, "", "no such product")

// DeleteProduct implements catalog.Store.
func (s *Store) DeleteProduct(ctx context.Context, id string) (int64, error) {
	if !sqldb.Storable(id) {
		return 0, errNoProduct
	}
	var version int64
	err := s.db.Writer(ctx).QueryRowContext(ctx, `DELETE FROM products WHERE id = ? RETURNING version`, id).Scan(&version)
	if sqldb.NoRows(err) {
		return 0, errNoProduct
	}
	if err != nil {
		return 0, fault.Wrap(err, "delete product")
	}
	// The deletion is the product's last write, one version after the
	// last it had.
	return version + 1, nil
}

// stockBatch bounds the lines of one stock statement: two parameters a
// line, far below either engine's limit on parameters.
const stockBatch = 200

// TakeStock implements catalog.Store. The guard in the WHERE clause makes
// each line's check and decrement one atomic step, so stock can never go
// negative; a statement that updated fewer rows than it had lines came up
// short.
func (s *Store) TakeStock(ctx context.Context, lines []catalog.Line, now time.Time) error {
	seen := make(map[string]bool, len(lines))
	for _, l := range lines {
		if seen[l.ProductID] {
			return fault.New(fault.Internal, "", "TakeStock: product "+l.ProductID+" is on two lines")
		}
		seen[l.ProductID] = true
		if !sqldb.Storable(l.ProductID) {
			return errShort() // no such product
		}
	}
	return s.db.InTx(ctx, func(ctx context.Context) error {
		for batch := range slices.Chunk(lines, stockBatch) {
			args := make([]any, 0, 1+2*len(batch))
			args = append(args, now.UnixMicro())
			for _, l := range batch {
				args = append(args, l.ProductID, l.Quantity)
			}
			// VALUES names its columns column1, column2 on both engines;
			// the cast gives PostgreSQL the quantity's type.
			res, err := s.db.Writer(ctx).ExecContext(ctx, `UPDATE products SET stock = stock - v.column2, updated_at = ?
				FROM (VALUES (?, CAST(? AS BIGINT))`+strings.Repeat(", (?, CAST(? AS BIGINT))", len(batch)-1)+`) AS v
				WHERE products.id = v.column1 AND products.stock >= v.column2`, args...)
			if err != nil {
				return fault.Wrap(err, "take stock")
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fault.Wrap(err, "take stock")
			}
			if n != int64(len(batch)) {
				return errShort()
			}
		}
		return nil
	})
}

func errShort() error {
	return fault.New(fault.Conflict, "insufficient_stock", "not enough stock for a product in the cart")
}

// PutStock implements catalog.Store.
func (s *Store) PutStock(ctx context.Context, id string, qty int64, now time.Time) error {
	if !sqldb.Storable(id) {
		return nil // no such product, as for any unknown ID
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx,
		`UPDATE products SET stock = stock + ?, updated_at = ? WHERE id = ?`, qty, now.UnixMicro(), id)
	return fault.Wrap(err, "put stock")
}
