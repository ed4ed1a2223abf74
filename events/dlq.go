package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/millionshop/million/outbox"
)

// DeadLetter is one message in the dead-letter stream.
type DeadLetter struct {
	Seq      uint64    `json:"seq"` // its ID in the dead-letter stream
	Consumer string    `json:"consumer"`
	Subject  string    `json:"subject"` // where it was originally delivered from
	EventID  string    `json:"event_id"`
	Topic    string    `json:"topic"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	Time     time.Time `json:"time"` // when it was dead-lettered
}

// ErrNoDeadLetter means no dead letter has the given sequence.
var ErrNoDeadLetter = errors.New("no such dead letter")

func (b *Broker) dlq(ctx context.Context) (jetstream.Stream, context.Context, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	s, err := b.js.Stream(ctx, DLQStream)
	if err != nil {
		cancel()
		return nil, nil, nil, fmt.Errorf("open %s: %w", DLQStream, err)
	}
	return s, ctx, cancel, nil
}

// DLQSize returns how many messages are in the dead-letter stream.
func (b *Broker) DLQSize(ctx context.Context) (uint64, error) {
	s, ctx, cancel, err := b.dlq(ctx)
	if err != nil {
		return 0, err
	}
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// Lag returns how many messages consumer has yet to settle: those not yet
// delivered plus those delivered and not acknowledged.
func (b *Broker) Lag(ctx context.Context, consumer string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	c, err := b.js.Consumer(ctx, EventsStream, consumer)
	if err != nil {
		return 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// DeadLetters lists up to limit dead letters, oldest first (limit <= 0: all).
func (b *Broker) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	parent := ctx
	s, ctx, cancel, err := b.dlq(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []DeadLetter
	if info.State.Msgs == 0 {
		return out, nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		if limit > 0 && len(out) >= limit {
			break
		}
		// Each read has its own timeout, so a long list is not cut short.
		gctx, gcancel := context.WithTimeout(parent, b.opts.Timeout)
		m, err := s.GetMsg(gctx, seq)
		gcancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // retried and deleted
		}
		if err != nil {
			return nil, err
		}
		out = append(out, deadLetterOf(m))
	}
	return out, nil
}

func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	d := DeadLetter{
		Seq: m.Sequence, Consumer: m.Header.Get(HeaderConsumer), Subject: m.Header.Get(HeaderSubject),
		EventID: m.Header.Get(headerEventID), Error: m.Header.Get(HeaderError), Time: m.Time.UTC(),
	}
	d.Attempts, _ = strconv.Atoi(m.Header.Get(HeaderAttempts))
	var ev outbox.Event
	if json.Unmarshal(m.Data, &ev) == nil {
		d.Topic = ev.Topic
		if d.EventID == "" {
			d.EventID = ev.ID
		}
	}
	if d.Consumer == "" {
		d.Consumer = strings.TrimPrefix(m.Subject, dlqPrefix)
	}
	return d
}

// Retry replays the dead letter seq to the consumer that failed it (and no
// other) and removes it from the dead-letter stream. The consumer picks it
// up when it runs, with a fresh count of attempts.
func (b *Broker) Retry(ctx context.Context, seq uint64) (DeadLetter, error) {
	s, ctx, cancel, err := b.dlq(ctx)
	if err != nil {
		return DeadLetter{}, err
	}
	defer cancel()
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, fmt.Errorf("%w: %d", ErrNoDeadLetter, seq)
	}
	if err != nil {
		return DeadLetter{}, err
	}
	d := deadLetterOf(m)
	if err := checkConsumer(d.Consumer); err != nil {
		return d, err
	}
	replay := nats.NewMsg(retryPrefix + d.Consumer)
	replay.Data = m.Data
	if d.EventID != "" {
		replay.Header.Set(headerEventID, d.EventID)
	}
	// The message ID makes a retry interrupted between publish and delete
	// harmless when it is run again within the dedup window.
	id := fmt.Sprintf("retry.%s.%d", d.Consumer, seq)
	if _, err := b.js.PublishMsg(ctx, replay, jetstream.WithMsgID(id), jetstream.WithExpectStream(EventsStream)); err != nil {
		return d, fmt.Errorf("replay dead letter %d: %w", seq, err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return d, fmt.Errorf("remove dead letter %d: %w", seq, err)
	}
	return d, nil
}

// RetryAll replays every dead letter and returns those replayed.
func (b *Broker) RetryAll(ctx context.Context) ([]DeadLetter, error) {
	list, err := b.DeadLetters(ctx, 0)
	if err != nil {
		return nil, err
	}
	var done []DeadLetter
	for _, d := range list {
		if _, err := b.Retry(ctx, d.Seq); err != nil {
			return done, err
		}
		done = append(done, d)
	}
	return done, nil
}
