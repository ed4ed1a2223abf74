package web

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	principalKey
	clientIPKey
)

// Principal is the authenticated caller of a request.
type Principal struct {
	UserID    string
	SessionID string
	Role      string
}

// IsAdmin reports whether the caller has the admin role.
func (p Principal) IsAdmin() bool { return p.Role == "admin" }

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// PrincipalFrom returns the caller stored by the authentication middleware.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey).(Principal)
	return p, ok
}

// WithRequestID returns ctx carrying the request ID.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestIDFrom returns the request ID of ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// ClientIPFrom returns the client address the middleware resolved.
func ClientIPFrom(ctx context.Context) string {
	ip, _ := ctx.Value(clientIPKey).(string)
	return ip
}

// requestIDs makes request IDs unique within a process and, by a random
// prefix, across processes, at the cost of an atomic add instead of a read
// of the system's random source for each request. The IDs trace requests;
// they are not secrets.
var requestIDs struct {
	prefix [16]byte // hex of 8 random bytes
	next   atomic.Uint64
}

func init() {
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	hex.Encode(requestIDs.prefix[:], seed[:8])
	requestIDs.next.Store(binary.LittleEndian.Uint64(seed[8:]) >> 1) // any start: one process never wraps it
}

// NewRequestID returns a request ID (32 hex digits) that no other request
// of any process is expected to have.
func NewRequestID() string {
	const hexDigits = "0123456789abcdef"
	var b [32]byte
	copy(b[:16], requestIDs.prefix[:])
	n := requestIDs.next.Add(1)
	for i := 31; i >= 16; i-- {
		b[i] = hexDigits[n&0xf]
		n >>= 4
	}
	return string(b[:])
}

// ValidRequestID accepts incoming IDs that are safe to echo and log: 1 to 128
// characters of letters, digits, '-', '_', '.' and ':'.
func ValidRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}
