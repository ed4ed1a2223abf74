package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// backend is one upstream instance and everything the gateway knows about
// it. A reload keeps the same *backend for a URL that stays in the list, so
// its health, ejection history and counters survive.
type backend struct {
	url      *url.URL
	key      string // the normalized URL, the identity across reloads
	inFlight atomic.Int64
	requests atomic.Int64
	metrics  *backendMetrics
	client   *fasthttp.HostClient // for an https backend; the event loops reach http ones
	removed  atomic.Bool          // no longer in the list: its connections close when idle
	conns    atomic.Int64         // connections open or being opened by the event loops
	scheme   []byte               // of url, as the request URI takes it
	host     []byte
	prefix   string // url's path, put before every request's

	mu           sync.Mutex
	healthy      bool // active health state; optimistic until the first check
	checked      bool
	okStreak     int
	failStreak   int
	consecFail   int // passive: consecutive 5xx or connection failures
	ejections    int // how many times in a row it was ejected; the ejection time doubles each time
	ejectedUntil time.Time
}

func newBackend(u *url.URL, m *metrics) *backend {
	key := u.String()
	return &backend{url: u, key: key, healthy: true, metrics: &backendMetrics{m: m, key: key},
		scheme: []byte(u.Scheme), host: []byte(u.Host), prefix: u.Path}
}

// available reports whether new requests may go to b: healthy by the
// active checks and not ejected by the passive ones.
func (b *backend) available(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.healthy && !now.Before(b.ejectedUntil)
}

// badness orders backends when none is available, so the gateway still
// tries the one most likely to answer: ejected but healthy before
// unhealthy, then fewer recent failures.
func (b *backend) badness(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	score := b.failStreak + b.consecFail
	if now.Before(b.ejectedUntil) {
		score += 1 << 20
	}
	if !b.healthy {
		score += 1 << 24
	}
	return score
}

// recordCheck applies one active health check result with rise/fall
// hysteresis and reports whether the health state changed. The first check
// decides at once, so a gateway starts (or admits a new backend) without
// waiting rise intervals.
func (b *backend) recordCheck(ok bool, rise, fall int) (changed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.healthy
	if ok {
		b.okStreak++
		b.failStreak = 0
		if !b.checked || b.okStreak >= rise {
			b.healthy = true
		}
	} else {
		b.failStreak++
		b.okStreak = 0
		if !b.checked || b.failStreak >= fall {
			b.healthy = false
		}
	}
	b.checked = true
	return was != b.healthy
}

func (b *backend) isHealthy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.healthy
}

func (b *backend) ejected(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return now.Before(b.ejectedUntil)
}

// BackendStatus is a snapshot of one backend as the gateway sees it.
type BackendStatus struct {
	URL          string    `json:"url"`
	Healthy      bool      `json:"healthy"`   // by the active checks
	Ejected      bool      `json:"ejected"`   // by passive outlier detection
	Available    bool      `json:"available"` // receives new requests
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	Ejections    int       `json:"ejections"` // consecutive ejections (the backoff exponent)
	InFlight     int64     `json:"in_flight"`
	Requests     int64     `json:"requests"` // attempts sent to it since it joined
}

func (b *backend) status(now time.Time) BackendStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	ej := now.Before(b.ejectedUntil)
	st := BackendStatus{URL: b.key, Healthy: b.healthy, Ejected: ej, Available: b.healthy && !ej,
		Ejections: b.ejections, InFlight: b.inFlight.Load(), Requests: b.requests.Load()}
	if ej {
		st.EjectedUntil = b.ejectedUntil
	}
	return st
}

// ParseBackendURL validates one backend address: an absolute http or https
// URL with a host and no query.
func ParseBackendURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("backend %q: want http(s)://host[:port][/path]", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// ParseBackendsFile reads a backend list: one URL per line; blank lines
// and everything after '#' are ignored.
func ParseBackendsFile(content []byte) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(content))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if _, err := ParseBackendURL(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, line)
	}
	return out, sc.Err()
}
