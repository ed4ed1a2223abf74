// Package gateway is million's HTTP reverse proxy for running several
// `million serve` instances as one shop (stage 3): it balances requests
// (round robin, power of two choices, rendezvous hashing on the client IP),
// keeps backends out while their /readyz fails (active checks with
// rise/fall) or while they answer errors (passive outlier ejection with a
// growing ejection time), and retries on another backend only when that
// cannot run a request twice, within a retry budget. The backend list can
// change at run time (file poll or Reload on SIGHUP).
//
// The data path is fasthttp's server and client: see Server.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millionshop/million/obs"
	"github.com/millionshop/million/ratelimit"
	"github.com/millionshop/million/web"
)

// Options configure a Gateway. Zero values take the defaults named on each
// field.
type Options struct {
	Backends     []string // backend URLs given on the command line; kept across reloads
	BackendsFile string   // optional file with more backend URLs, one per line, '#' comments
	FilePoll     time.Duration
	Strategy     Strategy // default RoundRobin

	HealthPath     string        // default "/readyz"
	HealthInterval time.Duration // default 1s
	HealthTimeout  time.Duration // default 1s
	Rise           int           // consecutive passing checks to return; default 2
	Fall           int           // consecutive failing checks to leave; default 2

	EjectAfter      int           // consecutive 5xx or connection failures that eject; default 5
	EjectBase       time.Duration // first ejection time, doubled at each ejection in a row; default 5s
	EjectMax        time.Duration // ejection time cap; default 2m
	MaxEjectPercent int           // at most this share of backends ejected at once (at least one, never all); default 50

	MaxAttempts     int     // attempts per request, the first included; default 3
	RetryRatio      float64 // retries allowed as a share of requests over the last 10 s; default 0.2
	RetryMin        int     // retries always allowed per 10 s; default 30
	MaxRequestBody  int64   // larger request bodies are refused with 413; default 1 MiB, million serve's limit
	MaxResponseBody int64   // a larger answer is a failed attempt (502); default 64 MiB
	// IdempotentPOST lists the paths whose POST handlers deduplicate by
	// Idempotency-Key, so such a POST with the header may be retried;
	// default /v1/checkout, million's one.
	IdempotentPOST  []string
	RetryOnStatuses []int // backend statuses retried for idempotent requests; default 500, 502, 503, 504

	DialTimeout           time.Duration // default 2s
	ResponseHeaderTimeout time.Duration // wait for a backend's whole answer; default 35s (above serve's request timeout)
	RequestTimeout        time.Duration // whole request, retries included; default 60s
	MaxConnsPerBackend    int           // connections to one backend, idle or busy; default 1024

	TrustForwardedFor bool // take the client IP from the last X-Forwarded-For entry (only behind one trusted proxy)
	AccessLog         bool
	Logger            *slog.Logger
	Registry          prometheus.Registerer // where the metrics go; default a new registry

	// RateLimit, when enabled, limits requests per client IP and per user
	// (429 with Retry-After and RateLimit-* fields), /healthz and /readyz
	// exempt.
	RateLimit *ratelimit.Policy
	// Subject returns the user a bearer token names when it verifies, else
	// "": the key of the per-user limit.
	Subject func(token string) string

	Now func() time.Time // clock of ejections and the retry budget; default time.Now
}

func (o *Options) defaults() {
	setD := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setI := func(i *int, v int) {
		if *i <= 0 {
			*i = v
		}
	}
	if o.Strategy == "" {
		o.Strategy = RoundRobin
	}
	if o.HealthPath == "" {
		o.HealthPath = "/readyz"
	}
	setD(&o.FilePoll, time.Second)
	setD(&o.HealthInterval, time.Second)
	setD(&o.HealthTimeout, time.Second)
	setI(&o.Rise, 2)
	setI(&o.Fall, 2)
	setI(&o.EjectAfter, 5)
	setD(&o.EjectBase, 5*time.Second)
	setD(&o.EjectMax, 2*time.Minute)
	setI(&o.MaxEjectPercent, 50)
	setI(&o.MaxAttempts, 3)
	if o.RetryRatio <= 0 {
		o.RetryRatio = 0.2
	}
	if o.RetryMin < 0 {
		o.RetryMin = 0
	} else if o.RetryMin == 0 {
		o.RetryMin = 30
	}
	if o.IdempotentPOST == nil {
		o.IdempotentPOST = []string{"/v1/checkout"}
	}
	if o.MaxRequestBody <= 0 {
		o.MaxRequestBody = 1 << 20
	}
	if o.MaxResponseBody <= 0 {
		o.MaxResponseBody = 64 << 20
	}
	if o.RetryOnStatuses == nil {
		o.RetryOnStatuses = []int{500, 502, 503, 504}
	}
	setD(&o.DialTimeout, 2*time.Second)
	setD(&o.ResponseHeaderTimeout, 35*time.Second)
	setD(&o.RequestTimeout, 60*time.Second)
	setI(&o.MaxConnsPerBackend, 1024)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Gateway is the reverse proxy. Create it with New, start its health
// checks and file watch with Run, and serve Server.
type Gateway struct {
	opts    Options
	logger  *slog.Logger
	now     func() time.Time
	dialer  *net.Dialer
	probe   *http.Client
	metrics *metrics
	budget  *retryBudget
	rr      atomic.Uint64
	// localLimits: the rate limiter is in memory, so a check never waits
	// and runs on the event loop (Redis's runs on a goroutine).
	localLimits bool

	mu       sync.RWMutex
	backends []*backend
	fileSeen []byte // last backends file content applied

	reloadMu sync.Mutex // one reload at a time
	ejectMu  sync.Mutex // ejection decisions see a consistent count
	kick     chan struct{}
}

// New validates the options and loads the backend list; health checks
// start with Run.
func New(opts Options) (*Gateway, error) {
	opts.defaults()
	for _, s := range opts.RetryOnStatuses {
		if s < 500 || s > 599 {
			return nil, fmt.Errorf("retry on status %d: only 5xx may be retried", s)
		}
	}
	if _, err := ParseStrategy(string(opts.Strategy)); err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	g := &Gateway{
		opts:    opts,
		logger:  opts.Logger,
		now:     opts.Now,
		metrics: newMetrics(opts.Registry),
		budget:  &retryBudget{ratio: opts.RetryRatio, minimum: opts.RetryMin, now: opts.Now},
		kick:    make(chan struct{}, 1),
		dialer:  dialer,
	}
	if opts.RateLimit != nil {
		_, g.localLimits = opts.RateLimit.Limiter.(*ratelimit.Memory)
	}
	g.probe = &http.Client{
		Timeout: opts.HealthTimeout,
		Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 2,
			IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: opts.HealthTimeout},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if err := g.Reload(); err != nil {
		return nil, err
	}
	return g, nil
}

// Reload rereads the backends file and applies the union of it and
// Options.Backends. Backends that stay keep their state; new ones are
// checked at once. A list that fails to parse or comes out empty is
// refused and the current one kept. The command calls it on SIGHUP.
func (g *Gateway) Reload() error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	var content []byte
	urls := slices.Clone(g.opts.Backends)
	if g.opts.BackendsFile != "" {
		b, err := os.ReadFile(g.opts.BackendsFile)
		if err != nil {
			return fmt.Errorf("read backends file: %w", err)
		}
		fromFile, err := ParseBackendsFile(b)
		if err != nil {
			return fmt.Errorf("backends file %s: %w", g.opts.BackendsFile, err)
		}
		urls = append(urls, fromFile...)
		content = b
	}
	if err := g.setBackends(urls); err != nil {
		return err
	}
	g.mu.Lock()
	g.fileSeen = content
	g.mu.Unlock()
	return nil
}

func (g *Gateway) setBackends(raw []string) error {
	var next []*backend
	seen := map[string]bool{}
	g.mu.RLock()
	current := map[string]*backend{}
	for _, b := range g.backends {
		current[b.key] = b
	}
	g.mu.RUnlock()
	var added []string
	for _, r := range raw {
		u, err := ParseBackendURL(r)
		if err != nil {
			return err
		}
		key := u.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		b, ok := current[key]
		if !ok {
			b = newBackend(u, g.metrics)
			if u.Scheme == "https" {
				// The event loops speak plain TCP: TLS backends get
				// fasthttp's client, on a goroutine per attempt.
				b.client = newUpstream(u, &g.opts, g.dialer)
			}
			added = append(added, key)
			g.metrics.healthy.WithLabelValues(key).Set(1)
			g.metrics.ejected.WithLabelValues(key).Set(0)
		}
		next = append(next, b)
	}
	if len(next) == 0 {
		return errors.New("no backends: give --backend or a backends file with at least one URL")
	}
	var removed []string
	for key, b := range current {
		if !seen[key] {
			removed = append(removed, key)
			g.metrics.forget(key)
			// The loops close its connections as they fall idle.
			b.removed.Store(true)
			if b.client != nil {
				b.client.CloseIdleConnections()
				// Requests still in flight give their connections back to
				// the pool afterwards: close those once they are done too.
				time.AfterFunc(g.opts.RequestTimeout+time.Second, b.client.CloseIdleConnections)
			}
		}
	}
	g.mu.Lock()
	g.backends = next
	g.mu.Unlock()
	if len(added) > 0 || len(removed) > 0 {
		g.logger.Info("backends changed", "added", added, "removed", removed, "total", len(next))
		select {
		case g.kick <- struct{}{}: // check the new ones now
		default:
		}
	}
	return nil
}

func (g *Gateway) snapshot() []*backend {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.backends
}

// Backends returns the state of every backend, in list order.
func (g *Gateway) Backends() []BackendStatus {
	now := g.now()
	var out []BackendStatus
	for _, b := range g.snapshot() {
		out = append(out, b.status(now))
	}
	return out
}

// Run checks backend health every HealthInterval and polls the backends
// file every FilePoll until ctx ends. The first round runs at once.
func (g *Gateway) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if g.opts.BackendsFile != "" {
		wg.Go(func() { g.watchFile(ctx) })
	}
	t := time.NewTicker(g.opts.HealthInterval)
	defer t.Stop()
	for {
		g.checkAll(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			for _, b := range g.snapshot() {
				if b.client != nil {
					b.client.CloseIdleConnections()
				}
			}
			return
		case <-t.C:
		case <-g.kick:
		}
	}
}

// CheckNow runs one round of health checks (tests and the first round).
func (g *Gateway) CheckNow(ctx context.Context) { g.checkAll(ctx) }

func (g *Gateway) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	now := g.now()
	for _, b := range g.snapshot() {
		wg.Go(func() {
			err := g.check(ctx, b)
			if ctx.Err() != nil {
				return
			}
			if b.recordCheck(err == nil, g.opts.Rise, g.opts.Fall) {
				healthy := err == nil
				if healthy {
					g.logger.Info("backend healthy", "backend", b.key)
					g.metrics.healthy.WithLabelValues(b.key).Set(1)
				} else {
					g.logger.Warn("backend unhealthy", "backend", b.key, "error", err.Error())
					g.metrics.healthy.WithLabelValues(b.key).Set(0)
				}
			}
			ej := 0.0
			if b.ejected(now) {
				ej = 1
			}
			g.metrics.ejected.WithLabelValues(b.key).Set(ej)
		})
	}
	wg.Wait()
}

func (g *Gateway) check(ctx context.Context, b *backend) error {
	ctx, cancel := context.WithTimeout(ctx, g.opts.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.key+g.opts.HealthPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "million-gateway-health")
	resp, err := g.probe.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %d", g.opts.HealthPath, resp.StatusCode)
	}
	return nil
}

func (g *Gateway) watchFile(ctx context.Context) {
	t := time.NewTicker(g.opts.FilePoll)
	defer t.Stop()
	var pending []byte // a changed content not yet seen twice
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Compare contents, not only the mtime: two writes within one
		// mtime tick must not be missed, and the file is small.
		b, err := os.ReadFile(g.opts.BackendsFile)
		if err != nil {
			g.logger.Warn("backends file unreadable; keeping the current list", "file", g.opts.BackendsFile, "error", err.Error())
			continue
		}
		g.mu.RLock()
		same := bytes.Equal(b, g.fileSeen)
		g.mu.RUnlock()
		if same {
			pending = nil
			continue
		}
		// A file rewritten in place is empty or half written for a moment
		// (truncate, then write): apply a change only once two polls in a
		// row read the same content. SIGHUP (Reload) applies at once.
		if pending == nil || !bytes.Equal(b, pending) {
			pending = b
			continue
		}
		pending = nil
		if err := g.Reload(); err != nil {
			g.logger.Error("backends file rejected; keeping the current list", "error", err.Error())
			g.mu.Lock()
			g.fileSeen = b // do not log the same bad content every poll
			g.mu.Unlock()
		}
	}
}

// observe feeds passive outlier detection with one attempt's outcome.
func (g *Gateway) observe(b *backend, failed bool) {
	now := g.now()
	b.mu.Lock()
	if !failed {
		b.consecFail = 0
		// A backend that has served well for a while after its last
		// ejection starts again from the base ejection time.
		if b.ejections > 0 && now.After(b.ejectedUntil.Add(g.opts.EjectMax)) {
			b.ejections = 0
		}
		b.mu.Unlock()
		return
	}
	b.consecFail++
	due := b.consecFail >= g.opts.EjectAfter && !now.Before(b.ejectedUntil)
	b.mu.Unlock()
	if !due {
		return
	}
	g.ejectMu.Lock()
	defer g.ejectMu.Unlock()
	bs := g.snapshot()
	ejected := 0
	for _, x := range bs {
		if x.ejected(now) {
			ejected++
		}
	}
	allowed := len(bs) * g.opts.MaxEjectPercent / 100
	if allowed < 1 {
		allowed = 1
	}
	allowed = min(allowed, len(bs)-1) // never all: the last one standing keeps serving
	if ejected >= allowed {
		return // never eject all: the rest must carry the load, or the least bad is tried anyway
	}
	b.mu.Lock()
	if b.consecFail < g.opts.EjectAfter || now.Before(b.ejectedUntil) {
		b.mu.Unlock()
		return
	}
	d := g.opts.EjectBase << min(b.ejections, 30)
	if d <= 0 || d > g.opts.EjectMax {
		d = g.opts.EjectMax
	}
	b.ejections++
	b.ejectedUntil = now.Add(d)
	b.consecFail = 0
	n := b.ejections
	b.mu.Unlock()
	g.metrics.ejections.WithLabelValues(b.key).Inc()
	g.metrics.ejected.WithLabelValues(b.key).Set(1)
	g.logger.Warn("backend ejected", "backend", b.key, "for", d.String(), "ejections", n)
}

// AdminHandler serves the admin listener: obs's /metrics and pprof for m,
// /healthz, /readyz (200 while at least one backend is available) and
// /backends (the JSON state of every backend).
func (g *Gateway) AdminHandler(m *obs.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /backends", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"backends": g.Backends()})
	})
	ready := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		for _, b := range g.Backends() {
			if b.Available {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
				return
			}
		}
		w.Header().Set("Retry-After", "1")
		web.WriteProblem(w, web.Problem{Type: "urn:million:problem:no_backend", Title: http.StatusText(http.StatusServiceUnavailable),
			Status: http.StatusServiceUnavailable, Detail: "no backend is available", Code: "no_backend"})
	})
	health := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.Handle("/", m.AdminHandler(health, ready))
	return mux
}
