// Package store persists the search index: SQLite FTS5 in the embedded mode.
package store

import (
	"context"
	"embed"
	"io/fs"
	"strings"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/search"
	"github.com/millionshop/million/sqldb"
)

//go:embed sqlite/*.sql
var sqliteFS embed.FS

// SQLiteMigrations are the search module's schema for the embedded database.
func SQLiteMigrations() sqldb.Migrations {
	sub, _ := fs.Sub(sqliteFS, "sqlite")
	return sqldb.Migrations{Module: "search", FS: sub}
}

// SQLite is the search index on SQLite FTS5.
type SQLite struct {
	db *sqldb.DB
}

var _ search.Store = (*SQLite)(nil)

// NewSQLite returns the index over db.
func NewSQLite(db *sqldb.DB) *SQLite { return &SQLite{db: db} }

// Upsert implements search.Store.
func (s *SQLite) Upsert(ctx context.Context, productID, name, description string) error {
	return s.db.InTx(ctx, func(ctx context.Context) error {
		if err := s.Delete(ctx, productID); err != nil {
			return err
		}
		_, err := s.db.Writer(ctx).ExecContext(ctx,
			`INSERT INTO search_products (product_id, name, description) VALUES (?, ?, ?)`, productID, name, description)
		return fault.Wrap(err, "index product")
	})
}

// Delete implements search.Store.
func (s *SQLite) Delete(ctx context.Context, productID string) error {
	_, err := s.db.Writer(ctx).ExecContext(ctx, `DELETE FROM search_products WHERE product_id = ?`, productID)
	return fault.Wrap(err, "unindex product")
}

// Match implements search.Store. Every term is quoted, so it is matched as a
// plain word whatever it contains; the last one also matches as a prefix, for
// search-as-you-type. bm25 weighs a hit in the name ten times one in the
// description.
func (s *SQLite) Match(ctx context.Context, terms []string, offset, limit int) ([]string, error) {
	quoted := make([]string, len(terms))
	for i, t := range terms {
		quoted[i] = `"` + strings.ReplaceAll(t, `"`, `""`) + `"`
	}
	quoted[len(quoted)-1] += "*"
	rows, err := s.db.Reader(ctx).QueryContext(ctx, `SELECT product_id FROM search_products
		WHERE search_products MATCH ? ORDER BY bm25(search_products, 0.0, 10.0, 1.0), product_id LIMIT ? OFFSET ?`,
		strings.Join(quoted, " "), limit, offset)
	if err != nil {
		return nil, fault.Wrap(err, "search")
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fault.Wrap(err, "scan search hit")
		}
		ids = append(ids, id)
	}
	return ids, fault.Wrap(rows.Err(), "search")
}
