package gateway_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/gateway"
)

// countingBackend answers 200 "ok" and counts the connections it accepted.
func countingBackend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &conns
}

// TestKeepAliveToBackends: sequential requests share one connection to the
// backend, and after the backend closed its idle connections (as a
// restarting instance does) the next requests still succeed, a POST without
// body included (it may not be sent twice, so it must not be sent on a dead
// connection), each on a fresh connection without a failed attempt that
// the gateway would count, log and retry on another backend: the peek
// finds the dead connection before anything is written on it.
func TestKeepAliveToBackends(t *testing.T) {
	t.Parallel()
	be, conns := countingBackend(t)
	f := setup(t, gateway.Options{}, be.URL)
	for i := range 20 {
		if r := f.do(t, "GET", "/x", nil); r.status != 200 || r.body != "ok" {
			t.Fatalf("GET %d: %d %q", i, r.status, r.body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 sequential GETs opened %d backend connections, want 1 (keep-alive)", n)
	}
	for i, method := range []string{"GET", "POST", "DELETE", "POST"} {
		be.CloseClientConnections()
		before := conns.Load()
		if r := f.do(t, method, "/x", nil); r.status != 200 || r.body != "ok" {
			t.Fatalf("%s after the backend closed its connections (%d): %d %q", method, i, r.status, r.body)
		}
		if conns.Load() == before {
			t.Fatalf("%s after the backend closed its connections was answered without a new connection", method)
		}
		if failed := f.counter(t, "million_gateway_backend_requests_total", "class", "error"); failed != 0 {
			t.Fatalf("%s after the backend closed its connections: %v failed attempts counted", method, failed)
		}
	}
	// Many GETs on connections closed in between: each is one successful
	// attempt.
	for i := range 50 {
		be.CloseClientConnections()
		if r := f.do(t, "GET", "/x", nil); r.status != 200 || r.body != "ok" {
			t.Fatalf("GET %d after the backend closed its connections: %d %q", i, r.status, r.body)
		}
	}
	failed := f.counter(t, "million_gateway_backend_requests_total", "class", "error")
	answered := f.counter(t, "million_gateway_backend_requests_total", "class", "2xx")
	if failed != 0 || answered != 20+4+50 {
		t.Fatalf("%v failed and %v answered attempts counted for %d requests", failed, answered, 20+4+50)
	}
}

// TestAnswerOverTheLimit: the gateway reads answers whole, so an endless
// one (server-sent events) or one over MaxResponseBody is a failed attempt:
// the client gets 502 problem+json at once (not retried: every backend
// would send the same) and the gateway drops its connection to the backend
// instead of reading on.
func TestAnswerOverTheLimit(t *testing.T) {
	t.Parallel()
	ended := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		defer close(ended)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for {
			if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
	}))
	t.Cleanup(be.Close)
	f := setup(t, gateway.Options{MaxResponseBody: 4 << 10}, be.URL)
	start := time.Now()
	r := f.do(t, "GET", "/events", nil)
	if r.status != http.StatusBadGateway {
		t.Fatalf("endless answer: %d %q, want 502", r.status, r.body)
	}
	checkProblem(t, r, "response_too_large")
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("endless answer: 502 after %v", d)
	}
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the backend's stream went on 30 s after the gateway gave up on it")
	}
}

// TestRequestTimeoutBoundsTheWholeRequest: Options.RequestTimeout ends a
// request whose backend is too slow, both before its headers (504, even
// with a longer ResponseHeaderTimeout) and while it trickles its body (504
// too: the client never sees a partial answer).
func TestRequestTimeoutBoundsTheWholeRequest(t *testing.T) {
	t.Parallel()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/silent":
			select {
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
		case "/trickle":
			rc := http.NewResponseController(w)
			for {
				if _, err := io.WriteString(w, "x"); err != nil {
					return
				}
				if rc.Flush() != nil {
					return
				}
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}))
	t.Cleanup(slow.Close)
	f := setup(t, gateway.Options{RequestTimeout: 300 * time.Millisecond, ResponseHeaderTimeout: time.Minute}, slow.URL)
	start := time.Now()
	r := f.do(t, "GET", "/silent", nil)
	if r.status != http.StatusGatewayTimeout {
		t.Fatalf("silent backend: %d, want 504", r.status)
	}
	checkProblem(t, r, "gateway_timeout")
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("silent backend: answered after %v, the request timeout is 300ms", d)
	}
	start = time.Now()
	r = f.do(t, "GET", "/trickle", nil)
	if r.status != http.StatusGatewayTimeout {
		t.Fatalf("trickling backend: %d, want 504", r.status)
	}
	checkProblem(t, r, "gateway_timeout")
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("trickling backend: answered after %v, the request timeout is 300ms", d)
	}
}
