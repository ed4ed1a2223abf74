package events

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// leaseBucket is the key-value bucket whose keys are the leases of
// periodic jobs; a key expires LeaseTTL after its holder last renewed it.
const leaseBucket = "MILLION_LEASES"

// Exclusive runs fn about every interval until ctx ends, on one instance
// of the deployment at a time: the one holding the job's lease, a key in a
// JetStream key-value bucket that expires unless renewed. When the holder
// stops, it releases the lease; when it dies, the lease expires after
// LeaseTTL and another instance takes over and runs fn at once. A holder
// that cannot renew within half the TTL stops running fn, so two instances
// overlap only if a renewal is delayed past that; jobs must be idempotent
// anyway. A run's context ends two thirds of the TTL after the last
// renewal, so fn must stop when it ends and leave the rest to its next
// run. With the embedded server there is one instance.
func (b *Broker) Exclusive(ctx context.Context, name string, interval time.Duration, fn func(context.Context) error) {
	log := b.opts.Logger.With("job", name)
	ttl := b.opts.LeaseTTL
	var (
		kv      jetstream.KeyValue
		rev     uint64
		renewed time.Time // last successful create or update; zero when not holding
		lastRun time.Time
		me      = []byte(uuid.NewString())
	)
	tick := time.NewTicker(min(interval, ttl/3))
	defer tick.Stop()
	defer func() {
		if kv != nil && !renewed.IsZero() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.Timeout)
			defer cancel()
			_ = kv.Delete(rctx, name, jetstream.LastRevision(rev))
		}
	}()
	for {
		cctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
		var err error
		if kv == nil {
			kv, err = b.js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{
				Bucket: leaseBucket, Description: "leases of million's periodic jobs", TTL: ttl, History: 1,
			})
			if err != nil {
				kv = nil
			}
		}
		if kv != nil {
			if renewed.IsZero() {
				if rev, err = kv.Create(cctx, name, me); err == nil {
					renewed = time.Now()
					log.InfoContext(ctx, "job lease acquired")
				} else if errors.Is(err, jetstream.ErrKeyExists) {
					err = nil // another instance holds it
				}
			} else if r, uerr := kv.Update(cctx, name, me, rev); uerr == nil {
				rev, renewed = r, time.Now()
			} else if errors.Is(uerr, jetstream.ErrKeyRevisionMismatch) || errors.Is(uerr, jetstream.ErrKeyExists) ||
				errors.Is(uerr, jetstream.ErrKeyNotFound) {
				// Expired and taken (or gone): another instance may run it now.
				renewed = time.Time{}
				log.WarnContext(ctx, "job lease lost")
			} else {
				err = uerr
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "job lease unavailable; will retry", "error", err.Error())
		}
		if !renewed.IsZero() && time.Since(renewed) < ttl/2 && time.Since(lastRun) >= interval {
			lastRun = time.Now()
			// A run ends before the lease could expire unrenewed, so that
			// no other instance takes it over while this one still runs;
			// a run cut short carries on at the next interval.
			rctx, cancel := context.WithDeadline(ctx, renewed.Add(ttl*2/3))
			if err := fn(rctx); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "job failed; will run again next interval", "error", err.Error())
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
