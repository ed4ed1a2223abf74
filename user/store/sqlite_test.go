package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
	userstore "github.com/millionshop/million/user/store"
)

func newStore(t *testing.T) *userstore.Store {
	t.Helper()
	db, err := sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background(), []sqldb.Migrations{userstore.Migrations()}); err != nil {
		t.Fatal(err)
	}
	return userstore.New(db)
}

var storeNow = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

func storeUser(t *testing.T, s *userstore.Store, id, email string) user.User {
	t.Helper()
	u := user.User{ID: id, Email: email, Name: "Name " + id, Role: user.RoleCustomer, CreatedAt: storeNow}
	if err := s.CreateUser(context.Background(), u, "hash-"+id, storeNow); err != nil {
		t.Fatalf("CreateUser(%s): %v", id, err)
	}
	return u
}

func storeSession(t *testing.T, s *userstore.Store, id, userID, refreshHash string) user.Session {
	t.Helper()
	sess := user.Session{ID: id, UserID: userID, Role: user.RoleCustomer, CreatedAt: storeNow, ExpiresAt: storeNow.Add(time.Hour)}
	if err := s.CreateSession(context.Background(), sess, user.RefreshToken{Hash: refreshHash, SessionID: id, CreatedAt: storeNow}); err != nil {
		t.Fatalf("CreateSession(%s): %v", id, err)
	}
	return sess
}

func TestSQLiteUsers(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	u := storeUser(t, s, "u1", "a@example.com")

	got, hash, err := s.UserByEmail(ctx, "a@example.com")
	if err != nil || got != u || hash != "hash-u1" {
		t.Fatalf("UserByEmail = %+v, %q, %v; want %+v, hash-u1", got, hash, err, u)
	}
	if got, err := s.UserByID(ctx, "u1"); err != nil || got != u {
		t.Fatalf("UserByID = %+v, %v; want %+v", got, err, u)
	}
	dup := user.User{ID: "u2", Email: "a@example.com", Name: "Dup", Role: user.RoleCustomer, CreatedAt: storeNow}
	err = s.CreateUser(ctx, dup, "h", storeNow)
	var fe *fault.Error
	if fault.KindOf(err) != fault.Conflict || !errors.As(err, &fe) || fe.Code != "email_taken" {
		t.Fatalf("CreateUser(duplicate email) = %v, want Conflict email_taken", err)
	}
	if _, _, err := s.UserByEmail(ctx, "nobody@example.com"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("UserByEmail(unknown) = %v, want NotFound", err)
	}
	if _, err := s.UserByID(ctx, "nobody"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("UserByID(unknown) = %v, want NotFound", err)
	}
	if err := s.UpdateName(ctx, "u1", "Renamed", storeNow); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.UserByID(ctx, "u1"); got.Name != "Renamed" {
		t.Errorf("name after UpdateName = %q, want Renamed", got.Name)
	}
	if err := s.UpdateName(ctx, "nobody", "X", storeNow); fault.KindOf(err) != fault.NotFound {
		t.Errorf("UpdateName(unknown) = %v, want NotFound", err)
	}
	bad := user.User{ID: "u3", Email: "c@example.com", Name: "C", Role: "superuser", CreatedAt: storeNow}
	if err := s.CreateUser(ctx, bad, "h", storeNow); err == nil {
		t.Errorf("CreateUser(role superuser) succeeded; the schema must only allow customer and admin")
	}
}

func TestSQLiteSessionsAndRefreshTokens(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	storeUser(t, s, "u1", "a@example.com")
	sess := storeSession(t, s, "s1", "u1", "h1")

	got, err := s.SessionByID(ctx, "s1")
	if err != nil || got.UserID != "u1" || got.RevokedAt != nil || !got.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("SessionByID = %+v, %v", got, err)
	}
	tok, err := s.RefreshTokenByHash(ctx, "h1")
	if err != nil || tok.SessionID != "s1" || tok.UsedAt != nil {
		t.Fatalf("RefreshTokenByHash = %+v, %v", tok, err)
	}
	if fresh, err := s.MarkRefreshUsed(ctx, "h1", storeNow); err != nil || !fresh {
		t.Fatalf("first MarkRefreshUsed = %v, %v; want true", fresh, err)
	}
	if fresh, err := s.MarkRefreshUsed(ctx, "h1", storeNow.Add(time.Second)); err != nil || fresh {
		t.Fatalf("second MarkRefreshUsed = %v, %v; want false", fresh, err)
	}
	if tok, _ := s.RefreshTokenByHash(ctx, "h1"); tok.UsedAt == nil || !tok.UsedAt.Equal(storeNow) {
		t.Errorf("used_at = %v, want the first use %v", tok.UsedAt, storeNow)
	}
	if err := s.AddRefreshToken(ctx, user.RefreshToken{Hash: "h2", SessionID: "s1", CreatedAt: storeNow}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRefreshToken(ctx, user.RefreshToken{Hash: "h3", SessionID: "no-such-session", CreatedAt: storeNow}); err == nil {
		t.Errorf("AddRefreshToken for an unknown session succeeded")
	}
	if err := s.RevokeSession(ctx, "s1", storeNow); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeSession(ctx, "s1", storeNow.Add(time.Hour)); err != nil {
		t.Fatalf("second RevokeSession: %v", err)
	}
	if got, _ := s.SessionByID(ctx, "s1"); got.RevokedAt == nil || !got.RevokedAt.Equal(storeNow) {
		t.Errorf("revoked_at = %v, want the first revocation %v", got.RevokedAt, storeNow)
	}
	if _, err := s.SessionByID(ctx, "nope"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("SessionByID(unknown) = %v, want NotFound", err)
	}
	if _, err := s.RefreshTokenByHash(ctx, "nope"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("RefreshTokenByHash(unknown) = %v, want NotFound", err)
	}
}

// TestSQLiteCreateSessionIsAtomic proves a session never exists without its
// first refresh token: a failing token insert rolls the session back.
func TestSQLiteCreateSessionIsAtomic(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	storeUser(t, s, "u1", "a@example.com")
	storeSession(t, s, "s1", "u1", "h1")
	sess := user.Session{ID: "s2", UserID: "u1", Role: user.RoleCustomer, CreatedAt: storeNow, ExpiresAt: storeNow.Add(time.Hour)}
	if err := s.CreateSession(ctx, sess, user.RefreshToken{Hash: "h1", SessionID: "s2", CreatedAt: storeNow}); err == nil {
		t.Fatal("CreateSession with a duplicate refresh token hash succeeded")
	}
	if _, err := s.SessionByID(ctx, "s2"); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("SessionByID(s2) after the failed CreateSession = %v, want NotFound", err)
	}
}

// TestSQLiteMarkRefreshUsedConcurrently proves marking is a compare-and-set:
// of 20 concurrent marks exactly one reports the token fresh.
func TestSQLiteMarkRefreshUsedConcurrently(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	storeUser(t, s, "u1", "a@example.com")
	storeSession(t, s, "s1", "u1", "h1")
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh int
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.MarkRefreshUsed(ctx, "h1", storeNow)
			if err != nil {
				t.Errorf("MarkRefreshUsed: %v", err)
				return
			}
			if ok {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("%d concurrent MarkRefreshUsed calls reported fresh, want exactly 1", fresh)
	}
}
