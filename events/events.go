// Package events is million's event and job backbone on NATS JetStream: the
// outbox relay publishes each recorded event into a stream, and durable pull
// consumers hand them to module handlers, acknowledging only after a handler
// succeeds. By default the NATS server runs inside the process with its
// store in the data directory; Options.URL connects to an external cluster.
//
// Delivery is at least once at every step (publish, consume), with two
// deduplications on the way: the stream drops a republished event whose ID
// it saw within the dedup window, and handlers are idempotent by event ID.
// A message that fails MaxDeliver times is copied to a dead-letter stream,
// from which an operator replays it to the one consumer that failed.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/millionshop/million/outbox"
)

// Stream and subject layout. Events are published to EventSubject(topic);
// a replay from the dead-letter stream goes to a subject only the failed
// consumer reads, so the other consumers do not see the event twice.
const (
	EventsStream  = "MILLION_EVENTS"
	DLQStream     = "MILLION_DLQ"
	eventsPrefix  = "million.events."
	retryPrefix   = "million.retry."
	dlqPrefix     = "million.dlq."
	headerMsgID   = "Nats-Msg-Id"
	headerEventID = "Million-Event-Id"
	// Headers of a dead-lettered message.
	HeaderSubject  = "Million-Original-Subject"
	HeaderConsumer = "Million-Consumer"
	HeaderError    = "Million-Error"
	HeaderAttempts = "Million-Attempts"
)

// EventSubject is the subject an event of topic is published on.
func EventSubject(topic string) string { return eventsPrefix + topic }

// Options configure the broker. Zero values mean the documented defaults.
type Options struct {
	// URL (nats://host:4222, comma-separated for a cluster) connects to an
	// external NATS server; empty runs one embedded in the process.
	URL string
	// StoreDir holds the embedded server's JetStream store (required when
	// URL is empty). One process at a time may open it.
	StoreDir string
	// MaxMemory and MaxStore bound the embedded JetStream (64 MiB, 1 GiB).
	MaxMemory, MaxStore int64
	// DedupWindow is how long the stream remembers published event IDs, so
	// that an event republished after a relay crash or a lost PubAck within
	// it is dropped (2 min). Past it, consumers' idempotency still holds.
	DedupWindow time.Duration
	// Retention is how long published events stay in the stream (7 days);
	// DLQRetention the same for dead letters (30 days).
	Retention, DLQRetention time.Duration
	// MaxDeliver is how many times a handler is tried before the message
	// is dead-lettered (5).
	MaxDeliver int
	// AckWait is how long a delivery may stay unacknowledged (a crashed or
	// hung consumer) before JetStream redelivers it. A running handler
	// extends it (15 s).
	AckWait time.Duration
	// RetryBase is the delay before retrying a failed handler; it doubles
	// per attempt (1 s, 2 s, 4 s, 8 s).
	RetryBase time.Duration
	// HandlerTimeout bounds one handler call (30 s).
	HandlerTimeout time.Duration
	// Timeout bounds connecting, every publish (until its PubAck) and every
	// JetStream API call (5 s).
	Timeout time.Duration
	// LeaseTTL is how long a periodic job's lease outlives its holder's
	// last renewal: how long a job pauses when its instance dies (30 s).
	LeaseTTL time.Duration
	// Background makes Open succeed while the external server is
	// unreachable: connecting and creating the streams continue in the
	// background, and publishes fail (the outbox keeps the events) until
	// they are done. Serve uses it, so the shop takes orders while NATS is
	// down; the operator commands fail fast instead.
	Background bool
	// Name identifies the client connection to the server.
	Name   string
	Logger *slog.Logger
}

func (o *Options) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.MaxMemory <= 0 {
		o.MaxMemory = 64 << 20
	}
	if o.MaxStore <= 0 {
		o.MaxStore = 1 << 30
	}
	set(&o.DedupWindow, 2*time.Minute)
	set(&o.Retention, 7*24*time.Hour)
	set(&o.DLQRetention, 30*24*time.Hour)
	set(&o.AckWait, 15*time.Second)
	set(&o.RetryBase, time.Second)
	set(&o.HandlerTimeout, 30*time.Second)
	set(&o.Timeout, 5*time.Second)
	set(&o.LeaseTTL, 30*time.Second)
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 5
	}
	if o.Name == "" {
		o.Name = "million"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Handler consumes one event. It must be idempotent by event ID: delivery
// is at least once.
type Handler func(ctx context.Context, e outbox.Event) error

// Stats are the broker's counters since it opened.
type Stats struct {
	Published       uint64 // events stored in the stream (PubAck received)
	PublishFailures uint64 // publishes that failed or timed out
	Handled         uint64 // deliveries acknowledged after their handler succeeded
	HandlerFailures uint64 // handler calls that failed
	Redeliveries    uint64 // deliveries after the first of a message
	DeadLettered    uint64 // messages moved to the dead-letter stream
}

// Broker publishes events to JetStream and runs durable consumers.
type Broker struct {
	opts Options
	srv  *server.Server // nil with an external server
	lock *os.File       // the embedded store's lock
	nc   *nats.Conn
	js   jetstream.JetStream

	mu   sync.Mutex
	subs map[string]*subscription

	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	setup     sync.WaitGroup // background stream setup

	published, publishFailures, handled, handlerFailures, redeliveries, deadLettered atomic.Uint64
}

type subscription struct {
	name     string
	handlers map[string]Handler // by topic
}

// ErrStoreBusy means another process has the embedded store open.
var ErrStoreBusy = errors.New("the embedded NATS store is in use by another process (a running million serve?); stop it or use --nats-url")

// Open starts the embedded server (or connects to Options.URL) and creates
// or updates the streams.
func Open(ctx context.Context, opts Options) (*Broker, error) {
	opts.defaults()
	b := &Broker{opts: opts, subs: map[string]*subscription{}, closed: make(chan struct{})}
	conn := []nats.Option{
		nats.Name(opts.Name),
		nats.Timeout(opts.Timeout),
		// Reconnect forever: an outage of the server delays events, the
		// outbox keeps them meanwhile.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		// No client-side buffer while disconnected: a publish fails at once
		// and the outbox retries it, instead of it leaving much later.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				opts.Logger.Warn("nats disconnected", "error", err.Error())
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { opts.Logger.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	url := opts.URL
	if url == "" {
		if err := b.startEmbedded(); err != nil {
			return nil, err
		}
		url = b.srv.ClientURL()
		conn = append(conn, nats.InProcessServer(b.srv))
	} else if opts.Background {
		conn = append(conn, nats.RetryOnFailedConnect(true))
	}
	nc, err := nats.Connect(url, conn...)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	b.nc = nc
	if b.js, err = jetstream.New(nc, jetstream.WithDefaultTimeout(opts.Timeout)); err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := b.ensureStreams(ctx); err != nil {
		if opts.URL == "" || !opts.Background {
			b.Close()
			return nil, err
		}
		opts.Logger.Warn("nats unavailable; events wait in the outbox until it is", "error", err.Error())
		b.setup.Go(b.ensureStreamsLater)
	}
	return b, nil
}

// ensureStreamsLater retries creating the streams until it succeeds or
// the broker closes.
func (b *Broker) ensureStreamsLater() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-b.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := b.ensureStreams(ctx); err == nil {
			b.opts.Logger.Info("nats streams ready")
			return
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func (b *Broker) startEmbedded() error {
	if b.opts.StoreDir == "" {
		return errors.New("events: an embedded server needs a store directory")
	}
	if err := os.MkdirAll(b.opts.StoreDir, 0o750); err != nil {
		return fmt.Errorf("create nats store: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(b.opts.StoreDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open nats store lock: %w", err)
	}
	// Two servers on one store would corrupt it; the lock goes with the
	// process, even on kill -9.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return ErrStoreBusy
		}
		return fmt.Errorf("lock nats store: %w", err)
	}
	b.lock = lock
	srv, err := server.NewServer(&server.Options{
		ServerName:         "million-embedded",
		DontListen:         true,
		JetStream:          true,
		StoreDir:           b.opts.StoreDir,
		JetStreamMaxMemory: b.opts.MaxMemory,
		JetStreamMaxStore:  b.opts.MaxStore,
		NoSigs:             true,
	})
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	srv.SetLoggerV2(serverLogger{b.opts.Logger}, false, false, false)
	b.srv = srv
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		return errors.New("embedded nats: not ready after 30s")
	}
	return nil
}

func (b *Broker) ensureStreams(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 4*b.opts.Timeout)
	defer cancel()
	if _, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "million domain events, from the outbox",
		Subjects:    []string{eventsPrefix + ">", retryPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      b.opts.Retention,
		Duplicates:  b.opts.DedupWindow,
		Discard:     jetstream.DiscardOld,
	}); err != nil {
		return fmt.Errorf("create stream %s: %w", EventsStream, err)
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DLQStream,
		Description: "million messages whose handler failed every attempt",
		Subjects:    []string{dlqPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      b.opts.DLQRetention,
		Duplicates:  b.opts.DedupWindow,
	}); err != nil {
		return fmt.Errorf("create stream %s: %w", DLQStream, err)
	}
	return nil
}

// Publish implements outbox.Publisher: it returns once the stream has stored
// the event (its PubAck), with the event ID as the message ID so that a
// republished event is dropped within the dedup window.
func (b *Broker) Publish(ctx context.Context, e outbox.Event) error {
	if err := checkTopic(e.Topic); err != nil {
		b.publishFailures.Add(1)
		return err
	}
	data, err := encode(e)
	if err != nil {
		b.publishFailures.Add(1)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	m := nats.NewMsg(EventSubject(e.Topic))
	m.Data = data
	m.Header.Set(headerEventID, e.ID)
	if _, err := b.js.PublishMsg(ctx, m, jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(EventsStream)); err != nil {
		b.publishFailures.Add(1)
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) {
			// No stream takes the subject: a server that lost its store, or
			// an operator who deleted it. Recreate it for the retry.
			if serr := b.ensureStreams(ctx); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		return fmt.Errorf("publish event %s: %w", e.ID, err)
	}
	b.published.Add(1)
	return nil
}

// Subscribe routes events of topic to h under the durable consumer named
// consumer; one consumer reads every topic subscribed under its name.
// Subscriptions take effect at Run.
func (b *Broker) Subscribe(topic, consumer string, h Handler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.subs[consumer]
	if s == nil {
		s = &subscription{name: consumer, handlers: map[string]Handler{}}
		b.subs[consumer] = s
	}
	s.handlers[topic] = h
}

// Consumers lists the subscribed consumer names.
func (b *Broker) Consumers() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for name := range b.subs {
		out = append(out, name)
	}
	return out
}

// Stats returns the counters.
func (b *Broker) Stats() Stats {
	return Stats{
		Published: b.published.Load(), PublishFailures: b.publishFailures.Load(),
		Handled: b.handled.Load(), HandlerFailures: b.handlerFailures.Load(),
		Redeliveries: b.redeliveries.Load(), DeadLettered: b.deadLettered.Load(),
	}
}

// Close closes the connection and stops the embedded server. Run must have
// returned.
func (b *Broker) Close() {
	b.closeOnce.Do(func() { close(b.closed) })
	b.setup.Wait()
	if b.nc != nil {
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	if b.lock != nil {
		b.lock.Close()
	}
}

func checkTopic(topic string) error {
	if topic == "" || strings.ContainsAny(topic, " \t\r\n*>") || strings.HasPrefix(topic, ".") ||
		strings.HasSuffix(topic, ".") || strings.Contains(topic, "..") {
		return fmt.Errorf("events: topic %q is not a valid subject", topic)
	}
	return nil
}

func checkConsumer(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n*>.") {
		return fmt.Errorf("events: consumer name %q must be one subject token", name)
	}
	return nil
}

// serverLogger sends the embedded server's warnings and errors to slog.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(string, ...any) {}
func (s serverLogger) Debugf(string, ...any)  {}
func (s serverLogger) Tracef(string, ...any)  {}
func (s serverLogger) Warnf(format string, v ...any) {
	s.l.Warn("nats server: " + fmt.Sprintf(format, v...))
}
func (s serverLogger) Errorf(format string, v ...any) {
	s.l.Error("nats server: " + fmt.Sprintf(format, v...))
}
func (s serverLogger) Fatalf(format string, v ...any) {
	s.l.Error("nats server fatal: " + fmt.Sprintf(format, v...))
}
