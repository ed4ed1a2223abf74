// Package search owns the full-text product index: ranked search over
// product names and descriptions, kept in step with the catalog.
package search

import (
	"context"
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
type Store interface {
	// Upsert adds or replaces a product's document.
	Upsert(ctx context.Context, productID, name, description string) error
	// Delete removes a product's document.
	Delete(ctx context.Context, productID string) error
	// Match returns up to limit product IDs matching every term, best first, skipping offset.
	Match(ctx context.Context, terms []string, offset, limit int) ([]string, error)
}

// Index implements Service and catalog.Indexer.
type Index struct {
	store    Store
	products ProductReader
}

var (
	_ Service         = (*Index)(nil)
	_ catalog.Indexer = (*Index)(nil)
)

// NewIndex returns the search service. products may be set later with
// SetProducts, since catalog and search depend on each other at wiring time.
func NewIndex(store Store, products ProductReader) *Index {
	return &Index{store: store, products: products}
}

// SetProducts sets the catalog reader.
func (x *Index) SetProducts(p ProductReader) { x.products = p }

// Index implements catalog.Indexer.
func (x *Index) Index(ctx context.Context, p catalog.Product) error {
	return x.store.Upsert(ctx, p.ID, p.Name, p.Description)
}

// Remove implements catalog.Indexer.
func (x *Index) Remove(ctx context.Context, productID string) error {
	return x.store.Delete(ctx, productID)
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
