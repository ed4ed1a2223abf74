// Package deploy_test runs the example proxy configurations of deploy/ with
// the real servers from Debian's packages (haproxy, nginx) in front of two
// real million instances sharing one PostgreSQL database, so the files a
// user copies are known to work.
package deploy_test

import (
	"bytes"
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
	"syscall"
	"testing"
	"time"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/e2e"
	"github.com/millionshop/million/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// proxy is one example configuration and how to run it.
type proxy struct {
	name, binary, config string
	// args starts the proxy in the foreground with the rendered config.
	args func(config string) []string
	// listen is the public listener line, in which :8000 or 8000 is replaced.
	listen string
	// stats is the address in the file of an admin listener to move, if any.
	stats string
}

var proxies = []proxy{
	{name: "haproxy", binary: "haproxy", config: "haproxy/haproxy.cfg", listen: "bind :8000", stats: "127.0.0.1:8404",
		args: func(cfg string) []string { return []string{"-db", "-f", cfg} }},
	{name: "nginx", binary: "nginx", config: "nginx/nginx.conf", listen: "listen 8000;",
		args: func(cfg string) []string { return []string{"-g", "daemon off;", "-c", cfg} }},
}

func TestProxyConfigs(t *testing.T) {
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			bin, err := exec.LookPath(p.binary)
			if err != nil {
				t.Fatalf("%s is not installed (scripts/test installs it from Debian's packages): %v", p.binary, err)
			}
			testProxy(t, p, bin)
		})
	}
}

func testProxy(t *testing.T, p proxy, bin string) {
	db := e2e.PostgresDatabase(t)
	shared := func(c *app.Config) {
		c.DatabaseURL = db
		c.JWTSecret = "deploy-test-jwt-secret-0123456789abcdef"
		c.TrustProxy = true
	}
	a, b := e2e.Start(t, shared), e2e.Start(t, shared)

	// Render the shipped file with this test's ports and paths; nothing
	// else changes.
	src, err := os.ReadFile(p.config)
	if err != nil {
		t.Fatal(err)
	}
	front := freeAddr(t)
	dir := t.TempDir()
	cfg := string(src)
	cfg = strings.ReplaceAll(cfg, "127.0.0.1:8081", hostPort(a.BaseURL))
	cfg = strings.ReplaceAll(cfg, "127.0.0.1:8082", hostPort(b.BaseURL))
	if !strings.Contains(cfg, p.listen) {
		t.Fatalf("%s has no %q to move", p.config, p.listen)
	}
	cfg = strings.Replace(cfg, p.listen, strings.NewReplacer(":8000", front, "8000", front).Replace(p.listen), 1)
	if p.stats != "" {
		cfg = strings.ReplaceAll(cfg, p.stats, freeAddr(t))
	}
	cfg = strings.ReplaceAll(cfg, "/tmp/million-nginx", filepath.Join(dir, "nginx"))
	path := filepath.Join(dir, filepath.Base(p.config))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, p.args(path)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// nginx forks workers that hold the output pipes: run the proxy in its
	// own process group and stop the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, logs.String())
		}
	})
	base := "http://" + front
	client := &http.Client{Timeout: 10 * time.Second}
	waitFor(t, 15*time.Second, func() error {
		return expectStatus(client, "GET", base+"/readyz", nil, 200, nil)
	})

	// Requests spread over both instances, and a request ID passes through.
	before := productRequests(t, a) + productRequests(t, b)
	aBefore, bBefore := productRequests(t, a), productRequests(t, b)
	for i := range 40 {
		id := fmt.Sprintf("deploy-test-%d", i)
		req, _ := http.NewRequest("GET", base+"/v1/products", nil)
		req.Header.Set("X-Request-ID", id)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Request-ID") != id {
			t.Fatalf("GET /v1/products through %s: %d, request ID %q; want 200 and %q",
				p.name, resp.StatusCode, resp.Header.Get("X-Request-ID"), id)
		}
	}
	if got := productRequests(t, a) + productRequests(t, b) - before; got != 40 {
		t.Fatalf("the instances served %v product lists for 40 sent", got)
	}
	if productRequests(t, a) == aBefore || productRequests(t, b) == bBefore {
		t.Fatalf("one instance got every request (a %v→%v, b %v→%v)", aBefore, productRequests(t, a), bBefore, productRequests(t, b))
	}

	// A session opened through the proxy works whichever instance answers.
	email := "deploy-" + p.name + "@example.com"
	if err := expectStatus(client, "POST", base+"/v1/auth/register",
		map[string]string{"email": email, "password": "correct horse battery", "name": "Deploy"}, 201, nil); err != nil {
		t.Fatal(err)
	}
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	if err := expectStatus(client, "POST", base+"/v1/auth/login",
		map[string]string{"email": email, "password": "correct horse battery"}, 200, &tokens); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		req, _ := http.NewRequest("GET", base+"/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+tokens.AccessToken)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /v1/me through %s: %d", p.name, resp.StatusCode)
		}
	}

	// One instance stops: every read still succeeds, on the other.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if err := expectStatus(client, "GET", base+"/v1/products", nil, 200, nil); err != nil {
			t.Fatalf("request %d after an instance stopped: %v", i, err)
		}
	}
}

// productRequests reads how many product lists an instance has answered.
func productRequests(t *testing.T, s *e2e.Server) float64 {
	t.Helper()
	resp, err := http.Get(s.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var total float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "million_http_requests_total{") && strings.Contains(line, `route="/v1/products"`) && strings.Contains(line, `method="GET"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return total
}

func expectStatus(c *http.Client, method, url string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s; want %d", method, url, resp.StatusCode, b, want)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func waitFor(t *testing.T, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %v: %v", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hostPort(baseURL string) string { return strings.TrimPrefix(baseURL, "http://") }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
