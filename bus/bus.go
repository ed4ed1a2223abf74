// Package bus is a synchronous in-process event bus: the outbox relay
// publishes to it and subscribers run before the publish returns. million
// serve uses NATS JetStream (package events) behind the same
// outbox.Publisher interface; this bus remains for tests and tools that
// want events handled inline, without a broker.
package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/millionshop/million/outbox"
)

// Handler consumes one event. It must be idempotent by event ID, since
// delivery is at least once.
type Handler func(ctx context.Context, e outbox.Event) error

// Bus dispatches events synchronously to every subscriber of their topic.
type Bus struct {
	mu   sync.RWMutex
	subs map[string][]namedHandler
}

type namedHandler struct {
	name string
	h    Handler
}

// New returns an empty bus.
func New() *Bus { return &Bus{subs: map[string][]namedHandler{}} }

// Subscribe adds a handler for topic under a consumer name used in errors.
func (b *Bus) Subscribe(topic, consumer string, h Handler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[topic] = append(b.subs[topic], namedHandler{name: consumer, h: h})
}

// Publish implements outbox.Publisher: it runs every handler of the topic
// and fails if any fails, so the outbox retries the event later.
func (b *Bus) Publish(ctx context.Context, e outbox.Event) error {
	b.mu.RLock()
	subs := b.subs[e.Topic]
	b.mu.RUnlock()
	var errs []error
	for _, s := range subs {
		if err := s.h(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}
