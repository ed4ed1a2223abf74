// Package acceptance runs stage 3's gateway acceptance tests on real
// processes: the million binary built once, several `million serve` on one
// throwaway PostgreSQL, `million gateway` in front, and `million
// rolling-restart` as an operator would run it.
package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millionshop/million/pgtest"
)

// bin is the million binary, built once for the package.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "million-gateway-acceptance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "million")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/millionshop/million/cmd/million").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	jwtSecret     = "stage-3-acceptance-jwt-secret-0123456789abcdef"
	webhookSecret = "stage-3-acceptance-webhook-secret-0123456789"
	seedPassword  = "million-seed-password"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// logBuf collects a process's output for failure messages.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 4<<20 {
		l.b.Reset()
	}
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > 6000 {
		s = "…" + s[len(s)-6000:]
	}
	return s
}

// shop is a migrated, seeded PostgreSQL database on a cluster of this test.
func shop(t *testing.T) string {
	t.Helper()
	pg := pgtest.NewDedicated(t)
	url := pg.URL("postgres")
	cmd := exec.Command(bin, "seed", "--database", url, "--data-dir", t.TempDir(), "--users", "12", "--products", "20")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Checkouts under load must never run out of stock.
	if _, err := conn.Exec(ctx, "UPDATE products SET stock = 1000000"); err != nil {
		t.Fatal(err)
	}
	return url
}

// instance is one `million serve` process kept running by a supervisor,
// as systemd would: when it exits, it is started again on the same address.
type instance struct {
	idx     int
	addr    string
	pidFile string
	logs    *logBuf
	starts  atomic.Int32

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	done     chan struct{}
}

func (in *instance) URL() string { return "http://" + in.addr }

func startInstance(t *testing.T, idx int, dbURL, dir string, supervise bool) *instance {
	t.Helper()
	in := &instance{idx: idx, addr: freeAddr(t), pidFile: filepath.Join(dir, strconv.Itoa(idx)+".pid"),
		logs: &logBuf{}, done: make(chan struct{})}
	data := t.TempDir()
	args := []string{"serve", "--addr", in.addr, "--admin-addr", "off", "--database", dbURL, "--data-dir", data,
		"--jwt-secret", jwtSecret, "--payment-webhook-secret", webhookSecret, "--drain-delay", "2s",
		"--db-max-conns", "8", "--no-access-log", "--log-level", "warn", "--trust-proxy"}
	launch := func() error {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = in.logs, in.logs
		if err := cmd.Start(); err != nil {
			return err
		}
		in.starts.Add(1)
		if err := os.WriteFile(in.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
			return err
		}
		in.mu.Lock()
		in.cmd = cmd
		in.mu.Unlock()
		return nil
	}
	if err := launch(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(in.done)
		for {
			in.mu.Lock()
			cmd := in.cmd
			in.mu.Unlock()
			_ = cmd.Wait()
			in.mu.Lock()
			stop := in.stopping || !supervise
			in.mu.Unlock()
			if stop {
				return
			}
			if err := launch(); err != nil {
				t.Errorf("restart instance %d: %v", idx, err)
				return
			}
		}
	}()
	t.Cleanup(func() {
		in.mu.Lock()
		in.stopping = true
		_ = in.cmd.Process.Kill()
		in.mu.Unlock()
		<-in.done
	})
	waitStatus(t, in.URL()+"/readyz", 200, 30*time.Second, in.logs)
	return in
}

// kill9 kills the current process without any chance to drain.
func (in *instance) kill9(t *testing.T) {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func waitStatus(t *testing.T, url string, want int, within time.Duration, logs *logBuf) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within %s\n%s", url, want, within, logs)
}

// gw is a `million gateway` process.
type gw struct {
	url, admin string
	logs       *logBuf
	cmd        *exec.Cmd
}

func startGateway(t *testing.T, backends []string, extra ...string) *gw {
	t.Helper()
	g := &gw{logs: &logBuf{}}
	addr, admin := freeAddr(t), freeAddr(t)
	g.url, g.admin = "http://"+addr, "http://"+admin
	args := []string{"gateway", "--listen", addr, "--admin-addr", admin, "--strategy", "p2c",
		"--health-interval", "100ms", "--health-timeout", "1s", "--fall", "1", "--rise", "2",
		"--no-access-log", "--log-level", "info"}
	for _, b := range backends {
		args = append(args, "--backend", b)
	}
	g.cmd = exec.Command(bin, append(args, extra...)...)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = g.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = g.cmd.Process.Kill()
			<-done
			t.Errorf("gateway did not stop within 20 s of SIGTERM")
		}
	})
	waitStatus(t, g.admin+"/readyz", 200, 30*time.Second, g.logs)
	return g
}

// backends returns the gateway's view of its backends.
func (g *gw) backends(t *testing.T) []map[string]any {
	t.Helper()
	resp, err := http.Get(g.admin + "/backends")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Backends []map[string]any `json:"backends"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Backends
}

// client is one logged-in shopper of the load.
type client struct {
	http  *http.Client
	base  string
	token string
}

func newClients(t *testing.T, base string, n int) []*client {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var out []*client
	for i := 1; i <= n; i++ {
		c := &client{http: hc, base: base}
		body := fmt.Sprintf(`{"email":"user%d@seed.million.test","password":%q}`, i, seedPassword)
		status, b, err := c.do("POST", "/v1/auth/login", body)
		if err != nil || status != 200 {
			t.Fatalf("login user%d: %d %v %s", i, status, err, b)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(b, &tok); err != nil {
			t.Fatal(err)
		}
		c.token = tok.AccessToken
		out = append(out, c)
	}
	return out
}

func (c *client) do(method, path, body string, hdr ...string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func productIDs(t *testing.T, c *client) []string {
	t.Helper()
	status, b, err := c.do("GET", "/v1/products?limit=20", "")
	if err != nil || status != 200 {
		t.Fatalf("list products: %d %v", status, err)
	}
	var page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &page); err != nil || len(page.Items) == 0 {
		t.Fatalf("products: %v %s", err, b)
	}
	var ids []string
	for _, it := range page.Items {
		ids = append(ids, it.ID)
	}
	return ids
}

// load is steady traffic through the gateway: each worker is one shopper
// issuing one request every period, and every answer is checked.
type load struct {
	total    atomic.Int64
	nfail    atomic.Int64
	checkout atomic.Int64
	mu       sync.Mutex
	failures []string
}

func (l *load) fail(format string, args ...any) {
	l.nfail.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 30 {
		l.failures = append(l.failures, fmt.Sprintf(format, args...))
	}
}

func (l *load) failed() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}

// run drives the load until ctx ends. With checkouts, each worker's cycle
// also puts an item in its cart and checks out with an Idempotency-Key.
func (l *load) run(ctx context.Context, clients []*client, products []string, period time.Duration, checkouts bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w, c := range clients {
		wg.Go(func() {
			tick := time.NewTicker(period)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				p := products[(w+i)%len(products)]
				var method, path, body string
				want := 200
				var hdr []string
				switch step := i % 4; {
				case step == 0:
					method, path = "GET", "/v1/products?limit=5"
				case step == 1:
					method, path = "GET", "/v1/products/"+p
				case step == 2:
					method, path, body = "PUT", "/v1/cart/items/"+p, `{"quantity":1}`
				case checkouts:
					method, path, body, want = "POST", "/v1/checkout", `{"payment":{"method":"card","token":"tok_ok"}}`, 201
					hdr = []string{"Idempotency-Key", fmt.Sprintf("w%d-i%d-%d", w, i, time.Now().UnixNano())}
				default:
					method, path = "GET", "/v1/cart"
				}
				status, b, err := c.do(method, path, body, hdr...)
				l.total.Add(1)
				if want == 201 && status == 201 {
					l.checkout.Add(1)
				}
				if err != nil {
					l.fail("%s %s: %v", method, path, err)
				} else if status != want {
					l.fail("%s %s: %d %.300s", method, path, status, b)
				}
			}
		})
	}
	return &wg
}
