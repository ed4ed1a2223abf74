package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/millionshop/million/api"
	"github.com/millionshop/million/app"
	"github.com/millionshop/million/user"
)

// routesOpenApp opens a real App (SQLite in a temp dir) without listening.
func routesOpenApp(t *testing.T) *app.App {
	t.Helper()
	a, err := app.Open(context.Background(), app.Config{
		DataDir:        t.TempDir(),
		PasswordParams: user.PasswordParams{MemoryKiB: 1024, Iterations: 1, Parallelism: 1},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open app: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("close app: %v", err)
		}
	})
	return a
}

func routesDocumented(t *testing.T) []api.Operation {
	t.Helper()
	ops, err := api.Operations()
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// The OpenAPI document is the contract: every route the server registers
// must be documented, and every documented operation must be served.
func TestRoutesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	a := routesOpenApp(t)
	served := map[string]bool{}
	for _, r := range a.Routes() {
		if served[r] {
			t.Errorf("route %q is registered twice", r)
		}
		served[r] = true
	}
	documented := map[string]bool{}
	for _, op := range routesDocumented(t) {
		documented[op.String()] = true
	}
	for r := range served {
		if !documented[r] {
			t.Errorf("route %q is served but not in api/openapi.yaml", r)
		}
	}
	for op := range documented {
		if !served[op] {
			t.Errorf("operation %q is documented but not served", op)
		}
	}
	if len(served) == 0 || len(served) != len(documented) {
		t.Errorf("%d routes served, %d operations documented", len(served), len(documented))
	}
}

var routesParam = regexp.MustCompile(`\{[^}/]+\}`)

// routesSecured returns the documented operations that declare bearerAuth.
func routesSecured(t *testing.T) map[string]bool {
	t.Helper()
	// Path items also hold non-operation keys (parameters, summary), so
	// decode each value on its own and skip those that are not operations.
	var raw struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.Spec, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for path, item := range raw.Paths {
		for method, node := range item {
			var op struct {
				Security []map[string]any `yaml:"security"`
			}
			if err := node.Decode(&op); err != nil {
				continue // not an operation object
			}
			for _, req := range op.Security {
				if _, ok := req["bearerAuth"]; ok {
					out[strings.ToUpper(method)+" "+path] = true
				}
			}
		}
	}
	return out
}

// Every documented operation reaches a handler: the router never answers
// it with its own "no such route" 404 or a 405, whatever the path
// parameters hold; and the bearer requirement the document declares is the
// one the server enforces.
func TestDocumentedOperationsAreRouted(t *testing.T) {
	t.Parallel()
	a := routesOpenApp(t)
	h := a.Handler()
	secured := routesSecured(t)
	if len(secured) == 0 {
		t.Fatal("the document declares no bearerAuth operation")
	}
	for _, op := range routesDocumented(t) {
		for _, id := range []string{"0190f0e4-7b1c-7c3a-9f00-000000000000", "x", "%20"} {
			path := routesParam.ReplaceAllString(op.Path, id)
			if path == op.Path && id != "x" {
				continue // no parameter: one call is enough
			}
			r := httptest.NewRequest(op.Method, path, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			name := op.Method + " " + path
			if w.Code == http.StatusMethodNotAllowed {
				t.Errorf("%s (documented as %s) = 405: %s", name, op, w.Body.String())
			}
			if w.Code == http.StatusNotFound {
				var p struct {
					Detail string `json:"detail"`
				}
				_ = json.Unmarshal(w.Body.Bytes(), &p)
				if p.Detail == "no such route" {
					t.Errorf("%s (documented as %s) is not routed: %s", name, op, w.Body.String())
				}
			}
			if got := w.Code == http.StatusUnauthorized; got != secured[op.String()] {
				t.Errorf("%s without a token = %d; document declares bearerAuth = %v", name, w.Code, secured[op.String()])
			}
			if w.Code >= 500 && op.Path != "/readyz" {
				t.Errorf("%s = %d: %s", name, w.Code, w.Body.String())
			}
			if w.Header().Get("X-Request-ID") == "" {
				t.Errorf("%s: no X-Request-ID", name)
			}
		}
	}
}

// Methods the document does not declare on a documented path get 405 with
// an Allow header listing exactly the documented methods (plus HEAD, which
// every GET implies).
func TestUndocumentedMethodsAre405(t *testing.T) {
	t.Parallel()
	a := routesOpenApp(t)
	h := a.Handler()
	byPath := map[string][]string{}
	for _, op := range routesDocumented(t) {
		byPath[op.Path] = append(byPath[op.Path], op.Method)
		if op.Method == "GET" {
			byPath[op.Path] = append(byPath[op.Path], "HEAD")
		}
	}
	for tmpl, methods := range byPath {
		slices.Sort(methods)
		path := routesParam.ReplaceAllString(tmpl, "x")
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if slices.Contains(methods, m) {
				continue
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(m, path, nil))
			if w.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s = %d, want 405", m, path, w.Code)
				continue
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("%s %s: Content-Type %q", m, path, ct)
			}
			var allow []string
			for _, v := range strings.Split(w.Header().Get("Allow"), ",") {
				allow = append(allow, strings.TrimSpace(v))
			}
			slices.Sort(allow)
			if !slices.Equal(allow, methods) {
				t.Errorf("%s %s: Allow = %v, want %v", m, path, allow, methods)
			}
		}
	}
}
