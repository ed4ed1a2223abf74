package store

import (
	"context"
	"time"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
)

// Cached is a user.Store whose profile reads (UserByID) come from a
// cache.Cache, invalidated on rename after commit. Everything else
// (credentials, sessions, refresh tokens) goes straight to the store: those
// are security decisions that must see the database.
type Cached struct {
	user.Store
	cache    *cache.Cache
	profiles *cache.Entity[user.User]
}

var _ user.Store = (*Cached)(nil)

// profileVersion is the version of the cached shape; bump it when it changes.
const profileVersion = 1

// NewCached wraps inner with c; ttl 0 means 1 h.
func NewCached(inner user.Store, c *cache.Cache, ttl time.Duration) *Cached {
	if ttl <= 0 {
		ttl = time.Hour
	}
	return &Cached{Store: inner, cache: c, profiles: cache.Register[user.User](c, cache.Spec{
		Name: "user", Version: profileVersion, TTL: ttl,
	})}
}

// UserByID implements user.Store.
func (s *Cached) UserByID(ctx context.Context, id string) (user.User, error) {
	if sqldb.InTransaction(ctx) {
		return s.Store.UserByID(ctx, id)
	}
	u, found, err := s.profiles.Get(ctx, id, func(ctx context.Context) (user.User, bool, error) {
		u, err := s.Store.UserByID(ctx, id)
		if fault.Is(err, fault.NotFound) {
			return u, false, nil
		}
		return u, err == nil, err
	})
	if err == nil && !found {
		return user.User{}, errNoUser
	}
	return u, err
}

// CreateUser implements user.Store: the new ID may be cached as not found.
func (s *Cached) CreateUser(ctx context.Context, u user.User, passwordHash string, now time.Time) error {
	if err := s.Store.CreateUser(ctx, u, passwordHash, now); err != nil {
		return err
	}
	return s.changed(ctx, u.ID)
}

// UpdateName implements user.Store.
func (s *Cached) UpdateName(ctx context.Context, id, name string, now time.Time) error {
	if err := s.Store.UpdateName(ctx, id, name, now); err != nil {
		return err
	}
	return s.changed(ctx, id)
}

// changed invalidates the profile once ctx's transaction commits (at once
// outside one), recorded in the cache's journal within the transaction; an
// error means the record failed.
func (s *Cached) changed(ctx context.Context, id string) error {
	return s.cache.Defer(ctx, s.profiles.Keys(id))
}
