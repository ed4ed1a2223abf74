package web

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/millionshop/million/fault"
)

// Page size bounds for every list endpoint.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Page is one page of a cursor-paginated list.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Limit parses the limit query parameter: absent means DefaultLimit,
// anything but an integer in 1..MaxLimit is a client error.
func Limit(q url.Values) (int, error) {
	raw, present := q["limit"]
	if !present {
		return DefaultLimit, nil
	}
	if len(raw) != 1 {
		return 0, fault.Fields(fault.FieldError{Field: "limit", Message: "must be given once"})
	}
	n, err := strconv.Atoi(raw[0])
	if err != nil || n < 1 || n > MaxLimit {
		return 0, fault.Fields(fault.FieldError{Field: "limit", Message: "must be an integer from 1 to 100"})
	}
	return n, nil
}

// Single returns the only value of a query parameter, "" when absent, and
// an error when it is repeated.
func Single(q url.Values, name string) (string, error) {
	v := q[name]
	switch len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	default:
		return "", fault.Fields(fault.FieldError{Field: name, Message: "must be given once"})
	}
}

// Cursor returns the cursor query parameter: "" when absent, an error when
// it is repeated or present but empty (a client bug worth reporting).
func Cursor(q url.Values) (string, error) {
	cursor, err := Single(q, "cursor")
	if err != nil {
		return "", err
	}
	if _, present := q["cursor"]; present && cursor == "" {
		return "", fault.Fields(fault.FieldError{Field: "cursor", Message: "must not be empty"})
	}
	return cursor, nil
}

// MaxIDLen bounds the IDs the API hands out (UUIDs are 36 characters).
const MaxIDLen = 64

// PathID returns the named path parameter as an object ID. Anything that
// cannot be an ID million issued (too long, or characters other than
// letters, digits, '-', '_', '.', ':') is answered 404 at once, the same as
// an ID that does not exist, without reaching storage.
func PathID(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if !ValidID(id) {
		return "", fault.New(fault.NotFound, "", "no such object")
	}
	return id, nil
}

// ValidID reports whether s could be an ID million issued: 1 to MaxIDLen
// letters, digits, '-', '_', '.' or ':'. Paths and cursors are checked with
// it, so a forged value never reaches storage.
func ValidID(s string) bool {
	ok := len(s) > 0 && len(s) <= MaxIDLen
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
	}
	return ok
}
