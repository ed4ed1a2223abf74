package gateway

import (
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestTLSBackend: a backend reached over TLS, which the event loops hand to
// fasthttp's client on a goroutine, answers through the gateway, body and
// all, on a connection the client keeps.
func TestTLSBackend(t *testing.T) {
	t.Parallel()
	be := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Path", r.URL.Path)
		_, _ = io.WriteString(w, "tls:"+r.Method+":"+string(body))
	}))
	t.Cleanup(be.Close)
	g, err := New(Options{Backends: []string{be.URL}})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(be.Certificate())
	for _, b := range g.snapshot() {
		b.client.TLSConfig.RootCAs = roots // the Dial's handshake uses the same config
	}
	srv := ServeForTest(t, g)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, "http://"+srv.Addr().String()+"/v1/x", strings.NewReader("hello"))
		if method == "GET" {
			req.Body, req.ContentLength = nil, 0
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "tls:" + method + ":"
		if method == "POST" {
			want += "hello"
		}
		if resp.StatusCode != 200 || string(body) != want || resp.Header.Get("X-Seen-Path") != "/v1/x" || resp.Header.Get("X-Request-Id") == "" {
			t.Fatalf("%s through a TLS backend: %d %q (path %q)", method, resp.StatusCode, body, resp.Header.Get("X-Seen-Path"))
		}
	}
}
