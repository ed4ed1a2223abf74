package app

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millionshop/million/events"
	"github.com/millionshop/million/notify"
	"github.com/millionshop/million/obs"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/user"
)

// OutboxRetention is how long published events stay in the outbox table.
const OutboxRetention = 7 * 24 * time.Hour

// EventsOptions are the broker options of cfg: the external server of
// cfg.NATSURL, or the embedded one with its store in the data directory.
// The jobs commands open the same store as serve through them.
func EventsOptions(cfg Config) events.Options {
	cfg.defaults()
	if cfg.NATSURL != "" {
		return events.Options{URL: cfg.NATSURL, Name: "million"}
	}
	return events.Options{StoreDir: filepath.Join(cfg.DataDir, "nats"), Name: "million"}
}

// eventBackbone is the outbox's publisher and the modules' subscription
// point. The broker behind it starts with Serve, not with Open: the
// operator commands that open the app (user, seed) neither publish nor
// consume, and must run beside a serving process that holds the embedded
// store.
type eventBackbone struct {
	opts events.Options
	subs []eventSub
	jobs []periodicJob

	mu     sync.Mutex
	broker *events.Broker
}

// periodicJob runs about every interval on one instance of the deployment.
type periodicJob struct {
	name     string
	interval time.Duration
	run      func(context.Context) error
}

type eventSub struct {
	topic, consumer string
	h               events.Handler
}

var errEventsNotStarted = errors.New("the event broker is not started (it starts with serve)")

// Publish implements outbox.Publisher; before Serve it fails, and the
// outbox keeps the event.
func (e *eventBackbone) Publish(ctx context.Context, ev outbox.Event) error {
	b := e.get()
	if b == nil {
		return errEventsNotStarted
	}
	return b.Publish(ctx, ev)
}

// Subscribe routes topic to h under the durable consumer named consumer.
func (e *eventBackbone) Subscribe(topic, consumer string, h events.Handler) {
	e.subs = append(e.subs, eventSub{topic: topic, consumer: consumer, h: h})
}

func (e *eventBackbone) get() *events.Broker {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.broker
}

// start opens the broker and registers the subscriptions and the consumer
// metrics.
func (e *eventBackbone) start(ctx context.Context, m *obs.Metrics) error {
	b, err := events.Open(ctx, e.opts)
	if err != nil {
		return err
	}
	for _, s := range e.subs {
		b.Subscribe(s.topic, s.consumer, s.h)
	}
	e.mu.Lock()
	e.broker = b
	e.mu.Unlock()
	for _, name := range b.Consumers() {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "million_events_consumer_lag",
			Help:        "Messages a consumer has not settled yet: not delivered, or delivered and not acknowledged.",
			ConstLabels: prometheus.Labels{"consumer": name},
		}, e.scrape(func(ctx context.Context, b *events.Broker) (uint64, error) { return b.Lag(ctx, name) })))
	}
	return nil
}

// run runs the consumers and the periodic jobs until ctx ends.
func (e *eventBackbone) run(ctx context.Context) {
	b := e.get()
	if b == nil {
		return
	}
	var wg sync.WaitGroup
	for _, j := range e.jobs {
		wg.Go(func() { b.Exclusive(ctx, j.name, j.interval, j.run) })
	}
	b.Run(ctx)
	wg.Wait()
}

// close stops the broker (and the embedded server); workers have stopped.
func (e *eventBackbone) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.broker != nil {
		e.broker.Close()
		e.broker = nil
	}
}

// scrape turns a broker query into a gauge value: -1 when the broker is not
// running or does not answer within a second.
func (e *eventBackbone) scrape(q func(context.Context, *events.Broker) (uint64, error)) func() float64 {
	return func() float64 {
		b := e.get()
		if b == nil {
			return -1
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := q(ctx, b)
		if err != nil {
			return -1
		}
		return float64(n)
	}
}

// newEvents returns the backbone of cfg and registers its metrics.
func (a *App) newEvents(cfg Config) *eventBackbone {
	opts := EventsOptions(cfg)
	opts.Logger, opts.Background = a.logger, true
	e := &eventBackbone{opts: opts}
	// Published events are kept a week for inspection, then deleted.
	e.jobs = append(e.jobs, periodicJob{name: "outbox-cleanup", interval: time.Hour, run: func(ctx context.Context) error {
		n, err := a.Outbox.Purge(ctx, time.Now().Add(-OutboxRetention))
		if n > 0 {
			a.logger.InfoContext(ctx, "outbox cleaned up", "deleted", n)
		}
		return err
	}})
	a.Metrics.RegisterGauge("million_events_dlq_messages", "Messages in the dead-letter stream, waiting for million jobs dlq retry.",
		e.scrape(func(ctx context.Context, b *events.Broker) (uint64, error) { return b.DLQSize(ctx) }))
	counter := func(name, help string, v func(events.Stats) uint64) {
		a.Metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 {
			if b := e.get(); b != nil {
				return float64(v(b.Stats()))
			}
			return 0
		}))
	}
	counter("million_events_published_total", "Events stored in the events stream (PubAck received).",
		func(s events.Stats) uint64 { return s.Published })
	counter("million_events_publish_failures_total", "Event publishes that failed or timed out (the outbox retries them).",
		func(s events.Stats) uint64 { return s.PublishFailures })
	counter("million_events_handled_total", "Deliveries acknowledged after their handler succeeded.",
		func(s events.Stats) uint64 { return s.Handled })
	counter("million_events_handler_failures_total", "Event handler calls that failed (retried with backoff).",
		func(s events.Stats) uint64 { return s.HandlerFailures })
	counter("million_events_redeliveries_total", "Deliveries of a message after its first.",
		func(s events.Stats) uint64 { return s.Redeliveries })
	counter("million_events_dead_lettered_total", "Messages moved to the dead-letter stream.",
		func(s events.Stats) uint64 { return s.DeadLettered })
	a.Metrics.RegisterGauge("million_outbox_oldest_pending_seconds", "Age of the oldest event not yet published (0 when none).", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		oldest, ok, err := a.Outbox.OldestPending(ctx)
		if err != nil {
			return -1
		}
		if !ok {
			return 0
		}
		return time.Since(oldest).Seconds()
	})
	return e
}

// userDirectory gives notify the users' addresses.
type userDirectory struct{ users *user.Accounts }

// Email implements notify.Directory.
func (d userDirectory) Email(ctx context.Context, userID string) (string, error) {
	u, err := d.users.Get(ctx, userID)
	if err != nil {
		return "", err
	}
	return u.Email, nil
}

// newSender returns the SMTP sender of cfg.SMTPURL, or the log sender
// without one.
func (a *App) newSender(cfg Config) (notify.Sender, error) {
	if cfg.SMTPURL == "" {
		return notify.LogSender{Logger: a.logger}, nil
	}
	from := cfg.MailFrom
	if from == "" {
		from = "million <no-reply@localhost>"
	}
	return notify.NewSMTPSender(cfg.SMTPURL, from, userDirectory{a.Users}, 30*time.Second)
}
