package acceptance

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/millionshop/million/redistest"
)

// TestRollingRestartUnderLoad is acceptance 2: three instances behind the
// gateway, restarted one by one by `million rolling-restart` while
// shoppers browse, fill carts and check out with Idempotency-Keys through
// the gateway: not one request fails.
func TestRollingRestartUnderLoad(t *testing.T) {
	t.Parallel()
	db := shop(t)
	dir := t.TempDir()
	var ins []*instance
	var urls []string
	for i := 1; i <= 3; i++ {
		in := startInstance(t, i, db, dir, true)
		ins = append(ins, in)
		urls = append(urls, in.URL())
	}
	g := startGateway(t, urls)
	clients := newClients(t, g.url, 8)
	products := productIDs(t, clients[0])

	l := &load{}
	ctx, stop := context.WithCancel(context.Background())
	wg := l.run(ctx, clients, products, 25*time.Millisecond, true) // 8 shoppers × 40/s ≈ 320 req/s offered
	defer func() { stop(); wg.Wait() }()
	time.Sleep(time.Second)

	began := time.Now()
	args := []string{"rolling-restart", "--command", "kill -TERM $(cat " + dir + "/%i.pid)",
		"--gateway-admin", g.admin, "--settle", "1s", "--down-timeout", "20s", "--ready-timeout", "60s"}
	for _, u := range urls {
		args = append(args, "--instance", u)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	restartTook := time.Since(began)
	time.Sleep(time.Second)
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("rolling-restart: %v\n%s\ngateway:\n%s", err, out, g.logs)
	}
	if !strings.Contains(string(out), "rolling restart of 3 instances done") {
		t.Fatalf("rolling-restart output:\n%s", out)
	}
	for _, in := range ins {
		if n := in.starts.Load(); n != 2 {
			t.Errorf("instance %d started %d times, want 2 (one restart)\n%s", in.idx, n, in.logs)
		}
	}
	total, checkouts, elapsed := l.total.Load(), l.checkout.Load(), restartTook+2*time.Second
	t.Logf("rolling restart took %s; %d requests (%.0f req/s), %d checkouts, %d failed",
		restartTook.Round(time.Millisecond), total, float64(total)/elapsed.Seconds(), checkouts, l.nfail.Load())
	if n := l.nfail.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed during the rolling restart:\n%s\ngateway:\n%s",
			n, total, strings.Join(l.failed(), "\n"), g.logs)
	}
	if total < 1000 || checkouts < 100 {
		t.Fatalf("only %d requests (%d checkouts): the load was too thin to prove anything", total, checkouts)
	}
}

// switchable forwards to a real instance, or answers 500 to everything
// but /readyz while failing, so only passive ejection can notice it.
type switchable struct {
	*httptest.Server
	failing atomic.Bool
	hits    atomic.Int64 // requests forwarded while healthy
	fails   atomic.Int64 // requests answered 500
}

func newSwitchable(t *testing.T, target string) *switchable {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	s := &switchable{}
	rp := httputil.NewSingleHostReverseProxy(u)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" && s.failing.Load() {
			s.fails.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		if r.URL.Path != "/readyz" {
			s.hits.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestFailingBackendIsEjectedAndKillNineFailsNothing is acceptance 3: a
// backend that starts answering 500 is ejected while idempotent requests
// succeed on the others, it comes back once it recovers, and a `kill -9`
// of an instance under load fails no idempotent request.
func TestFailingBackendIsEjectedAndKillNineFailsNothing(t *testing.T) {
	t.Parallel()
	db := shop(t)
	dir := t.TempDir()
	in1 := startInstance(t, 1, db, dir, false)
	in2 := startInstance(t, 2, db, dir, false)
	in3 := startInstance(t, 3, db, dir, false)
	sw := newSwitchable(t, in3.URL())
	g := startGateway(t, []string{in1.URL(), in2.URL(), sw.URL},
		"--eject-after", "3", "--eject-base", "1s", "--eject-max", "2s")
	clients := newClients(t, g.url, 6)
	products := productIDs(t, clients[0])

	l := &load{}
	ctx, stop := context.WithCancel(context.Background())
	wg := l.run(ctx, clients, products, 20*time.Millisecond, false) // GET, GET, PUT, GET: all idempotent
	defer func() { stop(); wg.Wait() }()
	phase := func(name string, d time.Duration, during func() bool) bool {
		seen := false
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			if during != nil && during() {
				seen = true
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := l.nfail.Load(); n != 0 {
			t.Fatalf("%s: %d requests failed:\n%s\ngateway:\n%s", name, n, strings.Join(l.failed(), "\n"), g.logs)
		}
		return seen
	}
	phase("warm-up", time.Second, nil)
	if sw.hits.Load() == 0 {
		t.Fatal("the switchable backend got no traffic before failing")
	}

	sw.failing.Store(true)
	ejected := phase("backend answering 500", 4*time.Second, func() bool {
		for _, b := range g.backends(t) {
			if b["url"] == sw.URL && b["ejected"] == true {
				return true
			}
		}
		return false
	})
	if !ejected || sw.fails.Load() == 0 {
		t.Fatalf("the failing backend was never seen ejected (it answered %d 500s)", sw.fails.Load())
	}
	metrics := get(t, g.admin+"/metrics")
	if want := fmt.Sprintf("million_gateway_ejections_total{backend=%q}", sw.URL); !strings.Contains(metrics, want) {
		t.Fatalf("/metrics lacks %s", want)
	}

	sw.failing.Store(false)
	back := sw.hits.Load()
	phase("backend recovered", 5*time.Second, nil)
	if sw.hits.Load()-back < 20 {
		t.Fatalf("the recovered backend got %d requests in 5 s; it should be back in rotation", sw.hits.Load()-back)
	}

	before := l.total.Load()
	in1.kill9(t)
	phase("after kill -9", 3*time.Second, nil)
	stop()
	wg.Wait()
	if n := l.nfail.Load(); n != 0 {
		t.Fatalf("%d requests failed after kill -9:\n%s", n, strings.Join(l.failed(), "\n"))
	}
	for _, b := range g.backends(t) {
		if b["url"] == in1.URL() && b["available"] == true {
			t.Errorf("the killed backend is still available in the gateway's view: %v", b)
		}
	}
	t.Logf("%d requests in all, %d after the kill, 0 failed; the 500 backend answered %d 500s, all retried",
		l.total.Load(), l.total.Load()-before, sw.fails.Load())
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestGatewayBinaryReloadsOnSIGHUP checks the command's wiring of the
// backends file: a change applied by SIGHUP without waiting for the poll.
func TestGatewayBinaryReloadsOnSIGHUP(t *testing.T) {
	t.Parallel()
	named := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, name)
		}))
		t.Cleanup(s.Close)
		return s
	}
	a, b := named("a"), named("b")
	file := t.TempDir() + "/backends"
	if err := os.WriteFile(file, []byte("# one for now\n"+a.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, nil, "--backends-file", file, "--file-poll", "1h")
	if body := get(t, g.url+"/x"); body != "a" {
		t.Fatalf("got %q from the gateway, want a", body)
	}
	if err := os.WriteFile(file, []byte(b.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for get(t, g.url+"/x") != "b" {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not switch the gateway to b\n%s", g.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRollingRestartStopsAtAnInstanceThatDoesNotComeBack checks the tool
// fails loudly rather than moving on: an instance still ready after its
// restart command (the command did nothing), and one that never returns.
func TestRollingRestartStopsAtAnInstanceThatDoesNotComeBack(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	ready.Store(true)
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer inst.Close()
	run := func(command string) (string, error) {
		out, err := exec.Command(bin, "rolling-restart", "--instance", inst.URL, "--instance", inst.URL,
			"--command", command, "--down-timeout", "500ms", "--ready-timeout", "500ms").CombinedOutput()
		return string(out), err
	}
	if out, err := run("true"); err == nil || !strings.Contains(out, "still ready") {
		t.Fatalf("a restart command that restarts nothing passed: %v\n%s", err, out)
	}
	// The command takes the instance down for good (it stays 503).
	flag := t.TempDir() + "/down"
	go func() {
		for {
			if _, err := os.Stat(flag); err == nil {
				ready.Store(false)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	out, err := run("touch " + flag)
	if err == nil || !strings.Contains(out, "not ready within") || strings.Contains(out, "restarting 2/2") {
		t.Fatalf("the tool went on past an instance that never came back: %v\n%s", err, out)
	}
}

// TestGatewayRateLimitsAcrossGateways: two `million gateway` processes
// share their request buckets in a real Redis, so a client over the limit
// is refused by both with 429, Retry-After and RateLimit-* headers, and
// the limit counts once for the pair, not once per gateway.
func TestGatewayRateLimitsAcrossGateways(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	redis := redistest.Start(t)
	limit := []string{"--redis", redis.URL(), "--rate-limit-ip", "6/h"}
	gws := []*gw{startGateway(t, []string{backend.URL}, limit...), startGateway(t, []string{backend.URL}, limit...)}

	allowed, refused := 0, 0
	for i := range 12 {
		resp, err := http.Get(gws[i%2].url + "/v1/products")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			allowed++
			if resp.Header.Get("RateLimit-Limit") == "" {
				t.Fatalf("an allowed response lacks RateLimit-Limit: %v", resp.Header)
			}
		case http.StatusTooManyRequests:
			refused++
			if resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Remaining") != "0" ||
				resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("a 429 lacks its headers: %v", resp.Header)
			}
		default:
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	if allowed != 6 || refused != 6 {
		t.Fatalf("%d allowed and %d refused across two gateways with a shared limit of 6; want 6 and 6", allowed, refused)
	}
	// Health probes are never limited.
	for _, g := range gws {
		if resp, err := http.Get(g.url + "/readyz"); err != nil || resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("/readyz limited or failing: %v %v", resp, err)
		}
	}
}
