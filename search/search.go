// Package search owns the full-text product index: ranked search over
// product names and descriptions, which follows the catalog through its
// product events.
package search

import (
	"context"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

// Limits on queries.
const (
	MaxQueryLen = 200  // characters
	MaxTerms    = 16   // words used from a query
	MaxOffset   = 1000 // results reachable by paging; deeper pages are refused
)

// Page is one page of results, best match first.
type Page struct {
	Items      []catalog.Product `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// Service is the search module's API.
type Service interface {
	// Search returns products matching q, ranked by relevance.
	// Errors: fault.Invalid (empty or over-long q, bad limit or cursor).
	Search(ctx context.Context, q string, limit int, cursor string) (Page, error)
}

// ProductReader is what search needs from the catalog: the products behind
// the IDs the index returns.
type ProductReader interface {
	ProductsByID(ctx context.Context, ids []string) (map[string]catalog.Product, error)
}

// Store is the index. Terms are already normalized words; the store matches
// all of them, the last one as a prefix.
//
// Every write carries the version of the product it comes from (the
// catalog's event version), and the store keeps the highest version it has
// applied per product, a deletion included: a write at or below it changes
// nothing. So writes are idempotent and may arrive in any order, and the
// index still ends at the product's last version.
type Store interface {
	// Upsert adds or replaces a product's document at version, unless the
	// store holds that version of the product or a later one (or its
	// deletion); it reports whether it wrote.
	Upsert(ctx context.Context, productID string, version int64, name, description string) (bool, error)
	// Delete removes a product's document at version, keeping the version
	// so that an older Upsert delivered late cannot bring it back, unless
	// the store holds that version or a later one; it reports whether it
	// wrote.
	Delete(ctx context.Context, productID string, version int64) (bool, error)
	// Match returns up to limit product IDs matching every term, best first, skipping offset.
	Match(ctx context.Context, terms []string, offset, limit int) ([]string, error)
}

// Consumer is the name of the durable consumer of the catalog's events
// that keeps the index.
const Consumer = "search"

// Index implements Service and consumes the catalog's product events.
type Index struct {
	store    Store
	products ProductReader
}

var _ Service = (*Index)(nil)

// NewIndex returns the search service over store, with products as the
// source of the results it shows.
func NewIndex(store Store, products ProductReader) *Index {
	return &Index{store: store, products: products}
}

// HandleProductEvent applies one of the catalog's product events (topics
// catalog.TopicProduct*) to the index. It is idempotent, and an event older
// than what the index holds for its product changes nothing, so it is safe
// under at-least-once delivery in any order. Errors: fault.Invalid for a
// payload it cannot read (retrying would not help).
func (x *Index) HandleProductEvent(ctx context.Context, topic string, payload json.RawMessage) error {
	switch topic {
	case catalog.TopicProductCreated, catalog.TopicProductUpdated:
		var e catalog.ProductEvent
		if err := json.Unmarshal(payload, &e); err != nil || e.ID == "" || e.Version < 1 {
			return fault.New(fault.Invalid, "", "unreadable "+topic+" event")
		}
		_, err := x.store.Upsert(ctx, e.ID, e.Version, e.Name, e.Description)
		return err
	case catalog.TopicProductDeleted:
		var e catalog.ProductDeleted
		if err := json.Unmarshal(payload, &e); err != nil || e.ID == "" || e.Version < 1 {
			return fault.New(fault.Invalid, "", "unreadable "+topic+" event")
		}
		_, err := x.store.Delete(ctx, e.ID, e.Version)
		return err
	default:
		return fault.New(fault.Invalid, "", "search does not consume "+topic)
	}
}

type position struct {
	Offset int `json:"o"`
}

// Search implements Service.
func (x *Index) Search(ctx context.Context, q string, limit int, cursor string) (Page, error) {
	q = strings.TrimSpace(q)
	if q == "" || utf8.RuneCountInString(q) > MaxQueryLen || !utf8.ValidString(q) {
		return Page{}, fault.Fields(fault.FieldError{Field: "q", Message: "must be 1 to 200 characters"})
	}
	if limit < 1 || limit > web.MaxLimit {
		return Page{}, fault.Fields(fault.FieldError{Field: "limit", Message: "must be an integer from 1 to 100"})
	}
	offset := 0
	if cursor != "" {
		var pos position
		if err := web.DecodeCursor(cursor, &pos); err != nil {
			return Page{}, err
		}
		if pos.Offset <= 0 || pos.Offset > MaxOffset {
			return Page{}, fault.Fields(fault.FieldError{Field: "cursor", Message: "is not a cursor this list returned"})
		}
		offset = pos.Offset
	}
	terms := Terms(q)
	if len(terms) == 0 {
		return Page{Items: []catalog.Product{}}, nil
	}
	ids, err := x.store.Match(ctx, terms, offset, limit+1)
	if err != nil {
		return Page{}, err
	}
	more := len(ids) > limit
	if more {
		ids = ids[:limit]
	}
	found, err := x.products.ProductsByID(ctx, ids)
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: make([]catalog.Product, 0, len(ids))}
	for _, id := range ids {
		if p, ok := found[id]; ok {
			page.Items = append(page.Items, p)
		}
	}
	if more && offset+limit < MaxOffset {
		page.NextCursor = web.EncodeCursor(position{Offset: offset + limit})
	}
	return page, nil
}

// Terms splits a query into lowercased words of letters and digits, at most
// MaxTerms of them. Everything else (quotes, operators, punctuation) is a
// separator, so no query can inject index syntax.
func Terms(q string) []string {
	words := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	if len(words) > MaxTerms {
		words = words[:MaxTerms]
	}
	return words
}
