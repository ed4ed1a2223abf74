package user

import (
	"context"
	"net/mail"
	"runtime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

// Config tunes the user module.
type Config struct {
	AccessTTL      time.Duration  // lifetime of access tokens
	SessionTTL     time.Duration  // lifetime of a session (its refresh chain)
	PasswordParams PasswordParams // argon2id cost for new hashes
	// MaxConcurrentKDF is how many password hashes are computed at once;
	// 0 means one per CPU the process may use (GOMAXPROCS). The work is
	// pure CPU, so more at once only holds more memory (~19 MiB each,
	// which also raises the garbage collector's heap target).
	MaxConcurrentKDF int
}

// Accounts implements Service.
type Accounts struct {
	store    Store
	events   Events
	tokens   *Tokens
	failures FailureLimiter
	cfg      Config
	now      func() time.Time
	kdf      chan struct{}
	dummy    string // hash verified for unknown emails so both answers take as long
}

var _ Service = (*Accounts)(nil)

// NewAccounts returns the user service. events records user.registered,
// and must join the store's transactions (the same database).
func NewAccounts(store Store, events Events, tokens *Tokens, failures FailureLimiter, cfg Config, now func() time.Time) (*Accounts, error) {
	if cfg.MaxConcurrentKDF <= 0 {
		cfg.MaxConcurrentKDF = runtime.GOMAXPROCS(0)
	}
	dummy, err := HashPassword("dummy password for timing", cfg.PasswordParams)
	if err != nil {
		return nil, err
	}
	return &Accounts{store: store, events: events, tokens: tokens, failures: failures, cfg: cfg, now: now,
		kdf: make(chan struct{}, cfg.MaxConcurrentKDF), dummy: dummy}, nil
}

// NormalizeEmail trims and lowercases an email address.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func validEmail(email string) bool {
	if len(email) < 3 || len(email) > 254 {
		return false
	}
	for _, r := range email {
		// Invisible and bidi-control characters would allow look-alike
		// accounts ("a\u200b@example.com" next to "a@example.com").
		if unicode.Is(unicode.Cf, r) || unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return false
	}
	local, domain, ok := strings.Cut(email, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.HasSuffix(domain, ".")
}

// ValidName reports whether name is a usable display name: 1 to 100
// characters after trimming, no control characters.
func ValidName(name string) bool {
	n := utf8.RuneCountInString(name)
	if n < 1 || n > 100 || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if unicode.IsControl(r) || isBidiControl(r) {
			return false
		}
	}
	return true
}

// isBidiControl reports the bidirectional embedding, override and isolate
// characters, which can make a name display as something else.
func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') || r == '\u200e' || r == '\u200f'
}

// Register implements Service.
func (a *Accounts) Register(ctx context.Context, reg Registration) (User, error) {
	email := NormalizeEmail(reg.Email)
	name := strings.TrimSpace(reg.Name)
	var v fault.Validator
	v.Check(validEmail(email), "email", "must be a valid email address")
	n := utf8.RuneCountInString(reg.Password)
	v.Check(utf8.ValidString(reg.Password) && n >= 8 && n <= 128, "password", "must be 8 to 128 characters")
	v.Check(ValidName(name), "name", "must be 1 to 100 characters without control characters")
	if err := v.Err(); err != nil {
		return User{}, err
	}
	// Each registration costs a password hash, so registrations per client
	// are limited like failed logins; operators (no client IP) are not.
	if reg.ClientIP != "" {
		key := "register:ip:" + reg.ClientIP
		if err := a.checkFailures(ctx, []string{key}); err != nil {
			return User{}, &fault.Error{Kind: fault.TooManyRequests, Code: "rate_limited",
				Message:    "too many registrations from this address; try again later",
				RetryAfter: fault.RetryAfterOf(err), Limit: fault.LimitOf(err)}
		}
		_ = a.failures.Fail(ctx, key)
	}
	role := reg.Role
	if role == "" {
		role = RoleCustomer
	}
	if role != RoleCustomer && role != RoleAdmin {
		return User{}, fault.Fields(fault.FieldError{Field: "role", Message: "must be customer or admin"})
	}
	hash, err := a.hash(ctx, reg.Password)
	if err != nil {
		return User{}, err
	}
	now := a.now().UTC()
	u := User{ID: uuid.Must(uuid.NewV7()).String(), Email: email, Name: name, Role: role, CreatedAt: now.Truncate(time.Microsecond)}
	err = a.store.InTx(ctx, func(ctx context.Context) error {
		if err := a.store.CreateUser(ctx, u, hash, now); err != nil {
			return err
		}
		return a.events.Add(ctx, TopicRegistered, u.ID, Registered{ID: u.ID, Email: u.Email, CreatedAt: u.CreatedAt})
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

func (a *Accounts) hash(ctx context.Context, password string) (string, error) {
	if err := a.acquireKDF(ctx); err != nil {
		return "", err
	}
	defer func() { <-a.kdf }()
	return HashPassword(password, a.cfg.PasswordParams)
}

// guess checks one password against hash under the failure limits of keys
// and records a failure when it is wrong or the account does not exist.
// Guesses queue for a KDF slot, and the limit may be reached while they
// wait; checking it again inside the slot and recording the failure before
// leaving it bounds the guesses evaluated past the limit by the slots in use,
// not by however many requests an attacker manages to queue.
func (a *Accounts) guess(ctx context.Context, keys []string, password, hash string, found bool) (bool, error) {
	if err := a.acquireKDF(ctx); err != nil {
		return false, err
	}
	defer func() { <-a.kdf }()
	if err := a.checkFailures(ctx, keys); err != nil {
		return false, err
	}
	ok, err := VerifyPassword(password, hash)
	if err != nil {
		return false, fault.Wrap(err, "verify password")
	}
	// An unknown email fails even if the dummy hash happens to match.
	ok = ok && found
	if !ok {
		for _, key := range keys {
			_ = a.failures.Fail(ctx, key)
		}
	}
	return ok, nil
}

// checkFailures answers 429 when any of keys has used up its failed logins.
func (a *Accounts) checkFailures(ctx context.Context, keys []string) error {
	for _, key := range keys {
		blocked, limit, wait, err := a.failures.Blocked(ctx, key)
		if err != nil {
			return err
		}
		if blocked {
			return &fault.Error{Kind: fault.TooManyRequests, Code: "rate_limited",
				Message: "too many failed logins; try again later", RetryAfter: wait, Limit: limit}
		}
	}
	return nil
}

// acquireKDF bounds concurrent argon2id work: each costs ~19 MiB and tens of
// milliseconds of CPU, so unbounded logins would exhaust the machine.
func (a *Accounts) acquireKDF(ctx context.Context) error {
	select {
	case a.kdf <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &fault.Error{Kind: fault.Unavailable, Message: "the server is busy; retry shortly", RetryAfter: time.Second, Err: ctx.Err()}
	}
}

var errBadCredentials = fault.New(fault.Unauthorized, "invalid_credentials", "the email or password is incorrect")

// Login implements Service.
func (a *Accounts) Login(ctx context.Context, cred Credentials, clientIP string) (TokenPair, error) {
	email := NormalizeEmail(cred.Email)
	if email == "" || cred.Password == "" || len(email) > 254 || len(cred.Password) > 512 {
		return TokenPair{}, errBadCredentials
	}
	keys := []string{"login:account:" + email, "login:ip:" + clientIP}
	// Answer a client that is already blocked without spending a KDF slot.
	if err := a.checkFailures(ctx, keys); err != nil {
		return TokenPair{}, err
	}
	var (
		u     User
		hash  string
		found bool
	)
	// An address that could never have registered is looked up nowhere,
	// but otherwise treated exactly like an unknown one.
	if validEmail(email) {
		var err error
		u, hash, err = a.store.UserByEmail(ctx, email)
		found = err == nil
		if err != nil && !fault.Is(err, fault.NotFound) {
			return TokenPair{}, err
		}
	}
	if !found {
		hash = a.dummy
	}
	ok, err := a.guess(ctx, keys, cred.Password, hash, found)
	if err != nil {
		return TokenPair{}, err
	}
	if !ok {
		return TokenPair{}, errBadCredentials
	}
	_ = a.failures.Reset(ctx, "login:account:"+email)
	now := a.now().UTC()
	s := Session{ID: uuid.Must(uuid.NewV7()).String(), UserID: u.ID, Role: u.Role, CreatedAt: now, ExpiresAt: now.Add(a.cfg.SessionTTL)}
	refresh, refreshHash := newRefreshToken()
	if err := a.store.CreateSession(ctx, s, RefreshToken{Hash: refreshHash, SessionID: s.ID, CreatedAt: now}); err != nil {
		return TokenPair{}, err
	}
	return a.pair(u.ID, s, refresh)
}

func (a *Accounts) pair(userID string, s Session, refresh string) (TokenPair, error) {
	access, err := a.tokens.Access(userID, s.ID, s.Role)
	if err != nil {
		return TokenPair{}, fault.Wrap(err, "sign access token")
	}
	return TokenPair{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", ExpiresIn: int(a.cfg.AccessTTL.Seconds())}, nil
}

var errBadRefresh = fault.New(fault.Unauthorized, "invalid_refresh_token", "the refresh token is invalid, expired or revoked")

// Refresh implements Service.
func (a *Accounts) Refresh(ctx context.Context, refreshToken string) (TokenPair, error) {
	if !strings.HasPrefix(refreshToken, "rt_") || len(refreshToken) > 128 {
		return TokenPair{}, errBadRefresh
	}
	now := a.now().UTC()
	var (
		pair   TokenPair
		reused bool
	)
	err := a.store.InTx(ctx, func(ctx context.Context) error {
		tok, err := a.store.RefreshTokenByHash(ctx, hashRefreshToken(refreshToken))
		if err != nil {
			if fault.Is(err, fault.NotFound) {
				return errBadRefresh
			}
			return err
		}
		s, err := a.store.SessionByID(ctx, tok.SessionID)
		if err != nil {
			return err
		}
		if s.RevokedAt != nil || !now.Before(s.ExpiresAt) {
			return errBadRefresh
		}
		fresh, err := a.store.MarkRefreshUsed(ctx, tok.Hash, now)
		if err != nil {
			return err
		}
		if !fresh {
			// A rotated token came back: someone holds a copy. Revoke the
			// whole session so neither holder can continue.
			reused = true
			return a.store.RevokeSession(ctx, s.ID, now)
		}
		next, nextHash := newRefreshToken()
		if err := a.store.AddRefreshToken(ctx, RefreshToken{Hash: nextHash, SessionID: s.ID, CreatedAt: now}); err != nil {
			return err
		}
		pair, err = a.pair(s.UserID, s, next)
		return err
	})
	if err != nil {
		return TokenPair{}, err
	}
	if reused {
		return TokenPair{}, fault.New(fault.Unauthorized, "refresh_token_reused", "the refresh token was already used; the session is revoked")
	}
	return pair, nil
}

// Logout implements Service.
func (a *Accounts) Logout(ctx context.Context, p web.Principal) error {
	return a.store.RevokeSession(ctx, p.SessionID, a.now().UTC())
}

// Get implements Service.
func (a *Accounts) Get(ctx context.Context, id string) (User, error) {
	return a.store.UserByID(ctx, id)
}

// Rename implements Service.
func (a *Accounts) Rename(ctx context.Context, id, name string) (User, error) {
	name = strings.TrimSpace(name)
	if !ValidName(name) {
		return User{}, fault.Fields(fault.FieldError{Field: "name", Message: "must be 1 to 100 characters without control characters"})
	}
	if err := a.store.UpdateName(ctx, id, name, a.now().UTC()); err != nil {
		return User{}, err
	}
	return a.store.UserByID(ctx, id)
}

var errBadAccess = fault.New(fault.Unauthorized, "invalid_token", "the access token is invalid, expired or revoked")

// Authenticate implements Service and web.Authenticator.
func (a *Accounts) Authenticate(ctx context.Context, token string) (web.Principal, error) {
	c, err := a.tokens.Verify(token)
	if err != nil {
		return web.Principal{}, errBadAccess
	}
	s, err := a.store.SessionByID(ctx, c.SessionID)
	if err != nil {
		if fault.Is(err, fault.NotFound) {
			return web.Principal{}, errBadAccess
		}
		return web.Principal{}, err
	}
	if s.RevokedAt != nil || s.UserID != c.Subject || !a.now().Before(s.ExpiresAt) {
		return web.Principal{}, errBadAccess
	}
	return web.Principal{UserID: c.Subject, SessionID: c.SessionID, Role: s.Role}, nil
}
