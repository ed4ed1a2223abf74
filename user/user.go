// Package user owns accounts, authentication and sessions: registration,
// argon2id password hashes, short-lived JWT access tokens, rotating refresh
// tokens with reuse detection, logout and roles.
package user

import (
	"context"
	"time"

	"github.com/millionshop/million/web"
)

// Roles a user can have.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// User is an account as clients see it.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// TopicRegistered is the topic of the event Register records, in the
// registration's transaction, with a Registered payload.
const TopicRegistered = "user.registered"

// Registered is the payload of user.registered. It carries no name or role:
// consumers that need more ask the user module.
type Registered struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

// Events records domain events atomically with the transaction in ctx.
type Events interface {
	Add(ctx context.Context, topic, key string, payload any) error
}

// TokenPair is what login and refresh return.
type TokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// Registration is the input of Register.
type Registration struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	Role     string `json:"-"` // only set by operators (million user create --admin)
	ClientIP string `json:"-"` // where a self-registration comes from, for its rate limit; "" for operators
}

// Credentials is the input of Login.
type Credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Service is the user module's API, used by its HTTP handlers, by the
// command line and, through web.Authenticator, by every authenticated route.
type Service interface {
	// Register creates an account and records user.registered with it.
	// Errors: fault.Invalid, fault.Conflict (code email_taken).
	Register(ctx context.Context, reg Registration) (User, error)
	// Login checks credentials and opens a session. Errors: fault.Unauthorized
	// (same answer for unknown email and wrong password), fault.TooManyRequests.
	Login(ctx context.Context, cred Credentials, clientIP string) (TokenPair, error)
	// Refresh rotates a refresh token. Reusing a rotated token revokes the
	// whole session. Errors: fault.Unauthorized.
	Refresh(ctx context.Context, refreshToken string) (TokenPair, error)
	// Logout revokes the caller's session: its access and refresh tokens stop working.
	Logout(ctx context.Context, p web.Principal) error
	// Get returns a user. Errors: fault.NotFound.
	Get(ctx context.Context, id string) (User, error)
	// Rename changes a user's display name. Errors: fault.Invalid, fault.NotFound.
	Rename(ctx context.Context, id, name string) (User, error)
	// Authenticate verifies an access token and that its session is live.
	Authenticate(ctx context.Context, token string) (web.Principal, error)
}

// Session is one login: the refresh token chain and the access tokens issued from it.
type Session struct {
	ID        string
	UserID    string
	Role      string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
}

// RefreshToken is a stored refresh token; only its hash is kept.
type RefreshToken struct {
	Hash      string
	SessionID string
	CreatedAt time.Time
	UsedAt    *time.Time
}

// Store is the persistence the user module needs. Implementations live in
// user/store; every one must pass user/storetest.
type Store interface {
	// InTx runs fn in one transaction.
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// CreateUser inserts a user. Errors: fault.Conflict (email_taken).
	CreateUser(ctx context.Context, u User, passwordHash string, now time.Time) error
	// UserByEmail finds a user and its password hash by lowercased email. Errors: fault.NotFound.
	UserByEmail(ctx context.Context, email string) (User, string, error)
	// UserByID finds a user. Errors: fault.NotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// UpdateName renames a user. Errors: fault.NotFound.
	UpdateName(ctx context.Context, id, name string, now time.Time) error
	// CreateSession stores a session and its first refresh token.
	CreateSession(ctx context.Context, s Session, refresh RefreshToken) error
	// SessionByID returns a session. Errors: fault.NotFound.
	SessionByID(ctx context.Context, id string) (Session, error)
	// RefreshTokenByHash returns a refresh token. Errors: fault.NotFound.
	RefreshTokenByHash(ctx context.Context, hash string) (RefreshToken, error)
	// MarkRefreshUsed marks a token used; it reports false when it already was.
	MarkRefreshUsed(ctx context.Context, hash string, now time.Time) (bool, error)
	// AddRefreshToken stores the next token of a session.
	AddRefreshToken(ctx context.Context, t RefreshToken) error
	// RevokeSession revokes a session (idempotent).
	RevokeSession(ctx context.Context, id string, now time.Time) error
}

// FailureLimiter counts failed logins per key (an account or an IP) over a
// sliding window. The in-process implementation serves one instance; the
// Redis one (stage 3) serves a fleet.
type FailureLimiter interface {
	// Blocked reports whether key has reached its limit, the limit, and for
	// how long the key stays blocked.
	Blocked(ctx context.Context, key string) (blocked bool, limit int, retryAfter time.Duration, err error)
	// Fail records one failure for key.
	Fail(ctx context.Context, key string) error
	// Reset forgets key's failures (after a successful login).
	Reset(ctx context.Context, key string) error
}
