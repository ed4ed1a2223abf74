package store

import (
	"context"
	"strings"
	"unicode"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/search"
	"github.com/millionshop/million/sqldb"
)

// Postgres is the search index on PostgreSQL full-text search: a tsvector
// per product, generated from its name and description, behind a GIN index.
type Postgres struct {
	db *sqldb.DB
}

var _ search.Store = (*Postgres)(nil)

// NewPostgres returns the index over db.
func NewPostgres(db *sqldb.DB) *Postgres { return &Postgres{db: db} }

// Upsert implements search.Store.
func (s *Postgres) Upsert(ctx context.Context, productID, name, description string) error {
	_, err := s.db.Writer(ctx).ExecContext(ctx, `INSERT INTO search_documents (product_id, name, description)
		VALUES (?, ?, ?) ON CONFLICT (product_id) DO UPDATE SET name = excluded.name, description = excluded.description`,
		productID, name, description)
	return fault.Wrap(err, "index product")
}

// Delete implements search.Store.
func (s *Postgres) Delete(ctx context.Context, productID string) error {
	_, err := s.db.Writer(ctx).ExecContext(ctx, `DELETE FROM search_documents WHERE product_id = ?`, productID)
	return fault.Wrap(err, "unindex product")
}

// Match implements search.Store. Every term but the last must match as a
// stemmed word; the last also matches as a prefix of a stemmed or whole word
// (search-as-you-type). Terms are letters and digits only (search.Terms), and
// are checked again here, so they cannot carry tsquery syntax.
func (s *Postgres) Match(ctx context.Context, terms []string, offset, limit int) ([]string, error) {
	clean := make([]string, 0, len(terms))
	for _, t := range terms {
		t = strings.Map(func(r rune) rune {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				return r
			}
			return -1
		}, t)
		if t != "" {
			clean = append(clean, t)
		}
	}
	if len(clean) == 0 {
		return nil, nil
	}
	last := clean[len(clean)-1]
	whole := strings.Join(clean[:len(clean)-1], " & ")
	// ts_rank_cd weights are {D, C, B, A}. The first key ranks by name hits
	// only (A, C), so any name match outranks any description-only match,
	// however often the description repeats the word; the second breaks ties
	// with the whole document.
	q := `WITH q AS (SELECT
			to_tsquery('english', million_unaccent(?)) &&
			(to_tsquery('english', million_unaccent(?)) || to_tsquery('simple', million_unaccent(?))) AS query)
		SELECT d.product_id FROM search_documents d, q
		WHERE d.document @@ q.query
		ORDER BY ts_rank_cd('{0, 0.1, 0, 1.0}', d.document, q.query) DESC,
			ts_rank_cd('{0.05, 0.1, 0.4, 1.0}', d.document, q.query) DESC, d.product_id
		LIMIT ? OFFSET ?`
	rows, err := s.db.Reader(ctx).QueryContext(ctx, q, whole, last+":*", last+":*", limit, offset)
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
