package api

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// doc parses Spec into generic maps, failing the test on error.
func doc(t *testing.T) map[string]any {
	t.Helper()
	var d map[string]any
	if err := yaml.Unmarshal(Spec, &d); err != nil {
		t.Fatalf("Spec is not valid YAML: %v", err)
	}
	return d
}

// resolve follows a local JSON pointer such as "#/components/schemas/User".
func resolve(d map[string]any, ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("%q is not a local reference", ref)
	}
	var cur any = d
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q: %q is not inside a mapping", ref, tok)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("%q: no member %q", ref, tok)
		}
	}
	return cur, nil
}

// deref returns v with any top-level $ref followed (repeatedly).
func deref(t *testing.T, d map[string]any, v any) map[string]any {
	t.Helper()
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("expected a mapping, got %T", v)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		if v, _ = resolve(d, ref); v == nil {
			t.Fatalf("unresolvable $ref %q", ref)
		}
	}
	t.Fatal("$ref chain too long")
	return nil
}

// walk calls fn for every value in the tree, with its location.
func walk(v any, at string, fn func(at string, v any)) {
	fn(at, v)
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			walk(c, at+"/"+k, fn)
		}
	case []any:
		for i, c := range v {
			walk(c, fmt.Sprintf("%s/%d", at, i), fn)
		}
	}
}

type op struct {
	method, path string
	item         map[string]any
}

// operations lists the operations of the parsed document.
func operations(t *testing.T, d map[string]any) []op {
	t.Helper()
	paths, ok := d["paths"].(map[string]any)
	if !ok || len(paths) == 0 {
		t.Fatal("no paths")
	}
	var ops []op
	for p, item := range paths {
		for k, v := range item.(map[string]any) {
			if httpMethods[k] {
				ops = append(ops, op{strings.ToUpper(k), p, v.(map[string]any)})
			}
		}
	}
	return ops
}

func TestSpecParses(t *testing.T) {
	d := doc(t)
	v, _ := d["openapi"].(string)
	if !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	info, _ := d["info"].(map[string]any)
	for _, k := range []string{"title", "version", "description"} {
		if s, _ := info[k].(string); s == "" {
			t.Errorf("info.%s is missing", k)
		}
	}
}

func TestOperationsHaveIDsSummariesAndSuccess(t *testing.T) {
	d := doc(t)
	code := regexp.MustCompile(`^[1-5]\d\d$`)
	seen := map[string]string{}
	for _, o := range operations(t, d) {
		name := o.method + " " + o.path
		id, _ := o.item["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", name)
		} else if prev, dup := seen[id]; dup {
			t.Errorf("%s: operationId %q already used by %s", name, id, prev)
		} else {
			seen[id] = name
		}
		if s, _ := o.item["summary"].(string); s == "" {
			t.Errorf("%s: no summary", name)
		}
		resp, _ := o.item["responses"].(map[string]any)
		ok2xx := false
		for k := range resp {
			if !code.MatchString(k) {
				t.Errorf("%s: response key %q is not a quoted status code", name, k)
			}
			if strings.HasPrefix(k, "2") {
				ok2xx = true
			}
		}
		if !ok2xx {
			t.Errorf("%s: no 2xx response", name)
		}
	}
}

func TestRefsResolve(t *testing.T) {
	d := doc(t)
	n := 0
	walk(d, "#", func(at string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		ref, ok := m["$ref"]
		if !ok {
			return
		}
		n++
		s, ok := ref.(string)
		if !ok || !strings.HasPrefix(s, "#/components/") {
			t.Errorf("%s: $ref %v does not point into components", at, ref)
			return
		}
		if _, err := resolve(d, s); err != nil {
			t.Errorf("%s: %v", at, err)
		}
	})
	if n == 0 {
		t.Error("no $ref found at all")
	}
}

func TestComponentsAreUsed(t *testing.T) {
	d := doc(t)
	used := map[string]bool{}
	walk(d, "#", func(_ string, v any) {
		if m, ok := v.(map[string]any); ok {
			if s, ok := m["$ref"].(string); ok {
				used[s] = true
			}
		}
	})
	comps, _ := d["components"].(map[string]any)
	for _, kind := range []string{"schemas", "responses", "parameters", "headers"} {
		group, _ := comps[kind].(map[string]any)
		for name := range group {
			if ref := "#/components/" + kind + "/" + name; !used[ref] {
				t.Errorf("%s is never referenced", ref)
			}
		}
	}
}

func TestOperationsList(t *testing.T) {
	want := []Operation{
		{"GET", "/healthz"},
		{"GET", "/openapi.yaml"},
		{"GET", "/readyz"},
		{"POST", "/v1/auth/login"},
		{"POST", "/v1/auth/logout"},
		{"POST", "/v1/auth/refresh"},
		{"POST", "/v1/auth/register"},
		{"DELETE", "/v1/cart"},
		{"GET", "/v1/cart"},
		{"DELETE", "/v1/cart/items/{product_id}"},
		{"PUT", "/v1/cart/items/{product_id}"},
		{"GET", "/v1/categories"},
		{"POST", "/v1/categories"},
		{"POST", "/v1/checkout"},
		{"GET", "/v1/me"},
		{"PATCH", "/v1/me"},
		{"GET", "/v1/orders"},
		{"GET", "/v1/orders/{id}"},
		{"POST", "/v1/orders/{id}/cancel"},
		{"POST", "/v1/payments/webhook"},
		{"GET", "/v1/products"},
		{"POST", "/v1/products"},
		{"DELETE", "/v1/products/{id}"},
		{"GET", "/v1/products/{id}"},
		{"PATCH", "/v1/products/{id}"},
		{"GET", "/v1/search"},
	}
	got, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 26 {
		t.Errorf("Operations() returned %d operations, want 26", len(got))
	}
	if !slices.Equal(got, want) {
		t.Errorf("Operations() =\n%v\nwant\n%v", got, want)
	}
	for _, o := range got {
		if o.Method != strings.ToUpper(o.Method) {
			t.Errorf("%v: method not upper case", o)
		}
	}
}

func TestSecurity(t *testing.T) {
	d := doc(t)
	admin := map[string]bool{
		"POST /v1/categories":      true,
		"POST /v1/products":        true,
		"PATCH /v1/products/{id}":  true,
		"DELETE /v1/products/{id}": true,
	}
	auth := map[string]bool{
		"GET /v1/me": true, "PATCH /v1/me": true, "POST /v1/auth/logout": true,
		"GET /v1/cart": true, "DELETE /v1/cart": true,
		"PUT /v1/cart/items/{product_id}": true, "DELETE /v1/cart/items/{product_id}": true,
		"POST /v1/checkout": true, "GET /v1/orders": true, "GET /v1/orders/{id}": true,
		"POST /v1/orders/{id}/cancel": true,
	}
	for k := range admin {
		auth[k] = true
	}
	if _, err := resolve(d, "#/components/securitySchemes/bearerAuth"); err != nil {
		t.Fatal(err)
	}
	for _, o := range operations(t, d) {
		name := o.method + " " + o.path
		sec, _ := o.item["security"].([]any)
		secured := false
		for _, req := range sec {
			if m, _ := req.(map[string]any); m != nil {
				if _, ok := m["bearerAuth"]; ok {
					secured = true
				}
			}
		}
		if secured != auth[name] {
			t.Errorf("%s: bearerAuth declared = %v, want %v", name, secured, auth[name])
		}
		resp, _ := o.item["responses"].(map[string]any)
		if _, ok := resp["401"]; ok != auth[name] && name != "POST /v1/auth/login" && name != "POST /v1/auth/refresh" {
			t.Errorf("%s: documents 401 = %v, want %v", name, ok, auth[name])
		}
		if _, ok := resp["403"]; ok != admin[name] {
			t.Errorf("%s: documents 403 = %v, want %v", name, ok, admin[name])
		}
	}
}

// strictObjects reports every object schema reachable from s that does not
// set additionalProperties: false.
func strictObjects(t *testing.T, d map[string]any, s any, at string) {
	t.Helper()
	m := deref(t, d, s)
	if typ, _ := m["type"].(string); typ == "object" {
		if ap, ok := m["additionalProperties"].(bool); !ok || ap {
			t.Errorf("%s: request schema lacks additionalProperties: false", at)
		}
	}
	props, _ := m["properties"].(map[string]any)
	for name, p := range props {
		strictObjects(t, d, p, at+"."+name)
	}
	if items, ok := m["items"]; ok {
		strictObjects(t, d, items, at+"[]")
	}
}

func TestRequestBodies(t *testing.T) {
	d := doc(t)
	for _, o := range operations(t, d) {
		name := o.method + " " + o.path
		rb, ok := o.item["requestBody"]
		if !ok {
			continue
		}
		body := deref(t, d, rb)
		content, _ := body["content"].(map[string]any)
		media, ok := content["application/json"].(map[string]any)
		if !ok || len(content) != 1 {
			t.Errorf("%s: request body must be application/json only", name)
			continue
		}
		strictObjects(t, d, media["schema"], name)
		resp, _ := o.item["responses"].(map[string]any)
		for _, code := range []string{"400", "413"} {
			if _, ok := resp[code]; !ok {
				t.Errorf("%s: takes a body but does not document %s", name, code)
			}
		}
	}
}

func TestResponses(t *testing.T) {
	d := doc(t)
	for _, o := range operations(t, d) {
		name := o.method + " " + o.path
		resp, _ := o.item["responses"].(map[string]any)
		for code, r := range resp {
			r := deref(t, d, r)
			if desc, _ := r["description"].(string); desc == "" {
				t.Errorf("%s %s: no description", name, code)
			}
			headers, _ := r["headers"].(map[string]any)
			if _, ok := headers["X-Request-ID"]; !ok {
				t.Errorf("%s %s: no X-Request-ID header", name, code)
			}
			if code >= "400" {
				content, _ := r["content"].(map[string]any)
				if _, ok := content["application/problem+json"]; !ok || len(content) != 1 {
					t.Errorf("%s %s: error must be application/problem+json only", name, code)
				}
			}
			if code == "429" || code == "503" {
				if _, ok := headers["Retry-After"]; !ok {
					t.Errorf("%s %s: no Retry-After header", name, code)
				}
			}
		}
		if strings.HasPrefix(o.path, "/v1/") {
			for _, code := range []string{"429", "500", "503"} {
				if _, ok := resp[code]; !ok {
					t.Errorf("%s: does not document %s", name, code)
				}
			}
		}
	}
}
