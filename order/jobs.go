package order

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/payment"
)

// Defaults of the background jobs' settings (Config).
const (
	// DefaultCaptureAfter leaves a running checkout ample time to capture
	// on its own: it captures right after authorizing.
	DefaultCaptureAfter = 30 * time.Second
	// DefaultAbandonAfter is well past any checkout's key lease, and past
	// the capture job's many retries.
	DefaultAbandonAfter = 15 * time.Minute
	// DefaultKeyRetention keeps keys twice what the API promises.
	DefaultKeyRetention = 48 * time.Hour
	// MinKeyRetention is what the API promises (api.md): a retry within
	// it always gets the first outcome.
	MinKeyRetention = 24 * time.Hour
)

const (
	jobBatch       = 100  // orders or payments one job run looks at
	purgeBatch     = 1000 // keys one delete removes
	purgeMaxRounds = 100  // deletes per run, so one run stays bounded
	maxBackoff     = 10 * time.Minute
	maxBackedOff   = 10 * jobBatch // payments in backoff a capture run looks past
)

// JobStats counts what the background jobs did since the service started.
type JobStats struct {
	Captured        uint64 // checkouts the capture job completed as paid
	CaptureFailures uint64 // capture attempts that failed and will be retried
	Reaped          uint64 // abandoned checkouts cancelled, stock returned
	KeysPurged      uint64 // idempotency keys deleted after the retention
}

type jobState struct {
	captured, captureFailures, reaped, purged atomic.Uint64

	mu    sync.Mutex
	retry map[string]backoff // payment ID → when the capture job tries it again
}

type backoff struct {
	failures int
	next     time.Time
}

// Job is one of the order module's periodic jobs: Run does one pass and
// reports how many orders or keys it settled.
type Job struct {
	Name     string
	Interval time.Duration
	Run      func(context.Context) (int, error)
}

// Jobs returns the periodic jobs, each to be run about every Interval on
// one instance of a cluster. Each looks a few times per its own horizon
// (the configured ages), so an order waits at most a fraction more than
// configured, without polling the database needlessly.
func (s *Orders) Jobs() []Job {
	every := func(horizon, lo, hi time.Duration) time.Duration { return min(max(horizon/3, lo), hi) }
	return []Job{
		{Name: "payment-capture", Interval: every(s.cfg.CaptureAfter, time.Second, 10*time.Second), Run: s.CaptureStalled},
		{Name: "checkout-reaper", Interval: every(s.cfg.AbandonAfter, time.Second, time.Minute), Run: s.ReapAbandoned},
		{Name: "idempotency-key-purge", Interval: every(s.cfg.KeyRetention, time.Minute, time.Hour), Run: s.PurgeKeys},
	}
}

// JobStats returns the jobs' counters.
func (s *Orders) JobStats() JobStats {
	return JobStats{Captured: s.jobs.captured.Load(), CaptureFailures: s.jobs.captureFailures.Load(),
		Reaped: s.jobs.reaped.Load(), KeysPurged: s.jobs.purged.Load()}
}

// fence takes the idempotency key orderID was placed under for a job, as
// a client's retry after the lease would: the job then runs as one more
// attempt of that checkout, so a client retry meanwhile waits for it (its
// key is in use) instead of racing it, and vice versa. busy reports a
// checkout still holding a live lease: the job leaves the order alone. rec
// is nil when no client can resume the checkout any more (its key is done,
// or was purged), so there is nothing to fence.
func (s *Orders) fence(ctx context.Context, orderID string) (rec *KeyRecord, busy bool, err error) {
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		r, err := s.store.KeyByOrder(ctx, orderID)
		if fault.Is(err, fault.NotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if r.State != KeyRunning {
			return nil
		}
		now := s.now().UTC()
		if !now.After(r.LeaseUntil) {
			busy = true
			return nil
		}
		taken := r
		taken.LeaseUntil, taken.LeaseGen = now.Add(s.cfg.KeyLease), r.LeaseGen+1
		ok, err := s.store.UpdateKey(ctx, taken, r.LeaseGen)
		if err != nil {
			return err
		}
		if !ok {
			busy = true // the record is locked: cannot happen, but never act blind
			return nil
		}
		rec = &taken
		return nil
	})
	return rec, busy, err
}

// settle ends a job's attempt on a fenced key: a final outcome (the order
// paid or cancelled, or a payment refusal already compensated) is stored
// for the client's retry to replay, exactly as checkout stores it; any
// other failure gives the lease back at once, so the next run or the
// client's retry resumes.
func (s *Orders) settle(ctx context.Context, rec *KeyRecord, o Order, outcome error) error {
	if rec == nil {
		return nil
	}
	if outcome != nil && !fault.Is(outcome, fault.PaymentRequired) && !fault.Is(outcome, fault.BadGateway) {
		return s.release(ctx, rec)
	}
	if err := s.finish(ctx, *rec, o, outcome); err != nil && !errors.Is(err, errLeaseLost) {
		return err
	}
	return nil
}

// release gives a fenced key's lease back without an outcome (nil: no key
// was fenced).
func (s *Orders) release(ctx context.Context, rec *KeyRecord) error {
	if rec == nil {
		return nil
	}
	r := *rec
	r.LeaseUntil = s.now().UTC()
	_, err := s.store.UpdateKey(context.WithoutCancel(ctx), r, r.LeaseGen)
	return err
}

// CaptureStalled is the capture job. It finishes the checkouts whose
// payment was authorized more than Config.CaptureAfter ago and never
// captured (the capture's answer was lost, the provider failed, the
// process died): it captures through the same idempotent provider calls and
// marks the order paid (order.paid) exactly as checkout does, or
// compensates a definite refusal as checkout does. A payment whose capture
// fails is retried with exponential backoff. It returns how many orders it
// completed as paid.
func (s *Orders) CaptureStalled(ctx context.Context) (int, error) {
	now := s.now().UTC()
	// Payments waiting out a backoff keep their place at the head of the
	// oldest-first list: look past them, or a hundred that keep failing
	// would hide every newer one until the reaper cancels it.
	s.jobs.mu.Lock()
	waiting := len(s.jobs.retry)
	s.jobs.mu.Unlock()
	pays, err := s.payments.Stalled(ctx, payment.StatusAuthorized, now.Add(-s.cfg.CaptureAfter), jobBatch+min(waiting, maxBackedOff))
	if err != nil {
		return 0, err
	}
	s.jobs.mu.Lock()
	seen := make(map[string]backoff, len(s.jobs.retry))
	for _, p := range pays {
		if b, ok := s.jobs.retry[p.ID]; ok {
			seen[p.ID] = b
		}
	}
	s.jobs.retry = seen // forget payments that left authorized
	s.jobs.mu.Unlock()
	captured := 0
	var errs []error
	for _, p := range pays {
		if ctx.Err() != nil {
			break
		}
		s.jobs.mu.Lock()
		b := s.jobs.retry[p.ID]
		s.jobs.mu.Unlock()
		if now.Before(b.next) {
			continue
		}
		paid, err := s.capture(ctx, p.OrderID)
		s.jobs.mu.Lock()
		if err != nil {
			b.failures++
			b.next = now.Add(retryDelay(s.cfg.CaptureAfter, b.failures))
			s.jobs.retry[p.ID] = b
		} else {
			delete(s.jobs.retry, p.ID)
		}
		s.jobs.mu.Unlock()
		if err != nil {
			s.jobs.captureFailures.Add(1)
			s.logger.WarnContext(ctx, "capture job: capture failed, will retry", "order_id", p.OrderID, "payment_id", p.ID,
				"failures", b.failures, "retry_at", b.next, "err", err)
			errs = append(errs, err)
			continue
		}
		if paid {
			captured++
			s.jobs.captured.Add(1)
			s.logger.InfoContext(ctx, "capture job: checkout completed", "order_id", p.OrderID, "payment_id", p.ID)
		}
	}
	return captured, errors.Join(errs...)
}

// retryDelay is base doubled per failure, up to maxBackoff (without
// overflowing, whatever base is).
func retryDelay(base time.Duration, failures int) time.Duration {
	d := base
	for range failures {
		if d >= maxBackoff {
			break
		}
		d *= 2
	}
	return min(d, maxBackoff)
}

// capture completes one order whose payment is stuck authorized; it
// reports whether the order ended paid. A cancel racing it is safe: the
// provider takes either the capture or the void, never both, and the
// payment's and the order's compare-and-set statuses follow whichever won.
func (s *Orders) capture(ctx context.Context, orderID string) (bool, error) {
	o, err := s.store.OrderByID(ctx, orderID)
	if err != nil {
		return false, err
	}
	switch o.Status {
	case StatusPending:
	case StatusCancelled, StatusRefunded:
		// The order was cancelled but the hold survived (the void's
		// answer was lost): release it, as a repeated cancel would.
		_, err := s.payments.Cancel(ctx, orderID)
		return false, err
	default:
		return false, nil
	}
	rec, busy, err := s.fence(ctx, orderID)
	if err != nil || busy {
		return false, err
	}
	// The token only matters to an authorization; this payment has one.
	out, err := s.pay(context.WithoutCancel(ctx), o, "", rec, nil)
	if serr := s.settle(ctx, rec, out, err); serr != nil && err == nil {
		err = serr
	}
	if fault.Is(err, fault.PaymentRequired) || fault.Is(err, fault.BadGateway) {
		// A definite refusal, compensated as at checkout: settled.
		s.logger.InfoContext(ctx, "capture job: capture refused, order cancelled", "order_id", orderID, "err", err)
		return false, nil
	}
	return err == nil && out.Status == StatusPaid, err
}

// ReapAbandoned is the abandoned-checkout reaper. It cancels the pending
// orders older than Config.AbandonAfter that no checkout is working on (no
// live key lease): the payment is voided if it was authorized, the stock
// released, the order cancelled (order.cancelled), all through the code
// cancel and checkout compensation use. An order whose payment turns out
// captured is not cancelled but completed as paid. It returns how many
// orders it cancelled.
func (s *Orders) ReapAbandoned(ctx context.Context) (int, error) {
	orders, err := s.store.PendingOrders(ctx, s.now().UTC().Add(-s.cfg.AbandonAfter), jobBatch)
	if err != nil {
		return 0, err
	}
	reaped := 0
	var errs []error
	for _, o := range orders {
		if ctx.Err() != nil {
			break
		}
		done, err := s.reap(ctx, o)
		if err != nil {
			s.logger.WarnContext(ctx, "reaper: could not settle an abandoned checkout, will retry", "order_id", o.ID, "err", err)
			errs = append(errs, err)
		}
		if done {
			reaped++
			s.jobs.reaped.Add(1)
			s.logger.InfoContext(ctx, "reaper: abandoned checkout cancelled", "order_id", o.ID)
		}
	}
	return reaped, errors.Join(errs...)
}

// reap cancels one abandoned order; it reports whether it did.
func (s *Orders) reap(ctx context.Context, o Order) (bool, error) {
	rec, busy, err := s.fence(ctx, o.ID)
	if err != nil || busy {
		return false, err
	}
	ctx = context.WithoutCancel(ctx) // the key is fenced: finish what was started
	// Void, never Cancel: a capture that raced in is not undone by a
	// refund; the provider refuses the void instead, and the order stays.
	pay, err := s.payments.Void(ctx, o.ID)
	if errors.Is(err, payment.ErrCaptured) && pay.Status == payment.StatusCaptured {
		// The customer paid after all: complete the checkout.
		out, err := s.pay(ctx, o, "", rec, nil)
		return false, errors.Join(err, s.settle(ctx, rec, out, err))
	}
	if err != nil && !errors.Is(err, payment.ErrCaptured) {
		return false, errors.Join(err, s.release(ctx, rec))
	}
	// Voided, never paid (declined, failed), or already refunded: cancel.
	done, err := s.compensate(ctx, o, pay.Status)
	var out Order
	if err == nil {
		out, err = s.store.OrderByID(ctx, o.ID)
	}
	return done, errors.Join(err, s.settle(ctx, rec, out, err))
}

// PurgeKeys is the idempotency-key purge: it deletes finished keys created
// more than Config.KeyRetention ago, in bounded batches, and never a key a
// checkout holds. It returns how many it deleted.
func (s *Orders) PurgeKeys(ctx context.Context) (int, error) {
	now := s.now().UTC()
	total := 0
	for range purgeMaxRounds {
		n, err := s.store.PurgeKeys(ctx, now.Add(-s.cfg.KeyRetention), now, purgeBatch)
		total += n
		s.jobs.purged.Add(uint64(n))
		if err != nil || n < purgeBatch || ctx.Err() != nil {
			return total, err
		}
	}
	return total, nil
}
