// Package obs is million's observability: JSON logs, Prometheus metrics for
// requests and database pools, and the admin listener that serves them with
// pprof on a loopback address.
package obs

import (
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a JSON logger at the given level ("debug", "info", "warn", "error").
func NewLogger(w io.Writer, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv}))
}

// Metrics holds the process's Prometheus registry and the request metrics
// (rate, errors, duration per route).
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	queries  *prometheus.CounterVec
	queryDur *prometheus.HistogramVec

	// The series already resolved, so that a request or a statement costs
	// a map read instead of hashing and locking in the vectors.
	requestSeries sync.Map // requestKey → *series
	querySeries   sync.Map // queryKey → *series
}

type requestKey struct {
	route, method string
	status        int
}

type queryKey struct {
	statement string
	failed    bool
}

// series is one counter and the histogram observed beside it.
type series struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// NewMetrics returns a registry with Go runtime, process and request metrics.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "million_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "million_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
	}
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "million_db_queries_total",
		Help: "Database statements run, by statement (verb and first table) and outcome (ok or error).",
	}, []string{"statement", "outcome"})
	m.queryDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "million_db_query_duration_seconds",
		Help:    "Time to run database statements (until the first row is ready), by statement.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"statement"})
	reg.MustRegister(m.requests, m.duration, m.queries, m.queryDur,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRequest records one finished request; it implements web.Observer.
func (m *Metrics) ObserveRequest(route, method string, status int, elapsed time.Duration) {
	key := requestKey{route, method, status}
	s, ok := m.requestSeries.Load(key)
	if !ok {
		s, _ = m.requestSeries.LoadOrStore(key, &series{
			count:    m.requests.WithLabelValues(route, method, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(route, method),
		})
	}
	s.(*series).count.Inc()
	s.(*series).duration.Observe(elapsed.Seconds())
}

// ObserveQuery records one database statement; it implements sqldb.Observer.
func (m *Metrics) ObserveQuery(statement string, elapsed time.Duration, err error) {
	key := queryKey{statement, err != nil && !errors.Is(err, sql.ErrNoRows)}
	s, ok := m.querySeries.Load(key)
	if !ok {
		outcome := "ok"
		if key.failed {
			outcome = "error"
		}
		s, _ = m.querySeries.LoadOrStore(key, &series{
			count:    m.queries.WithLabelValues(statement, outcome),
			duration: m.queryDur.WithLabelValues(statement),
		})
	}
	s.(*series).count.Inc()
	s.(*series).duration.Observe(elapsed.Seconds())
}

// RegisterPgxPool exports a pgx pool's statistics: connections by state,
// acquisitions that had to wait, and the total time spent waiting.
func (m *Metrics) RegisterPgxPool(stat func() *pgxpool.Stat) {
	gauge := func(name, help string, v func(s *pgxpool.Stat) float64) {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return v(stat()) }))
	}
	counter := func(name, help string, v func(s *pgxpool.Stat) float64) {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return v(stat()) }))
	}
	gauge("million_db_pool_in_use_connections", "PostgreSQL pool connections in use.", func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) })
	gauge("million_db_pool_idle_connections", "PostgreSQL pool connections idle.", func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) })
	gauge("million_db_pool_total_connections", "PostgreSQL pool connections open or being opened.", func(s *pgxpool.Stat) float64 { return float64(s.TotalConns()) })
	gauge("million_db_pool_max_connections", "PostgreSQL pool size limit.", func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) })
	counter("million_db_pool_acquires_total", "Connections taken from the PostgreSQL pool.", func(s *pgxpool.Stat) float64 { return float64(s.AcquireCount()) })
	counter("million_db_pool_waited_acquires_total", "Acquisitions that waited because no connection was idle.", func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) })
	counter("million_db_pool_canceled_acquires_total", "Acquisitions given up (deadline or cancellation) while waiting.", func(s *pgxpool.Stat) float64 { return float64(s.CanceledAcquireCount()) })
	counter("million_db_pool_acquire_wait_seconds_total", "Total time spent acquiring connections.", func(s *pgxpool.Stat) float64 { return s.AcquireDuration().Seconds() })
}

// RegisterDBPool exports the statistics of a database/sql pool under the
// given pool name (for example "write" or "read").
func (m *Metrics) RegisterDBPool(name string, db *sql.DB) {
	m.Registry.MustRegister(collectors.NewDBStatsCollector(db, name))
}

// AdminHandler serves /metrics, /debug/pprof/ and the given health handlers.
// It belongs on a loopback-only listener.
func (m *Metrics) AdminHandler(healthz, readyz http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /healthz", healthz)
	mux.Handle("GET /readyz", readyz)
	return mux
}

// RegisterGauge exports a value computed at scrape time, such as a queue depth.
func (m *Metrics) RegisterGauge(name, help string, value func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value))
}

// RegisterCounter exports a monotonically increasing count kept elsewhere,
// read at scrape time.
func (m *Metrics) RegisterCounter(name, help string, value func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, value))
}
