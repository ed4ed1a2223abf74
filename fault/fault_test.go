package fault_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/millionshop/million/fault"
)

func TestZeroKindIsInternal(t *testing.T) {
	t.Parallel()
	var e fault.Error
	if e.Kind != fault.Internal || e.CodeOrDefault() != "internal" {
		t.Errorf("zero Error: kind %v, code %q; an unclassified error must be internal", e.Kind, e.CodeOrDefault())
	}
	if got := fault.Kind(42).String(); got != "internal" {
		t.Errorf("unknown kind String() = %q, want internal", got)
	}
}

func TestWrap(t *testing.T) {
	t.Parallel()
	if fault.Wrap(nil, "x") != nil {
		t.Error("Wrap(nil) is not nil")
	}
	cause := errors.New("disk I/O error")
	err := fault.Wrap(cause, "read row")
	if fault.KindOf(err) != fault.Internal || !errors.Is(err, cause) {
		t.Errorf("Wrap(cause) = %v: kind %v, Is(cause) %v", err, fault.KindOf(err), errors.Is(err, cause))
	}
	if got, want := err.Error(), "read row: disk I/O error"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// A classified error keeps its kind through Wrap, even wrapped by fmt.
	nf := fmt.Errorf("lookup: %w", fault.New(fault.NotFound, "no_product", "no such product"))
	if got := fault.Wrap(nf, "load"); got != nf || fault.KindOf(got) != fault.NotFound || !fault.HasCode(got, "no_product") {
		t.Errorf("Wrap(classified) = %v, kind %v", got, fault.KindOf(got))
	}
}

func TestKindOfIsHasCode(t *testing.T) {
	t.Parallel()
	plain := errors.New("boom")
	if fault.KindOf(plain) != fault.Internal || fault.Is(plain, fault.Internal) || fault.HasCode(plain, "internal") {
		t.Error("a plain error must count as Internal for KindOf but match no *Error predicate")
	}
	e := fault.New(fault.Conflict, "", "taken")
	if !fault.Is(e, fault.Conflict) || fault.Is(e, fault.Invalid) || !fault.HasCode(e, "conflict") || e.Error() != "taken" {
		t.Errorf("New(Conflict): Is/HasCode/Error wrong: %v", e)
	}
	if got := fault.New(fault.TooLarge, "", "").Error(); got != "payload_too_large" {
		t.Errorf("Error() without message = %q, want the code", got)
	}
}

func TestValidatorCollectsAllFields(t *testing.T) {
	t.Parallel()
	var v fault.Validator
	if v.Err() != nil {
		t.Fatal("an empty validator reports an error")
	}
	v.Check(true, "ok", "never")
	v.Check(false, "email", "is required")
	v.Check(false, "password", "is too short")
	err := v.Err()
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind != fault.Invalid {
		t.Fatalf("Err() = %v, want Invalid", err)
	}
	want := []fault.FieldError{{Field: "email", Message: "is required"}, {Field: "password", Message: "is too short"}}
	if len(fe.Fields) != len(want) || fe.Fields[0] != want[0] || fe.Fields[1] != want[1] {
		t.Errorf("Fields = %v, want %v", fe.Fields, want)
	}
}

type sqlStateError string

func (e sqlStateError) Error() string    { return "sqlstate " + string(e) }
func (e sqlStateError) SQLState() string { return string(e) }

// TestWrapClassifiesTransientFailures: an unreachable or restarting database
// is a 503 the client may retry, never a 500.
func TestWrapClassifiesTransientFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want fault.Kind
	}{
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), fault.Unavailable},
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, fault.Unavailable},
		{"bad conn", driver.ErrBadConn, fault.Unavailable},
		{"admin shutdown 57P01", sqlStateError("57P01"), fault.Unavailable},
		{"connection failure 08006", sqlStateError("08006"), fault.Unavailable},
		{"too many connections 53300", sqlStateError("53300"), fault.Unavailable},
		{"syntax error 42601", sqlStateError("42601"), fault.Internal},
		{"NUL in text 22021", sqlStateError("22021"), fault.Invalid},
		{"plain", errors.New("boom"), fault.Internal},
	} {
		err := fault.Wrap(tc.err, "select")
		if got := fault.KindOf(err); got != tc.want {
			t.Errorf("%s: kind %v, want %v", tc.name, got, tc.want)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: the cause is lost", tc.name)
		}
	}
}
