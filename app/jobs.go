package app

import (
	"context"

	"github.com/millionshop/million/order"
)

// orderJobs are the order module's periodic jobs, each run once per
// cluster (events.Broker.Exclusive), and their metrics. The order module
// owns them because it owns the order's state and the checkout's key, and
// reaches payments only through its order.Payments interface.
func (a *App) orderJobs() []periodicJob {
	stats := func(v func(order.JobStats) uint64) func() float64 {
		return func() float64 { return float64(v(a.Orders.JobStats())) }
	}
	a.Metrics.RegisterCounter("million_jobs_payments_captured_total",
		"Checkouts left with an authorized payment that the payment-capture job captured and marked paid.",
		stats(func(s order.JobStats) uint64 { return s.Captured }))
	a.Metrics.RegisterCounter("million_jobs_payment_capture_failures_total",
		"Captures the payment-capture job attempted that failed and will be retried with backoff.",
		stats(func(s order.JobStats) uint64 { return s.CaptureFailures }))
	a.Metrics.RegisterCounter("million_jobs_checkouts_reaped_total",
		"Abandoned pending orders the checkout-reaper cancelled, their stock returned.",
		stats(func(s order.JobStats) uint64 { return s.Reaped }))
	a.Metrics.RegisterCounter("million_jobs_idempotency_keys_purged_total",
		"Finished checkout idempotency keys deleted after the retention.",
		stats(func(s order.JobStats) uint64 { return s.KeysPurged }))

	var jobs []periodicJob
	for _, j := range a.Orders.Jobs() {
		jobs = append(jobs, periodicJob{name: j.Name, interval: j.Interval, run: func(ctx context.Context) error {
			n, err := j.Run(ctx)
			if n > 0 {
				a.logger.InfoContext(ctx, "job done", "job", j.Name, "count", n)
			}
			return err
		}})
	}
	return jobs
}
