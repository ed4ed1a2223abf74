package gateway

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus series, labelled by backend URL.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	ejections *prometheus.CounterVec
	healthy   *prometheus.GaugeVec
	ejected   *prometheus.GaugeVec
	inFlight  *prometheus.GaugeVec
	exhausted prometheus.Counter
	gwErrors  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "million_gateway_backend_requests_total",
			Help: "Attempts sent to a backend, by backend and status class (2xx..5xx, or error for a transport failure).",
		}, []string{"backend", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "million_gateway_backend_request_duration_seconds",
			Help:    "Time from sending an attempt to a backend until its response headers arrived (or it failed).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"backend"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "million_gateway_retries_total",
			Help: "Attempts retried on another backend, by the backend that failed.",
		}, []string{"backend"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "million_gateway_ejections_total",
			Help: "Passive outlier ejections, by backend.",
		}, []string{"backend"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "million_gateway_backend_healthy",
			Help: "1 while the active health checks pass, else 0.",
		}, []string{"backend"}),
		ejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "million_gateway_backend_ejected",
			Help: "1 while the backend is ejected by outlier detection, else 0 (updated at each health round).",
		}, []string{"backend"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "million_gateway_backend_in_flight_requests",
			Help: "Attempts in flight to a backend.",
		}, []string{"backend"}),
		exhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "million_gateway_retry_budget_exhausted_total",
			Help: "Retries not made because the retry budget was spent.",
		}),
		gwErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "million_gateway_errors_total",
			Help: "Responses the gateway made itself, by code (no_backend, backend_unreachable, bad_gateway, gateway_timeout, retry_budget_exhausted, body_unreadable).",
		}, []string{"code"}),
	}
	reg.MustRegister(m.requests, m.duration, m.retries, m.ejections, m.healthy, m.ejected, m.inFlight, m.exhausted, m.gwErrors)
	return m
}

// forget drops the series of a backend that left the list.
func (m *metrics) forget(key string) {
	l := prometheus.Labels{"backend": key}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.retries.DeletePartialMatch(l)
	m.ejections.DeletePartialMatch(l)
	m.healthy.DeletePartialMatch(l)
	m.ejected.DeletePartialMatch(l)
	m.inFlight.DeletePartialMatch(l)
}

// Status classes indexing backendMetrics.requests.
const (
	class1xx = iota
	class2xx
	class3xx
	class4xx
	class5xx
	classError
	numClasses
)

var classNames = [numClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}

// backendMetrics holds one backend's series, so that a request updates them
// without a label lookup (hashing the label values and taking the vector's
// lock). The series are made on first use, as WithLabelValues would, so
// the exposition is the same as without the cache.
type backendMetrics struct {
	m        *metrics
	key      string
	requests [numClasses]atomic.Pointer[prometheus.Counter]
	duration atomic.Pointer[prometheus.Observer]
	retries  atomic.Pointer[prometheus.Counter]
	inFlight atomic.Pointer[prometheus.Gauge]
}

// cached returns *p, making it with mk on first use. Two requests racing
// to make it get the same series, since WithLabelValues returns the
// existing child.
func cached[T any](p *atomic.Pointer[T], mk func() T) T {
	if v := p.Load(); v != nil {
		return *v
	}
	v := mk()
	p.Store(&v)
	return v
}

func (bm *backendMetrics) request(class int) prometheus.Counter {
	return cached(&bm.requests[class], func() prometheus.Counter {
		return bm.m.requests.WithLabelValues(bm.key, classNames[class])
	})
}

func (bm *backendMetrics) observeDuration(seconds float64) {
	cached(&bm.duration, func() prometheus.Observer { return bm.m.duration.WithLabelValues(bm.key) }).Observe(seconds)
}

func (bm *backendMetrics) retry() {
	cached(&bm.retries, func() prometheus.Counter { return bm.m.retries.WithLabelValues(bm.key) }).Inc()
}

func (bm *backendMetrics) addInFlight(d float64) {
	cached(&bm.inFlight, func() prometheus.Gauge { return bm.m.inFlight.WithLabelValues(bm.key) }).Add(d)
}

func statusClassIndex(code int) int {
	switch {
	case code >= 500:
		return class5xx
	case code >= 400:
		return class4xx
	case code >= 300:
		return class3xx
	case code >= 200:
		return class2xx
	}
	return class1xx
}
