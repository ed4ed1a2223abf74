package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/millionshop/million/outbox"
)

// fetchBatch is how many messages a consumer takes at once. Messages
// waiting in a fetched batch get no progress reports, so it stays small
// enough to be handled well within the ack wait.
const fetchBatch = 10

func encode(e outbox.Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return b, nil
}

// Run runs every subscribed consumer until ctx ends. Each consumer handles
// its messages one at a time, in stream order except for retries.
func (b *Broker) Run(ctx context.Context) {
	b.mu.Lock()
	subs := make([]*subscription, 0, len(b.subs))
	for _, s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() { b.consume(ctx, s) })
	}
	wg.Wait()
}

// consumerConfig is the durable pull consumer of s. JetStream's own
// MaxDeliver is unlimited: the broker counts attempts itself and
// dead-letters on the last one, so that a message whose deliveries all
// timed out (a consumer that crashed while handling it) is dead-lettered
// too instead of being dropped silently by the server.
//
// The exponential backoff is the broker's delayed nak, not the consumer's
// BackOff list: with a BackOff the server (2.15) offsets a nak delay from
// the first ack wait but checks it against the n-th, so every retry would
// wait the longer ack wait instead of the delay asked for.
func (b *Broker) consumerConfig(s *subscription) jetstream.ConsumerConfig {
	filters := []string{retryPrefix + s.name}
	for topic := range s.handlers {
		filters = append(filters, EventSubject(topic))
	}
	return jetstream.ConsumerConfig{
		Durable:        s.name,
		Description:    "million consumer " + s.name,
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        b.opts.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  1000,
	}
}

// ensureConsumer creates or updates s's durable consumer, retrying until
// the server answers or ctx ends.
func (b *Broker) ensureConsumer(ctx context.Context, s *subscription) (jetstream.Consumer, error) {
	if err := checkConsumer(s.name); err != nil {
		return nil, err
	}
	for topic := range s.handlers {
		if err := checkTopic(topic); err != nil {
			return nil, err
		}
	}
	wait := 100 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
		c, err := b.js.CreateOrUpdateConsumer(cctx, EventsStream, b.consumerConfig(s))
		cancel()
		if err == nil {
			return c, nil
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			sctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
			_ = b.ensureStreams(sctx)
			cancel()
		}
		b.opts.Logger.WarnContext(ctx, "create consumer failed; will retry", "consumer", s.name, "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (b *Broker) consume(ctx context.Context, s *subscription) {
	c, err := b.ensureConsumer(ctx, s)
	if err != nil {
		if ctx.Err() == nil {
			b.opts.Logger.ErrorContext(ctx, "consumer not started", "consumer", s.name, "error", err.Error())
		}
		return
	}
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		// The fetch context only bounds the wait for messages; handling
		// them runs under ctx.
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		batch, err := c.Fetch(fetchBatch, jetstream.FetchContext(fctx))
		if err == nil {
			for m := range batch.Messages() {
				b.handle(ctx, s, m)
			}
			err = batch.Error()
		}
		cancel()
		switch {
		case err == nil || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			wait = 100 * time.Millisecond
			continue
		case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
			errors.Is(err, nats.ErrNoResponders):
			// The consumer (or its stream) was deleted, or its server lost
			// it: recreate it.
			if c, err = b.ensureConsumer(ctx, s); err != nil {
				return
			}
		default:
			b.opts.Logger.WarnContext(ctx, "fetch failed; will retry", "consumer", s.name, "error", err.Error())
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// handle runs the handler of one message and settles it: ack on success,
// a delayed nak on failure, the dead-letter stream on the last attempt.
func (b *Broker) handle(ctx context.Context, s *subscription, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term() // not a JetStream delivery; nothing to retry
		return
	}
	if md.NumDelivered > 1 {
		b.redeliveries.Add(1)
	}
	attempt := int(md.NumDelivered)
	if attempt > b.opts.MaxDeliver {
		// Every attempt timed out: the handler crashed or hung each time.
		b.deadLetter(ctx, s, m, md, attempt-1, errors.New("no acknowledgement within the ack wait"))
		return
	}
	var ev outbox.Event
	if err := json.Unmarshal(m.Data(), &ev); err != nil {
		b.deadLetter(ctx, s, m, md, attempt, fmt.Errorf("undecodable message: %w", err))
		return
	}
	h := s.handlers[ev.Topic]
	if h == nil {
		// A replay for a topic this consumer no longer handles.
		_ = m.Ack()
		return
	}
	err = b.call(ctx, m, h, ev)
	if err == nil {
		if aerr := m.Ack(); aerr == nil {
			b.handled.Add(1)
		}
		return
	}
	b.handlerFailures.Add(1)
	b.opts.Logger.WarnContext(ctx, "event handler failed", "consumer", s.name, "topic", ev.Topic,
		"event_id", ev.ID, "attempt", attempt, "error", err.Error())
	if attempt >= b.opts.MaxDeliver {
		b.deadLetter(ctx, s, m, md, attempt, err)
		return
	}
	_ = m.NakWithDelay(b.opts.RetryBase << (attempt - 1))
}

// call runs h with a timeout, telling the server the message is still in
// progress meanwhile so that a slow handler is not redelivered concurrently.
func (b *Broker) call(ctx context.Context, m jetstream.Msg, h Handler, ev outbox.Event) (err error) {
	hctx, cancel := context.WithTimeout(ctx, b.opts.HandlerTimeout)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(b.opts.AckWait / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-hctx.Done():
				// Past its timeout a handler that still runs is stuck:
				// let the server redeliver the message.
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(hctx, ev)
}

// deadLetter copies m to the dead-letter stream and terminates it; if the
// copy fails the message is redelivered later and dead-lettered then.
func (b *Broker) deadLetter(ctx context.Context, s *subscription, m jetstream.Msg, md *jetstream.MsgMetadata, attempts int, cause error) {
	dl := nats.NewMsg(dlqPrefix + s.name)
	dl.Data = m.Data()
	for k, v := range m.Headers() {
		if k != headerMsgID {
			dl.Header[k] = v
		}
	}
	dl.Header.Set(HeaderSubject, m.Subject())
	dl.Header.Set(HeaderConsumer, s.name)
	msg := cause.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	dl.Header.Set(HeaderError, msg)
	dl.Header.Set(HeaderAttempts, strconv.Itoa(attempts))
	// Shutting down must not lose the copy: the terminate follows it.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.Timeout)
	defer cancel()
	id := fmt.Sprintf("%s.%d", s.name, md.Sequence.Stream)
	if _, err := b.js.PublishMsg(pctx, dl, jetstream.WithMsgID(id), jetstream.WithExpectStream(DLQStream)); err != nil {
		b.opts.Logger.ErrorContext(ctx, "dead-letter failed; will retry", "consumer", s.name, "error", err.Error())
		_ = m.NakWithDelay(b.opts.RetryBase)
		return
	}
	b.deadLettered.Add(1)
	b.opts.Logger.ErrorContext(ctx, "event dead-lettered", "consumer", s.name, "subject", m.Subject(),
		"attempts", attempts, "error", msg)
	_ = m.TermWithReason("dead-lettered")
}
