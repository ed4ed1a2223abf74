package app

import (
	"encoding/json"
	"net/http"

	"github.com/millionshop/million/obs"
	"github.com/millionshop/million/shed"
	"github.com/millionshop/million/web"
)

// newShedder returns the instance's load shedder with its metrics exported.
func newShedder(cfg Config, m *obs.Metrics) *shed.Shedder {
	s := shed.New(shed.Options{CPUThreshold: cfg.ShedCPUThreshold, MaxQueueDelay: cfg.ShedMaxWait})
	m.RegisterCounter("million_shed_refused_total", "Requests refused with 503 because the instance was overloaded.",
		func() float64 { return float64(s.Dropped()) })
	m.RegisterGauge("million_shed_cpu_usage", "Smoothed CPU use of the process as a share of GOMAXPROCS, as the load shedder sees it.",
		s.CPUUsage)
	m.RegisterGauge("million_shed_queued_requests", "Requests of an overloaded instance waiting for an in-flight slot (each at most --shed-max-wait).",
		func() float64 { return float64(s.Queued()) })
	m.RegisterGauge("million_shed_runnable_goroutines", "Goroutines waiting for a CPU now (the load shedder refuses requests while an overloaded instance has more than million_shed_max_queue).",
		func() float64 { return float64(s.Runnable()) })
	m.RegisterGauge("million_shed_max_queue", "Requests an overloaded instance queues, and runnable goroutines it allows, before it refuses requests (what it finishes in --shed-max-wait at its best over the last 5 s); 0 until measured.",
		func() float64 { return float64(s.MaxQueue()) })
	m.RegisterGauge("million_shed_max_in_flight", "Requests the instance can have in flight and keep up (Little's law over the last 5 s); 0 until measured.",
		func() float64 { limit, _ := s.MaxInFlight(); return limit })
	return s
}

// isHealthProbe exempts probes from shedding: a busy instance that failed
// its probes would be ejected, and its load would overload the others.
func isHealthProbe(r *http.Request) bool {
	return r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
}

// overloadedBody is the refusal, encoded once.
var overloadedBody, _ = json.Marshal(web.Problem{
	Type: "urn:million:problem:overloaded", Title: http.StatusText(http.StatusServiceUnavailable),
	Status: http.StatusServiceUnavailable, Code: "overloaded",
	Detail: "the server is overloaded; retry after the time in Retry-After",
})

// refuseOverloaded answers a shed request. It runs before the request
// middleware (no request ID, no access log line: million_shed_refused_total
// counts refusals) and must stay cheap.
func refuseOverloaded(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", web.ProblemContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(overloadedBody)
}
