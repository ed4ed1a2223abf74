package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/google/uuid"
)

// gatewayPaths is how many distinct product paths the gateway scenario asks
// for: the proxies route on nothing but the path, so these only keep the
// requests from being all alike.
const gatewayPaths = 1000

// haproxyCheck is HAProxy's health check of the backends, the same as
// million gateway's (--health-path, --health-interval, --rise, --fall).
const (
	healthPath     = "/readyz"
	healthInterval = "1s"
	healthRise     = 2
	healthFall     = 2
)

// runGateway compares million gateway with HAProxy, each proxying round
// robin to the same two bare net/http backends, all on the server CPU
// (each process with one thread: GOMAXPROCS=1, nbthread 1).
func runGateway(ctx context.Context, r *runner, res *ScenarioResult) error {
	haproxy, version, err := findHAProxy(ctx)
	if err != nil {
		return err
	}
	res.Baseline = strings.Replace(res.Baseline, "HAProxy 2.6", version, 1)
	c := productCapture()
	var backends []*server
	defer func() {
		for _, b := range backends {
			b.stop()
		}
	}()
	for i := 1; i <= 2; i++ {
		b, err := r.startBare(ctx, fmt.Sprintf("%s-backend%d", res.Name, i), c)
		if err != nil {
			return err
		}
		backends = append(backends, b)
	}
	addrs := []string{backends[0].addr, backends[1].addr}

	gwArgs := []string{"gateway", "--listen", "127.0.0.1:0", "--admin-addr", "off", "--strategy", "rr",
		"--no-access-log", "--log-level", "info", "--rate-limit-ip", "0", "--rate-limit-user", "0",
		"--health-path", healthPath, "--health-interval", healthInterval,
		"--rise", strconv.Itoa(healthRise), "--fall", strconv.Itoa(healthFall)}
	for _, a := range addrs {
		gwArgs = append(gwArgs, "--backend", "http://"+a)
	}
	gw, err := startServer(ctx, "million gateway", r.cfg.Pins.command(r.cfg.Pins.ServerCPU, r.cfg.Binary, gwArgs...),
		filepath.Join(r.dir, res.Name+"-gateway.log"), "/")
	if err != nil {
		return err
	}
	defer gw.stop()

	port, err := freePort()
	if err != nil {
		return err
	}
	hpAddr := "127.0.0.1:" + strconv.Itoa(port)
	cfgFile := filepath.Join(r.dir, res.Name+"-haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(haproxyConfig(hpAddr, addrs)), 0o644); err != nil {
		return err
	}
	hp, err := startServerAt(ctx, version, r.cfg.Pins.command(r.cfg.Pins.ServerCPU, haproxy, "-db", "-f", cfgFile),
		filepath.Join(r.dir, res.Name+"-haproxy.log"), hpAddr, "/")
	if err != nil {
		return err
	}
	defer hp.stop()

	paths := make([]string, gatewayPaths)
	for i := range paths {
		paths[i] = "/v1/products/" + uuid.NewSHA1(uuid.NameSpaceURL, []byte(strconv.Itoa(i))).String()
	}
	res.Data = fmt.Sprintf("%s distinct product paths; every backend answers with the same %s-byte product JSON", thousands(gatewayPaths), thousands(int64(len(c.Body))))
	res.Load = fmt.Sprintf("capacity: %d keep-alive connections, closed loop, %s; latency: open model at 50 %% of the lower of the two sides' capacities in the round, the same rate for both, %s; %s warm-up per side",
		r.cfg.Connections, r.cfg.Duration, r.cfg.Duration, r.cfg.Warmup)
	backendPids := []int{backends[0].pid(), backends[1].pid()}
	target := &httpSide{r: r, name: "million gateway", srv: gw, roots: append([]int{gw.pid()}, backendPids...),
		t: newHTTPTarget(gw.addr, r.cfg.Connections), next: pick(paths), step: "product"}
	baseline := &httpSide{r: r, name: "HAProxy", srv: hp, roots: append([]int{hp.pid()}, backendPids...),
		t: newHTTPTarget(hp.addr, r.cfg.Connections), next: pick(paths), step: "product"}
	defer target.t.close()
	defer baseline.t.close()
	res.NotesInDocs = true
	res.Notes = append(res.Notes,
		"million gateway had on: round robin; event loops (gnet, one per GOMAXPROCS) reading whole messages with fasthttp's parsers; a keep-alive pool to each backend (up to 1,024 connections); X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host set; an X-Request-ID made for each request and returned; active health checks (GET "+healthPath+" every "+healthInterval+", rise 2, fall 2); passive ejection after 5 failures in a row; up to 3 attempts for idempotent requests within a retry budget; Prometheus counters per request (admin listener off); access log and rate limits off",
		"HAProxy had on (the generated configuration, "+filepath.Base(cfgFile)+"): balance roundrobin; keep-alive to the backends (http-reuse safe, the default); option forwardfor, X-Forwarded-Proto and X-Forwarded-Host set; unique-id X-Request-ID made for each request and returned; option httpchk GET "+healthPath+" (inter 1s rise 2 fall 2); observe layer7 error-limit 5 on-error mark-down; retries 2 with option redispatch; its built-in counters; no logging; nbthread 1",
		"both proxies and the two backends share the server CPU; the server CPU time counted is the proxy's and the backends'")
	err = r.compareAtCommonRate(ctx, res, baseline, target)
	var p99s []float64
	for _, rd := range res.Rounds {
		if rd.Target != nil && rd.Baseline != nil && rd.Target.Latency != nil && rd.Baseline.Latency != nil && rd.Baseline.Latency.P99 > 0 {
			p99s = append(p99s, rd.Target.Latency.P99/rd.Baseline.Latency.P99)
		}
	}
	if st := Summarize(p99s); st.N > 0 {
		res.Notes = append(res.Notes, "p99 at the same rate, million gateway over HAProxy (≤ 1 is no worse): "+st.Format(fmtRatio))
	}
	return err
}

// productCapture is what the gateway scenario's backends answer: a product
// as GET /v1/products/{id} returns it.
func productCapture() *Capture {
	body, _ := json.Marshal(map[string]any{
		"id": "0193a5f0-5b1e-7c3a-9d2e-4f6a8b0c1d2e", "sku": "SKU-0000042", "name": "Walnut desk lamp with linen shade",
		"description": "A warm, dimmable desk lamp: oiled walnut base, linen shade, braided cable, E27 socket. Ships assembled.",
		"price_cents": 4999, "currency": "USD", "category": "lighting", "stock": 57,
		"image_url":  "https://img.example.com/products/0193a5f0-5b1e-7c3a-9d2e-4f6a8b0c1d2e.jpg",
		"created_at": "2026-11-01T09:30:00Z", "updated_at": "2026-11-20T16:45:12Z",
	})
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, no-cache")
	h.Set("Etag", `"7d1f3a9c"`)
	return &Capture{Path: "/v1/products/{id}", Status: http.StatusOK, Header: h, Body: body}
}

// findHAProxy finds the haproxy binary (Debian puts it in /usr/sbin, often
// not on a user's PATH) and its version ("HAProxy 2.6.12").
func findHAProxy(ctx context.Context) (path, version string, err error) {
	path, err = exec.LookPath("haproxy")
	if err != nil {
		path = "/usr/sbin/haproxy"
		if _, serr := os.Stat(path); serr != nil {
			return "", "", errors.New("haproxy is not installed (Debian: apt-get install haproxy)")
		}
	}
	out, err := exec.CommandContext(ctx, path, "-v").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s -v: %w", path, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(first) // HAProxy version 2.6.12-1+deb12u4 2026/10/17 - …
	if len(f) < 3 {
		return "", "", fmt.Errorf("%s -v: unexpected %q", path, first)
	}
	v, _, _ := strings.Cut(f[2], "-")
	return path, "HAProxy " + v, nil
}

var haproxyTemplate = template.Must(template.New("haproxy").Parse(`# Generated by million bench (scenario gateway): HAProxy with the features
# million gateway has on in the same scenario, and no more.
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse safe
    option forwardfor
    retries 2
    option redispatch
    timeout connect 2s
    timeout client 60s
    timeout server 35s
    timeout http-request 5s
    timeout http-keep-alive 120s

frontend public
    bind {{.Listen}}
    unique-id-format %[uuid]
    unique-id-header X-Request-ID
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-response set-header X-Request-ID %[unique-id]
    default_backend backends

backend backends
    balance roundrobin
    option httpchk GET {{.HealthPath}}
    default-server check inter {{.Interval}} rise {{.Rise}} fall {{.Fall}} observe layer7 error-limit 5 on-error mark-down
{{- range $i, $b := .Backends}}
    server b{{$i}} {{$b}}
{{- end}}
`))

// haproxyConfig is HAProxy's configuration for the gateway scenario:
// listening on listen, round robin over backends (host:port).
func haproxyConfig(listen string, backends []string) string {
	var b bytes.Buffer
	_ = haproxyTemplate.Execute(&b, map[string]any{"Listen": listen, "Backends": backends, "HealthPath": healthPath,
		"Interval": healthInterval, "Rise": healthRise, "Fall": healthFall})
	return b.String()
}

// compareAtCommonRate is compare for two proxies: in each round it finds
// both sides' capacities, then runs both at half the lower one, so that
// their latencies are measured under the same load.
func (r *runner) compareAtCommonRate(ctx context.Context, res *ScenarioResult, baseline, target *httpSide) error {
	sides := []*httpSide{baseline, target}
	only, resumeAll, err := r.warmUp(ctx, []side{baseline, target})
	defer resumeAll()
	if err != nil {
		return err
	}
	for i := 1; i <= r.cfg.Rounds; i++ {
		round := Round{N: i}
		measured := make([]*Side, len(sides))
		for k, s := range sides {
			only(s)
			m, err := s.capacity(ctx, r.cfg.Duration)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", i, s.name, err)
			}
			measured[k] = m
		}
		rate := math.Min(measured[0].ThroughputRPS, measured[1].ThroughputRPS) / 2
		for k, s := range sides {
			only(s)
			l, err := openModel(ctx, r.cfg.Pins, s.t, s.next, s.step, rate, r.cfg.Duration)
			measured[k].Latency = l
			r.logf("  round %d  %s", i, measured[k].line())
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", i, s.name, err)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		round.Baseline, round.Target = measured[0], measured[1]
		r.roundRatio(res, &round)
		res.Rounds = append(res.Rounds, round)
	}
	return nil
}

// startServerAt is startServer for a server that does not log its address
// (HAProxy): it listens on addr, chosen by the bench.
func startServerAt(ctx context.Context, name string, cmd *exec.Cmd, logPath, addr, readyPath string) (*server, error) {
	return startServerWith(ctx, name, cmd, logPath, addr, readyPath)
}
