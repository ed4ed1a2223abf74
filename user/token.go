package user

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
}

// NewTokens returns a token signer. key must be at least 32 bytes.
func NewTokens(key []byte, accessTTL time.Duration, now func() time.Time) (*Tokens, error) {
	if len(key) < 32 {
		return nil, errors.New("token signing key must be at least 32 bytes")
	}
	return &Tokens{
		key: key, accessTTL: accessTTL, now: now,
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

// Verify checks an access token's signature, algorithm, issuer, expiry and type.
func (t *Tokens) Verify(token string) (accessClaims, error) {
	var c accessClaims
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.key, nil })
	if err != nil {
		return accessClaims{}, err
	}
	if c.Type != accessTokenType || c.Subject == "" || c.SessionID == "" {
		return accessClaims{}, errors.New("not an access token")
	}
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
