package web_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/millionshop/million/web"
)

func TestETagIsStableAndDistinct(t *testing.T) {
	t.Parallel()
	a, b := web.ETag([]byte(`{"price_cents":100}`)), web.ETag([]byte(`{"price_cents":101}`))
	if a != web.ETag([]byte(`{"price_cents":100}`)) {
		t.Error("ETag is not deterministic")
	}
	if a == b {
		t.Errorf("different bodies share ETag %s", a)
	}
	if len(a) < 3 || a[0] != '"' || a[len(a)-1] != '"' {
		t.Errorf("ETag %s is not a quoted strong tag", a)
	}
}

func TestEncodedIfNoneMatch(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"p1","price_cents":100}`)
	enc, err := web.Encode(map[string]any{"id": "p1", "price_cents": 100}, 5*time.Second, 30*time.Second, "product-p1", "products")
	if err != nil {
		t.Fatal(err)
	}
	tag := web.ETag(body)
	other := web.ETag([]byte("other"))
	tests := []struct {
		name        string
		ifNoneMatch string
		want        int
	}{
		{"no header", "", 200},
		{"exact", tag, 304},
		{"weak form", "W/" + tag, 304},
		{"in a list", other + ", " + tag, 304},
		{"in a list without spaces", other + "," + tag + "," + other, 304},
		{"weak in a list", other + ",W/" + tag, 304},
		{"star", "*", 304},
		{"other tag", other, 200},
		{"unquoted", tag[1 : len(tag)-1], 200},
		{"prefix of tag", tag[:len(tag)-2] + `"`, 200},
		{"lowercase weak prefix", "w/" + tag, 200},
		{"garbage", `"`, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/v1/products/p1", nil)
			if tt.ifNoneMatch != "" {
				r.Header.Set("If-None-Match", tt.ifNoneMatch)
			}
			w := httptest.NewRecorder()
			enc.Write(w, r)
			if w.Code != tt.want {
				t.Fatalf("If-None-Match %q: status %d, want %d", tt.ifNoneMatch, w.Code, tt.want)
			}
			if got := w.Header().Get("ETag"); got != tag {
				t.Errorf("ETag = %q, want %q", got, tag)
			}
			if got := w.Header().Get("Cache-Control"); got != "public, max-age=5, stale-while-revalidate=30" {
				t.Errorf("Cache-Control = %q", got)
			}
			if got := w.Header().Get("Surrogate-Key"); got != "product-p1 products" {
				t.Errorf("Surrogate-Key = %q", got)
			}
			switch tt.want {
			case 304:
				if w.Body.Len() != 0 {
					t.Errorf("304 carries a body: %q", w.Body.String())
				}
			case 200:
				if got := w.Body.String(); got != string(body)+"\n" {
					t.Errorf("body = %q, want %q", got, body)
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(len(body)+1) {
					t.Errorf("Content-Length = %q, want %d", cl, len(body)+1)
				}
			}
		})
	}
}
