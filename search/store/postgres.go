package store

import (
	"context"
	"strconv"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
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
func (s *Postgres) Upsert(ctx context.Context, productID string, version int64, name, description string) (bool, error) {
	res, err := s.db.Writer(ctx).ExecContext(ctx, `INSERT INTO search_documents (product_id, version, name, description)
		VALUES (?, ?, ?, ?) ON CONFLICT (product_id) DO UPDATE
		SET version = excluded.version, deleted = false, name = excluded.name, description = excluded.description
		WHERE search_documents.version < excluded.version`,
		productID, version, name, description)
	if err != nil {
		return false, fault.Wrap(err, "index product")
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// CopyPostgres indexes, inside tx, the products src yields as rows of
// (product_id, name, description), by COPY: it is the PostgreSQL twin of
// BulkIndex, for bulk loads that write the catalog's tables directly (the
// seed). The database computes each document's tsvector as it stores the
// row. None of the products may be indexed already: COPY cannot skip a
// conflicting row, so one fails the whole copy.
func CopyPostgres(ctx context.Context, tx pgx.Tx, src pgx.CopyFromSource) (int64, error) {
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"search_documents"}, []string{"product_id", "name", "description"}, src)
	return n, fault.Wrap(err, "bulk index")
}

// Delete implements search.Store. The product's row stays, with empty text
// (so a document that matches nothing), to hold the version of the deletion.
func (s *Postgres) Delete(ctx context.Context, productID string, version int64) (bool, error) {
	res, err := s.db.Writer(ctx).ExecContext(ctx, `INSERT INTO search_documents (product_id, version, deleted, name, description)
		VALUES (?, ?, true, '', '') ON CONFLICT (product_id) DO UPDATE
		SET version = excluded.version, deleted = true, name = '', description = ''
		WHERE search_documents.version < excluded.version`,
		productID, version)
	if err != nil {
		return false, fault.Wrap(err, "unindex product")
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Match implements search.Store. Every term must match, as a stemmed word
// ("boots" finds "boot") or as a whole word; the last also matches as a
// prefix of either (search-as-you-type: "hik" finds the stem "hike",
// "hikin" the word "hiking"). The whole-word form keeps words the english
// configuration drops as stop words: "the trail" needs "the" as SQLite
// does, instead of matching every trail. Terms are letters and digits only
// (search.Terms), and are checked again here, so they cannot carry tsquery
// syntax.
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
	parts := make([]string, len(clean))
	and := make([]string, len(clean))
	args := make([]any, 0, 2*len(clean)+2)
	for i, t := range clean {
		if i == len(clean)-1 {
			t += ":*"
		}
		// A stop word is an empty tsquery in english, which drops out of ||.
		parts[i] = `to_tsquery('english', million_unaccent(?)) || to_tsquery('simple', million_unaccent(?))`
		and[i] = "parts[" + strconv.Itoa(i+1) + "]"
		args = append(args, t, t)
	}
	args = append(args, limit, offset)
	// A term that yields no lexeme in either configuration (a word longer
	// than PostgreSQL indexes, letters its parser does not take for a word)
	// would drop out of && and widen the query; it can match nothing, so
	// neither can the query. ts_rank_cd weights are {D, C, B, A}. The first
	// key ranks by name hits only (A, C), so any name match outranks any
	// description-only match, however often the description repeats the
	// word; the second breaks ties with the whole document.
	//
	// MATERIALIZED builds the query once: inlined, a generic plan of the
	// prepared statement rebuilt it for every row it ranked, which made a
	// one-letter prefix over 100,000 products take 2 s instead of 0.6 s.
	q := `WITH q AS MATERIALIZED (SELECT ` + strings.Join(and, " && ") + ` AS query
			FROM (SELECT ARRAY[` + strings.Join(parts, ", ") + `] AS parts) t
			WHERE NOT EXISTS (SELECT FROM unnest(t.parts) p WHERE numnode(p) = 0))
		SELECT d.product_id FROM search_documents d, q
		WHERE d.document @@ q.query
		ORDER BY ts_rank_cd('{0, 0.1, 0, 1.0}', d.document, q.query) DESC,
			ts_rank_cd('{0.05, 0.1, 0.4, 1.0}', d.document, q.query) DESC, d.product_id
		LIMIT ? OFFSET ?`
	rows, err := s.db.Reader(ctx).QueryContext(ctx, q, args...)
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
