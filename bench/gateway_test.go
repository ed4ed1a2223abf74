package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// backendLog records what a backend was sent.
type backendLog struct {
	mu      sync.Mutex
	served  int                 // requests to /v1/…
	remotes map[string]bool     // the proxy's connections that carried them
	headers map[string][]string // X-Forwarded-For, X-Forwarded-Proto, X-Request-ID seen
	checks  int                 // GET /readyz
}

func (b *backendLog) handler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch {
		case r.URL.Path == healthPath:
			b.checks++
			return
		case !strings.HasPrefix(r.URL.Path, "/v1/"):
			return // startServerAt's readiness probe
		}
		b.served++
		b.remotes[r.RemoteAddr] = true
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-ID"} {
			b.headers[h] = append(b.headers[h], r.Header.Get(h))
		}
		w.Header().Set("X-Backend", name)
		_, _ = io.WriteString(w, "ok")
	}
}

// TestHAProxyConfigHasTheGatewaysFeatures runs the real HAProxy with the
// configuration the gateway scenario generates, over two test backends, and
// checks the features the report says it has: round robin, keep-alive to the
// backends, X-Forwarded-*, a request ID returned to the client, and health
// checks of the backends.
func TestHAProxyConfigHasTheGatewaysFeatures(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	haproxy, version, err := findHAProxy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "HAProxy 2.") {
		t.Errorf("version = %q", version)
	}
	logs := map[string]*backendLog{}
	var addrs []string
	for _, name := range []string{"one", "two"} {
		l := &backendLog{remotes: map[string]bool{}, headers: map[string][]string{}}
		srv := httptest.NewServer(l.handler(name))
		t.Cleanup(srv.Close)
		logs[name] = l
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	cfg := haproxyConfig(listen, addrs)
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, haproxy, "-c", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	hp, err := startServerAt(ctx, version, exec.Command(haproxy, "-db", "-f", file), filepath.Join(t.TempDir(), "haproxy.log"), listen, "/")
	if err != nil {
		t.Fatal(err)
	}
	defer hp.stop()

	// One client connection, as one of the generator's: HAProxy should
	// keep one connection to each backend for it.
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	ids := map[string]bool{}
	var order []string
	for i := range 20 {
		resp, err := client.Get(fmt.Sprintf("http://%s/v1/products/%d", listen, i))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		order = append(order, resp.Header.Get("X-Backend"))
		ids[resp.Header.Get("X-Request-ID")] = true
	}
	for i := 1; i < len(order); i++ {
		if order[i] == order[i-1] {
			t.Errorf("backends in order %v, want them alternating (round robin)", order)
			break
		}
	}
	if len(ids) != 20 || ids[""] {
		t.Errorf("%d distinct X-Request-ID returned for 20 requests: %v", len(ids), ids)
	}
	for name, l := range logs {
		l.mu.Lock()
		if l.served != 10 || len(l.remotes) > 2 {
			t.Errorf("backend %s served %d requests over %d connections, want 10 over kept-alive ones", name, l.served, len(l.remotes))
		}
		for i := range l.served {
			if l.headers["X-Forwarded-For"][i] != "127.0.0.1" || l.headers["X-Forwarded-Proto"][i] != "http" ||
				l.headers["X-Forwarded-Host"][i] != listen || l.headers["X-Request-ID"][i] == "" {
				t.Errorf("backend %s, request %d: forwarded headers %v", name, i, l.headers)
				break
			}
			if !ids[l.headers["X-Request-ID"][i]] {
				t.Errorf("backend %s saw request ID %q, not one the client got back", name, l.headers["X-Request-ID"][i])
			}
		}
		l.mu.Unlock()
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, name := range []string{"one", "two"} {
		for {
			logs[name].mu.Lock()
			checks := logs[name].checks
			logs[name].mu.Unlock()
			if checks > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("backend %s got no health check (GET %s)", name, healthPath)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestStartServerAtFailsFastWhenTheServerExits(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := startServerAt(context.Background(), "false", exec.Command("sh", "-c", "echo bad config >&2; exit 3"),
		filepath.Join(t.TempDir(), "x.log"), "127.0.0.1:1", "/")
	if err == nil || !strings.Contains(err.Error(), "bad config") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("err = %v, want the exit and the log's tail", err)
	}
	if time.Since(start) > startTimeout/2 {
		t.Errorf("took %s: it waited for the start timeout instead of seeing the exit", time.Since(start))
	}
}
