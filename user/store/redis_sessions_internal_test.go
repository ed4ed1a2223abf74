package store

import (
	"context"
	"testing"
	"time"

	"github.com/millionshop/million/redistest"
	"github.com/millionshop/million/redisx"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
	"github.com/millionshop/million/user"
)

// TestStaleFillNeverHidesRevocation plays the race of a reader that missed,
// read the session live from the database, and only fills Redis after a
// revocation on another instance was written there: the late fill must not
// overwrite the revocation (it is a SET NX), so every read after
// RevokeSession returned is revoked.
func TestStaleFillNeverHidesRevocation(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	db := sqldbtest.Open(t, sqldb.SQLite, Migrations())
	open := func() *RedisSessions {
		c, err := redisx.Open(context.Background(), srv.URL(), redisx.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return NewRedisSessions(New(db), c, RedisSessionsOptions{})
	}
	reader, revoker := open(), open()
	ctx := context.Background()
	now := time.Now().UTC()
	if err := reader.CreateUser(ctx, user.User{ID: "u1", Email: "u1@example.com", Name: "U", Role: user.RoleCustomer, CreatedAt: now}, "h", now); err != nil {
		t.Fatal(err)
	}
	sess := user.Session{ID: "s1", UserID: "u1", Role: user.RoleCustomer, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	// Through the plain store: nothing in Redis yet, as after a restart.
	if err := reader.Store.CreateSession(ctx, sess, user.RefreshToken{Hash: "h1", SessionID: "s1", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	stale, err := reader.Store.SessionByID(ctx, "s1") // the reader's database read, before the revocation
	if err != nil || stale.RevokedAt != nil {
		t.Fatalf("stale read: %+v, %v", stale, err)
	}
	if err := revoker.RevokeSession(ctx, "s1", now); err != nil {
		t.Fatal(err)
	}
	reader.add(ctx, stale) // the reader's late fill
	for name, inst := range map[string]*RedisSessions{"reader": reader, "revoker": revoker} {
		if s, err := inst.SessionByID(ctx, "s1"); err != nil || s.RevokedAt == nil {
			t.Fatalf("%s reads %+v, %v after the revocation and a late fill; want revoked", name, s, err)
		}
	}
}
