package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/gateway"
)

// TestLargeAnswersArriveWhole: answers that reach the gateway in many
// reads, sized and chunked, and one that ends when the backend closes,
// come out whole and byte for byte; a HEAD's answer keeps its length and
// has no body.
func TestLargeAnswersArriveWhole(t *testing.T) {
	t.Parallel()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16) // 4 MiB
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			return
		case "/sized":
			w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		case "/closing":
			// No length, no chunks: the answer ends when the connection does.
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
			_ = brw.Flush()
			_, _ = conn.Write(payload)
			conn.Close()
			return
		}
		// Flushing in pieces makes the answer arrive in many reads.
		for i := 0; i < len(payload); i += 256 << 10 {
			_, _ = w.Write(payload[i : i+256<<10])
			http.NewResponseController(w).Flush()
		}
	}))
	t.Cleanup(be.Close)
	f := setup(t, gateway.Options{}, be.URL)
	for _, path := range []string{"/sized", "/chunked", "/closing"} {
		r := f.do(t, "GET", path, nil)
		if r.status != 200 || r.body != string(payload) {
			t.Fatalf("GET %s: %d, %d bytes, want 200 and the %d bytes sent", path, r.status, len(r.body), len(payload))
		}
	}
	r := f.do(t, "HEAD", "/sized", nil)
	if r.status != 200 || r.body != "" || r.header.Get("Content-Length") != strconv.Itoa(len(payload)) {
		t.Fatalf("HEAD: %d, body %d bytes, Content-Length %q", r.status, len(r.body), r.header.Get("Content-Length"))
	}

	// The connection closes after the answer: only once all of it is sent.
	c := dial(t, strings.TrimPrefix(f.srv.URL, "http://"), 10*time.Second)
	if _, err := c.Write([]byte("GET /sized HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the answer fill the socket buffers before reading
	raw, err := io.ReadAll(c)
	if err != nil || !bytes.HasSuffix(raw, payload) {
		t.Fatalf("Connection: close: %d bytes read (%v), want the whole %d-byte answer", len(raw), err, len(payload))
	}
}

// TestPathGoesAsWritten: the backend gets the path the client wrote,
// encoded slashes, dot segments and double slashes included.
func TestPathGoesAsWritten(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			got <- r.RequestURI
		}
	}))
	t.Cleanup(be.Close)
	f := setup(t, gateway.Options{}, be.URL)
	const path = "/v1/a%2Fb//c/%2e%2e/d?q=1%2F2"
	resp, _ := rawExchange(t, f, "GET "+path+" HTTP/1.1\r\nHost: shop\r\n\r\n", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if uri := <-got; uri != path {
		t.Fatalf("the backend got %q, want %q", uri, path)
	}
}

// TestPipelinedAndOldClients: requests sent back to back on one connection
// are answered in order; a chunked request body reaches the backend whole;
// an HTTP/1.0 request without keep-alive gets its answer and the
// connection closes, with keep-alive it stays open.
func TestPipelinedAndOldClients(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, "a")
	f := setup(t, gateway.Options{}, a.URL)
	addr := strings.TrimPrefix(f.srv.URL, "http://")

	conn := dial(t, addr, 10*time.Second)
	reqs := "GET /1 HTTP/1.1\r\nHost: shop\r\nX-Request-Id: first-request-0001\r\n\r\n" +
		"PUT /2 HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nX-Request-Id: second-request-02\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" +
		"GET /3 HTTP/1.1\r\nHost: shop\r\nX-Request-Id: third-request-003\r\n\r\n"
	if _, err := conn.Write([]byte(reqs)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for i, id := range []string{"first-request-0001", "second-request-02", "third-request-003"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "a" || resp.Header.Get("X-Request-Id") != id {
			t.Fatalf("answer %d: %d %q, request ID %q, want 200 \"a\" %s", i+1, resp.StatusCode, body, resp.Header.Get("X-Request-Id"), id)
		}
		if i == 1 && resp.Header.Get("X-Body-Sha256") != sha([]byte("hello world")) {
			t.Fatal("the chunked body did not reach the backend whole")
		}
	}

	for _, tc := range []struct {
		keepAlive string
		open      bool
	}{{"", false}, {"Connection: keep-alive\r\n", true}} {
		c := dial(t, addr, 5*time.Second)
		if _, err := c.Write([]byte("GET /old HTTP/1.0\r\nHost: shop\r\n" + tc.keepAlive + "\r\n")); err != nil {
			t.Fatal(err)
		}
		cbr := bufio.NewReader(c)
		resp, err := http.ReadResponse(cbr, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "a" {
			t.Fatalf("HTTP/1.0 %q: %d %q", tc.keepAlive, resp.StatusCode, body)
		}
		if tc.open && !strings.EqualFold(resp.Header.Get("Connection"), "keep-alive") {
			t.Fatalf("HTTP/1.0 keep-alive answered with Connection %q", resp.Header.Get("Connection"))
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = cbr.ReadByte()
		var ne net.Error
		stillOpen := err != nil && errors.As(err, &ne) && ne.Timeout()
		if stillOpen != tc.open {
			t.Fatalf("HTTP/1.0 %q: connection open after the answer: %v (read: %v), want %v", tc.keepAlive, stillOpen, err, tc.open)
		}
		c.Close()
	}
}

// TestManyPipelinedRequests: a client that sends a thousand requests at
// once gets a thousand answers, in order.
func TestManyPipelinedRequests(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, "a")
	f := setup(t, gateway.Options{}, a.URL)
	conn := dial(t, strings.TrimPrefix(f.srv.URL, "http://"), 30*time.Second)
	const n = 1000
	var reqs bytes.Buffer
	for i := range n {
		reqs.WriteString("GET /p" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: shop\r\nX-Request-Id: pipelined-request-" + strconv.Itoa(10000+i) + "\r\n\r\n")
	}
	go func() { _, _ = conn.Write(reqs.Bytes()) }()
	br := bufio.NewReader(conn)
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if want := "pipelined-request-" + strconv.Itoa(10000+i); resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != want {
			t.Fatalf("answer %d: %d for %q, want 200 for %s", i, resp.StatusCode, resp.Header.Get("X-Request-Id"), want)
		}
	}
}

// TestClientThatDoesNotReadIsClosed: a client that leaves a large answer
// unread and keeps sending is closed once what it sent exceeds one
// request of the largest size, instead of the gateway holding all of it.
func TestClientThatDoesNotReadIsClosed(t *testing.T) {
	t.Parallel()
	payload := bytes.Repeat([]byte("x"), 8<<20)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			_, _ = w.Write(payload)
		}
	}))
	t.Cleanup(be.Close)
	f := setup(t, gateway.Options{MaxRequestBody: 64 << 10, MaxResponseBody: 16 << 20}, be.URL)
	conn := dial(t, strings.TrimPrefix(f.srv.URL, "http://"), 20*time.Second)
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10) // keep most of the answer in the gateway's queue
	}
	if _, err := conn.Write([]byte("GET /big HTTP/1.1\r\nHost: shop\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the answer is written, and waits in the gateway's queue
	junk := bytes.Repeat([]byte("GET /more HTTP/1.1\r\nHost: shop\r\n\r\n"), 1024)
	sent := 0
	for sent < 64<<20 {
		n, err := conn.Write(junk)
		sent += n
		if err != nil {
			return // closed by the gateway
		}
	}
	t.Fatalf("the gateway took %d bytes from a client that reads nothing", sent)
}

// TestShutdownDrains: Shutdown lets a request in flight finish (its answer
// says Connection: close), closes idle connections at once, refuses new
// ones, and returns once the last answer is out.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, "a")
	a.delay.Store(int64(400 * time.Millisecond))
	gw, err := gateway.New(gateway.Options{Backends: []string{a.URL}, EjectAfter: 1000})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gw.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	idle := dial(t, addr, 0)
	busy := dial(t, addr, 10*time.Second)
	if _, err := busy.Write([]byte("GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the request is at the backend

	done := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()

	// The idle connection is closed without an answer.
	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); err == nil || n > 0 {
		t.Fatalf("idle connection during the drain: read %d bytes, %v; want it closed", n, err)
	}
	// A new connection is closed before it is served.
	if c, err := net.Dial("tcp", addr); err == nil {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write([]byte("GET /late HTTP/1.1\r\nHost: shop\r\n\r\n"))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			t.Fatalf("a connection opened during the drain was served: %d", resp.StatusCode)
		}
		c.Close()
	}
	// The request in flight gets its whole answer.
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the request in flight lost its answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "a" || !resp.Close {
		t.Fatalf("in flight: %d %q, Connection: close %v", resp.StatusCode, body, resp.Close)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Shutdown took %v with one request of 400 ms in flight", took)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("the gateway still accepts connections after Shutdown")
	}
}

// TestSlowHeadIsRefused: a client that trickles its request head gets 408
// once the head timeout (5 s) has passed, and its connection closes.
func TestSlowHeadIsRefused(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, "a")
	f := setup(t, gateway.Options{}, a.URL)
	c := dial(t, strings.TrimPrefix(f.srv.URL, "http://"), 10*time.Second)
	start := time.Now()
	if _, err := c.Write([]byte("GET /x HTTP/1.1\r\nHost: sh")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled head: %v", err)
	}
	if took := time.Since(start); resp.StatusCode != http.StatusRequestTimeout || took < 4900*time.Millisecond || took > 7*time.Second {
		t.Fatalf("trickled head: %d after %v, want 408 after the 5 s head timeout", resp.StatusCode, took)
	}
	if a.hits.Load() != 0 {
		t.Fatal("an incomplete request reached the backend")
	}
}

// dial opens a raw connection to addr, closed when the test ends, with
// every read and write due within timeout (none when 0).
func dial(t *testing.T, addr string, timeout time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if timeout > 0 {
		_ = c.SetDeadline(time.Now().Add(timeout))
	}
	return c
}
