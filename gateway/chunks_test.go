package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzScanChunks checks the event loops' framing of chunked bodies against
// fasthttp's parser, which reads the body once the framing says it is all
// there: a body the scan calls complete parses, and scanning it as it
// arrives, in two parts, ends where scanning it whole does.
func FuzzScanChunks(f *testing.F) {
	for _, s := range []string{
		"0\r\n\r\n",
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: x\r\n\r\n",
		"a\nabcdefghij\n0\n\n",
		"zz\r\n",
		"5\r\nhelloXX0\r\n\r\n",
		"ffffffffffffffff\r\n",
	} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, body []byte, cut int) {
		next, done, err := scanChunks(body, 0)
		if next < 0 || next > len(body) {
			t.Fatalf("next %d outside the body (%d bytes)", next, len(body))
		}
		head := []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		if err == nil && done {
			// Complete: the parser needs nothing more (it may still refuse
			// what it reads, say a forbidden trailer field).
			if perr := parse(append(head, body[:next]...)); errors.Is(perr, io.EOF) || errors.Is(perr, io.ErrUnexpectedEOF) {
				t.Fatalf("scan says complete at %d, fasthttp wants more: %v (%q)", next, perr, body[:next])
			}
		}
		if used, perr := parseUsed(append(head, body...)); perr == nil && err == nil {
			// What the parser reads whole, the scan finds whole, ending at
			// the same byte (it may refuse what the parser allows).
			if !done || next != used-len(head) {
				t.Fatalf("fasthttp reads %d bytes of body, the scan (%d, %v) (%q)", used-len(head), next, done, body)
			}
		}
		if cut < 0 {
			cut = -cut
		}
		cut %= len(body) + 1
		n1, d1, e1 := scanChunks(body[:cut], 0)
		if e1 != nil || d1 {
			return // the prefix alone decided
		}
		n2, d2, e2 := scanChunks(body, n1)
		if n2 != next || d2 != done || (e2 == nil) != (err == nil) {
			t.Fatalf("resumed at %d: (%d %v %v), whole: (%d %v %v)", n1, n2, d2, e2, next, done, err)
		}
	})
}

// TestHeadEnd finds the end of a head whatever its line ends.
func TestHeadEnd(t *testing.T) {
	for in, want := range map[string]int{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest": 27,
		"GET / HTTP/1.1\nHost: a\n\nrest":       24,
		"GET / HTTP/1.1\r\nHost: a\r\n":         -1,
		"GET / HTTP/1.1\r\nHost: a\r\n\r":       -1,
		"":                                      -1,
	} {
		if got := headEnd([]byte(in)); got != want {
			t.Errorf("headEnd(%q) = %d, want %d", in, got, want)
		}
	}
}

// parse reads msg as one response with fasthttp.
func parse(msg []byte) error {
	_, err := parseUsed(msg)
	return err
}

// parseUsed reads msg as one response with fasthttp and tells how many of
// its bytes that took.
func parseUsed(msg []byte) (int, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	rd := bytes.NewReader(msg)
	br := bufio.NewReader(rd)
	err := resp.ReadLimitBody(br, 1<<20)
	return len(msg) - rd.Len() - br.Buffered(), err
}
