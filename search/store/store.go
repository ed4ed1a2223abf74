// Package store persists the search index: SQLite FTS5 in the embedded mode,
// PostgreSQL full-text search (tsvector and GIN) on PostgreSQL.
package store

import (
	"context"
	"embed"
	"io/fs"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/search"
	"github.com/millionshop/million/sqldb"
)

//go:embed sqlite/*.sql postgres/*.sql
var migrationsFS embed.FS

// Migrations are the search module's schema, for each engine.
func Migrations() sqldb.Migrations {
	lite, _ := fs.Sub(migrationsFS, "sqlite")
	pg, _ := fs.Sub(migrationsFS, "postgres")
	return sqldb.Migrations{Module: "search", SQLite: lite, Postgres: pg}
}

// New returns the index for db's engine. The two engines' full-text
// features differ too much for one set of statements.
func New(db *sqldb.DB) search.Store {
	if db.Dialect == sqldb.Postgres {
		return NewPostgres(db)
	}
	return NewSQLite(db)
}

// SQLite is the search index on SQLite FTS5.
type SQLite struct {
	db *sqldb.DB
}

var _ search.Store = (*SQLite)(nil)

// NewSQLite returns the index over db.
func NewSQLite(db *sqldb.DB) *SQLite { return &SQLite{db: db} }

// Upsert implements search.Store. The product's document goes into the
// stemmed index and its unstemmed twin under the rowid search_documents
// keeps for the product, so that every step finds its row by key: the
// write costs the same in an index of ten documents or of a million.
func (s *SQLite) Upsert(ctx context.Context, productID string, version int64, name, description string) (bool, error) {
	wrote := false
	err := s.db.InTx(ctx, func(ctx context.Context) error {
		w := s.db.Writer(ctx)
		doc, have, deleted, err := s.document(ctx, w, productID)
		switch {
		case err == nil:
			if version <= have {
				return nil
			}
			if !deleted {
				if err := unindex(ctx, w, doc); err != nil {
					return err
				}
			}
			if _, err := w.ExecContext(ctx, `UPDATE search_documents SET version = ?, deleted = 0 WHERE doc = ?`,
				version, doc); err != nil {
				return fault.Wrap(err, "index product")
			}
		case sqldb.NoRows(err):
			if err := w.QueryRowContext(ctx, `INSERT INTO search_documents (product_id, version) VALUES (?, ?) RETURNING doc`,
				productID, version).Scan(&doc); err != nil {
				return fault.Wrap(err, "index product")
			}
		default:
			return err
		}
		if _, err := w.ExecContext(ctx, `INSERT INTO search_products (rowid, product_id, name, description)
			VALUES (?, ?, ?, ?)`, doc, productID, name, description); err != nil {
			return fault.Wrap(err, "index product")
		}
		_, err = w.ExecContext(ctx,
			`INSERT INTO search_words (rowid, name, description) VALUES (?, ?, ?)`, doc, name, description)
		wrote = err == nil
		return fault.Wrap(err, "index product words")
	})
	return wrote && err == nil, err
}

// document finds a product's row in search_documents: its rowid, the
// version last applied and whether that was a deletion.
func (s *SQLite) document(ctx context.Context, w sqldb.Querier, productID string) (doc, version int64, deleted bool, err error) {
	err = w.QueryRowContext(ctx, `SELECT doc, version, deleted FROM search_documents WHERE product_id = ?`,
		productID).Scan(&doc, &version, &deleted)
	if err != nil && !sqldb.NoRows(err) {
		err = fault.Wrap(err, "find indexed product")
	}
	return doc, version, deleted, err
}

// Delete implements search.Store. The product's row in search_documents
// stays, without a document, to hold the version of the deletion.
func (s *SQLite) Delete(ctx context.Context, productID string, version int64) (bool, error) {
	wrote := false
	err := s.db.InTx(ctx, func(ctx context.Context) error {
		w := s.db.Writer(ctx)
		doc, have, deleted, err := s.document(ctx, w, productID)
		switch {
		case err == nil:
			if version <= have {
				return nil
			}
			if !deleted {
				if err := unindex(ctx, w, doc); err != nil {
					return err
				}
			}
			_, err = w.ExecContext(ctx, `UPDATE search_documents SET version = ?, deleted = 1 WHERE doc = ?`, version, doc)
		case sqldb.NoRows(err):
			_, err = w.ExecContext(ctx, `INSERT INTO search_documents (product_id, version, deleted) VALUES (?, ?, 1)`,
				productID, version)
		default:
			return err
		}
		wrote = err == nil
		return fault.Wrap(err, "unindex product")
	})
	return wrote && err == nil, err
}

// unindex removes document doc from both full-text tables, keeping its
// search_documents row.
func unindex(ctx context.Context, w sqldb.Querier, doc int64) error {
	if _, err := w.ExecContext(ctx, `DELETE FROM search_products WHERE rowid = ?`, doc); err != nil {
		return fault.Wrap(err, "unindex product")
	}
	_, err := w.ExecContext(ctx, `DELETE FROM search_words WHERE rowid = ?`, doc)
	return fault.Wrap(err, "unindex product words")
}

// BulkIndex indexes, inside tx, the products that query selects as rows of
// (product_id, name, description), a statement per table however many
// there are. It is for bulk loads that write the catalog's tables directly
// (the seed), so that they fill every table Match and Upsert rely on. None
// of the products may be indexed already.
func BulkIndex(ctx context.Context, tx sqldb.Querier, query string, args ...any) error {
	var mark int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(doc), 0) FROM search_documents`).Scan(&mark); err != nil {
		return fault.Wrap(err, "bulk index")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO search_documents (product_id)
		SELECT product_id FROM (`+query+`)`, args...); err != nil {
		return fault.Wrap(err, "bulk index documents")
	}
	// New rows of search_documents get keys above every existing one.
	if _, err := tx.ExecContext(ctx, `INSERT INTO search_products (rowid, product_id, name, description)
		SELECT d.doc, d.product_id, q.name, q.description
		FROM (`+query+`) q JOIN search_documents d ON d.product_id = q.product_id
		WHERE d.doc > ?`, append(slices.Clip(args), mark)...); err != nil {
		return fault.Wrap(err, "bulk index products")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO search_words (rowid, name, description)
		SELECT rowid, name, description FROM search_products WHERE rowid > ?`, mark); err != nil {
		return fault.Wrap(err, "bulk index words")
	}
	return nil
}

// MaxCompletions bounds how many whole words the last term of a query may
// stand for besides itself.
const MaxCompletions = 64

// minCompletionRunes is the shortest last term that is completed into whole
// words. Porter keeps the first letters of a word, so a shorter prefix
// already matches the stem as a prefix, and completing it would only make
// the query larger.
const minCompletionRunes = 3

// Match implements search.Store. Every term is quoted, so it is matched as a
// plain word whatever it contains. The last one also matches as a prefix,
// for search-as-you-type: as a prefix of a stem ("hik" finds "hike", the stem
// of "Hiking"), and through the whole words it completes to in the
// unstemmed vocabulary ("hikin" finds "hiking"), which stem like the index.
// Products whose name matches come first, then those matched by their
// description alone; within each, bm25 ranks, weighing a hit in the name
// ten times one in the description.
func (s *SQLite) Match(ctx context.Context, terms []string, offset, limit int) ([]string, error) {
	quoted := make([]string, len(terms))
	for i, t := range terms {
		quoted[i] = quote(t)
	}
	last := terms[len(terms)-1]
	quoted[len(quoted)-1] = "(" + quote(last) + "*"
	completions := MaxCompletions
	if utf8.RuneCountInString(last) < minCompletionRunes {
		completions = 0
	}
	// bm25 alone cannot keep name hits first: a term in every document
	// has its weight cut to nearly nothing, and a short prefix matches
	// some documents through a rare completion and the rest only through
	// the prefix itself. So the first key is whether the name matched at
	// all: bm25 over the name alone is below zero exactly then.
	//
	// The completions join the query inside the statement, one statement
	// per search rather than a vocabulary lookup before it. No valid UTF-8
	// text that starts with the prefix sorts at or after prefix+U+10FFFF,
	// the last code point, unless that code point follows: the range finds
	// them in the vocabulary's order, and substr keeps only real prefixes.
	rows, err := s.db.Reader(ctx).QueryContext(ctx, `SELECT product_id FROM search_products
		WHERE search_products MATCH ? || (
			SELECT coalesce(group_concat(' OR "' || replace(term, '"', '""') || '"', ''), '') FROM (
				SELECT term FROM search_words_vocab WHERE term > ? AND term < ? AND substr(term, 1, ?) = ?
				ORDER BY term LIMIT ?)) || ')'
		ORDER BY bm25(search_products, 0.0, 1.0, 0.0) < 0 DESC, bm25(search_products, 0.0, 10.0, 1.0), product_id
		LIMIT ? OFFSET ?`,
		strings.Join(quoted, " AND "), last, last+"\U0010FFFF", utf8.RuneCountInString(last), last, completions, limit, offset)
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

// quote makes term one FTS5 string: quotes are doubled, and NUL, which
// would end the query text early inside SQLite, is dropped.
func quote(term string) string {
	term = strings.ReplaceAll(term, "\x00", "")
	return `"` + strings.ReplaceAll(term, `"`, `""`) + `"`
}
