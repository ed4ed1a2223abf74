package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/millionshop/million/gateway"
	"github.com/millionshop/million/obs"
)

// discardWriter is the cheapest ResponseWriter, so that the benchmark
// counts the gateway's work rather than a recorder's.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkProxyGET measures one proxied GET as the bench's gateway scenario
// sends it (round robin over two real backends, no request ID given, access
// log off). The handler is called directly, so the figures are the
// gateway's plus the Go HTTP client's and the in-process backends' (the
// backends' share is the same before and after any gateway change).
func BenchmarkProxyGET(b *testing.B) {
	body := []byte(`{"id":"0193a5f0-5b1e-7c3a-9d2e-4f6a8b0c1d2e","name":"Walnut desk lamp with linen shade","price_cents":4999}`)
	backend := func() string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}))
		b.Cleanup(s.Close)
		return s.URL
	}
	gw, err := gateway.New(gateway.Options{Backends: []string{backend(), backend()}, Registry: obs.NewMetrics().Registry})
	if err != nil {
		b.Fatal(err)
	}
	h := gw.Handler()
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, "http://shop.example/v1/products/0193a5f0-5b1e-7c3a-9d2e-4f6a8b0c1d2e", nil)
		r.Header.Set("User-Agent", "million-bench")
		r.Header.Set("Accept", "application/json")
		clear(w.h)
		w.status, w.n = 0, 0
		h.ServeHTTP(w, r)
		if w.status != http.StatusOK || w.n != len(body) {
			b.Fatalf("status %d, %d bytes", w.status, w.n)
		}
	}
}
