package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

// webProblemBody is a problem+json body as a client decodes it.
type webProblemBody struct {
	Type      string             `json:"type"`
	Title     string             `json:"title"`
	Status    int                `json:"status"`
	Detail    string             `json:"detail"`
	Code      string             `json:"code"`
	RequestID string             `json:"request_id"`
	Errors    []fault.FieldError `json:"errors"`
}

// webWriteError runs WriteError for err on a request carrying request ID
// "req-1" and returns the recorded response and its decoded problem.
func webWriteError(t *testing.T, err error) (*httptest.ResponseRecorder, webProblemBody) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r = r.WithContext(web.WithRequestID(r.Context(), "req-1"))
	w := httptest.NewRecorder()
	w.Header().Set("ETag", `"stale"`)
	web.WriteError(w, r, nil, err)
	return w, webDecodeProblem(t, w)
}

func webDecodeProblem(t *testing.T, w *httptest.ResponseRecorder) webProblemBody {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != web.ProblemContentType {
		t.Fatalf("Content-Type = %q, want %q", ct, web.ProblemContentType)
	}
	var p webProblemBody
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body is not JSON: %v: %s", err, w.Body.Bytes())
	}
	return p
}

func TestWriteErrorMapsEveryKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind   fault.Kind
		status int
		code   string
	}{
		{fault.Invalid, 400, "validation"},
		{fault.Unauthorized, 401, "unauthorized"},
		{fault.Forbidden, 403, "forbidden"},
		{fault.NotFound, 404, "not_found"},
		{fault.Conflict, 409, "conflict"},
		{fault.Unprocessable, 422, "unprocessable"},
		{fault.PaymentRequired, 402, "payment_required"},
		{fault.TooLarge, 413, "payload_too_large"},
		{fault.TooManyRequests, 429, "rate_limited"},
		{fault.Unavailable, 503, "unavailable"},
		{fault.BadGateway, 502, "bad_gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			if got := web.StatusOf(tt.kind); got != tt.status {
				t.Errorf("StatusOf(%v) = %d, want %d", tt.kind, got, tt.status)
			}
			msg := "client-safe message for " + tt.code
			w, p := webWriteError(t, fault.New(tt.kind, "", msg))
			if w.Code != tt.status || p.Status != tt.status {
				t.Errorf("status = %d (body %d), want %d", w.Code, p.Status, tt.status)
			}
			if p.Code != tt.code || p.Type != "urn:million:problem:"+tt.code {
				t.Errorf("code, type = %q, %q, want %q", p.Code, p.Type, tt.code)
			}
			if p.Title != http.StatusText(tt.status) {
				t.Errorf("title = %q, want %q", p.Title, http.StatusText(tt.status))
			}
			if p.Detail != msg {
				t.Errorf("detail = %q, want %q", p.Detail, msg)
			}
			if p.RequestID != "req-1" {
				t.Errorf("request_id = %q, want req-1", p.RequestID)
			}
			if got := w.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if got := w.Header().Get("ETag"); got != "" {
				t.Errorf("an error response kept ETag %q", got)
			}
			if got := w.Header().Get("Retry-After"); got != "" {
				t.Errorf("Retry-After = %q without a RetryAfter", got)
			}
		})
	}
}

func TestWriteErrorCustomCodeAndFields(t *testing.T) {
	t.Parallel()
	_, p := webWriteError(t, fault.New(fault.Conflict, "email_taken", "that email is registered"))
	if p.Code != "email_taken" || p.Type != "urn:million:problem:email_taken" {
		t.Errorf("code, type = %q, %q, want email_taken", p.Code, p.Type)
	}
	w, p := webWriteError(t, fmt.Errorf("handler: %w", fault.Fields(fault.FieldError{Field: "email", Message: "is required"})))
	if w.Code != 400 || len(p.Errors) != 1 || p.Errors[0] != (fault.FieldError{Field: "email", Message: "is required"}) {
		t.Errorf("wrapped field error: status %d, errors %v", w.Code, p.Errors)
	}
}

// Internal failures carry SQL, hostnames and file paths in their messages;
// none of it may reach a client.
func TestWriteErrorHidesInternalDetail(t *testing.T) {
	t.Parallel()
	const secret = "SELECT * FROM users; db.internal:5432 /var/lib/million"
	tests := []struct {
		name string
		err  error
	}{
		{"plain error", errors.New(secret)},
		{"wrapped cause", fault.Wrap(errors.New(secret), "load user "+secret)},
		{"internal kind with code", fault.New(fault.Internal, "db_"+secret, secret)},
		{"internal with fields", &fault.Error{Kind: fault.Internal, Message: secret, Fields: []fault.FieldError{{Field: secret, Message: secret}}}},
		{"unmapped kind", &fault.Error{Kind: fault.Kind(99), Code: "x", Message: secret}},
		{"wrapped unmapped kind", fmt.Errorf("ctx: %w", &fault.Error{Kind: fault.Kind(-1), Message: secret})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, p := webWriteError(t, tt.err)
			if w.Code != 500 || p.Status != 500 {
				t.Errorf("status = %d (body %d), want 500", w.Code, p.Status)
			}
			if strings.Contains(w.Body.String(), "SELECT") || strings.Contains(w.Body.String(), "db.internal") {
				t.Errorf("the response leaks the cause: %s", w.Body.String())
			}
			if p.Code != "internal" || p.Type != "urn:million:problem:internal" || p.Detail == "" || len(p.Errors) != 0 {
				t.Errorf("problem = %+v, want the generic internal problem", p)
			}
			if p.RequestID != "req-1" {
				t.Errorf("request_id = %q, want req-1 so the client can report it", p.RequestID)
			}
		})
	}
}

func TestWriteErrorRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind  fault.Kind
		after time.Duration
		want  string
	}{
		{fault.TooManyRequests, 30 * time.Second, "30"},
		{fault.TooManyRequests, 1500 * time.Millisecond, "2"},
		{fault.Unavailable, 10 * time.Millisecond, "1"},
		{fault.Unavailable, time.Second, "1"},
		{fault.TooManyRequests, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.after.String(), func(t *testing.T) {
			t.Parallel()
			w, _ := webWriteError(t, &fault.Error{Kind: tt.kind, Message: "slow down", RetryAfter: tt.after})
			if got := w.Header().Get("Retry-After"); got != tt.want {
				t.Errorf("Retry-After for %v = %q, want %q", tt.after, got, tt.want)
			}
		})
	}
}

func TestProblemForUsesContextRequestID(t *testing.T) {
	t.Parallel()
	ctx := web.WithRequestID(context.Background(), "abc-123")
	if p := web.ProblemFor(ctx, fault.New(fault.NotFound, "", "no such product")); p.RequestID != "abc-123" || p.Status != 404 {
		t.Errorf("ProblemFor = %+v, want 404 with request_id abc-123", p)
	}
}
