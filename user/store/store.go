// Package store persists the user module: users, sessions and refresh tokens.
package store

import (
	"context"
	"database/sql"
	"embed"
	"io/fs"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
)

//go:embed sqlite/*.sql postgres/*.sql
var migrationsFS embed.FS

// Migrations are the user module's schema, for each engine.
func Migrations() sqldb.Migrations {
	lite, _ := fs.Sub(migrationsFS, "sqlite")
	pg, _ := fs.Sub(migrationsFS, "postgres")
	return sqldb.Migrations{Module: "user", SQLite: lite, Postgres: pg}
}

// Store is the user store on SQLite or PostgreSQL.
type Store struct {
	db *sqldb.DB
}

var _ user.Store = (*Store)(nil)

// New returns the store over db.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func optMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// InTx implements user.Store.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.db.InTx(ctx, fn)
}

// CreateUser implements user.Store.
func (s *Store) CreateUser(ctx context.Context, u user.User, passwordHash string, now time.Time) error {
	if !sqldb.Storable(u.ID, u.Email, u.Name, u.Role, passwordHash) {
		return sqldb.ErrUnstorable
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx,
		`INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.Name, u.Role, passwordHash, micros(u.CreatedAt), micros(now))
	if err != nil {
		if sqldb.IsUniqueViolation(err) {
			return fault.New(fault.Conflict, "email_taken", "an account with this email already exists")
		}
		return fault.Wrap(err, "insert user")
	}
	return nil
}

var (
	errNoUser         = fault.New(fault.NotFound, "", "no such user")
	errNoSession      = fault.New(fault.NotFound, "", "no such session")
	errNoRefreshToken = fault.New(fault.NotFound, "", "no such refresh token")
)

const userColumns = `id, email, name, role, created_at`

func scanUser(row interface{ Scan(...any) error }, extra ...any) (user.User, error) {
	var u user.User
	var created int64
	dest := append([]any{&u.ID, &u.Email, &u.Name, &u.Role, &created}, extra...)
	if err := row.Scan(dest...); err != nil {
		if sqldb.NoRows(err) {
			return user.User{}, errNoUser
		}
		return user.User{}, fault.Wrap(err, "scan user")
	}
	u.CreatedAt = fromMicros(created)
	return u, nil
}

// UserByEmail implements user.Store.
func (s *Store) UserByEmail(ctx context.Context, email string) (user.User, string, error) {
	if !sqldb.Storable(email) {
		return user.User{}, "", errNoUser
	}
	var hash string
	u, err := scanUser(s.db.Reader(ctx).QueryRowContext(ctx,
		`SELECT `+userColumns+`, password_hash FROM users WHERE email = ?`, email), &hash)
	return u, hash, err
}

// UserByID implements user.Store.
func (s *Store) UserByID(ctx context.Context, id string) (user.User, error) {
	if !sqldb.Storable(id) {
		return user.User{}, errNoUser
	}
	return scanUser(s.db.Reader(ctx).QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
}

// UpdateName implements user.Store.
func (s *Store) UpdateName(ctx context.Context, id, name string, now time.Time) error {
	if !sqldb.Storable(name) {
		return sqldb.ErrUnstorable
	}
	if !sqldb.Storable(id) {
		return errNoUser
	}
	res, err := s.db.Writer(ctx).ExecContext(ctx, `UPDATE users SET name = ?, updated_at = ? WHERE id = ?`, name, micros(now), id)
	if err != nil {
		return fault.Wrap(err, "update user")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNoUser
	}
	return nil
}

// CreateSession implements user.Store.
func (s *Store) CreateSession(ctx context.Context, sess user.Session, refresh user.RefreshToken) error {
	if !sqldb.Storable(sess.ID, sess.UserID, sess.Role, refresh.Hash, refresh.SessionID) {
		return sqldb.ErrUnstorable
	}
	return s.db.InTx(ctx, func(ctx context.Context) error {
		_, err := s.db.Writer(ctx).ExecContext(ctx,
			`INSERT INTO sessions (id, user_id, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			sess.ID, sess.UserID, sess.Role, micros(sess.CreatedAt), micros(sess.ExpiresAt))
		if err != nil {
			return fault.Wrap(err, "insert session")
		}
		return s.AddRefreshToken(ctx, refresh)
	})
}

// SessionByID implements user.Store.
func (s *Store) SessionByID(ctx context.Context, id string) (user.Session, error) {
	var sess user.Session
	var created, expires int64
	var revoked sql.NullInt64
	if !sqldb.Storable(id) {
		return user.Session{}, errNoSession
	}
	err := s.db.Reader(ctx).QueryRowContext(ctx,
		`SELECT id, user_id, role, created_at, expires_at, revoked_at FROM sessions WHERE id = ?`, id).
		Scan(&sess.ID, &sess.UserID, &sess.Role, &created, &expires, &revoked)
	if err != nil {
		if sqldb.NoRows(err) {
			return user.Session{}, errNoSession
		}
		return user.Session{}, fault.Wrap(err, "select session")
	}
	sess.CreatedAt, sess.ExpiresAt, sess.RevokedAt = fromMicros(created), fromMicros(expires), optMicros(revoked)
	return sess, nil
}

// RefreshTokenByHash implements user.Store.
func (s *Store) RefreshTokenByHash(ctx context.Context, hash string) (user.RefreshToken, error) {
	var t user.RefreshToken
	var created int64
	var used sql.NullInt64
	if !sqldb.Storable(hash) {
		return user.RefreshToken{}, errNoRefreshToken
	}
	err := s.db.Reader(ctx).QueryRowContext(ctx,
		`SELECT hash, session_id, created_at, used_at FROM refresh_tokens WHERE hash = ?`, hash).
		Scan(&t.Hash, &t.SessionID, &created, &used)
	if err != nil {
		if sqldb.NoRows(err) {
			return user.RefreshToken{}, errNoRefreshToken
		}
		return user.RefreshToken{}, fault.Wrap(err, "select refresh token")
	}
	t.CreatedAt, t.UsedAt = fromMicros(created), optMicros(used)
	return t, nil
}

// MarkRefreshUsed implements user.Store.
func (s *Store) MarkRefreshUsed(ctx context.Context, hash string, now time.Time) (bool, error) {
	if !sqldb.Storable(hash) {
		return false, nil // no such token, as for any unknown hash
	}
	res, err := s.db.Writer(ctx).ExecContext(ctx,
		`UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL`, micros(now), hash)
	if err != nil {
		return false, fault.Wrap(err, "mark refresh token used")
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// AddRefreshToken implements user.Store.
func (s *Store) AddRefreshToken(ctx context.Context, t user.RefreshToken) error {
	if !sqldb.Storable(t.Hash, t.SessionID) {
		return sqldb.ErrUnstorable
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx,
		`INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?, ?, ?)`, t.Hash, t.SessionID, micros(t.CreatedAt))
	if err != nil {
		return fault.Wrap(err, "insert refresh token")
	}
	return nil
}

// RevokeSession implements user.Store.
func (s *Store) RevokeSession(ctx context.Context, id string, now time.Time) error {
	if !sqldb.Storable(id) {
		return nil // no such session, as for any unknown ID
	}
	_, err := s.db.Writer(ctx).ExecContext(ctx,
		`UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, micros(now), id)
	if err != nil {
		return fault.Wrap(err, "revoke session")
	}
	return nil
}
