package events_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/millionshop/million/events"
	"github.com/millionshop/million/events/natstest"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// servers are the two ways million runs NATS; every consumer test runs on
// both.
var servers = []struct {
	name     string
	external bool
}{{"embedded", false}, {"external", true}}

// open returns a broker on an embedded server in a fresh store, or on a
// fresh external server (returned too, so the test can stop it).
func open(t *testing.T, external bool, opts events.Options) (*events.Broker, *natstest.Server) {
	t.Helper()
	var ext *natstest.Server
	if external {
		ext = natstest.Start(t)
		opts.URL = ext.URL()
	} else {
		opts.StoreDir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	b, err := events.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, ext
}

// run runs the broker's consumers until the test ends.
func run(t *testing.T, b *events.Broker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counter counts calls per event ID.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[id]++
	return c.n[id]
}

func (c *counter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

func event(id, topic string) outbox.Event {
	return outbox.Event{ID: id, Topic: topic, Key: "k-" + id, Payload: []byte(`{"n":1}`), CreatedAt: time.Now().UTC()}
}

// TestDeadLetterAndRetry: a handler that fails every attempt has its message
// tried MaxDeliver (5) times, then copied to the dead-letter stream with
// the consumer, subject, error and attempts; a retry replays it to that
// consumer only, which then handles it once. Another consumer of the same
// topic is unaffected throughout.
func TestDeadLetterAndRetry(t *testing.T) {
	t.Parallel()
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			b, _ := open(t, srv.external, events.Options{RetryBase: 20 * time.Millisecond})
			var (
				mu      sync.Mutex
				failing = true
			)
			var flakyCalls, flakyDone, steady counter
			b.Subscribe("test.item", "flaky", func(_ context.Context, e outbox.Event) error {
				flakyCalls.add(e.ID)
				mu.Lock()
				defer mu.Unlock()
				if failing && e.ID == "bad" {
					return errors.New("refused by the test")
				}
				flakyDone.add(e.ID)
				return nil
			})
			b.Subscribe("test.item", "steady", func(_ context.Context, e outbox.Event) error {
				steady.add(e.ID)
				return nil
			})
			run(t, b)
			ctx := context.Background()
			for _, id := range []string{"good", "bad"} {
				if err := b.Publish(ctx, event(id, "test.item")); err != nil {
					t.Fatal(err)
				}
			}

			var dl []events.DeadLetter
			eventually(t, 30*time.Second, "the failing message is dead-lettered", func() bool {
				var err error
				dl, err = b.DeadLetters(ctx, 0)
				return err == nil && len(dl) == 1
			})
			d := dl[0]
			if d.Consumer != "flaky" || d.EventID != "bad" || d.Topic != "test.item" || d.Attempts != 5 ||
				d.Subject != events.EventSubject("test.item") || !strings.Contains(d.Error, "refused by the test") {
				t.Fatalf("dead letter = %+v", d)
			}
			if n := flakyCalls.get("bad"); n != 5 {
				t.Fatalf("failing handler called %d times, want 5", n)
			}
			if size, err := b.DLQSize(ctx); err != nil || size != 1 {
				t.Fatalf("DLQ size = %d, %v", size, err)
			}
			eventually(t, 30*time.Second, "the other consumer handles both events", func() bool {
				return steady.get("good") == 1 && steady.get("bad") == 1 && flakyDone.get("good") == 1
			})

			mu.Lock()
			failing = false
			mu.Unlock()
			if _, err := b.Retry(ctx, d.Seq); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "the replayed message is handled", func() bool { return flakyDone.get("bad") == 1 })
			eventually(t, 30*time.Second, "both consumers settle everything", func() bool {
				l1, err1 := b.Lag(ctx, "flaky")
				l2, err2 := b.Lag(ctx, "steady")
				return err1 == nil && err2 == nil && l1 == 0 && l2 == 0
			})
			if got := []int{flakyDone.get("bad"), flakyDone.get("good"), steady.get("bad"), steady.get("good")}; fmt.Sprint(got) != "[1 1 1 1]" {
				t.Fatalf("handled counts (flaky bad, good; steady bad, good) = %v, want each once", got)
			}
			if size, err := b.DLQSize(ctx); err != nil || size != 0 {
				t.Fatalf("DLQ size after retry = %d, %v", size, err)
			}
			if _, err := b.Retry(ctx, d.Seq); !errors.Is(err, events.ErrNoDeadLetter) {
				t.Fatalf("second retry of the same dead letter: %v", err)
			}
			st := b.Stats()
			if st.DeadLettered != 1 || st.HandlerFailures != 5 || st.Redeliveries < 4 || st.Published != 2 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

// TestPublishDeduplicates: the same event published twice (a relay that
// crashed before marking it sent) reaches a consumer once.
func TestPublishDeduplicates(t *testing.T) {
	t.Parallel()
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			b, _ := open(t, srv.external, events.Options{})
			var got counter
			b.Subscribe("test.item", "c", func(_ context.Context, e outbox.Event) error {
				got.add(e.ID)
				return nil
			})
			run(t, b)
			ctx := context.Background()
			for _, id := range []string{"twice", "twice", "marker"} {
				if err := b.Publish(ctx, event(id, "test.item")); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 30*time.Second, "the marker after the duplicate is handled", func() bool { return got.get("marker") == 1 })
			if n := got.get("twice"); n != 1 {
				t.Fatalf("event published twice handled %d times", n)
			}
		})
	}
}

// TestHandlerSlowerThanAckWait: a handler running longer than the ack wait
// is not redelivered meanwhile, since the broker reports progress.
func TestHandlerSlowerThanAckWait(t *testing.T) {
	t.Parallel()
	b, _ := open(t, false, events.Options{AckWait: 400 * time.Millisecond})
	var got counter
	b.Subscribe("test.slow", "slow", func(_ context.Context, e outbox.Event) error {
		got.add(e.ID)
		time.Sleep(1500 * time.Millisecond)
		return nil
	})
	run(t, b)
	if err := b.Publish(context.Background(), event("slow", "test.slow")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the slow event is settled", func() bool {
		lag, err := b.Lag(context.Background(), "slow")
		return err == nil && lag == 0 && got.get("slow") > 0
	})
	if n := got.get("slow"); n != 1 {
		t.Fatalf("slow handler called %d times", n)
	}
}

// TestEmbeddedStoreLockedAndDurable: a second process cannot open a store
// in use; after the first closes, what it stored is still there and a
// consumer that had not acknowledged it gets it.
func TestEmbeddedStoreLockedAndDurable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := events.Open(context.Background(), events.Options{StoreDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Open(context.Background(), events.Options{StoreDir: dir, Logger: quiet}); !errors.Is(err, events.ErrStoreBusy) {
		first.Close()
		t.Fatalf("second open of a store in use: %v", err)
	}
	if err := first.Publish(context.Background(), event("kept", "test.item")); err != nil {
		t.Fatal(err)
	}
	first.Close()

	second, err := events.Open(context.Background(), events.Options{StoreDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Close)
	var got counter
	second.Subscribe("test.item", "late", func(_ context.Context, e outbox.Event) error {
		got.add(e.ID)
		return nil
	})
	run(t, second)
	eventually(t, 30*time.Second, "the stored event reaches a consumer after reopening", func() bool { return got.get("kept") == 1 })
}

// TestUndecodableMessageIsDeadLettered: a message on an event subject that
// is not an event (published by something other than the outbox) goes to
// the dead-letter stream at once, with the decoding error, and does not
// hold up the events behind it.
func TestUndecodableMessageIsDeadLettered(t *testing.T) {
	t.Parallel()
	b, ext := open(t, true, events.Options{})
	var got counter
	b.Subscribe("test.item", "c", func(_ context.Context, e outbox.Event) error {
		got.add(e.ID)
		return nil
	})
	run(t, b)
	nc, err := nats.Connect(ext.URL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, events.EventSubject("test.item"), []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, event("after", "test.item")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the event after the bad message is handled", func() bool { return got.get("after") == 1 })
	var dl []events.DeadLetter
	eventually(t, 30*time.Second, "the bad message is dead-lettered", func() bool {
		dl, err = b.DeadLetters(ctx, 0)
		return err == nil && len(dl) == 1
	})
	if d := dl[0]; d.Consumer != "c" || d.Attempts != 1 || !strings.Contains(d.Error, "undecodable") {
		t.Fatalf("dead letter = %+v", d)
	}
}

// TestStreamsRecreated: when the events stream disappears (an external
// server that lost its store, an operator's mistake), a publish fails and
// recreates it, so that the retry goes through; a consumer whose stream
// vanished under it recreates both, and handles what comes next.
func TestStreamsRecreated(t *testing.T) {
	t.Parallel()
	b, ext := open(t, true, events.Options{})
	var got counter
	b.Subscribe("test.item", "c", func(_ context.Context, e outbox.Event) error {
		got.add(e.ID)
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(ext.URL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// The publisher alone (no consumer running yet).
	if err := js.DeleteStream(ctx, events.EventsStream); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, event("first", "test.item")); err == nil {
		t.Fatal("publish without a stream succeeded")
	}
	if err := b.Publish(ctx, event("first", "test.item")); err != nil {
		t.Fatalf("retry after the stream was recreated: %v", err)
	}
	run(t, b)
	eventually(t, 30*time.Second, "the retried event is handled", func() bool { return got.get("first") == 1 })

	// A running consumer.
	if err := js.DeleteStream(ctx, events.EventsStream); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the consumer recreates the stream and itself", func() bool {
		_, err := js.Consumer(ctx, events.EventsStream, "c")
		return err == nil
	})
	if err := b.Publish(ctx, event("second", "test.item")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the event after the loss is handled", func() bool { return got.get("second") == 1 })
}
