package events_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/events"
	"github.com/millionshop/million/notify"
	notifystore "github.com/millionshop/million/notify/store"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

// sink is a notify.Sender that keeps what it was asked to send, as a mail
// sink would.
type sink struct {
	mu   sync.Mutex
	sent map[string]int // by user ID
}

func (s *sink) Send(_ context.Context, m notify.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent[m.UserID]++
	return nil
}

func (s *sink) count(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[user]
}

// outage is how long the external server is down in TestOutboxSurvivesOutage.
const outage = 30 * time.Second

// TestOutboxSurvivesOutage: orders keep being placed (events recorded in the
// outbox, in the order's transaction) while the external NATS server is
// down for 30 s; when it returns the backlog is published and every event
// is handled exactly once by the real notify consumer (one message stored
// and one sent per event), none lost, none duplicated. On PostgreSQL the
// relay holds its claim while publishing, so this also checks that path.
func TestOutboxSurvivesOutage(t *testing.T) {
	t.Parallel()
	for _, d := range sqldbtest.Dialects {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			db := sqldbtest.Open(t, d, outbox.Migrations(), notifystore.Migrations())
			b, ext := open(t, true, events.Options{Timeout: 2 * time.Second})
			mail := &sink{sent: map[string]int{}}
			notifier := notify.NewNotifier(notifystore.New(db), mail, time.Now)
			var deliveries atomic.Int64
			b.Subscribe("order.placed", "notify", func(ctx context.Context, e outbox.Event) error {
				deliveries.Add(1)
				return notifier.HandleOrderEvent(ctx, e.ID, e.Topic, e.Payload)
			})
			o := outbox.New(db, b, quiet, time.Now)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { o.Run(ctx, 100*time.Millisecond) })
			wg.Go(func() { b.Run(ctx) })
			t.Cleanup(func() { cancel(); wg.Wait() })

			n := 0
			place := func() {
				t.Helper()
				n++
				ev := notify.OrderEvent{OrderID: fmt.Sprintf("o-%d", n), UserID: fmt.Sprintf("u-%d", n), Status: "placed", TotalCents: 1000, Currency: "USD"}
				if err := db.InTx(ctx, func(ctx context.Context) error { return o.Add(ctx, "order.placed", ev.OrderID, ev) }); err != nil {
					t.Fatal(err)
				}
			}
			for range 20 {
				place()
			}
			eventually(t, 30*time.Second, "the first orders are notified", func() bool { return mail.count("u-20") == 1 })

			ext.Stop()
			stopped := time.Now()
			for time.Since(stopped) < outage {
				place()
				time.Sleep(100 * time.Millisecond)
			}
			backlog, err := o.Pending(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if backlog < n-20-5 {
				t.Fatalf("only %d of the %d events recorded during the outage wait in the outbox", backlog, n-20)
			}
			failures := b.Stats().PublishFailures
			if failures == 0 {
				t.Fatal("no publish failed while the server was down")
			}
			if err := ext.Restart(); err != nil {
				t.Fatal(err)
			}
			restarted := time.Now()
			for range 20 {
				place()
			}
			total := n
			eventually(t, 40*time.Second, "the backlog is published and handled", func() bool {
				p, err := o.Pending(ctx)
				return err == nil && p == 0 && mail.count(fmt.Sprintf("u-%d", total)) == 1 && mail.count("u-21") == 1
			})
			drained := time.Since(restarted)
			eventually(t, 30*time.Second, "the consumer settles everything", func() bool {
				lag, err := b.Lag(ctx, "notify")
				return err == nil && lag == 0
			})
			for i := 1; i <= total; i++ {
				user := fmt.Sprintf("u-%d", i)
				msgs, err := notifier.Messages(ctx, user)
				if err != nil {
					t.Fatal(err)
				}
				if len(msgs) != 1 || mail.count(user) != 1 {
					t.Fatalf("order %d: %d messages stored, %d sent; want exactly one", i, len(msgs), mail.count(user))
				}
			}
			if got := rows(t, db, `SELECT count(*) FROM notify_messages`); got != total {
				t.Fatalf("%d messages stored for %d events", got, total)
			}
			t.Logf("%s: %d events (%d during the %s outage, backlog %d), %d publish failures, %d deliveries; backlog published and handled %s after the restart",
				d, total, total-40, outage, backlog, failures, deliveries.Load(), drained.Round(time.Millisecond))
		})
	}
}

func rows(t *testing.T, db *sqldb.DB, q string) int {
	t.Helper()
	var n int
	if err := db.Reader(context.Background()).QueryRowContext(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
