package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/millionshop/million/gateway"
	"github.com/millionshop/million/obs"
)

// BenchmarkProxyGET measures one proxied GET as the bench's gateway scenario
// sends it (round robin over two real backends, no request ID given, access
// log off), over loopback from a keep-alive client. The figures are the
// gateway's plus the client's and the in-process backends' (the same
// before and after any gateway change).
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
	srv := serveGateway(b, gw)
	client := &fasthttp.HostClient{Addr: strings.TrimPrefix(srv.URL, "http://")}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI(srv.URL + "/v1/products/0193a5f0-5b1e-7c3a-9d2e-4f6a8b0c1d2e")
	req.Header.Set("User-Agent", "million-bench")
	req.Header.Set("Accept", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		if err := client.Do(req, resp); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode() != http.StatusOK || len(resp.Body()) != len(body) {
			b.Fatalf("status %d, %d bytes", resp.StatusCode(), len(resp.Body()))
		}
	}
}
