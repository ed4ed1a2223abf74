package store

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/redisx"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
)

// RedisSessionsOptions tune RedisSessions. Zero values mean the defaults.
type RedisSessionsOptions struct {
	// Prefix namespaces the keys; default "million:session:".
	Prefix string
	// Timeout bounds one Redis call; default 250 ms. Past it a read goes to
	// the database.
	Timeout time.Duration
	// Pause is how long reads skip Redis after it failed; default 1 s.
	Pause time.Duration
	// LiveTTL caps how long Redis keeps a live session's state before it is
	// read from the database again; default 15 min (an access token's
	// lifetime). Revocations overwrite the state at once; the cap only
	// bounds how long a revocation that could not reach Redis at all (see
	// RedisSessions) might go unseen by other instances.
	LiveTTL time.Duration
	// Logger receives outage transitions and revocations that could not be
	// written; nil discards them.
	Logger *slog.Logger
	// Now is the clock that decides expiry; nil means time.Now.
	Now func() time.Time
}

// RedisSessions is the user store with the session state that every
// authenticated request needs kept in Redis, so that instances answer
// Authenticate in one Redis round trip and share revocations at once.
//
// The database stays the source of truth: sessions are created, rotated,
// reused-detected and revoked there, in its transactions; Redis holds a
// copy of (user, role, created, expires, revoked) per session. Reads inside
// a transaction (refresh-token rotation) always go to the database.
//
//   - A read (SessionByID) asks Redis; on a miss it reads the database and
//     adds the entry only if none exists (SET NX), so a copy read before a
//     concurrent revocation can never overwrite the revocation. A live
//     entry lives at most LiveTTL, a revoked one until the session expires.
//   - A revocation commits in the database, then overwrites the entry with
//     the revoked state before RevokeSession (or the transaction that
//     called it) returns, so the next request on any instance is refused.
//   - When Redis fails, reads go to the database (correct, slower) for a
//     pause. A revocation whose write fails is retried in the background
//     until it lands or the session expires, and this instance reads that
//     session from the database meanwhile. The one window left: another
//     instance that still reaches Redis while this one cannot may accept
//     the revoked session's access token until the retry lands or the
//     entry's LiveTTL runs out, whichever is first.
type RedisSessions struct {
	*Store
	client rueidis.Client
	opts   RedisSessionsOptions
	out    *redisx.Outage

	mu       sync.Mutex
	pending  map[string]pendingRevocation // session ID → state still to write
	retrying bool
	closed   bool
	stop     chan struct{}
	done     sync.WaitGroup
}

type pendingRevocation struct {
	sess  user.Session
	found bool
}

var _ user.Store = (*RedisSessions)(nil)

// NewRedisSessions returns inner with session state kept in client.
func NewRedisSessions(inner *Store, client rueidis.Client, opts RedisSessionsOptions) *RedisSessions {
	if opts.Prefix == "" {
		opts.Prefix = "million:session:"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 250 * time.Millisecond
	}
	if opts.Pause <= 0 {
		opts.Pause = time.Second
	}
	if opts.LiveTTL <= 0 {
		opts.LiveTTL = 15 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &RedisSessions{Store: inner, client: client, opts: opts,
		out: redisx.NewOutage("sessions", opts.Pause, opts.Logger), pending: map[string]pendingRevocation{},
		stop: make(chan struct{})}
}

// Fallbacks returns how many session reads went to the database because
// Redis could not answer.
func (r *RedisSessions) Fallbacks() uint64 { return r.out.Fallbacks() }

// PendingRevocations returns how many revocations still wait to reach Redis.
func (r *RedisSessions) PendingRevocations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Close stops the background retries of revocations; pending ones are
// dropped (the database has them; entries expire within LiveTTL).
func (r *RedisSessions) Close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
	r.mu.Unlock()
	r.done.Wait()
}

// entry encodes the state Authenticate needs; the user ID goes last so
// that it may hold any byte.
func encodeSession(s user.Session) string {
	var revoked int64
	if s.RevokedAt != nil {
		revoked = s.RevokedAt.UnixMicro()
	}
	return "v1|" + s.Role + "|" + strconv.FormatInt(s.CreatedAt.UnixMicro(), 10) + "|" +
		strconv.FormatInt(s.ExpiresAt.UnixMicro(), 10) + "|" + strconv.FormatInt(revoked, 10) + "|" + s.UserID
}

func decodeSession(id, v string) (user.Session, error) {
	f := strings.SplitN(v, "|", 6)
	if len(f) != 6 || f[0] != "v1" {
		return user.Session{}, fmt.Errorf("session entry %q: unknown format", id)
	}
	var n [3]int64
	for i := range n {
		var err error
		if n[i], err = strconv.ParseInt(f[2+i], 10, 64); err != nil {
			return user.Session{}, fmt.Errorf("session entry %q: %w", id, err)
		}
	}
	s := user.Session{ID: id, Role: f[1], UserID: f[5], CreatedAt: fromMicros(n[0]), ExpiresAt: fromMicros(n[1])}
	if n[2] != 0 {
		t := fromMicros(n[2])
		s.RevokedAt = &t
	}
	return s, nil
}

// ttl is how long Redis may keep s: a revoked session until it expires
// (its revocation never changes), a live one at most LiveTTL. Zero or less
// means not at all.
func (r *RedisSessions) ttl(s user.Session) time.Duration {
	left := s.ExpiresAt.Sub(r.opts.Now())
	if s.RevokedAt == nil {
		left = min(left, r.opts.LiveTTL)
	}
	return left
}

func (r *RedisSessions) isPending(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.pending[id]
	return ok
}

// SessionByID implements user.Store: Redis first, the database on a miss,
// inside a transaction, or while Redis is failing.
func (r *RedisSessions) SessionByID(ctx context.Context, id string) (user.Session, error) {
	if sqldb.InTransaction(ctx) || r.isPending(id) || r.out.Skip() {
		return r.Store.SessionByID(ctx, id)
	}
	rctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	v, err := r.client.Do(rctx, r.client.B().Get().Key(r.opts.Prefix+id).Build()).ToString()
	cancel()
	switch {
	case err == nil:
		r.out.OK()
		if s, derr := decodeSession(id, v); derr == nil {
			return s, nil
		}
		// An entry this version cannot read: the database answers, and
		// the entry is left for its writer's TTL.
		return r.Store.SessionByID(ctx, id)
	case !rueidis.IsRedisNil(err):
		if ctx.Err() == nil {
			r.out.Failed(err)
		}
		return r.Store.SessionByID(ctx, id)
	}
	r.out.OK()
	s, err := r.Store.SessionByID(ctx, id)
	if err != nil {
		return s, err
	}
	r.add(ctx, s)
	return s, nil
}

// add stores s unless an entry exists: an entry present may be a
// revocation written after s was read, and must win.
func (r *RedisSessions) add(ctx context.Context, s user.Session) {
	ttl := r.ttl(s)
	if ttl < time.Millisecond {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.Timeout)
	defer cancel()
	err := r.client.Do(ctx, r.client.B().Set().Key(r.opts.Prefix+s.ID).Value(encodeSession(s)).Nx().
		Px(ttl).Build()).Error()
	if err != nil && !rueidis.IsRedisNil(err) { // nil: the key existed
		r.out.Failed(err)
	}
}

// CreateSession implements user.Store; the new session is added to Redis
// once it is committed, so its first request finds it there.
func (r *RedisSessions) CreateSession(ctx context.Context, s user.Session, refresh user.RefreshToken) error {
	if err := r.Store.CreateSession(ctx, s, refresh); err != nil {
		return err
	}
	sqldb.AfterCommit(ctx, func() { r.add(ctx, s) })
	return nil
}

// RevokeSession implements user.Store: the database first, then the
// revoked state over any entry in Redis once the revocation is committed.
func (r *RedisSessions) RevokeSession(ctx context.Context, id string, now time.Time) error {
	var (
		s     user.Session
		found bool
	)
	// The state written to Redis is read back in the same transaction, so
	// it carries the revocation time the database kept (the first one, for
	// a session revoked twice) whatever replica a later read would hit.
	err := r.Store.InTx(ctx, func(ctx context.Context) error {
		if err := r.Store.RevokeSession(ctx, id, now); err != nil {
			return err
		}
		var err error
		s, err = r.Store.SessionByID(ctx, id)
		found = err == nil
		if err != nil && !fault.Is(err, fault.NotFound) {
			return err
		}
		sqldb.AfterCommit(ctx, func() { r.publish(ctx, id, s, found) })
		return nil
	})
	return err
}

// publish overwrites the entry of a revoked session (or deletes it when the
// session does not exist or has expired). It tries a few times within the
// request; if Redis still fails the revocation joins the background retries.
func (r *RedisSessions) publish(ctx context.Context, id string, s user.Session, found bool) {
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
		}
		if err = r.write(ctx, id, s, found); err == nil {
			r.mu.Lock()
			delete(r.pending, id)
			r.mu.Unlock()
			return
		}
	}
	r.out.Failed(err)
	r.opts.Logger.Warn("session revocation not written to redis; retrying in the background",
		"session_id", id, "error", err.Error())
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.pending[id] = pendingRevocation{sess: s, found: found}
	if !r.retrying {
		r.retrying = true
		r.done.Add(1)
		go r.retry()
	}
}

func (r *RedisSessions) write(ctx context.Context, id string, s user.Session, found bool) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	key := r.opts.Prefix + id
	if ttl := r.ttl(s); found && ttl >= time.Millisecond {
		return r.client.Do(ctx, r.client.B().Set().Key(key).Value(encodeSession(s)).Px(ttl).Build()).Error()
	}
	return r.client.Do(ctx, r.client.B().Del().Key(key).Build()).Error()
}

// retry writes pending revocations until none is left or Close is called.
func (r *RedisSessions) retry() {
	defer r.done.Done()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
		r.mu.Lock()
		batch := make(map[string]pendingRevocation, len(r.pending))
		for id, p := range r.pending {
			batch[id] = p
		}
		r.mu.Unlock()
		for id, p := range batch {
			err := r.write(context.Background(), id, p.sess, p.found)
			if err != nil && r.ttl(p.sess) > 0 {
				continue // still failing, and still worth writing
			}
			r.mu.Lock()
			delete(r.pending, id)
			r.mu.Unlock()
			if err == nil {
				r.out.OK()
				r.opts.Logger.Info("session revocation written to redis after a retry", "session_id", id)
			}
		}
		r.mu.Lock()
		if len(r.pending) == 0 {
			r.retrying = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}
