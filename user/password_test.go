package user_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/millionshop/million/user"
)

// cheapParams keep argon2id real but fast enough for unit tests.
var cheapParams = user.PasswordParams{MemoryKiB: 1024, Iterations: 1, Parallelism: 1}

func TestHashPasswordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"correct horse battery", "pässwörd-ünïcode-✓", strings.Repeat("x", 128)} {
		hash, err := user.HashPassword(pw, cheapParams)
		if err != nil {
			t.Fatalf("HashPassword(%q): %v", pw, err)
		}
		if ok, err := user.VerifyPassword(pw, hash); err != nil || !ok {
			t.Errorf("VerifyPassword(right password) = %v, %v; want true, nil", ok, err)
		}
		for _, wrong := range []string{pw + "!", strings.ToUpper(pw), pw[:len(pw)-1], ""} {
			if ok, err := user.VerifyPassword(wrong, hash); err != nil || ok {
				t.Errorf("VerifyPassword(%q) against hash of %q = %v, %v; want false, nil", wrong, pw, ok, err)
			}
		}
	}
}

// TestHashPasswordIsSaltedPHC proves the hash records its own cost (so the
// cost can be raised later without breaking old hashes) and is salted (two
// hashes of one password differ).
func TestHashPasswordIsSaltedPHC(t *testing.T) {
	t.Parallel()
	params := user.PasswordParams{MemoryKiB: 2048, Iterations: 3, Parallelism: 2}
	a, err := user.HashPassword("same password", params)
	if err != nil {
		t.Fatal(err)
	}
	b, err := user.HashPassword("same password", params)
	if err != nil {
		t.Fatal(err)
	}
	wantPrefix := "$argon2id$v=19$m=2048,t=3,p=2$"
	if !strings.HasPrefix(a, wantPrefix) {
		t.Errorf("hash = %q, want prefix %q", a, wantPrefix)
	}
	if parts := strings.Split(a, "$"); len(parts) != 6 || len(parts[4]) < 16 || len(parts[5]) < 32 {
		t.Errorf("hash %q does not have a salt and key of the expected size", a)
	}
	if a == b {
		t.Errorf("two hashes of the same password are identical (%q): not salted", a)
	}
	// The hash made with other params verifies under those params, not the defaults.
	if ok, err := user.VerifyPassword("same password", a); err != nil || !ok {
		t.Errorf("VerifyPassword = %v, %v; want true", ok, err)
	}
}

func TestVerifyPasswordRejectsMalformedHashes(t *testing.T) {
	t.Parallel()
	good, err := user.HashPassword("password-123", cheapParams)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=...,t=...,p=..., salt, key
	salt, key := parts[4], parts[5]
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	tests := []struct {
		name string
		hash string
	}{
		{"empty", ""},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"plain text", "password-123"},
		{"prefix before the first $", "x" + good},
		{"too few fields", strings.Join(parts[:5], "$")},
		{"too many fields", good + "$extra"},
		{"argon2i", with(1, "argon2i")},
		{"argon2d", with(1, "argon2d")},
		{"old version 16", with(2, "v=16")},
		{"version with trailing garbage", with(2, "v=19x")},
		{"version missing", with(2, "19")},
		{"params out of order", with(3, "t=1,m=1024,p=1")},
		{"params with trailing garbage", with(3, "m=1024,t=1,p=1,x=9")},
		{"params with trailing letters", with(3, "m=1024,t=1,p=1abc")},
		{"params with sign", with(3, "m=+1024,t=1,p=1")},
		{"memory zero", with(3, "m=0,t=1,p=1")},
		{"memory over 1 GiB", with(3, fmt.Sprintf("m=%d,t=1,p=1", 1<<20+1))},
		{"iterations zero", with(3, "m=1024,t=0,p=1")},
		{"iterations over 16", with(3, "m=1024,t=17,p=1")},
		{"parallelism zero", with(3, "m=1024,t=1,p=0")},
		{"parallelism overflows uint8", with(3, "m=1024,t=1,p=256")},
		{"salt not base64", with(4, "!!!!"+salt)},
		{"salt padded base64", with(4, salt+"==")},
		{"salt empty", with(4, "")},
		{"salt under 8 bytes", with(4, "AAAAAAA")}, // 5 bytes
		{"key not base64", with(5, "@@"+key)},
		{"key empty", with(5, "")},
		{"key under 4 bytes", with(5, "AAA")}, // 2 bytes
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, err := user.VerifyPassword("password-123", tc.hash)
			if err == nil || ok {
				t.Fatalf("VerifyPassword(%q) = %v, %v; want false and an error", tc.hash, ok, err)
			}
		})
	}
}
