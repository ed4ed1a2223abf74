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

// discardWriter is the cheapest http.ResponseWriter: a benchmark of the
// handler chain should measure the chain, not a recorder's buffers.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkProductGetCached runs GET /v1/products/{id} for a product in
// the L1 cache through the whole handler chain of `million serve`
// (middleware, router, handler, cache, answer memo), configured as `million
// bench --scenario product-get` runs it (no shedding, no rate limits, no
// access log), without net/http's connection handling: what million adds
// to a bare server's cost per request.
func BenchmarkProductGetCached(b *testing.B) {
	a, err := app.Open(context.Background(), app.Config{DataDir: b.TempDir(), NoShedding: true, RateLimitIP: "0", RateLimitUser: "0"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	ctx := context.Background()
	if _, err := a.Catalog.CreateCategory(ctx, "kettles", "Kettles"); err != nil {
		b.Fatal(err)
	}
	sku, name, desc, category := "SKU-1", "Kettle", "A kettle.", "kettles"
	price, stock := int64(2500), int64(5)
	p, err := a.Catalog.CreateProduct(ctx, catalog.NewProduct{SKU: &sku, Name: &name, Description: &desc,
		PriceCents: &price, Category: &category, Stock: &stock})
	if err != nil {
		b.Fatal(err)
	}
	h := a.Handler()
	req, err := http.NewRequest(http.MethodGet, "/v1/products/"+p.ID, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.RemoteAddr = "192.0.2.1:1234"
	w := &discardWriter{header: http.Header{}}
	h.ServeHTTP(w, req)
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.header)
		h.ServeHTTP(w, req)
	}
}
