package cache

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests             *prometheus.CounterVec
	avoided              *prometheus.CounterVec
	loads                *prometheus.CounterVec
	loadDur              *prometheus.HistogramVec
	invalidations        *prometheus.CounterVec
	received             prometheus.Counter
	invalidationFailures prometheus.Counter
	replayed             prometheus.Counter
	missingAcks          prometheus.Counter
	ackWait              prometheus.Histogram
	lockTimeouts         *prometheus.CounterVec
	l2Errors             prometheus.Counter
	breaker              prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "million_cache_requests_total",
			Help: "Cache lookups by entity, level (l1, l2) and result (hit, miss).",
		}, []string{"entity", "level", "result"}),
		avoided: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "million_cache_db_queries_avoided_total",
			Help: "Reads answered by a cache level instead of the database, by entity.",
		}, []string{"entity"}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "million_cache_loads_total",
			Help: "Loads from the source of truth after a miss, by entity and outcome.",
		}, []string{"entity", "outcome"}),
		loadDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "million_cache_load_duration_seconds",
			Help:    "Time to load a missed value from the source of truth, by entity.",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"entity"}),
		invalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "million_cache_invalidations_total",
			Help: "Invalidations sent by this instance, by entity and scope (key, all).",
		}, []string{"entity", "scope"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "million_cache_invalidations_received_total",
			Help: "Invalidation messages received on the channel and applied to L1.",
		}),
		invalidationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "million_cache_invalidation_failures_total",
			Help: "Invalidations Redis did not take at write time (kept and retried).",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "million_cache_invalidations_replayed_total",
			Help: "Journaled invalidations their writer did not deliver, delivered by this instance's replay.",
		}),
		missingAcks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "million_cache_invalidation_missing_acks_total",
			Help: "Receivers that did not acknowledge an invalidation within the bound.",
		}),
		ackWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "million_cache_invalidation_wait_seconds",
			Help:    "Time a write waited for its invalidation to be acknowledged.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5},
		}),
		lockTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "million_cache_lock_wait_timeouts_total",
			Help: "Misses that waited the whole bound for another instance's load, then loaded.",
		}, []string{"entity"}),
		l2Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "million_cache_l2_errors_total",
			Help: "Redis cache commands that failed, timed out or were refused by the open breaker.",
		}),
		breaker: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "million_cache_l2_breaker_state",
			Help: "State of the Redis cache circuit breaker: 0 closed, 1 half-open, 2 open.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.avoided, m.loads, m.loadDur, m.invalidations, m.received,
			m.invalidationFailures, m.replayed, m.missingAcks, m.ackWait, m.lockTimeouts, m.l2Errors, m.breaker)
	}
	return m
}

// entityMetrics are one entity's counters, resolved once: the hit path
// must not hash label values on every request.
type entityMetrics struct {
	l1Hit, l1Miss, l2Hit, l2Miss, avoided prometheus.Counter
}

func (m *metrics) entity(name string) entityMetrics {
	return entityMetrics{
		l1Hit: m.requests.WithLabelValues(name, "l1", "hit"), l1Miss: m.requests.WithLabelValues(name, "l1", "miss"),
		l2Hit: m.requests.WithLabelValues(name, "l2", "hit"), l2Miss: m.requests.WithLabelValues(name, "l2", "miss"),
		avoided: m.avoided.WithLabelValues(name),
	}
}

func (m entityMetrics) hitL1()  { m.l1Hit.Inc(); m.avoided.Inc() }
func (m entityMetrics) hitL2()  { m.l2Hit.Inc(); m.avoided.Inc() }
func (m entityMetrics) missL1() { m.l1Miss.Inc() }
func (m entityMetrics) missL2() { m.l2Miss.Inc() }
