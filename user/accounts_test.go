package user_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/ratelimit"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/user"
	userstore "github.com/millionshop/million/user/store"
)

// accountsClock is a settable clock shared by the service, the token signer
// and the failure limiter, so tests can move time past expiries.
type accountsClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *accountsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *accountsClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	accountsAccessTTL  = 15 * time.Minute
	accountsSessionTTL = 24 * time.Hour
)

// newAccounts returns the user service over a fresh SQLite database in a
// temporary directory, wired the way app wires it.
func newAccounts(t *testing.T) (*user.Accounts, *accountsClock) {
	t.Helper()
	f := newAccountsFixture(t)
	return f.a, f.clock
}

// accountsFixture is the user service with the outbox its events go to and
// what the outbox's relay published.
type accountsFixture struct {
	a      *user.Accounts
	clock  *accountsClock
	outbox *outbox.Outbox
	sent   *sentEvents
}

func newAccountsFixture(t *testing.T) accountsFixture {
	t.Helper()
	db, err := sqldb.OpenSQLite(t.TempDir(), sqldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background(), []sqldb.Migrations{userstore.Migrations(), outbox.Migrations()}); err != nil {
		t.Fatal(err)
	}
	clock := &accountsClock{t: time.Now().UTC()}
	tokens, err := user.NewTokens(tokenTestKey, accountsAccessTTL, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	failures := ratelimit.NewFailures(clock.Now,
		ratelimit.Rule{Prefix: "login:account:", Limit: 10, Window: time.Minute},
		ratelimit.Rule{Prefix: "login:ip:", Limit: 50, Window: time.Minute})
	sent := &sentEvents{}
	events := outbox.New(db, sent, slog.New(slog.DiscardHandler), clock.Now)
	a, err := user.NewAccounts(userstore.New(db), events, tokens, failures, user.Config{
		AccessTTL: accountsAccessTTL, SessionTTL: accountsSessionTTL, PasswordParams: cheapParams,
	}, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return accountsFixture{a: a, clock: clock, outbox: events, sent: sent}
}

// accountsLogin registers a customer and logs in.
func accountsLogin(t *testing.T, a *user.Accounts) (user.User, user.TokenPair) {
	t.Helper()
	ctx := context.Background()
	u, err := a.Register(ctx, user.Registration{Email: "Shopper@Example.com", Password: "password-123", Name: "  Shopper  "})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	pair, err := a.Login(ctx, user.Credentials{Email: "shopper@example.com", Password: "password-123"}, "192.0.2.1")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	return u, pair
}

func wantKind(t *testing.T, what string, err error, kind fault.Kind) {
	t.Helper()
	if err == nil || fault.KindOf(err) != kind {
		t.Fatalf("%s: err = %v (kind %v), want kind %v", what, err, fault.KindOf(err), kind)
	}
}

func TestAccountsRegisterLoginAuthenticate(t *testing.T) {
	t.Parallel()
	a, _ := newAccounts(t)
	ctx := context.Background()
	u, pair := accountsLogin(t, a)
	if u.Email != "shopper@example.com" || u.Name != "Shopper" || u.Role != user.RoleCustomer || u.ID == "" {
		t.Errorf("registered user = %+v, want normalized email, trimmed name, customer role", u)
	}
	if pair.TokenType != "Bearer" || pair.ExpiresIn != int(accountsAccessTTL.Seconds()) || pair.AccessToken == "" || pair.RefreshToken == "" {
		t.Errorf("pair = %+v", pair)
	}
	p, err := a.Authenticate(ctx, pair.AccessToken)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if p.UserID != u.ID || p.Role != user.RoleCustomer || p.SessionID == "" {
		t.Errorf("principal = %+v, want user %s as customer", p, u.ID)
	}
	got, err := a.Get(ctx, u.ID)
	if err != nil || got != u {
		t.Errorf("Get = %+v, %v; want %+v", got, err, u)
	}
	_, err = a.Register(ctx, user.Registration{Email: "SHOPPER@example.COM", Password: "password-456", Name: "Twin"})
	wantKind(t, "Register(same email, other case)", err, fault.Conflict)
	_, err = a.Register(ctx, user.Registration{Email: "boss@example.com", Password: "password-456", Name: "Boss", Role: "superuser"})
	wantKind(t, "Register(role superuser)", err, fault.Invalid)
}

func TestAccountsRefreshRotates(t *testing.T) {
	t.Parallel()
	a, _ := newAccounts(t)
	ctx := context.Background()
	u, pair1 := accountsLogin(t, a)
	pair2, err := a.Refresh(ctx, pair1.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if pair2.RefreshToken == pair1.RefreshToken || pair2.AccessToken == "" {
		t.Fatalf("Refresh returned %+v, want a new refresh token", pair2)
	}
	p, err := a.Authenticate(ctx, pair2.AccessToken)
	if err != nil || p.UserID != u.ID {
		t.Fatalf("Authenticate(refreshed access) = %+v, %v", p, err)
	}
	pair3, err := a.Refresh(ctx, pair2.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh(second rotation): %v", err)
	}
	if _, err := a.Authenticate(ctx, pair3.AccessToken); err != nil {
		t.Fatalf("Authenticate(pair 3): %v", err)
	}
	for _, bad := range []string{"", "rt_unknown", pair1.AccessToken, "rt_" + strings.Repeat("a", 200)} {
		_, err := a.Refresh(ctx, bad)
		wantKind(t, "Refresh(bogus token)", err, fault.Unauthorized)
	}
}

func TestAccountsRefreshReuseRevokesSession(t *testing.T) {
	t.Parallel()
	a, _ := newAccounts(t)
	ctx := context.Background()
	_, pair1 := accountsLogin(t, a)
	pair2, err := a.Refresh(ctx, pair1.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	_, err = a.Refresh(ctx, pair1.RefreshToken)
	wantKind(t, "Refresh(rotated token)", err, fault.Unauthorized)
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Code != "refresh_token_reused" {
		t.Errorf("reuse error = %v, want code refresh_token_reused", err)
	}
	_, err = a.Refresh(ctx, pair2.RefreshToken)
	wantKind(t, "Refresh(pair 2 after reuse)", err, fault.Unauthorized)
	for i, access := range []string{pair1.AccessToken, pair2.AccessToken} {
		_, err = a.Authenticate(ctx, access)
		wantKind(t, fmt.Sprintf("Authenticate(access token %d after reuse)", i+1), err, fault.Unauthorized)
	}
	// Another session of the same user is not affected.
	other, err := a.Login(ctx, user.Credentials{Email: "shopper@example.com", Password: "password-123"}, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, other.AccessToken); err != nil {
		t.Errorf("Authenticate(other session) = %v, want nil", err)
	}
}

// TestAccountsConcurrentRefresh races 20 refreshes of one token: rotation
// must be atomic, so exactly one gets a new pair and every other one is
// treated as reuse (401), never as a second success or a server error.
func TestAccountsConcurrentRefresh(t *testing.T) {
	t.Parallel()
	a, _ := newAccounts(t)
	ctx := context.Background()
	_, pair := accountsLogin(t, a)
	const n = 20
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		wins  = make(chan user.TokenPair, n)
		errs  = make(chan error, n)
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			p, err := a.Refresh(ctx, pair.RefreshToken)
			if err != nil {
				errs <- err
				return
			}
			wins <- p
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	close(wins)
	if got := len(wins); got != 1 {
		t.Fatalf("%d of %d concurrent refreshes succeeded, want exactly 1", got, n)
	}
	winner := <-wins
	for err := range errs {
		wantKind(t, "concurrent Refresh loser", err, fault.Unauthorized)
	}
	// The losers presented a rotated token, which is reuse: the session,
	// including the winner's new pair, is revoked.
	_, err := a.Refresh(ctx, winner.RefreshToken)
	wantKind(t, "Refresh(winner after reuse)", err, fault.Unauthorized)
	_, err = a.Authenticate(ctx, winner.AccessToken)
	wantKind(t, "Authenticate(winner after reuse)", err, fault.Unauthorized)
}

func TestAccountsLogoutRevokesSession(t *testing.T) {
	t.Parallel()
	a, _ := newAccounts(t)
	ctx := context.Background()
	_, pair := accountsLogin(t, a)
	p, err := a.Authenticate(ctx, pair.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Logout(ctx, p); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if err := a.Logout(ctx, p); err != nil {
		t.Fatalf("second Logout: %v, want nil (idempotent)", err)
	}
	_, err = a.Authenticate(ctx, pair.AccessToken)
	wantKind(t, "Authenticate after logout", err, fault.Unauthorized)
	_, err = a.Refresh(ctx, pair.RefreshToken)
	wantKind(t, "Refresh after logout", err, fault.Unauthorized)
}

func TestAccountsExpiry(t *testing.T) {
	t.Parallel()
	a, clock := newAccounts(t)
	ctx := context.Background()
	_, pair := accountsLogin(t, a)
	clock.Advance(accountsAccessTTL + time.Second)
	_, err := a.Authenticate(ctx, pair.AccessToken)
	wantKind(t, "Authenticate(expired access token)", err, fault.Unauthorized)
	pair, err = a.Refresh(ctx, pair.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh after access expiry: %v", err)
	}
	clock.Advance(accountsSessionTTL)
	_, err = a.Refresh(ctx, pair.RefreshToken)
	wantKind(t, "Refresh(expired session)", err, fault.Unauthorized)
}

// TestAccountsAuthenticateChecksSession proves a correctly signed token is
// not enough: its session must exist and belong to its subject.
func TestAccountsAuthenticateChecksSession(t *testing.T) {
	t.Parallel()
	a, clock := newAccounts(t)
	ctx := context.Background()
	u, pair := accountsLogin(t, a)
	p, err := a.Authenticate(ctx, pair.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := user.NewTokens(tokenTestKey, accountsAccessTTL, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, sub, sid string }{
		{"unknown session", u.ID, "no-such-session"},
		{"session of another subject", "someone-else", p.SessionID},
	} {
		tok, err := tk.Access(tc.sub, tc.sid, user.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.Authenticate(ctx, tok)
		wantKind(t, "Authenticate("+tc.name+")", err, fault.Unauthorized)
	}
	// The role comes from the session, not from the token.
	tok, err := tk.Access(u.ID, p.SessionID, user.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Authenticate(ctx, tok)
	if err != nil || got.IsAdmin() {
		t.Errorf("Authenticate(token claiming admin) = %+v, %v; want the session's customer role", got, err)
	}
}

func TestAccountsLoginLockout(t *testing.T) {
	t.Parallel()
	a, clock := newAccounts(t)
	ctx := context.Background()
	accountsLogin(t, a)
	right := user.Credentials{Email: "shopper@example.com", Password: "password-123"}
	wrong := user.Credentials{Email: "shopper@example.com", Password: "wrong-password"}
	for i := range 10 {
		_, err := a.Login(ctx, wrong, "192.0.2.1")
		wantKind(t, fmt.Sprintf("Login(wrong password) #%d", i+1), err, fault.Unauthorized)
	}
	_, err := a.Login(ctx, right, "192.0.2.1")
	wantKind(t, "Login(right password while locked)", err, fault.TooManyRequests)
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.RetryAfter <= 0 || fe.RetryAfter > time.Minute {
		t.Errorf("lockout RetryAfter = %v, want in (0, 1m]", err)
	}
	clock.Advance(time.Minute)
	if _, err := a.Login(ctx, right, "192.0.2.1"); err != nil {
		t.Fatalf("Login after the window: %v", err)
	}

	// An unknown email locks the same way, so the limiter cannot tell which
	// accounts exist, even when the guess is the password of the dummy hash
	// that unknown emails are verified against.
	ghost := user.Credentials{Email: "ghost@example.com", Password: "dummy password for timing"}
	for i := range 10 {
		_, err := a.Login(ctx, ghost, "192.0.2.2")
		wantKind(t, fmt.Sprintf("Login(unknown email) #%d", i+1), err, fault.Unauthorized)
	}
	_, err = a.Login(ctx, ghost, "192.0.2.2")
	wantKind(t, "Login(unknown email after 10 failures)", err, fault.TooManyRequests)
}

func TestAccountsRename(t *testing.T) {
	t.Parallel()
	a, _ := newAccounts(t)
	ctx := context.Background()
	u, _ := accountsLogin(t, a)
	got, err := a.Rename(ctx, u.ID, "  New Name ")
	if err != nil || got.Name != "New Name" || got.Email != u.Email || got.Role != u.Role {
		t.Fatalf("Rename = %+v, %v; want name %q and nothing else changed", got, err, "New Name")
	}
	for _, bad := range []string{"", "   ", strings.Repeat("n", 101), "tab\tname", "x\x00y"} {
		_, err := a.Rename(ctx, u.ID, bad)
		wantKind(t, fmt.Sprintf("Rename(%q)", bad), err, fault.Invalid)
	}
	_, err = a.Rename(ctx, "no-such-user", "Name")
	wantKind(t, "Rename(unknown user)", err, fault.NotFound)
	if got, _ := a.Get(ctx, u.ID); got.Name != "New Name" {
		t.Errorf("name after rejected renames = %q, want %q", got.Name, "New Name")
	}
}

// TestAccountsLoginLockoutUnderConcurrency: a burst of concurrent guesses
// must not outrun the lockout. Every guess that is evaluated (401 rather
// than 429) is one an attacker learns from, so at most the limit plus the
// guesses already being evaluated when it is reached may get a verdict.
func TestAccountsLoginLockoutUnderConcurrency(t *testing.T) {
	t.Parallel()
	a, _ := newAccounts(t)
	ctx := context.Background()
	accountsLogin(t, a)
	const (
		guesses = 60
		limit   = 10
	)
	// Config.MaxConcurrentKDF defaults to GOMAXPROCS: guesses evaluated at
	// once, each of which may slip past the limit but the one that reaches it.
	slack := int32(runtime.GOMAXPROCS(0) - 1)
	var (
		wg        sync.WaitGroup
		start     = make(chan struct{})
		evaluated atomic.Int32
		limited   atomic.Int32
	)
	for i := range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := a.Login(ctx, user.Credentials{Email: "shopper@example.com", Password: fmt.Sprintf("guess-%d", i)}, fmt.Sprintf("198.51.100.%d", i))
			switch fault.KindOf(err) {
			case fault.Unauthorized:
				evaluated.Add(1)
			case fault.TooManyRequests:
				limited.Add(1)
			default:
				t.Errorf("Login(guess) = %v, want 401 or 429", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := evaluated.Load(); got < limit || got > limit+slack {
		t.Fatalf("%d of %d concurrent guesses were evaluated (%d limited), want %d to %d", got, guesses, limited.Load(), limit, limit+slack)
	}
}
