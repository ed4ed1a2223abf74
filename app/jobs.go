package app

import (
	"cmp"
	"context"
	"time"

	"github.com/millionshop/million/order"
)

// orderJobs are the order module's periodic jobs, each run once per
// cluster (events.Broker.Exclusive), and their metrics. The order module
// owns them because it owns the order's state and the checkout's key, and
// reaches payments only through its order.Payments interface.
func (a *App) orderJobs(cfg Config) []periodicJob {
	captureAfter := cmp.Or(cfg.PaymentCaptureAfter, order.DefaultCaptureAfter)
	abandonAfter := cmp.Or(cfg.CheckoutAbandonAfter, order.DefaultAbandonAfter)
	retention := max(cmp.Or(cfg.IdempotencyKeyRetention, order.DefaultKeyRetention), order.MinKeyRetention)
	// Each job looks a few times per its own horizon, so an order waits
	// at most a fraction more than configured, without polling the
	// database needlessly.
	every := func(horizon, lo, hi time.Duration) time.Duration { return min(max(horizon/3, lo), hi) }

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

	logged := func(name string, fn func(context.Context) (int, error)) func(context.Context) error {
		return func(ctx context.Context) error {
			n, err := fn(ctx)
			if n > 0 {
				a.logger.InfoContext(ctx, "job done", "job", name, "count", n)
			}
			return err
		}
	}
	return []periodicJob{
		{name: "payment-capture", interval: every(captureAfter, time.Second, 10*time.Second),
			run: logged("payment-capture", a.Orders.CaptureStalled)},
		{name: "checkout-reaper", interval: every(abandonAfter, time.Second, time.Minute),
			run: logged("checkout-reaper", a.Orders.ReapAbandoned)},
		{name: "idempotency-key-purge", interval: every(retention, time.Minute, time.Hour),
			run: logged("idempotency-key-purge", a.Orders.PurgeKeys)},
	}
}
