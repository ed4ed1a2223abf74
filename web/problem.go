// Package web holds the HTTP plumbing every module's handlers share: strict
// JSON decoding, RFC 9457 problem responses, request IDs, authentication
// context, pagination parameters and the router that ties them together.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/millionshop/million/fault"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details body with million's extension
// members (code, request_id, errors).
type Problem struct {
	Type      string             `json:"type"`
	Title     string             `json:"title"`
	Status    int                `json:"status"`
	Detail    string             `json:"detail,omitempty"`
	Code      string             `json:"code"`
	RequestID string             `json:"request_id,omitempty"`
	Errors    []fault.FieldError `json:"errors,omitempty"`
}

var kindStatus = map[fault.Kind]int{
	fault.Internal:        http.StatusInternalServerError,
	fault.Invalid:         http.StatusBadRequest,
	fault.Unauthorized:    http.StatusUnauthorized,
	fault.Forbidden:       http.StatusForbidden,
	fault.NotFound:        http.StatusNotFound,
	fault.Conflict:        http.StatusConflict,
	fault.Unprocessable:   http.StatusUnprocessableEntity,
	fault.PaymentRequired: http.StatusPaymentRequired,
	fault.TooLarge:        http.StatusRequestEntityTooLarge,
	fault.TooManyRequests: http.StatusTooManyRequests,
	fault.Unavailable:     http.StatusServiceUnavailable,
	fault.BadGateway:      http.StatusBadGateway,
}

// StatusOf returns the HTTP status a fault kind maps to.
func StatusOf(kind fault.Kind) int {
	if s, ok := kindStatus[kind]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ProblemFor converts err into the problem a client may see. Internal errors
// become a generic 500 without any detail of the cause.
func ProblemFor(ctx context.Context, err error) Problem {
	var fe *fault.Error
	if !errors.As(err, &fe) {
		fe = &fault.Error{Kind: fault.Internal}
	}
	// A kind with no status is a bug in the caller, not something a client
	// may read about: treat it exactly like Internal.
	internal := fe.Kind == fault.Internal
	if _, known := kindStatus[fe.Kind]; !known {
		internal = true
	}
	status := StatusOf(fe.Kind)
	p := Problem{
		Type:      "urn:million:problem:" + fe.CodeOrDefault(),
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    fe.Message,
		Code:      fe.CodeOrDefault(),
		RequestID: RequestIDFrom(ctx),
		Errors:    fe.Fields,
	}
	if internal {
		p.Detail = "an internal error occurred; quote the request_id when reporting it"
		p.Code = "internal"
		p.Type = "urn:million:problem:internal"
		p.Errors = nil
	}
	return p
}

// WriteError writes err as problem+json and logs it when it is a server-side
// failure. It is the only place that turns errors into responses. The log
// line carries the request ID, which is all a client sees of a 500.
func WriteError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	p := ProblemFor(r.Context(), err)
	if p.Status >= 500 && logger != nil {
		logger.ErrorContext(r.Context(), "request failed", "error", err.Error(),
			"method", r.Method, "path", r.URL.Path, "status", p.Status, "request_id", p.RequestID)
	}
	var fe *fault.Error
	if errors.As(err, &fe) && fe.RetryAfter > 0 {
		secs := strconv.Itoa(max(int(fe.RetryAfter.Seconds()+0.999), 1))
		h := w.Header()
		h.Set("Retry-After", secs)
		if fe.Kind == fault.TooManyRequests && fe.Limit > 0 {
			// The IETF RateLimit header fields, so clients can pace themselves.
			h.Set("RateLimit-Limit", strconv.Itoa(fe.Limit))
			h.Set("RateLimit-Remaining", "0")
			h.Set("RateLimit-Reset", secs)
		}
	}
	WriteProblem(w, p)
}

// WriteProblem writes p with the problem+json media type.
func WriteProblem(w http.ResponseWriter, p Problem) {
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Cache-Control", "no-store")
	h.Del("ETag")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
