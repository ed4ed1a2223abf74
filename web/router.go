package web

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/millionshop/million/fault"
)

// HandlerFunc is an HTTP handler that reports failure by returning an error;
// the router turns the error into a problem response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Authenticator verifies a bearer token and returns its caller.
// It returns fault.Unauthorized for any token that must be refused.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// Observer receives one call per finished request, for metrics.
type Observer interface {
	ObserveRequest(route, method string, status int, elapsed time.Duration)
}

// Access says who may call a route.
type Access int

// Route access levels.
const (
	Public        Access = iota // anyone
	Authenticated               // a valid access token
	Admin                       // a valid access token of an admin
)

// Router is the public API's request multiplexer. It records every pattern
// it serves so the OpenAPI document can be checked against it.
type Router struct {
	mux      *http.ServeMux // every route, and unmatched for the rest
	routes   *http.ServeMux // every route alone: what a miss should answer
	logger   *slog.Logger
	authn    Authenticator
	observer Observer
	patterns []string
}

// NewRouter returns a router. authn may be nil when no route needs it;
// observer may be nil.
func NewRouter(logger *slog.Logger, authn Authenticator, observer Observer) *Router {
	rt := &Router{mux: http.NewServeMux(), routes: http.NewServeMux(), logger: logger, authn: authn, observer: observer}
	// The catch-all matches only what no route does (it is the least
	// specific pattern), so a request is looked up once.
	rt.mux.HandleFunc("/", rt.unmatched)
	return rt
}

// Handle registers h for pattern ("METHOD /path/{param}") with the given access.
func (rt *Router) Handle(pattern string, access Access, h HandlerFunc) {
	rt.patterns = append(rt.patterns, pattern)
	method, route, _ := strings.Cut(pattern, " ")
	rt.routes.Handle(pattern, http.NotFoundHandler()) // only asked which patterns match
	rt.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := requestStart(r)
		sw := asStatusWriter(w)
		var err error
		if access == Public {
			err = h(sw, r) // no caller to add: spare the request copy
		} else {
			var ctx context.Context
			if ctx, err = rt.authorize(r, access); err == nil {
				err = h(sw, r.WithContext(ctx))
			}
		}
		if err != nil {
			WriteError(sw, r, rt.logger, err)
		}
		if rt.observer != nil {
			rt.observer.ObserveRequest(route, method, sw.status, time.Since(start))
		}
	}))
}

// authorize checks access and returns the request context, carrying the
// caller for authenticated routes.
func (rt *Router) authorize(r *http.Request, access Access) (context.Context, error) {
	ctx := r.Context()
	if access == Public {
		return ctx, nil
	}
	if rt.authn == nil {
		return ctx, fault.New(fault.Internal, "", "no authenticator configured")
	}
	token, ok := bearerToken(r)
	if !ok {
		return ctx, fault.New(fault.Unauthorized, "", "an Authorization: Bearer token is required")
	}
	p, err := rt.authn.Authenticate(ctx, token)
	if err != nil {
		return ctx, err
	}
	if access == Admin && !p.IsAdmin() {
		return ctx, fault.New(fault.Forbidden, "", "this operation needs the admin role")
	}
	return WithPrincipal(ctx, p), nil
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// Patterns returns every pattern registered so far, sorted.
func (rt *Router) Patterns() []string {
	out := append([]string(nil), rt.patterns...)
	sort.Strings(out)
	return out
}

// ServeHTTP dispatches r, answering unknown routes and wrong methods with
// problem+json instead of the standard library's plain text.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt.mux.ServeHTTP(w, r)
}

// unmatched answers a request no route matches.
func (rt *Router) unmatched(w http.ResponseWriter, r *http.Request) {
	// Ask a mux without the catch-all what it would answer (404, or 405
	// with Allow) without letting it write its plain-text body.
	h, _ := rt.routes.Handler(r)
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", probe.header.Get("Allow"))
		WriteProblem(w, Problem{Type: "urn:million:problem:method_not_allowed", Title: "Method Not Allowed",
			Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Detail: "this path does not support " + r.Method, RequestID: RequestIDFrom(r.Context())})
	default:
		WriteProblem(w, Problem{Type: "urn:million:problem:not_found", Title: "Not Found",
			Status: http.StatusNotFound, Code: "not_found",
			Detail: "no such route", RequestID: RequestIDFrom(r.Context())})
	}
	if rt.observer != nil {
		rt.observer.ObserveRequest("unmatched", methodLabel(r.Method), probe.status, 0)
	}
}

// methodLabel is r.Method for the methods of RFC 9110 and PATCH, and
// "OTHER" for the rest: any token is a method to net/http, and a client
// must not be able to grow the metrics without bound.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "OTHER"
}

type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(status int)      { p.status = status }

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func asStatusWriter(w http.ResponseWriter) *statusWriter {
	if sw, ok := w.(*statusWriter); ok {
		return sw
	}
	return &statusWriter{ResponseWriter: w, status: http.StatusOK}
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status = status
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// WriteString writes s without copying it into a byte slice, when the
// underlying writer can (net/http's can).
func (w *statusWriter) WriteString(s string) (int, error) {
	w.wrote = true
	return io.WriteString(w.ResponseWriter, s)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// MiddlewareOptions tune Middleware.
type MiddlewareOptions struct {
	TrustProxy bool          // take the client IP from the last X-Forwarded-For entry (one trusted proxy in front)
	AccessLog  bool          // log one line per request
	Timeout    time.Duration // deadline of each request's context; 0 means none
}

// Middleware wraps the whole public handler: it assigns request IDs, resolves
// the client IP, sets the request deadline, recovers panics into 500
// problems and writes the access log.
func Middleware(logger *slog.Logger, opts MiddlewareOptions, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The canonical key, read directly: Header.Get would canonicalize
		// "X-Request-ID" into a new string on every request.
		var id string
		if v := r.Header["X-Request-Id"]; len(v) > 0 {
			id = v[0]
		}
		if !ValidRequestID(id) {
			id = NewRequestID()
		}
		rc := &requestContext{Context: r.Context(), id: id, clientIP: ClientIP(r, opts.TrustProxy), start: start,
			writer: statusWriter{ResponseWriter: w, status: http.StatusOK}, idHeader: [1]string{id}}
		// Full slice of the context's own array: an Add to the header
		// copies it rather than writing past it.
		w.Header()["X-Request-Id"] = rc.idHeader[:1:1]
		if opts.Timeout > 0 {
			rc.deadline = start.Add(opts.Timeout)
		}
		defer rc.end()
		ctx := context.Context(rc)
		r = r.WithContext(ctx)
		sw := &rc.writer
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.ErrorContext(ctx, "panic serving request", "panic", v, "stack", string(debug.Stack()),
					"request_id", id, "method", r.Method, "path", r.URL.Path)
				if !sw.wrote {
					WriteError(sw, r, nil, fault.New(fault.Internal, "", "panic"))
				}
			}
			if opts.AccessLog {
				logger.InfoContext(ctx, "request", "method", r.Method, "path", r.URL.Path,
					"status", sw.status, "duration_ms", float64(time.Since(start).Microseconds())/1000,
					"client_ip", ClientIPFrom(ctx), "request_id", id)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// ClientIP returns the address of the client: the peer, or with trustProxy
// the last X-Forwarded-For entry, the one the trusted proxy appended.
func ClientIP(r *http.Request, trustProxy bool) string {
	if trustProxy {
		// The trusted proxy appends the address it saw to whatever the
		// client sent, so only the last entry is trustworthy; earlier ones
		// are client-controlled and would let anyone pick their rate-limit key.
		if xff := strings.Join(r.Header.Values("X-Forwarded-For"), ","); xff != "" {
			last := xff[strings.LastIndexByte(xff, ',')+1:]
			if ip := net.ParseIP(strings.TrimSpace(last)); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
