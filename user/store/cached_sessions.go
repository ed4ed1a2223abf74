package store

import (
	"context"
	"time"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
)

// CachedSessions is a user.Store whose session reads (SessionByID, the
// lookup behind every authenticated request) come from a cache.Cache,
// invalidated after a revocation commits and before it returns. It is for
// one process on its own database (the embedded mode): with Redis, the
// session state already lives there (RedisSessions), one round trip away,
// and a second copy in every instance's memory would only widen the window
// in which a revoked token could still pass.
type CachedSessions struct {
	user.Store
	cache    *cache.Cache
	sessions *cache.Entity[user.Session]
}

var _ user.Store = (*CachedSessions)(nil)

// sessionVersion is the version of the cached shape; bump it when it changes.
const sessionVersion = 1

// NewCachedSessions wraps inner with c; ttl 0 means 5 min. The session's
// own expiry is checked on every use (user.Accounts.Authenticate), so the
// TTL bounds memory, not validity.
func NewCachedSessions(inner user.Store, c *cache.Cache, ttl time.Duration) *CachedSessions {
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	return &CachedSessions{Store: inner, cache: c, sessions: cache.Register[user.Session](c, cache.Spec{
		Name: "session", Version: sessionVersion, TTL: ttl,
	})}
}

// SessionByID implements user.Store.
func (s *CachedSessions) SessionByID(ctx context.Context, id string) (user.Session, error) {
	if sqldb.InTransaction(ctx) {
		// Refresh rotation and reuse detection decide inside a
		// transaction: they read the database.
		return s.Store.SessionByID(ctx, id)
	}
	sess, found, err := s.sessions.Get(ctx, id, func(ctx context.Context) (user.Session, bool, error) {
		sess, err := s.Store.SessionByID(ctx, id)
		if fault.Is(err, fault.NotFound) {
			return sess, false, nil
		}
		return sess, err == nil, err
	})
	if err == nil && !found {
		return user.Session{}, errNoSession
	}
	return sess, err
}

// CreateSession implements user.Store: the new ID may be cached as not found.
func (s *CachedSessions) CreateSession(ctx context.Context, sess user.Session, refresh user.RefreshToken) error {
	if err := s.Store.CreateSession(ctx, sess, refresh); err != nil {
		return err
	}
	return s.cache.Defer(ctx, s.sessions.Keys(sess.ID))
}

// RevokeSession implements user.Store: once it returns (after commit, when
// in a transaction), no read of this process sees the session live.
func (s *CachedSessions) RevokeSession(ctx context.Context, id string, now time.Time) error {
	if err := s.Store.RevokeSession(ctx, id, now); err != nil {
		return err
	}
	return s.cache.Defer(ctx, s.sessions.Keys(id))
}
