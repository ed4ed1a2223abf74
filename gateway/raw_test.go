package gateway_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/gateway"
)

// rawExchange writes req on a new connection to the gateway and returns
// the first response, read with net/http's parser.
func rawExchange(t *testing.T, f *fixture, req string, body string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if body != "" {
		// Expect: 100-continue: the interim answer first, then the body.
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
			t.Fatalf("interim answer %q, %v; want 100 Continue", line, err)
		}
		if _, err := br.ReadString('\n'); err != nil { // the blank line
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
	return resp, sb.String()
}

// TestRawHTTP: what net/http clients do not send. A request that does not
// parse gets 400 problem+json; Expect: 100-continue is answered by the
// gateway, which then forwards the whole body (without the Expect field).
func TestRawHTTP(t *testing.T) {
	t.Parallel()
	a := newUpstream(t, "a")
	f := setup(t, gateway.Options{}, a.URL)

	resp, body := rawExchange(t, f, "GET /x HTTP/1.1\r\nHost: shop\r\nContent-Length: nope\r\n\r\n", "")
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(body, `"code":"malformed_request"`) {
		t.Fatalf("malformed request: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if a.hits.Load() != 0 {
		t.Fatal("a malformed request reached the backend")
	}

	resp, body = rawExchange(t, f, "PUT /v1/cart/items/1 HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", "hello")
	if resp.StatusCode != 200 || body != "a" || resp.Header.Get("X-Body-Sha256") != sha([]byte("hello")) {
		t.Fatalf("100-continue: %d %q, body hash %s", resp.StatusCode, body, resp.Header.Get("X-Body-Sha256"))
	}
	a.mu.Lock()
	expect := a.headers[len(a.headers)-1].Get("Expect")
	a.mu.Unlock()
	if expect != "" {
		t.Fatalf("the backend got Expect: %q", expect)
	}
}
