package store

import (
	"context"
	"slices"
	"time"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/order"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/web"
)

// Cached is an order.Store whose reads of a user's newest orders (the
// first page of "my orders", which a shop shows far more often than the
// user checks out) come from a cache.Cache. Every write of one of the
// user's orders (a new order, a status change) invalidates the user's
// copy, recorded within the write's transaction and applied before it
// returns (see cache.Defer), so the next read, on any instance, sees it.
// Older pages, single orders and reads inside a transaction go to the
// database: single orders are read to be changed, under a lock.
type Cached struct {
	order.Store
	cache  *cache.Cache
	newest *cache.Entity[[]order.Order]
}

var _ order.Store = (*Cached)(nil)

// ordersVersion is the version of the cached shape; bump it when it
// changes.
const ordersVersion = 1

// DefaultOrdersTTL is how long a user's newest orders stay cached when the
// caller gives no lifetime: every write invalidates them, so the lifetime
// only bounds memory held for users who stopped looking.
const DefaultOrdersTTL = 10 * time.Minute

// newestCached is how many of a user's newest orders are cached: one more
// than the largest page, which the service asks for to learn whether a
// next page exists, so every first page is answered from one entry.
const newestCached = web.MaxLimit + 1

// NewCached wraps inner with c; ttl 0 means DefaultOrdersTTL.
func NewCached(inner order.Store, c *cache.Cache, ttl time.Duration) *Cached {
	if ttl <= 0 {
		ttl = DefaultOrdersTTL
	}
	return &Cached{Store: inner, cache: c, newest: cache.Register[[]order.Order](c, cache.Spec{
		Name: "orders", Version: ordersVersion, TTL: ttl,
	})}
}

// Orders implements order.Store.
func (s *Cached) Orders(ctx context.Context, userID, beforeID string, limit int) ([]order.Order, error) {
	if beforeID != "" || limit <= 0 || limit > newestCached || sqldb.InTransaction(ctx) {
		return s.Store.Orders(ctx, userID, beforeID, limit)
	}
	newest, _, err := s.newest.Get(ctx, userID, func(ctx context.Context) ([]order.Order, bool, error) {
		list, err := s.Store.Orders(ctx, userID, "", newestCached)
		// A user without orders is a value like any other: found, empty.
		return list, err == nil, err
	})
	if err != nil {
		return nil, err
	}
	// Callers may change what they get; the cached orders are shared. The
	// owner is not encoded (it never leaves the server), so a copy read
	// from Redis lacks it: the key says whose orders these are.
	out := make([]order.Order, min(limit, len(newest)))
	for i := range out {
		out[i] = newest[i]
		out[i].UserID = userID
		out[i].Items = slices.Clone(newest[i].Items)
	}
	return out, nil
}

// InsertOrder implements order.Store.
func (s *Cached) InsertOrder(ctx context.Context, o order.Order) error {
	return s.invalidate(ctx, o.UserID, s.Store.InsertOrder(ctx, o))
}

// SetStatus implements order.Store. A transition that did not happen (the
// order was in none of the from statuses) changed nothing and invalidates
// nothing: with Redis an invalidation is a journal row and a round of
// acknowledgements from every instance.
func (s *Cached) SetStatus(ctx context.Context, userID, orderID string, from []string, status, paymentStatus string, now time.Time) (bool, error) {
	moved, err := s.Store.SetStatus(ctx, userID, orderID, from, status, paymentStatus, now)
	if !moved && err == nil {
		return false, nil
	}
	return moved, s.invalidate(ctx, userID, err)
}

// invalidate drops the user's newest orders after a write that ended in
// err: once ctx's transaction commits (at once outside one), recorded in
// the cache's journal within the transaction. A failed write invalidates
// too: it may have half happened as far as a cached copy can tell.
func (s *Cached) invalidate(ctx context.Context, userID string, err error) error {
	if ierr := s.cache.Defer(ctx, s.newest.Keys(userID)); err == nil {
		err = ierr
	}
	return err
}
