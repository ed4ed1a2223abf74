package gateway_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/gateway"
)

// FuzzRequest sends arbitrary bytes to the gateway as a client would and
// reads what comes back: only well-formed HTTP/1.1 answers, never a 5xx of
// the gateway's own (the backend is healthy and answers everything) but
// its 505 for a version other than HTTP/1.x, and never a crash. Whatever the gateway forwards, the backend parsed.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		"GET /v1/products HTTP/1.1\r\nHost: shop\r\n\r\n",
		"POST /v1/cart/items HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"PUT /v1/cart/items/1 HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"PUT /x HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
		"GET /x HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8, 9.9.9.9\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: shop\r\nConnection: X-A, close, Keep-Alive\r\nX-A: 1\r\nKeep-Alive: 5\r\n\r\n",
		"GET http://elsewhere.example/x?y=%2F HTTP/1.1\r\nHost: shop\r\n\r\n",
		"GET /a/../%2e%2e/readyz HTTP/1.1\r\nHost: shop\r\nX-Request-ID: ok-1\r\n\r\nGET /b HTTP/1.1\r\nHost: shop\r\n\r\n",
		"HEAD / HTTP/1.0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: shop\r\nContent-Length: nope\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: shop\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"\x00\xff garbage\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	be := newUpstream(f, "be")
	fx := setup(f, gateway.Options{}, be.URL)
	addr := strings.TrimPrefix(fx.srv.URL, "http://")
	f.Fuzz(func(t *testing.T, raw []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Write(raw); err != nil {
			return // the gateway closed the connection on what it read so far
		}
		_ = conn.(*net.TCPConn).CloseWrite()
		answer, err := io.ReadAll(conn)
		if err != nil && !isReset(err) {
			t.Fatalf("reading the answers: %v", err)
		}
		br := bufio.NewReader(bytes.NewReader(answer))
		for {
			if _, err := br.Peek(1); err == io.EOF {
				return
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: headOrGet(raw)})
			if err != nil {
				t.Fatalf("the gateway answered what is not HTTP/1.1 (%v): %q", err, answer)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("the gateway's answer body is cut (%v): %q", err, answer)
			}
			if resp.Request.Method == http.MethodHead && unreadable(resp) && resp.ContentLength > 0 {
				// A head the gateway could not read is no HEAD to it: its
				// refusal has a body, as net/http's own would.
				body = make([]byte, resp.ContentLength)
				if _, err := io.ReadFull(br, body); err != nil {
					t.Fatalf("the refusal's body is cut (%v): %q", err, answer)
				}
			}
			if resp.StatusCode == http.StatusHTTPVersionNotSupported && resp.Header.Get("X-Backend") == "" &&
				resp.Header.Get("Content-Type") == "application/problem+json" {
				continue // the gateway's refusal of what is not HTTP/1.x
			}
			if resp.StatusCode >= 500 {
				t.Fatalf("the gateway answered %d for a healthy backend: %s", resp.StatusCode, body)
			}
			if resp.StatusCode >= 400 && resp.Header.Get("X-Backend") == "" &&
				resp.Header.Get("Content-Type") != "application/problem+json" && !goServerRefusal(resp, body) {
				t.Fatalf("the gateway's own %d is not problem+json: %q", resp.StatusCode, answer)
			}
		}
	})
}

// headOrGet is the method the answers are parsed for: a HEAD's answer has
// no body (but see unreadable). Only the first request of the
// connection counts; later ones are rare in the corpus and parsed as GETs.
func headOrGet(raw []byte) string {
	if headLine.Match(raw) {
		return http.MethodHead
	}
	return http.MethodGet
}

var headLine = regexp.MustCompile(`^HEAD [^ \r\n]+ HTTP/[0-9]\.[0-9]\r?\n`)

// unreadable reports whether resp is the gateway's refusal of a request it
// could not read.
func unreadable(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusRequestTimeout, http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return resp.Header.Get("Content-Type") == "application/problem+json"
	}
	return false
}

// goServerRefusal reports whether resp is net/http's own answer to what it
// could not parse, written by the backend's server before any handler (the
// gateway passed on a request Go reads more strictly than fasthttp).
func goServerRefusal(resp *http.Response, body []byte) bool {
	// Its body repeats the status line, unless the request was a HEAD.
	return resp.StatusCode < 500 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") &&
		(strings.HasPrefix(string(body), strconv.Itoa(resp.StatusCode)+" ") || resp.Request.Method == http.MethodHead)
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}
