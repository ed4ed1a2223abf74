package store

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/search"
	"github.com/millionshop/million/sqldb"
)

// Cached is a search.Store that answers matches from a cache.Cache. Results
// (product IDs; the products come from the catalog's own cache) live for a
// short TTL, and every index change moves them all to a new generation
// after its transaction commits, so a search after a write sees it.
type Cached struct {
	inner   search.Store
	cache   *cache.Cache
	results *cache.Entity[[]string]
}

var _ search.Store = (*Cached)(nil)

// resultsVersion is the version of the cached shape; bump it when it changes.
const resultsVersion = 1

// NewCached wraps inner with c; ttl 0 means 1 min.
func NewCached(inner search.Store, c *cache.Cache, ttl time.Duration) *Cached {
	if ttl <= 0 {
		ttl = time.Minute
	}
	return &Cached{inner: inner, cache: c, results: cache.Register[[]string](c, cache.Spec{
		Name: "search", Version: resultsVersion, TTL: ttl, Generational: true,
	})}
}

// changed moves the results to a new generation once ctx's transaction
// commits (at once outside one), recorded in the cache's journal within the
// transaction; an error means the record failed.
func (s *Cached) changed(ctx context.Context) error {
	return s.cache.Defer(ctx, s.results.All())
}

// Upsert implements search.Store.
func (s *Cached) Upsert(ctx context.Context, productID string, version int64, name, description string) (bool, error) {
	wrote, err := s.inner.Upsert(ctx, productID, version, name, description)
	if err != nil || !wrote {
		return wrote, err
	}
	return true, s.changed(ctx)
}

// Delete implements search.Store.
func (s *Cached) Delete(ctx context.Context, productID string, version int64) (bool, error) {
	wrote, err := s.inner.Delete(ctx, productID, version)
	if err != nil || !wrote {
		return wrote, err
	}
	return true, s.changed(ctx)
}

// Match implements search.Store.
func (s *Cached) Match(ctx context.Context, terms []string, offset, limit int) ([]string, error) {
	if sqldb.InTransaction(ctx) {
		return s.inner.Match(ctx, terms, offset, limit)
	}
	// Terms are normalized words of letters and digits: a space cannot
	// occur in one, so the key is unambiguous.
	key := strings.Join(terms, " ") + "|" + strconv.Itoa(offset) + "|" + strconv.Itoa(limit)
	ids, _, err := s.results.Get(ctx, key, func(ctx context.Context) ([]string, bool, error) {
		ids, err := s.inner.Match(ctx, terms, offset, limit)
		return ids, err == nil, err
	})
	if ids == nil && err == nil {
		ids = []string{}
	}
	return ids, err
}
