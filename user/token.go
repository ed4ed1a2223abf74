package user

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/maypok86/otter/v2"
)

const (
	issuer          = "million"
	accessTokenType = "access"
)

// accessClaims are the claims of an access token. typ separates access tokens
// from anything else signed with the same key.
type accessClaims struct {
	SessionID string `json:"sid"`
	Role      string `json:"role"`
	Type      string `json:"typ"`
	jwt.RegisteredClaims
}

// Tokens signs and verifies access tokens (HS256 only) and mints opaque
// refresh tokens.
type Tokens struct {
	key       []byte
	accessTTL time.Duration
	now       func() time.Time
	parser    *jwt.Parser
	// verified holds tokens that passed Verify, with their claims, until
	// they expire. A signed-in client sends the same token with every
	// request, and a request meets two checks (the per-user rate limit,
	// then authentication); parsing and checking a token costs ~12 µs and
	// 51 allocations, a lookup a fraction of a microsecond. Only tokens
	// this key signed get in, so nobody can fill it from outside.
	verified *otter.Cache[string, accessClaims]
}

// verifiedTokens bounds Tokens.verified: the tokens of that many recent
// clients (a few MiB); past it, the least useful are verified again.
const verifiedTokens = 10_000

// NewTokens returns a token signer. key must be at least 32 bytes.
func NewTokens(key []byte, accessTTL time.Duration, now func() time.Time) (*Tokens, error) {
	if len(key) < 32 {
		return nil, errors.New("token signing key must be at least 32 bytes")
	}
	verified, err := otter.New(&otter.Options[string, accessClaims]{
		MaximumSize: verifiedTokens,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, accessClaims]) time.Duration {
			return max(e.Value.ExpiresAt.Sub(now()), time.Millisecond)
		}),
	})
	if err != nil {
		return nil, err
	}
	return &Tokens{
		key: key, accessTTL: accessTTL, now: now, verified: verified,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(now),
		),
	}, nil
}

// Access issues an access token for a session.
func (t *Tokens) Access(userID, sessionID, role string) (string, error) {
	now := t.now()
	claims := accessClaims{
		SessionID: sessionID, Role: role, Type: accessTokenType,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: issuer, Subject: userID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.accessTTL)),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.key)
}

// Verify checks an access token's signature, algorithm, issuer, expiry and
// type. The claims it returns are shared with other callers: read only.
func (t *Tokens) Verify(token string) (accessClaims, error) {
	// A token verified before is the same bytes this key signed; only its
	// expiry can have changed since.
	if c, ok := t.verified.GetIfPresent(token); ok && t.now().Before(c.ExpiresAt.Time) {
		return c, nil
	}
	var c accessClaims
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.key, nil })
	if err != nil {
		return accessClaims{}, err
	}
	if c.Type != accessTokenType || c.Subject == "" || c.SessionID == "" {
		return accessClaims{}, errors.New("not an access token")
	}
	t.verified.Set(token, c)
	return c, nil
}

// newRefreshToken returns a random refresh token and the hash that is stored.
func newRefreshToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = "rt_" + base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashRefreshToken(token)
}

func hashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
