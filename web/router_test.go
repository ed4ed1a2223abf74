package web_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

const webPanicText = "secret panic text: password=hunter2"

// webTestRouter returns a router behind the real middleware, with a log
// buffer to check what is logged.
func webTestRouter(t *testing.T) (http.Handler, *web.Router, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	rt := web.NewRouter(logger, nil, nil)
	rt.Handle("GET /items/{id}", web.Public, func(w http.ResponseWriter, r *http.Request) error {
		web.WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
		return nil
	})
	rt.Handle("POST /items", web.Public, func(w http.ResponseWriter, r *http.Request) error {
		return fault.New(fault.Conflict, "duplicate_sku", "that sku exists")
	})
	rt.Handle("GET /panic", web.Public, func(w http.ResponseWriter, r *http.Request) error {
		panic(webPanicText)
	})
	rt.Handle("GET /fail", web.Public, func(w http.ResponseWriter, r *http.Request) error {
		return fault.Wrap(errors.New("disk I/O error at /var/lib/million/million.db"), "load item")
	})
	return web.Middleware(logger, web.MiddlewareOptions{AccessLog: true}, rt), rt, &logs
}

func webServe(h http.Handler, method, path string, headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestRouterServesRoutes(t *testing.T) {
	t.Parallel()
	h, rt, _ := webTestRouter(t)
	w := webServe(h, "GET", "/items/abc")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"id":"abc"`) {
		t.Errorf("GET /items/abc = %d %s", w.Code, w.Body.String())
	}
	w = webServe(h, "POST", "/items")
	if p := webDecodeProblem(t, w); w.Code != 409 || p.Code != "duplicate_sku" || p.RequestID != w.Header().Get("X-Request-ID") {
		t.Errorf("POST /items = %d %+v", w.Code, p)
	}
	if got, want := rt.Patterns(), []string{"GET /fail", "GET /items/{id}", "GET /panic", "POST /items"}; !slices.Equal(got, want) {
		t.Errorf("Patterns() = %v, want %v", got, want)
	}
}

func TestRouterUnknownPath(t *testing.T) {
	t.Parallel()
	h, _, _ := webTestRouter(t)
	for _, path := range []string{"/nope", "/", "/items/a/b", "/v1/items/a", "/ITEMS/a"} {
		w := webServe(h, "GET", path)
		if w.Code != 404 {
			t.Errorf("GET %s = %d, want 404", path, w.Code)
			continue
		}
		p := webDecodeProblem(t, w)
		if p.Status != 404 || p.Code != "not_found" || p.Title == "" || p.RequestID == "" || p.RequestID != w.Header().Get("X-Request-ID") {
			t.Errorf("GET %s problem = %+v", path, p)
		}
	}
}

func TestRouterWrongMethod(t *testing.T) {
	t.Parallel()
	h, _, _ := webTestRouter(t)
	tests := []struct {
		method, path string
		allow        []string
	}{
		{"DELETE", "/items/abc", []string{"GET", "HEAD"}},
		{"POST", "/items/abc", []string{"GET", "HEAD"}},
		{"GET", "/items", []string{"POST"}},
		{"PATCH", "/items", []string{"POST"}},
	}
	for _, tt := range tests {
		w := webServe(h, tt.method, tt.path)
		if w.Code != 405 {
			t.Errorf("%s %s = %d, want 405", tt.method, tt.path, w.Code)
			continue
		}
		p := webDecodeProblem(t, w)
		if p.Status != 405 || p.Code != "method_not_allowed" || p.RequestID == "" {
			t.Errorf("%s %s problem = %+v", tt.method, tt.path, p)
		}
		var allow []string
		for _, m := range strings.Split(w.Header().Get("Allow"), ",") {
			allow = append(allow, strings.TrimSpace(m))
		}
		slices.Sort(allow)
		if !slices.Equal(allow, tt.allow) {
			t.Errorf("%s %s: Allow = %q, want %v", tt.method, tt.path, w.Header().Get("Allow"), tt.allow)
		}
	}
}

func TestMiddlewareRecoversPanics(t *testing.T) {
	t.Parallel()
	h, _, logs := webTestRouter(t)
	w := webServe(h, "GET", "/panic", "X-Request-ID", "panic-req-1")
	if w.Code != 500 {
		t.Fatalf("status = %d, want 500", w.Code)
	}
	p := webDecodeProblem(t, w)
	if p.Status != 500 || p.Code != "internal" || p.RequestID != "panic-req-1" {
		t.Errorf("problem = %+v", p)
	}
	if strings.Contains(w.Body.String(), "hunter2") || strings.Contains(w.Body.String(), "goroutine") {
		t.Errorf("the response leaks the panic: %s", w.Body.String())
	}
	// The operator still needs to see what happened, tied to the request.
	logged := false
	for _, line := range strings.Split(logs.String(), "\n") {
		logged = logged || strings.Contains(line, "hunter2") && strings.Contains(line, `"request_id":"panic-req-1"`)
	}
	if !logged {
		t.Errorf("the panic was not logged with its request ID: %s", logs.String())
	}
	// The server keeps serving after a panic.
	if w := webServe(h, "GET", "/items/x"); w.Code != 200 {
		t.Errorf("after a panic, GET /items/x = %d", w.Code)
	}
}

// A 500 shows the client only a request ID, so the log line with the cause
// must carry that ID.
func TestInternalErrorLoggedWithRequestID(t *testing.T) {
	t.Parallel()
	h, _, logs := webTestRouter(t)
	w := webServe(h, "GET", "/fail", "X-Request-ID", "fail-req-7")
	p := webDecodeProblem(t, w)
	if w.Code != 500 || p.Code != "internal" || p.RequestID != "fail-req-7" {
		t.Fatalf("GET /fail = %d %+v", w.Code, p)
	}
	if strings.Contains(w.Body.String(), "disk") || strings.Contains(w.Body.String(), "/var/lib") {
		t.Errorf("the response leaks the cause: %s", w.Body.String())
	}
	var found bool
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "disk I/O error") && strings.Contains(line, `"request_id":"fail-req-7"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no log line has both the cause and the request ID: %s", logs.String())
	}
}

func TestMiddlewareRequestID(t *testing.T) {
	t.Parallel()
	h, _, _ := webTestRouter(t)
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name, sent string
		echoed     bool
	}{
		{"simple", "abc-123", true},
		{"all allowed characters", "Az09-_.:", true},
		{"uuid", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"129 characters", strings.Repeat("a", 129), false},
		{"500 characters", strings.Repeat("r", 500), false},
		{"spaces", "abc 123", false},
		{"slash", "a/b", false},
		{"quote", `a"b`, false},
		{"non-ASCII", "réq", false},
		{"log injection", "a\tb", false},
		{"absent", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{"/items/x", "/nope"} {
				var w *httptest.ResponseRecorder
				if tt.sent == "" {
					w = webServe(h, "GET", path)
				} else {
					w = webServe(h, "GET", path, "X-Request-ID", tt.sent)
				}
				got := w.Header().Get("X-Request-ID")
				if tt.echoed && got != tt.sent {
					t.Errorf("GET %s: X-Request-ID = %q, want the valid %q echoed", path, got, tt.sent)
				}
				if !tt.echoed && (got == tt.sent || !generated.MatchString(got)) {
					t.Errorf("GET %s: X-Request-ID = %q for invalid %q, want a fresh one", path, got, tt.sent)
				}
				if w.Code == 404 {
					if p := webDecodeProblem(t, w); p.RequestID != got {
						t.Errorf("problem request_id = %q, header %q", p.RequestID, got)
					}
				}
			}
		})
	}
	a := webServe(h, "GET", "/items/x").Header().Get("X-Request-ID")
	b := webServe(h, "GET", "/items/x").Header().Get("X-Request-ID")
	if a == b {
		t.Errorf("two requests got the same generated ID %q", a)
	}
}

// TestClientIPFromTrustedProxy: behind one trusted proxy only the entry it
// appended counts; what the client wrote in X-Forwarded-For is ignored, so
// nobody chooses their own rate-limit key. Without TrustProxy the header is
// ignored entirely.
func TestClientIPFromTrustedProxy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		trust bool
		xff   []string
		want  string
	}{
		{"no proxy trusted", false, []string{"203.0.113.9"}, "192.0.2.1"},
		{"proxy appended", true, []string{"203.0.113.9"}, "203.0.113.9"},
		{"client forged a first entry", true, []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"two header lines", true, []string{"1.2.3.4", "203.0.113.9"}, "203.0.113.9"},
		{"garbage last entry", true, []string{"203.0.113.9, nonsense"}, "192.0.2.1"},
		{"no header", true, nil, "192.0.2.1"},
	} {
		var got string
		h := web.Middleware(slog.New(slog.NewTextHandler(io.Discard, nil)), web.MiddlewareOptions{TrustProxy: tc.trust},
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = web.ClientIPFrom(r.Context()) }))
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "192.0.2.1:4444"
		for _, v := range tc.xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		if got != tc.want {
			t.Errorf("%s: client IP %q, want %q", tc.name, got, tc.want)
		}
	}
}

type recordedRequest struct {
	route, method string
	status        int
}

type recordingObserver struct {
	mu   sync.Mutex
	seen []recordedRequest
}

func (o *recordingObserver) ObserveRequest(route, method string, status int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, recordedRequest{route, method, status})
}

// TestRouterObservesBoundedLabels: a matched request is recorded under its
// pattern, an unmatched one under "unmatched", and a method outside the
// standard ones as OTHER, so that a client cannot mint metric series.
func TestRouterObservesBoundedLabels(t *testing.T) {
	t.Parallel()
	obs := &recordingObserver{}
	rt := web.NewRouter(slog.New(slog.DiscardHandler), nil, obs)
	rt.Handle("GET /items/{id}", web.Public, func(w http.ResponseWriter, r *http.Request) error {
		web.WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
		return nil
	})
	h := web.Middleware(slog.New(slog.DiscardHandler), web.MiddlewareOptions{}, rt)
	for _, req := range []struct{ method, path string }{
		{"GET", "/items/a"}, {"DELETE", "/items/a"}, {"BREW", "/items/a"}, {"X-ANYTHING-123", "/nope"}, {"GET", "/nope"},
	} {
		webServe(h, req.method, req.path)
	}
	want := []recordedRequest{
		{"/items/{id}", "GET", 200}, {"unmatched", "DELETE", 405}, {"unmatched", "OTHER", 405},
		{"unmatched", "OTHER", 404}, {"unmatched", "GET", 404},
	}
	if !slices.Equal(obs.seen, want) {
		t.Errorf("observed %v, want %v", obs.seen, want)
	}
}

// TestNewRequestIDUnique: IDs drawn at once from many goroutines are all
// distinct and all 32 hex digits.
func TestNewRequestIDUnique(t *testing.T) {
	t.Parallel()
	const workers, each = 8, 2000
	ids := make(chan string, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				ids <- web.NewRequestID()
			}
		})
	}
	wg.Wait()
	close(ids)
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := make(map[string]bool, workers*each)
	for id := range ids {
		if !generated.MatchString(id) || seen[id] {
			t.Fatalf("request ID %q: malformed or repeated", id)
		}
		seen[id] = true
	}
}
