package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/redistest"
	"github.com/millionshop/million/redisx"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
	"github.com/millionshop/million/user"
	"github.com/millionshop/million/user/store"
	"github.com/millionshop/million/user/storetest"
)

func openRedis(t *testing.T, srv *redistest.Server) rueidis.Client {
	t.Helper()
	c, err := redisx.Open(context.Background(), srv.URL(), redisx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestRedisSessionsStore runs the user.Store contract through the Redis
// decorator on every engine: keeping session state in Redis changes
// nothing a caller of the store can see.
func TestRedisSessionsStore(t *testing.T) {
	t.Parallel()
	client := openRedis(t, redistest.Start(t))
	for _, d := range sqldbtest.Dialects {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) user.Store {
				r := store.NewRedisSessions(store.New(sqldbtest.Open(t, d, store.Migrations())), client,
					store.RedisSessionsOptions{Prefix: "c:" + uuid.NewString() + ":"})
				t.Cleanup(r.Close)
				return r
			})
		})
	}
}

// sessionReads counts the database statements that read sessions.
type sessionReads struct{ n atomic.Int64 }

func (c *sessionReads) ObserveQuery(statement string, _ time.Duration, _ error) {
	if statement == "SELECT sessions" {
		c.n.Add(1)
	}
}

// fleet is two instances (two decorators, two Redis clients) over one
// database and one Redis, with the database's session reads counted.
type fleet struct {
	db    *sqldb.DB
	redis *redistest.Server
	a, b  *store.RedisSessions
	reads *sessionReads
	sess  user.Session
}

func newFleet(t *testing.T, d sqldb.Dialect) *fleet {
	t.Helper()
	db := sqldbtest.Open(t, d, store.Migrations())
	reads := &sessionReads{}
	db.SetObserver(reads)
	srv := redistest.Start(t)
	opts := store.RedisSessionsOptions{Pause: 100 * time.Millisecond}
	f := &fleet{db: db, redis: srv, reads: reads,
		a: store.NewRedisSessions(store.New(db), openRedis(t, srv), opts),
		b: store.NewRedisSessions(store.New(db), openRedis(t, srv), opts)}
	t.Cleanup(f.a.Close)
	t.Cleanup(f.b.Close)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := f.a.CreateUser(ctx, user.User{ID: "u1", Email: "u1@example.com", Name: "U", Role: user.RoleCustomer, CreatedAt: now}, "h", now); err != nil {
		t.Fatal(err)
	}
	f.sess = user.Session{ID: uuid.NewString(), UserID: "u1", Role: user.RoleCustomer, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := f.a.CreateSession(ctx, f.sess, user.RefreshToken{Hash: uuid.NewString(), SessionID: f.sess.ID, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return f
}

// read returns s's state through inst and how many database reads it took.
func (f *fleet) read(t *testing.T, inst *store.RedisSessions) (user.Session, int64) {
	t.Helper()
	before := f.reads.n.Load()
	s, err := inst.SessionByID(context.Background(), f.sess.ID)
	if err != nil {
		t.Fatalf("SessionByID: %v", err)
	}
	return s, f.reads.n.Load() - before
}

// TestRedisSessionsShareRevocation: a new session is served from Redis on
// both instances without a database read; a revocation through one
// instance is seen by the other at once, still without a database read;
// and an unknown session is the database's NotFound.
func TestRedisSessionsShareRevocation(t *testing.T) {
	t.Parallel()
	for _, d := range sqldbtest.Dialects {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			f := newFleet(t, d)
			for _, inst := range []*store.RedisSessions{f.a, f.b, f.b} {
				s, reads := f.read(t, inst)
				if s.RevokedAt != nil || s.UserID != "u1" || !s.ExpiresAt.Equal(f.sess.ExpiresAt) || reads != 0 {
					t.Fatalf("live session read = %+v with %d database reads; want it live, from Redis", s, reads)
				}
			}
			revokedAt := time.Now().UTC().Truncate(time.Microsecond)
			if err := f.a.RevokeSession(context.Background(), f.sess.ID, revokedAt); err != nil {
				t.Fatal(err)
			}
			s, reads := f.read(t, f.b)
			if s.RevokedAt == nil || !s.RevokedAt.Equal(revokedAt) || reads != 0 {
				t.Fatalf("after revocation on A, B reads %+v with %d database reads; want revoked at %v, from Redis", s, reads, revokedAt)
			}
			// A second revocation keeps the first time, as the database does.
			if err := f.b.RevokeSession(context.Background(), f.sess.ID, revokedAt.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if s, _ := f.read(t, f.a); s.RevokedAt == nil || !s.RevokedAt.Equal(revokedAt) {
				t.Fatalf("after a second revocation A reads %+v, want revoked at %v", s, revokedAt)
			}
			if _, err := f.a.SessionByID(context.Background(), "no-such-session"); !fault.Is(err, fault.NotFound) {
				t.Fatalf("unknown session: %v, want NotFound", err)
			}
		})
	}
}

// TestRedisSessionsMissReadsDatabaseOnce: with Redis emptied (a restart),
// the first read of a session goes to the database and puts it back, the
// next is served from Redis.
func TestRedisSessionsMissReadsDatabaseOnce(t *testing.T) {
	t.Parallel()
	f := newFleet(t, sqldb.SQLite)
	f.redis.Stop()
	if err := f.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	var s user.Session
	var reads int64
	deadline := time.Now().Add(10 * time.Second)
	for { // until a read goes through Redis again: the client reconnects on its own
		before := f.a.Fallbacks()
		s, reads = f.read(t, f.a)
		if f.a.Fallbacks() == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reads never went back to Redis")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.RevokedAt != nil || reads != 1 {
		t.Fatalf("first read after Redis lost its data: %+v with %d database reads, want live with 1", s, reads)
	}
	if s, reads = f.read(t, f.b); reads != 0 || s.RevokedAt != nil {
		t.Fatalf("second read: %+v with %d database reads, want live from Redis", s, reads)
	}
}

// TestRedisSessionsRedisDown: with Redis stopped, reads come from the
// database and stay correct, a revocation still takes effect on every
// instance, and once Redis is back (empty) the revocation reaches it.
func TestRedisSessionsRedisDown(t *testing.T) {
	t.Parallel()
	f := newFleet(t, sqldb.SQLite)
	if s, reads := f.read(t, f.b); s.RevokedAt != nil || reads != 0 {
		t.Fatalf("before the outage: %+v, %d reads", s, reads)
	}
	f.redis.Stop()
	start := time.Now()
	if s, reads := f.read(t, f.b); s.RevokedAt != nil || reads != 1 {
		t.Fatalf("Redis down: %+v with %d database reads; want live from the database", s, reads)
	}
	if err := f.a.RevokeSession(context.Background(), f.sess.ID, time.Now()); err != nil {
		t.Fatalf("RevokeSession with Redis down: %v", err)
	}
	if f.a.PendingRevocations() != 1 {
		t.Fatalf("PendingRevocations = %d, want 1", f.a.PendingRevocations())
	}
	for _, inst := range []*store.RedisSessions{f.a, f.b} {
		if s, _ := f.read(t, inst); s.RevokedAt == nil {
			t.Fatal("revoked session read live with Redis down")
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("reads and a revocation with Redis down took %v", took)
	}
	if err := f.redis.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for f.a.PendingRevocations() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pending revocation never reached Redis")
		}
		time.Sleep(50 * time.Millisecond)
	}
	client := openRedis(t, f.redis)
	v, err := client.Do(context.Background(), client.B().Get().Key("million:session:"+f.sess.ID).Build()).ToString()
	if err != nil || v == "" {
		t.Fatalf("entry after the retry: %q, %v", v, err)
	}
	for _, inst := range []*store.RedisSessions{f.a, f.b} {
		if s, _ := f.read(t, inst); s.RevokedAt == nil {
			t.Fatal("revoked session read live after Redis came back")
		}
	}
}
