// Package storetest is the contract every user.Store must pass, whatever
// engine is behind it: one suite, run by each implementation's own tests
// (user/store runs it on SQLite and on PostgreSQL), so a new backend is done
// when Run passes on it.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/sqldb/sqldbtest"
	"github.com/millionshop/million/user"
)

// now is a fixed clock reading with microseconds, the precision the
// contract promises to keep.
var now = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

// unstorable are strings PostgreSQL cannot hold in text: NUL, alone or
// between storable bytes, and bytes that are not UTF-8. Appended to a stored
// key they also catch a store that cuts a key at the first bad byte.
var unstorable = []string{"\x00", "\x00tail", "\xff", "\xc3"}

// Run runs the contract against the stores newStore returns. Every subtest
// calls newStore for a fresh, empty store of its own and runs in parallel.
func Run(t *testing.T, newStore func(t *testing.T) user.Store) {
	t.Helper()

	setup := func(t *testing.T) (user.Store, context.Context) {
		t.Helper()
		t.Parallel()
		return newStore(t), context.Background()
	}

	t.Run("CreateUserAndFindByEmailAndID", func(t *testing.T) {
		s, ctx := setup(t)
		u := mustUser(t, s, "u1", "a@example.com")
		mustUser(t, s, "u2", "b@example.com")

		got, hash, err := s.UserByEmail(ctx, "a@example.com")
		if err != nil || got != u || hash != "hash-u1" {
			t.Fatalf("UserByEmail = %+v, %q, %v; want %+v, %q", got, hash, err, u, "hash-u1")
		}
		if got, err := s.UserByID(ctx, "u1"); err != nil || got != u {
			t.Fatalf("UserByID = %+v, %v; want %+v", got, err, u)
		}
	})

	t.Run("CreateUserDuplicateEmailIsConflict", func(t *testing.T) {
		s, ctx := setup(t)
		first := mustUser(t, s, "u1", "a@example.com")
		dup := user.User{ID: "u2", Email: "a@example.com", Name: "Dup", Role: user.RoleCustomer, CreatedAt: now}
		err := s.CreateUser(ctx, dup, "other-hash", now)
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Kind != fault.Conflict || fe.Code != "email_taken" {
			t.Fatalf("CreateUser(duplicate email) = %v, want fault.Conflict with code email_taken", err)
		}
		got, hash, err := s.UserByEmail(ctx, "a@example.com")
		if err != nil || got != first || hash != "hash-u1" {
			t.Fatalf("UserByEmail after the conflict = %+v, %q, %v; want the first account %+v unchanged", got, hash, err, first)
		}
		if _, err := s.UserByID(ctx, "u2"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("UserByID(u2) after the conflict = %v, want fault.NotFound", err)
		}
	})

	t.Run("CreateUserRejectsUnknownRole", func(t *testing.T) {
		s, ctx := setup(t)
		bad := user.User{ID: "u1", Email: "a@example.com", Name: "A", Role: "superuser", CreatedAt: now}
		if err := s.CreateUser(ctx, bad, "h", now); err == nil {
			t.Fatal("CreateUser(role superuser) succeeded; only customer and admin may be stored")
		}
		admin := user.User{ID: "u2", Email: "b@example.com", Name: "B", Role: user.RoleAdmin, CreatedAt: now}
		if err := s.CreateUser(ctx, admin, "h", now); err != nil {
			t.Fatalf("CreateUser(role admin) = %v, want success", err)
		}
		if got, err := s.UserByID(ctx, "u2"); err != nil || got.Role != user.RoleAdmin {
			t.Fatalf("UserByID(admin) = %+v, %v; want role admin", got, err)
		}
	})

	t.Run("UnknownUserIsNotFound", func(t *testing.T) {
		s, ctx := setup(t)
		mustUser(t, s, "u1", "a@example.com")
		if _, _, err := s.UserByEmail(ctx, "nobody@example.com"); !fault.Is(err, fault.NotFound) {
			t.Errorf("UserByEmail(unknown) = %v, want fault.NotFound", err)
		}
		if _, err := s.UserByID(ctx, "nobody"); !fault.Is(err, fault.NotFound) {
			t.Errorf("UserByID(unknown) = %v, want fault.NotFound", err)
		}
	})

	t.Run("UpdateName", func(t *testing.T) {
		s, ctx := setup(t)
		u := mustUser(t, s, "u1", "a@example.com")
		other := mustUser(t, s, "u2", "b@example.com")
		if err := s.UpdateName(ctx, "u1", "Renamed", now.Add(time.Hour)); err != nil {
			t.Fatalf("UpdateName: %v", err)
		}
		want := u
		want.Name = "Renamed"
		if got, err := s.UserByID(ctx, "u1"); err != nil || got != want {
			t.Fatalf("UserByID after UpdateName = %+v, %v; want %+v", got, err, want)
		}
		if got, hash, err := s.UserByEmail(ctx, "a@example.com"); err != nil || got != want || hash != "hash-u1" {
			t.Fatalf("UserByEmail after UpdateName = %+v, %q, %v; want %+v and the hash kept", got, hash, err, want)
		}
		if got, err := s.UserByID(ctx, "u2"); err != nil || got != other {
			t.Fatalf("other user after UpdateName = %+v, %v; want %+v unchanged", got, err, other)
		}
		if err := s.UpdateName(ctx, "nobody", "X", now); !fault.Is(err, fault.NotFound) {
			t.Fatalf("UpdateName(unknown) = %v, want fault.NotFound", err)
		}
	})

	t.Run("TimesRoundTripAtMicrosecondsInUTC", func(t *testing.T) {
		s, ctx := setup(t)
		// A zone other than UTC and nanoseconds the store cannot keep: what
		// comes back is the same instant, cut to microseconds, in UTC.
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		created := time.Date(2031, 1, 2, 3, 4, 5, 987654321, zone)
		checkTime := func(t *testing.T, what string, got, in time.Time) {
			t.Helper()
			if !got.Equal(sqldbtest.Stored(in)) || got.Location() != time.UTC || got.Nanosecond()%1000 != 0 {
				t.Errorf("%s = %v (%s), want %v in UTC", what, got, got.Location(), sqldbtest.Stored(in))
			}
		}

		u := user.User{ID: "u1", Email: "a@example.com", Name: "A", Role: user.RoleCustomer, CreatedAt: created}
		if err := s.CreateUser(ctx, u, "h", created); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		gotU, err := s.UserByID(ctx, "u1")
		if err != nil {
			t.Fatalf("UserByID: %v", err)
		}
		checkTime(t, "User.CreatedAt", gotU.CreatedAt, created)

		sess := user.Session{ID: "s1", UserID: "u1", Role: user.RoleCustomer, CreatedAt: created, ExpiresAt: created.Add(30*24*time.Hour + time.Nanosecond)}
		if err := s.CreateSession(ctx, sess, user.RefreshToken{Hash: "h1", SessionID: "s1", CreatedAt: created.Add(time.Millisecond)}); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		used := created.Add(time.Minute + 999*time.Nanosecond)
		if fresh, err := s.MarkRefreshUsed(ctx, "h1", used); err != nil || !fresh {
			t.Fatalf("MarkRefreshUsed = %v, %v; want true", fresh, err)
		}
		revoked := created.Add(time.Hour + 1500*time.Nanosecond)
		if err := s.RevokeSession(ctx, "s1", revoked); err != nil {
			t.Fatalf("RevokeSession: %v", err)
		}

		gotS, err := s.SessionByID(ctx, "s1")
		if err != nil {
			t.Fatalf("SessionByID: %v", err)
		}
		checkTime(t, "Session.CreatedAt", gotS.CreatedAt, sess.CreatedAt)
		checkTime(t, "Session.ExpiresAt", gotS.ExpiresAt, sess.ExpiresAt)
		if gotS.RevokedAt == nil {
			t.Fatalf("Session.RevokedAt = nil after RevokeSession")
		}
		checkTime(t, "Session.RevokedAt", *gotS.RevokedAt, revoked)

		gotT, err := s.RefreshTokenByHash(ctx, "h1")
		if err != nil {
			t.Fatalf("RefreshTokenByHash: %v", err)
		}
		checkTime(t, "RefreshToken.CreatedAt", gotT.CreatedAt, created.Add(time.Millisecond))
		if gotT.UsedAt == nil {
			t.Fatalf("RefreshToken.UsedAt = nil after MarkRefreshUsed")
		}
		checkTime(t, "RefreshToken.UsedAt", *gotT.UsedAt, used)
	})

	t.Run("CreateSessionAndRead", func(t *testing.T) {
		s, ctx := setup(t)
		mustUser(t, s, "u1", "a@example.com")
		mustUser(t, s, "u2", "b@example.com")
		want := mustSession(t, s, "s1", "u1", "h1")
		admin := user.Session{ID: "s2", UserID: "u2", Role: user.RoleAdmin, CreatedAt: now.Add(time.Second), ExpiresAt: now.Add(2 * time.Hour)}
		if err := s.CreateSession(ctx, admin, user.RefreshToken{Hash: "h2", SessionID: "s2", CreatedAt: now.Add(time.Second)}); err != nil {
			t.Fatalf("CreateSession(s2): %v", err)
		}

		for _, w := range []user.Session{want, admin} {
			got, err := s.SessionByID(ctx, w.ID)
			if err != nil || !sameSession(got, w) {
				t.Errorf("SessionByID(%s) = %+v, %v; want %+v", w.ID, got, err, w)
			}
		}
		tok, err := s.RefreshTokenByHash(ctx, "h1")
		if err != nil || tok.Hash != "h1" || tok.SessionID != "s1" || !tok.CreatedAt.Equal(now) || tok.UsedAt != nil {
			t.Fatalf("RefreshTokenByHash(h1) = %+v, %v; want h1 of s1 created %v, unused", tok, err, now)
		}
		if tok, err := s.RefreshTokenByHash(ctx, "h2"); err != nil || tok.SessionID != "s2" {
			t.Fatalf("RefreshTokenByHash(h2) = %+v, %v; want h2 of s2", tok, err)
		}
	})

	t.Run("UnknownSessionAndRefreshTokenAreNotFound", func(t *testing.T) {
		s, ctx := setup(t)
		mustUser(t, s, "u1", "a@example.com")
		mustSession(t, s, "s1", "u1", "h1")
		if _, err := s.SessionByID(ctx, "nope"); !fault.Is(err, fault.NotFound) {
			t.Errorf("SessionByID(unknown) = %v, want fault.NotFound", err)
		}
		if _, err := s.RefreshTokenByHash(ctx, "nope"); !fault.Is(err, fault.NotFound) {
			t.Errorf("RefreshTokenByHash(unknown) = %v, want fault.NotFound", err)
		}
	})

	t.Run("CreateSessionIsAllOrNothing", func(t *testing.T) {
		s, ctx := setup(t)
		mustUser(t, s, "u1", "a@example.com")
		mustSession(t, s, "s1", "u1", "h1")

		// The token insert fails (its hash is taken): the session must not stay.
		sess := user.Session{ID: "s2", UserID: "u1", Role: user.RoleCustomer, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.CreateSession(ctx, sess, user.RefreshToken{Hash: "h1", SessionID: "s2", CreatedAt: now}); err == nil {
			t.Fatal("CreateSession with a refresh token hash already stored succeeded")
		}
		if _, err := s.SessionByID(ctx, "s2"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("SessionByID(s2) after the failed CreateSession = %v, want fault.NotFound", err)
		}
		if tok, err := s.RefreshTokenByHash(ctx, "h1"); err != nil || tok.SessionID != "s1" {
			t.Fatalf("RefreshTokenByHash(h1) after the failed CreateSession = %+v, %v; want it still of s1", tok, err)
		}

		// The session insert fails (no such user): the token must not stay.
		orphan := user.Session{ID: "s3", UserID: "nobody", Role: user.RoleCustomer, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.CreateSession(ctx, orphan, user.RefreshToken{Hash: "h3", SessionID: "s3", CreatedAt: now}); err == nil {
			t.Fatal("CreateSession for an unknown user succeeded")
		}
		if _, err := s.RefreshTokenByHash(ctx, "h3"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("RefreshTokenByHash(h3) after the failed CreateSession = %v, want fault.NotFound", err)
		}

		// The store is still usable afterwards.
		mustSession(t, s, "s4", "u1", "h4")
	})

	t.Run("MarkRefreshUsedOnce", func(t *testing.T) {
		s, ctx := setup(t)
		mustUser(t, s, "u1", "a@example.com")
		mustSession(t, s, "s1", "u1", "h1")
		if err := s.AddRefreshToken(ctx, user.RefreshToken{Hash: "h2", SessionID: "s1", CreatedAt: now}); err != nil {
			t.Fatalf("AddRefreshToken: %v", err)
		}
		if fresh, err := s.MarkRefreshUsed(ctx, "h1", now); err != nil || !fresh {
			t.Fatalf("first MarkRefreshUsed = %v, %v; want true", fresh, err)
		}
		if fresh, err := s.MarkRefreshUsed(ctx, "h1", now.Add(time.Second)); err != nil || fresh {
			t.Fatalf("second MarkRefreshUsed = %v, %v; want false", fresh, err)
		}
		if tok, err := s.RefreshTokenByHash(ctx, "h1"); err != nil || tok.UsedAt == nil || !tok.UsedAt.Equal(now) {
			t.Fatalf("h1 after two marks = %+v, %v; want used at the first mark %v", tok, err, now)
		}
		if tok, err := s.RefreshTokenByHash(ctx, "h2"); err != nil || tok.UsedAt != nil {
			t.Fatalf("h2 after marking h1 = %+v, %v; want unused", tok, err)
		}
		if fresh, err := s.MarkRefreshUsed(ctx, "h2", now); err != nil || !fresh {
			t.Fatalf("MarkRefreshUsed(h2) = %v, %v; want true", fresh, err)
		}
	})

	t.Run("MarkRefreshUsedConcurrently", func(t *testing.T) {
		s, ctx := setup(t)
		mustUser(t, s, "u1", "a@example.com")
		mustSession(t, s, "s1", "u1", "h1")
		fresh := sqldbtest.Concurrently(t, 20, func(int) (bool, error) { return s.MarkRefreshUsed(ctx, "h1", now) })
		if fresh != 1 {
			t.Fatalf("%d of 20 concurrent MarkRefreshUsed calls reported the token fresh, want exactly 1", fresh)
		}
	})

	// This is how refresh rotation uses it: read, then mark, in one
	// transaction per request. Two requests racing with one token must not
	// both rotate it.
	t.Run("MarkRefreshUsedConcurrentlyInTransactions", func(t *testing.T) {
		s, ctx := setup(t)
		mustUser(t, s, "u1", "a@example.com")
		mustSession(t, s, "s1", "u1", "h1")
		fresh := sqldbtest.Concurrently(t, 20, func(int) (bool, error) {
			var fresh bool
			err := s.InTx(ctx, func(ctx context.Context) error {
				tok, err := s.RefreshTokenByHash(ctx, "h1")
				if err != nil {
					return err
				}
				fresh, err = s.MarkRefreshUsed(ctx, tok.Hash, now)
				return err
			})
			return fresh, err
		})
		if fresh != 1 {
			t.Fatalf("%d of 20 concurrent transactions marked the token fresh, want exactly 1", fresh)
		}
	})

	t.Run("AddRefreshToken", func(t *testing.T) {
		s, ctx := setup(t)
		mustUser(t, s, "u1", "a@example.com")
		mustSession(t, s, "s1", "u1", "h1")
		next := user.RefreshToken{Hash: "h2", SessionID: "s1", CreatedAt: now.Add(time.Minute)}
		if err := s.AddRefreshToken(ctx, next); err != nil {
			t.Fatalf("AddRefreshToken: %v", err)
		}
		if got, err := s.RefreshTokenByHash(ctx, "h2"); err != nil || got.SessionID != "s1" || !got.CreatedAt.Equal(next.CreatedAt) || got.UsedAt != nil {
			t.Fatalf("RefreshTokenByHash(h2) = %+v, %v; want %+v", got, err, next)
		}
		if err := s.AddRefreshToken(ctx, user.RefreshToken{Hash: "h3", SessionID: "no-such-session", CreatedAt: now}); err == nil {
			t.Error("AddRefreshToken for an unknown session succeeded")
		}
		if err := s.AddRefreshToken(ctx, user.RefreshToken{Hash: "h1", SessionID: "s1", CreatedAt: now}); err == nil {
			t.Error("AddRefreshToken with a hash already stored succeeded")
		}
	})

	t.Run("RevokeSessionIsIdempotent", func(t *testing.T) {
		s, ctx := setup(t)
		mustUser(t, s, "u1", "a@example.com")
		mustSession(t, s, "s1", "u1", "h1")
		mustSession(t, s, "s2", "u1", "h2")
		if err := s.RevokeSession(ctx, "s1", now); err != nil {
			t.Fatalf("RevokeSession: %v", err)
		}
		if err := s.RevokeSession(ctx, "s1", now.Add(time.Hour)); err != nil {
			t.Fatalf("second RevokeSession = %v, want nil", err)
		}
		if got, err := s.SessionByID(ctx, "s1"); err != nil || got.RevokedAt == nil || !got.RevokedAt.Equal(now) {
			t.Fatalf("s1 after two revocations = %+v, %v; want revoked at the first one %v", got, err, now)
		}
		if got, err := s.SessionByID(ctx, "s2"); err != nil || got.RevokedAt != nil {
			t.Fatalf("s2 after revoking s1 = %+v, %v; want live", got, err)
		}
	})

	t.Run("UnstorableText", func(t *testing.T) {
		s, ctx := setup(t)
		u1 := mustUser(t, s, "u1", "a@example.com")
		s1 := mustSession(t, s, "s1", "u1", "h1")
		// PostgreSQL text holds valid UTF-8 without NUL, SQLite anything:
		// every engine refuses to write the rest and finds nothing by it.
		for _, bad := range unstorable {
			for _, key := range []string{bad, "a@example.com" + bad} {
				if got, _, err := s.UserByEmail(ctx, key); !fault.Is(err, fault.NotFound) {
					t.Errorf("UserByEmail(%q) = %+v, %v; want fault.NotFound", key, got, err)
				}
			}
			for _, id := range []string{bad, "u1" + bad} {
				if got, err := s.UserByID(ctx, id); !fault.Is(err, fault.NotFound) {
					t.Errorf("UserByID(%q) = %+v, %v; want fault.NotFound", id, got, err)
				}
				if err := s.UpdateName(ctx, id, "Renamed", now); !fault.Is(err, fault.NotFound) {
					t.Errorf("UpdateName(%q) = %v, want fault.NotFound", id, err)
				}
			}
			for _, id := range []string{bad, "s1" + bad} {
				if got, err := s.SessionByID(ctx, id); !fault.Is(err, fault.NotFound) {
					t.Errorf("SessionByID(%q) = %+v, %v; want fault.NotFound", id, got, err)
				}
				if err := s.RevokeSession(ctx, id, now); err != nil {
					t.Errorf("RevokeSession(%q) = %v, want nil as for any unknown session", id, err)
				}
			}
			for _, hash := range []string{bad, "h1" + bad} {
				if got, err := s.RefreshTokenByHash(ctx, hash); !fault.Is(err, fault.NotFound) {
					t.Errorf("RefreshTokenByHash(%q) = %+v, %v; want fault.NotFound", hash, got, err)
				}
				if fresh, err := s.MarkRefreshUsed(ctx, hash, now); err != nil || fresh {
					t.Errorf("MarkRefreshUsed(%q) = %v, %v; want false, nil as for any unknown token", hash, fresh, err)
				}
			}
			if err := s.UpdateName(ctx, "u1", "Name "+bad, now); !fault.Is(err, fault.Invalid) {
				t.Errorf("UpdateName(u1, %q) = %v, want fault.Invalid", "Name "+bad, err)
			}
			for _, field := range []func(u *user.User, hash *string){
				func(u *user.User, _ *string) { u.ID = bad },
				func(u *user.User, _ *string) { u.Email = "b@example.com" + bad },
				func(u *user.User, _ *string) { u.Name = bad },
				func(u *user.User, _ *string) { u.Role = bad },
				func(_ *user.User, hash *string) { *hash = bad },
			} {
				u, hash := user.User{ID: "u2", Email: "b@example.com", Name: "B", Role: user.RoleCustomer, CreatedAt: now}, "hash-u2"
				field(&u, &hash)
				if err := s.CreateUser(ctx, u, hash, now); !fault.Is(err, fault.Invalid) {
					t.Errorf("CreateUser(%+v, %q) = %v, want fault.Invalid", u, hash, err)
				}
			}
			for _, field := range []func(sess *user.Session, tok *user.RefreshToken){
				func(sess *user.Session, _ *user.RefreshToken) { sess.ID = bad },
				func(sess *user.Session, _ *user.RefreshToken) { sess.UserID = "u1" + bad },
				func(sess *user.Session, _ *user.RefreshToken) { sess.Role = bad },
				func(_ *user.Session, tok *user.RefreshToken) { tok.Hash = bad },
				func(_ *user.Session, tok *user.RefreshToken) { tok.SessionID = bad },
			} {
				sess, tok := session("s2", "u1"), user.RefreshToken{Hash: "h2", SessionID: "s2", CreatedAt: now}
				field(&sess, &tok)
				if err := s.CreateSession(ctx, sess, tok); !fault.Is(err, fault.Invalid) {
					t.Errorf("CreateSession(%+v, %+v) = %v, want fault.Invalid", sess, tok, err)
				}
			}
			for _, tok := range []user.RefreshToken{
				{Hash: bad, SessionID: "s1", CreatedAt: now},
				{Hash: "h3", SessionID: "s1" + bad, CreatedAt: now},
			} {
				if err := s.AddRefreshToken(ctx, tok); !fault.Is(err, fault.Invalid) {
					t.Errorf("AddRefreshToken(%+v) = %v, want fault.Invalid", tok, err)
				}
			}
		}
		if got, hash, err := s.UserByEmail(ctx, "a@example.com"); err != nil || got != u1 || hash != "hash-u1" {
			t.Errorf("u1 after refused writes = %+v, %q, %v; want %+v unchanged", got, hash, err, u1)
		}
		if got, err := s.UserByID(ctx, "u2"); !fault.Is(err, fault.NotFound) {
			t.Errorf("UserByID(u2) after refused CreateUser = %+v, %v; want fault.NotFound", got, err)
		}
		if got, err := s.SessionByID(ctx, "s1"); err != nil || !sameSession(got, s1) {
			t.Errorf("s1 after refused writes = %+v, %v; want %+v, not revoked", got, err, s1)
		}
		if got, err := s.SessionByID(ctx, "s2"); !fault.Is(err, fault.NotFound) {
			t.Errorf("SessionByID(s2) after refused CreateSession = %+v, %v; want fault.NotFound", got, err)
		}
		for _, hash := range []string{"h2", "h3"} {
			if got, err := s.RefreshTokenByHash(ctx, hash); !fault.Is(err, fault.NotFound) {
				t.Errorf("RefreshTokenByHash(%s) after refused writes = %+v, %v; want fault.NotFound", hash, got, err)
			}
		}
		if fresh, err := s.MarkRefreshUsed(ctx, "h1", now); err != nil || !fresh {
			t.Errorf("MarkRefreshUsed(h1) after refused writes = %v, %v; want true: h1 was never used", fresh, err)
		}
	})

	t.Run("InTxCommits", func(t *testing.T) {
		s, ctx := setup(t)
		err := s.InTx(ctx, func(ctx context.Context) error {
			mustUserCtx(t, ctx, s, "u1", "a@example.com")
			return s.CreateSession(ctx, session("s1", "u1"), user.RefreshToken{Hash: "h1", SessionID: "s1", CreatedAt: now})
		})
		if err != nil {
			t.Fatalf("InTx: %v", err)
		}
		if _, err := s.UserByID(ctx, "u1"); err != nil {
			t.Errorf("UserByID after commit: %v", err)
		}
		if _, err := s.SessionByID(ctx, "s1"); err != nil {
			t.Errorf("SessionByID after commit: %v", err)
		}
		if _, err := s.RefreshTokenByHash(ctx, "h1"); err != nil {
			t.Errorf("RefreshTokenByHash after commit: %v", err)
		}
	})

	t.Run("InTxRollbackUndoesWrites", func(t *testing.T) {
		s, ctx := setup(t)
		kept := mustUser(t, s, "u0", "kept@example.com")
		mustSession(t, s, "s0", "u0", "h0")
		errAbort := errors.New("abort")
		err := s.InTx(ctx, func(ctx context.Context) error {
			mustUserCtx(t, ctx, s, "u1", "a@example.com")
			// Reads in the transaction see its own writes.
			if _, err := s.UserByID(ctx, "u1"); err != nil {
				t.Errorf("UserByID inside the transaction: %v", err)
			}
			if err := s.UpdateName(ctx, "u0", "Changed", now); err != nil {
				return err
			}
			if err := s.CreateSession(ctx, session("s1", "u1"), user.RefreshToken{Hash: "h1", SessionID: "s1", CreatedAt: now}); err != nil {
				return err
			}
			if err := s.AddRefreshToken(ctx, user.RefreshToken{Hash: "h0b", SessionID: "s0", CreatedAt: now}); err != nil {
				return err
			}
			if fresh, err := s.MarkRefreshUsed(ctx, "h0", now); err != nil || !fresh {
				t.Errorf("MarkRefreshUsed inside the transaction = %v, %v; want true", fresh, err)
			}
			if err := s.RevokeSession(ctx, "s0", now); err != nil {
				return err
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatalf("InTx = %v, want the error fn returned", err)
		}
		if _, err := s.UserByID(ctx, "u1"); !fault.Is(err, fault.NotFound) {
			t.Errorf("UserByID(u1) after rollback = %v, want fault.NotFound", err)
		}
		if _, _, err := s.UserByEmail(ctx, "a@example.com"); !fault.Is(err, fault.NotFound) {
			t.Errorf("UserByEmail after rollback = %v, want fault.NotFound", err)
		}
		if got, err := s.UserByID(ctx, "u0"); err != nil || got != kept {
			t.Errorf("UserByID(u0) after rollback = %+v, %v; want %+v unrenamed", got, err, kept)
		}
		if _, err := s.SessionByID(ctx, "s1"); !fault.Is(err, fault.NotFound) {
			t.Errorf("SessionByID(s1) after rollback = %v, want fault.NotFound", err)
		}
		for _, h := range []string{"h1", "h0b"} {
			if _, err := s.RefreshTokenByHash(ctx, h); !fault.Is(err, fault.NotFound) {
				t.Errorf("RefreshTokenByHash(%s) after rollback = %v, want fault.NotFound", h, err)
			}
		}
		if got, err := s.SessionByID(ctx, "s0"); err != nil || got.RevokedAt != nil {
			t.Errorf("s0 after rollback = %+v, %v; want not revoked", got, err)
		}
		if fresh, err := s.MarkRefreshUsed(ctx, "h0", now); err != nil || !fresh {
			t.Errorf("MarkRefreshUsed(h0) after rollback = %v, %v; want true: the mark was rolled back", fresh, err)
		}
		// The email is free again.
		mustUser(t, s, "u1", "a@example.com")
	})
}

func session(id, userID string) user.Session {
	return user.Session{ID: id, UserID: userID, Role: user.RoleCustomer, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

func mustUser(t *testing.T, s user.Store, id, email string) user.User {
	t.Helper()
	return mustUserCtx(t, context.Background(), s, id, email)
}

func mustUserCtx(t *testing.T, ctx context.Context, s user.Store, id, email string) user.User {
	t.Helper()
	u := user.User{ID: id, Email: email, Name: "Name " + id, Role: user.RoleCustomer, CreatedAt: now}
	if err := s.CreateUser(ctx, u, "hash-"+id, now); err != nil {
		t.Fatalf("CreateUser(%s): %v", id, err)
	}
	return u
}

func mustSession(t *testing.T, s user.Store, id, userID, refreshHash string) user.Session {
	t.Helper()
	sess := session(id, userID)
	if err := s.CreateSession(context.Background(), sess, user.RefreshToken{Hash: refreshHash, SessionID: id, CreatedAt: now}); err != nil {
		t.Fatalf("CreateSession(%s): %v", id, err)
	}
	return sess
}

// sameSession compares sessions by instant, since == on time.Time also
// compares locations.
func sameSession(a, b user.Session) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.Role == b.Role &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		(a.RevokedAt == nil) == (b.RevokedAt == nil) && (a.RevokedAt == nil || a.RevokedAt.Equal(*b.RevokedAt))
}
