// Package fault is million's one error type. Every module reports failures as
// *fault.Error with a Kind; the HTTP layer maps kinds to status codes in one
// place (package web), so business code never thinks in HTTP and internal
// details never reach a client.
package fault

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Kind classifies an error by what the caller can do about it.
type Kind int

// The kinds of error. The zero value is Internal so that an error nobody
// classified is never shown to a client in detail.
const (
	Internal        Kind = iota // a bug or an unexpected failure: 500, details logged, never shown
	Invalid                     // the request is malformed or breaks a rule: 400
	Unauthorized                // missing or bad credentials: 401
	Forbidden                   // authenticated but not allowed: 403
	NotFound                    // no such object, or not the caller's: 404
	Conflict                    // the state of the object forbids it: 409
	Unprocessable               // well-formed but contradicts an earlier request: 422
	PaymentRequired             // the payment was declined: 402
	TooLarge                    // the body is over the limit: 413
	TooManyRequests             // a rate limit was hit: 429
	Unavailable                 // a dependency is down or the server is overloaded: 503
	BadGateway                  // an upstream provider failed: 502
)

var kindNames = map[Kind]string{
	Internal: "internal", Invalid: "validation", Unauthorized: "unauthorized",
	Forbidden: "forbidden", NotFound: "not_found", Conflict: "conflict",
	Unprocessable: "unprocessable", PaymentRequired: "payment_required",
	TooLarge: "payload_too_large", TooManyRequests: "rate_limited",
	Unavailable: "unavailable", BadGateway: "bad_gateway",
}

// String returns the default machine-readable code of the kind.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "internal"
}

// FieldError names one invalid field of a request and why it is invalid.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a classified error. Message is safe to show to a client; Err is
// the underlying cause and is only logged.
type Error struct {
	Kind       Kind
	Code       string        // machine-readable code; defaults to Kind.String()
	Message    string        // human-readable, safe for clients
	Fields     []FieldError  // per-field problems for Invalid
	RetryAfter time.Duration // for TooManyRequests and Unavailable
	Limit      int           // for TooManyRequests: the quota that was used up
	Err        error         // cause, never shown to clients
}

// Error implements error.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.CodeOrDefault()
	}
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", msg, e.Err)
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// CodeOrDefault returns Code, or the kind's default code when Code is empty.
func (e *Error) CodeOrDefault() string {
	if e.Code != "" {
		return e.Code
	}
	return e.Kind.String()
}

// New returns an error of the given kind with a client-safe message.
func New(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Wrap classifies a cause as Internal with context for the logs.
func Wrap(err error, context string) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		return err
	}
	if dataException(err) {
		return &Error{Kind: Invalid, Message: "a value in the request cannot be stored",
			Err: fmt.Errorf("%s: %w", context, err)}
	}
	if transient(err) {
		return &Error{Kind: Unavailable, Message: "a dependency is unavailable or timed out; retry shortly",
			RetryAfter: time.Second, Err: fmt.Errorf("%s: %w", context, err)}
	}
	return &Error{Kind: Internal, Message: context, Err: err}
}

// dataException reports SQLSTATE class 22: the database refused a value
// (bad encoding such as NUL in text, out-of-range number). Validation should
// have caught it first; if it did not, the client still gets a 400, not a 500.
func dataException(err error) bool {
	var coded interface{ SQLState() string }
	return errors.As(err, &coded) && strings.HasPrefix(coded.SQLState(), "22")
}

// transient reports failures that say nothing about the request and may pass
// on retry: deadlines, broken or refused connections, and the SQLSTATE
// classes of connection loss (08), server shutdown or cancellation (57) and
// exhausted resources (53). They become 503 with Retry-After, not 500.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		switch code := coded.SQLState(); {
		case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "57"), strings.HasPrefix(code, "53"):
			return true
		}
	}
	return false
}

// Fields returns an Invalid error listing the given field problems.
func Fields(fields ...FieldError) *Error {
	return &Error{Kind: Invalid, Message: "the request has invalid fields", Fields: fields}
}

// RetryAfterOf returns the RetryAfter of err, 0 when it is not a *Error.
func RetryAfterOf(err error) time.Duration {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.RetryAfter
	}
	return 0
}

// LimitOf returns the Limit of err, 0 when it is not a *Error.
func LimitOf(err error) int {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Limit
	}
	return 0
}

// KindOf returns the Kind of err, Internal when it is not a *Error.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return Internal
}

// Is reports whether err is a *Error of the given kind.
func Is(err error, kind Kind) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.Kind == kind
}

// HasCode reports whether err is a *Error with the given code.
func HasCode(err error, code string) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.CodeOrDefault() == code
}

// Validator collects field errors so a handler reports all of them at once.
type Validator struct {
	fields []FieldError
}

// Check records message for field when ok is false.
func (v *Validator) Check(ok bool, field, message string) {
	if !ok {
		v.fields = append(v.fields, FieldError{Field: field, Message: message})
	}
}

// Err returns nil when every check passed, else an Invalid error.
func (v *Validator) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return Fields(v.fields...)
}
