package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/catalog"
)

// stringWriter records how the body reached it, as net/http's writer,
// which has WriteString, would receive it.
type stringWriter struct {
	discardWriter
	strings, writes int
}

func (w *stringWriter) Write(b []byte) (int, error)       { w.writes++; return len(b), nil }
func (w *stringWriter) WriteString(s string) (int, error) { w.strings++; return len(s), nil }

// TestCachedAnswerReachesTheConnectionUncopied: `million serve`'s whole
// chain, with its default shedding, passes a kept answer's body on as the
// string it is: a wrapper without WriteString would make io.WriteString
// copy the whole body into a new byte slice on every request.
func TestCachedAnswerReachesTheConnectionUncopied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, err := app.Open(ctx, app.Config{DataDir: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, err := a.Catalog.CreateCategory(ctx, "kettles", "Kettles"); err != nil {
		t.Fatal(err)
	}
	sku, name, category := "SKU-1", "Kettle", "kettles"
	price, stock := int64(2500), int64(5)
	desc := "A kettle."
	p, err := a.Catalog.CreateProduct(ctx, catalog.NewProduct{SKU: &sku, Name: &name, Description: &desc, PriceCents: &price, Category: &category, Stock: &stock})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	for range 2 { // the first builds the answer, the second reuses it
		req, err := http.NewRequest(http.MethodGet, "/v1/products/"+p.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.RemoteAddr = "192.0.2.1:1234"
		w := &stringWriter{discardWriter: discardWriter{header: http.Header{}}}
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK || w.strings != 1 || w.writes != 0 {
			t.Fatalf("status %d; body written by %d WriteString and %d Write calls, want 1 and 0", w.status, w.strings, w.writes)
		}
	}
}
