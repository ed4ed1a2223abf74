package gateway_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/gateway"
	"github.com/millionshop/million/ratelimit"
)

// TestForwardedForLines: a client may send X-Forwarded-For lines of its own
// before the line a trusted proxy adds. The client's address is the last
// entry of the last line, so forged lines neither pick the rate-limit key
// nor hide the proxy's entry from the backend.
func TestForwardedForLines(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, "a")
	policy := &ratelimit.Policy{Limiter: ratelimit.NewMemory(time.Now), PerIP: ratelimit.Rate{Limit: 1, Period: time.Minute}}
	f := setup(t, gateway.Options{TrustForwardedFor: true, RateLimit: policy}, a.URL)
	statuses := []int{}
	for _, forged := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		resp, _ := rawExchange(t, f, "GET /v1/products HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: "+forged+
			"\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n", "")
		statuses = append(statuses, resp.StatusCode)
	}
	if statuses[0] != 200 || statuses[1] != 429 || statuses[2] != 429 {
		t.Fatalf("statuses %v for one client behind forged lines, want 200 then 429s", statuses)
	}
	a.mu.Lock()
	got := a.headers[0].Get("X-Forwarded-For")
	a.mu.Unlock()
	if got != "198.51.100.1, 10.1.2.3, 127.0.0.1" {
		t.Fatalf("backend got X-Forwarded-For %q, want every line's entries and the peer", got)
	}
}

// pathRecorder answers status and records the paths it was asked for.
func pathRecorder(t *testing.T, status int) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var paths []string
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/readyz") {
			return
		}
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(s.Close)
	return s, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), paths...) }
}

// TestPrefixedBackendRetry: a backend with a base path gets it before the
// request's path, and a retry on a backend without one gets the path as
// the client sent it.
func TestPrefixedBackendRetry(t *testing.T) {
	t.Parallel()
	bad, badPaths := pathRecorder(t, 500)
	good, goodPaths := pathRecorder(t, 200)
	f := setup(t, gateway.Options{}, bad.URL+"/base", good.URL)
	for range 4 {
		if r := f.do(t, "GET", "/item?x=1", nil); r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
	}
	for _, p := range badPaths() {
		if p != "/base/item?x=1" {
			t.Errorf("prefixed backend got %q", p)
		}
	}
	for _, p := range goodPaths() {
		if p != "/item?x=1" {
			t.Errorf("backend without a prefix got %q", p)
		}
	}
	if len(badPaths()) == 0 || len(goodPaths()) != 4 {
		t.Fatalf("bad got %d, good %d requests", len(badPaths()), len(goodPaths()))
	}
}

// TestLargeHeads: a request head over the gateway's limit gets 431
// problem+json; a backend's large answer head (20 KiB of fields) passes.
func TestLargeHeads(t *testing.T) {
	t.Parallel()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Large", strings.Repeat("v", 20<<10))
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(be.Close)
	f := setup(t, gateway.Options{}, be.URL)
	r := f.do(t, "GET", "/x", nil)
	if r.status != 200 || len(r.header.Get("X-Large")) != 20<<10 || r.body != "ok" {
		t.Fatalf("large answer head: %d, %d bytes of X-Large", r.status, len(r.header.Get("X-Large")))
	}
	resp, body := rawExchange(t, f, "GET /x HTTP/1.1\r\nHost: shop\r\nCookie: "+strings.Repeat("c", 40<<10)+"\r\n\r\n", "")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, `"code":"headers_too_large"`) {
		t.Fatalf("large request head: %d %s", resp.StatusCode, body)
	}
}

// TestTLSBackendThatCannotHandshake: the handshake is part of connecting,
// so a request, even a POST without an idempotency key, goes to another
// backend when it fails.
func TestTLSBackendThatCannotHandshake(t *testing.T) {
	t.Parallel()
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "untrusted")
	}))
	t.Cleanup(untrusted.Close)
	good := newUpstream(t, "good")
	f := setup(t, gateway.Options{}, untrusted.URL, good.URL)
	for i := range 4 {
		if r := f.do(t, "POST", "/v1/cart/items", []byte(`{}`)); r.status != 200 || r.backend != "good" {
			t.Fatalf("POST %d: %d from %q, want the plain backend's answer", i, r.status, r.backend)
		}
	}
}

// TestIdleConnectionOutlivesTheReadDeadline: a pooled connection idle for
// longer than the last answer's read deadline is reused, not replaced.
func TestIdleConnectionOutlivesTheReadDeadline(t *testing.T) {
	t.Parallel()
	be, conns := countingBackend(t)
	f := setup(t, gateway.Options{ResponseHeaderTimeout: 200 * time.Millisecond}, be.URL)
	for i := range 3 {
		if r := f.do(t, "POST", "/x", nil); r.status != 200 {
			t.Fatalf("POST %d: %d", i, r.status)
		}
		time.Sleep(400 * time.Millisecond)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d backend connections for 3 requests spaced past the read deadline, want 1", n)
	}
}

// TestRemovedBackendConnectionsClose: a backend taken out of the list loses
// its idle connections at once and, once the requests then in flight are
// answered, their connections too.
func TestRemovedBackendConnectionsClose(t *testing.T) {
	t.Parallel()
	var open atomic.Int64
	leaving := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "leaving")
	}))
	leaving.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	leaving.Start()
	t.Cleanup(leaving.Close)
	staying := newUpstream(t, "staying")
	file := filepath.Join(t.TempDir(), "backends")
	if err := os.WriteFile(file, []byte(leaving.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := setup(t, gateway.Options{BackendsFile: file, RequestTimeout: time.Second}, staying.URL)
	var wg sync.WaitGroup
	for range 4 { // round robin: two reach the leaving backend
		wg.Go(func() { f.do(t, "GET", "/slow", nil) })
	}
	time.Sleep(100 * time.Millisecond) // the slow requests are in flight
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for open.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections to the removed backend still open 10 s after its requests were answered", open.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
