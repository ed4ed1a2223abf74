package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
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
)

// setup starts a test server with handler and counts the connections
// opened to it.
func setup(t *testing.T, handler http.HandlerFunc) (addr string, conns *atomic.Int64) {
	t.Helper()
	conns = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(handler)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), conns
}

func TestRawConnKeepsTheConnectionAndReadsChunkedBodies(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 10_000) // more than net/http buffers: sent chunked
	addr, conns := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Idempotency-Key") != "k1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(body)
			return
		}
		_, _ = io.WriteString(w, big)
	})
	var c rawConn
	defer c.close()
	for i, req := range []*request{
		{method: http.MethodGet, path: "/a", token: "tok", idem: "k1"},
		{method: http.MethodPost, path: "/b", token: "tok", idem: "k1", body: []byte(`{"x":1}`), want: http.StatusCreated},
		{method: http.MethodGet, path: "/c", token: "tok", idem: "k1"},
	} {
		status, err := c.do(addr, req, time.Now().Add(5*time.Second))
		if err != nil || !req.ok(status) {
			t.Fatalf("request %d: status %d, %v", i, status, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 requests, want 1 kept alive", n)
	}
}

func TestSaturateCountsOnlyTheExpectedStatus(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	addr, conns := setup(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	tgt := newHTTPTarget(addr, 4)
	defer tgt.close()
	p := tgt.saturate(context.Background(), 300*time.Millisecond, pick([]string{"/x", "/y"}))
	if p.OK == 0 || p.Errors == 0 || !strings.Contains(p.Sample, "status 503") {
		t.Errorf("probe = %+v, want successes and the 503s counted as errors", p)
	}
	if ratio := float64(p.Errors) / float64(p.OK+p.Errors); ratio < 0.05 || ratio > 0.15 {
		t.Errorf("error share %.2f, want ~0.10", ratio)
	}
	// Up to the last answer within the 300 ms: half of it at least, on a
	// machine that may stall the test for tens of milliseconds.
	if p.Elapsed < 150*time.Millisecond || p.Elapsed > 300*time.Millisecond || p.rps() <= 0 {
		t.Errorf("elapsed %s, %.0f/s", p.Elapsed, p.rps())
	}
	if c := conns.Load(); c > 4+int64(p.Errors) {
		t.Errorf("%d connections for 4 workers", c)
	}
}

func TestSaturateStopsWhenTheWorkRunsOut(t *testing.T) {
	t.Parallel()
	addr, _ := setup(t, func(http.ResponseWriter, *http.Request) {})
	tgt := newHTTPTarget(addr, 8)
	defer tgt.close()
	var left atomic.Int64
	left.Store(100)
	next := func() (*request, bool) {
		if left.Add(-1) < 0 {
			return nil, false
		}
		return &request{method: http.MethodGet, path: "/"}, true
	}
	p := tgt.saturate(context.Background(), 10*time.Second, next)
	if p.OK != 100 || p.Errors != 0 || p.Elapsed >= time.Second {
		t.Errorf("probe = %+v, want the 100 requests answered well before the deadline, timed to the last answer", p)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeBareAnswersWithTheCapturedBytes(t *testing.T) {
	t.Parallel()
	origin, _ := setup(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Etag", `"abc"`)
		w.Header().Set("Cache-Control", "public, no-cache")
		_, _ = io.WriteString(w, `{"id":"p1","name":"Lamp"}`)
	})
	c, err := capture(context.Background(), http.DefaultClient, "http://"+origin, "/v1/products/p1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Header.Get("Date") != "" || c.Header.Get("Content-Length") != "" {
		t.Errorf("captured headers net/http writes itself: %v", c.Header)
	}
	file := filepath.Join(t.TempDir(), "capture.json")
	b, _ := json.Marshal(c)
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- ServeBare(ctx, file, "127.0.0.1:0", slog.New(slog.NewJSONHandler(&logs, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeBare: %v", err)
		}
	}()
	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for line := range strings.SplitSeq(logs.String(), "\n") {
			var l logLine
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving" {
				addr = l.Addr
			}
		}
	}
	if addr == "" {
		t.Fatalf("no serving line in %q", logs.String())
	}
	resp, err := http.Get("http://" + addr + "/any/other/path")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != `{"id":"p1","name":"Lamp"}` ||
		resp.Header.Get("Etag") != `"abc"` || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("bare answered %d %v %q", resp.StatusCode, resp.Header, body)
	}
}
