package user_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/millionshop/million/user"
)

var tokenTestKey = []byte("unit-test-signing-key-0123456789abcdef")

// tokenTestClaims mirrors the access token's claims so tests can mint tokens
// the way an attacker (or a buggy signer) would.
type tokenTestClaims struct {
	SessionID string `json:"sid,omitempty"`
	Role      string `json:"role,omitempty"`
	Type      string `json:"typ,omitempty"`
	jwt.RegisteredClaims
}

func TestNewTokensRejectsShortKey(t *testing.T) {
	t.Parallel()
	if _, err := user.NewTokens([]byte("only-31-bytes-long-key-xxxxxxxx"), time.Minute, time.Now); err == nil {
		t.Fatal("NewTokens accepted a 31-byte key")
	}
}

func TestTokensAccessRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tk, err := user.NewTokens(tokenTestKey, 15*time.Minute, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tk.Access("user-1", "session-1", user.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tk.Verify(tok)
	if err != nil {
		t.Fatalf("Verify(own token): %v", err)
	}
	if c.Subject != "user-1" || c.SessionID != "session-1" || c.Role != user.RoleAdmin || c.Issuer != "million" {
		t.Errorf("claims = %+v, want sub user-1, sid session-1, role admin, iss million", c)
	}
	if got, want := c.ExpiresAt.Time, now.Add(15*time.Minute); !got.Equal(want) {
		t.Errorf("exp = %v, want %v", got, want)
	}
}

func TestTokensVerifyRejects(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tk, err := user.NewTokens(tokenTestKey, 15*time.Minute, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := func() tokenTestClaims {
		return tokenTestClaims{SessionID: "session-1", Role: user.RoleCustomer, Type: "access",
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: "million", Subject: "user-1",
				IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
				ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)),
			}}
	}
	sign := func(method jwt.SigningMethod, key any, c tokenTestClaims) string {
		t.Helper()
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatalf("sign %s: %v", method.Alg(), err)
		}
		return s
	}
	hs256 := func(mut func(*tokenTestClaims)) string {
		c := valid()
		mut(&c)
		return sign(jwt.SigningMethodHS256, tokenTestKey, c)
	}

	// The control proves the hand-made tokens below are refused for the one
	// defect each carries, not because the test mints tokens wrongly.
	if _, err := tk.Verify(hs256(func(*tokenTestClaims) {})); err != nil {
		t.Fatalf("Verify(valid hand-made token) = %v, want nil", err)
	}

	ownToken, err := tk.Access("user-1", "session-1", user.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	seg := strings.Split(ownToken, ".")
	head, payload, sig := seg[0], seg[1], seg[2]
	rawPayload, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	// Same signature, payload promoted to admin: the signature must no longer match.
	promoted := base64.RawURLEncoding.EncodeToString(bytes.Replace(rawPayload, []byte(`"role":"customer"`), []byte(`"role":"admin"`), 1))
	if promoted == payload {
		t.Fatalf("payload %s has no customer role to tamper with", rawPayload)
	}

	tests := []struct {
		name  string
		token string
	}{
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid())},
		{"own token with signature stripped", head + "." + payload + "."},
		{"HS384 with the right key", sign(jwt.SigningMethodHS384, tokenTestKey, valid())},
		{"HS512 with the right key", sign(jwt.SigningMethodHS512, tokenTestKey, valid())},
		{"RS256", sign(jwt.SigningMethodRS256, rsaKey, valid())},
		{"HS256 with a wrong key", sign(jwt.SigningMethodHS256, []byte("another-key-of-sufficient-length-0123456789"), valid())},
		{"wrong issuer", hs256(func(c *tokenTestClaims) { c.Issuer = "evil" })},
		{"no issuer", hs256(func(c *tokenTestClaims) { c.Issuer = "" })},
		{"expired", hs256(func(c *tokenTestClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Hour))
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Second))
		})},
		{"no expiry", hs256(func(c *tokenTestClaims) { c.ExpiresAt = nil })},
		{"issued in the future", hs256(func(c *tokenTestClaims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) })},
		{"not valid yet", hs256(func(c *tokenTestClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })},
		{"typ refresh", hs256(func(c *tokenTestClaims) { c.Type = "refresh" })},
		{"no typ", hs256(func(c *tokenTestClaims) { c.Type = "" })},
		{"no subject", hs256(func(c *tokenTestClaims) { c.Subject = "" })},
		{"no session", hs256(func(c *tokenTestClaims) { c.SessionID = "" })},
		{"tampered payload", head + "." + promoted + "." + sig},
		{"garbage", "not-a-jwt"},
		{"empty", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if c, err := tk.Verify(tc.token); err == nil {
				t.Fatalf("Verify accepted %q with claims %+v", tc.token, c)
			}
		})
	}
}

// TestTokensVerifiedTokenStillExpires: a token Verify accepted (and now
// remembers) is refused once its expiry passes, and remembering it lets no
// token through that differs from it by a byte.
func TestTokensVerifiedTokenStillExpires(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tk, err := user.NewTokens(tokenTestKey, 15*time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tk.Access("user-1", "session-1", user.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := tk.Verify(tok); err != nil {
			t.Fatalf("Verify(own token): %v", err)
		}
	}
	sig := strings.LastIndexByte(tok, '.') + 1 // the signature's first character carries 6 bits of it
	flipped := byte('A')
	if tok[sig] == 'A' {
		flipped = 'B'
	}
	tampered := tok[:sig] + string(flipped) + tok[sig+1:]
	if _, err := tk.Verify(tampered); err == nil {
		t.Fatal("a token one byte off the verified one was accepted")
	}
	mu.Lock()
	now = now.Add(15*time.Minute + time.Second)
	mu.Unlock()
	if _, err := tk.Verify(tok); err == nil {
		t.Fatal("a verified token was accepted after its expiry")
	}
}

// BenchmarkTokensVerify is a signed-in client's token checked on each of
// its requests: parsed and checked once, then remembered.
func BenchmarkTokensVerify(b *testing.B) {
	tk, err := user.NewTokens(tokenTestKey, 15*time.Minute, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tk.Access("01a24e93-5b54-74de-93a5-d56ddbffc2bf", "01a24e93-5b54-74de-93a5-d56ddbffc2c0", user.RoleCustomer)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tk.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
