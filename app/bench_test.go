package app_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"testing"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/seed"
)

// discardWriter is the cheapest http.ResponseWriter: a benchmark of the
// handler chain should measure the chain, not a recorder's buffers.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// WriteString is there as in net/http's writer, which answers use to
// write a body held as a string without copying it.
func (w *discardWriter) WriteString(s string) (int, error) { return len(s), nil }
func (w *discardWriter) WriteHeader(status int)            { w.status = status }

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

// BenchmarkProductGetCatalog is BenchmarkProductGetCached over a catalogue
// of 100,000 seeded products, each request for one drawn at random, as
// `million bench --scenario product-get` asks: the working set is far
// larger than the CPU caches, so what a request costs is mostly the memory
// it reaches (the cache entry, the answer memo, the answer), which the hot
// single-product benchmark does not see.
func BenchmarkProductGetCatalog(b *testing.B) {
	h, reqs := primedCatalog(b)
	w := &discardWriter{header: http.Header{}}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		clear(w.header)
		h.ServeHTTP(w, reqs[rng.IntN(len(reqs))])
	}
}

// BenchmarkCatalogCacheGC is one full garbage collection of a server whose
// cache and answer memo hold 100,000 products, as after
// BenchmarkProductGetCatalog's priming: the work each cycle repeats while
// the server runs, which grows with the objects the cache keeps. It reports
// the heap's objects per cached product beside the time.
func BenchmarkCatalogCacheGC(b *testing.B) {
	h, reqs := primedCatalog(b)
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	for b.Loop() {
		runtime.GC()
	}
	b.ReportMetric(float64(m.HeapObjects)/float64(len(reqs)), "objects/product")
	b.ReportMetric(float64(m.HeapAlloc)/float64(len(reqs)), "bytes/product")
	runtime.KeepAlive(h)
}

// primedCatalog opens a server over 100,000 seeded products and asks for
// each once, which fills the cache and the answer memo; it returns the
// handler and a request for each product.
func primedCatalog(b *testing.B) (http.Handler, []*http.Request) {
	b.Helper()
	ctx := context.Background()
	a, err := app.Open(ctx, app.Config{DataDir: b.TempDir(), NoShedding: true, RateLimitIP: "0", RateLimitUser: "0"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	const products = 100_000
	if _, err := seed.SQLite(ctx, a.DB, seed.Options{Products: products}, nil); err != nil {
		b.Fatal(err)
	}
	var paths []string
	for q := (catalog.ListQuery{Limit: 100}); ; {
		page, err := a.Catalog.Products(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range page.Items {
			paths = append(paths, "/v1/products/"+p.ID)
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	if len(paths) != products {
		b.Fatalf("listed %d products, seeded %d", len(paths), products)
	}
	h := a.Handler()
	reqs := make([]*http.Request, len(paths))
	w := &discardWriter{header: http.Header{}}
	for i, path := range paths {
		if reqs[i], err = http.NewRequest(http.MethodGet, path, nil); err != nil {
			b.Fatal(err)
		}
		reqs[i].RemoteAddr = "192.0.2.1:1234"
		clear(w.header)
		h.ServeHTTP(w, reqs[i]) // primes the cache and the answer memo
		if w.status != http.StatusOK {
			b.Fatalf("GET %s: status %d", path, w.status)
		}
	}
	return h, reqs
}
