package store

import (
	"context"
	"time"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/cart"
	"github.com/millionshop/million/sqldb"
)

// Cached is a cart.Store whose reads of a user's lines come from a
// cache.Cache: a shop shows the cart (or its count) on every page, far more
// often than it changes. Every write invalidates the user's lines, recorded
// within the write's transaction and applied before it returns (see
// cache.Defer), so the next read, on any instance, sees it. Reads inside a
// transaction (checkout) go to the database.
type Cached struct {
	inner cart.Store
	cache *cache.Cache
	lines *cache.Entity[[]cart.Line]
}

var _ cart.Store = (*Cached)(nil)

// cartVersion is the version of the cached shape; bump it when it changes.
const cartVersion = 1

// DefaultCartTTL is how long a cart's lines stay cached when the caller
// gives no lifetime: every write invalidates them, so the lifetime only
// bounds memory held for carts nobody looks at.
const DefaultCartTTL = 10 * time.Minute

// NewCached wraps inner with c; ttl 0 means DefaultCartTTL.
func NewCached(inner cart.Store, c *cache.Cache, ttl time.Duration) *Cached {
	if ttl <= 0 {
		ttl = DefaultCartTTL
	}
	return &Cached{inner: inner, cache: c, lines: cache.Register[[]cart.Line](c, cache.Spec{
		Name: "cart", Version: cartVersion, TTL: ttl,
	})}
}

// Lines implements cart.Store.
func (s *Cached) Lines(ctx context.Context, userID string) ([]cart.Line, error) {
	if sqldb.InTransaction(ctx) {
		return s.inner.Lines(ctx, userID)
	}
	lines, _, err := s.lines.Get(ctx, userID, func(ctx context.Context) ([]cart.Line, bool, error) {
		lines, err := s.inner.Lines(ctx, userID)
		// An empty cart is a value like any other: found, with no lines.
		return lines, err == nil, err
	})
	if err != nil {
		return nil, err
	}
	// Callers may append to or reorder what they get; the cached slice is
	// shared.
	return append([]cart.Line(nil), lines...), nil
}

// Set implements cart.Store.
func (s *Cached) Set(ctx context.Context, userID, productID string, quantity int64, now time.Time) error {
	return s.write(ctx, userID, func(ctx context.Context) error { return s.inner.Set(ctx, userID, productID, quantity, now) })
}

// Remove implements cart.Store.
func (s *Cached) Remove(ctx context.Context, userID, productID string) error {
	return s.write(ctx, userID, func(ctx context.Context) error { return s.inner.Remove(ctx, userID, productID) })
}

// RemoveLines implements cart.Store.
func (s *Cached) RemoveLines(ctx context.Context, userID string, lines []cart.Line) error {
	return s.write(ctx, userID, func(ctx context.Context) error { return s.inner.RemoveLines(ctx, userID, lines) })
}

// Clear implements cart.Store.
func (s *Cached) Clear(ctx context.Context, userID string) error {
	return s.write(ctx, userID, func(ctx context.Context) error { return s.inner.Clear(ctx, userID) })
}

// write runs fn and invalidates the user's lines: once ctx's transaction
// commits (at once outside one), recorded in the cache's journal within
// the transaction. A failed write invalidates too: it may have half
// happened as far as a cached copy can tell.
func (s *Cached) write(ctx context.Context, userID string, fn func(context.Context) error) error {
	err := fn(ctx)
	if ierr := s.cache.Defer(ctx, s.lines.Keys(userID)); err == nil {
		err = ierr
	}
	return err
}
