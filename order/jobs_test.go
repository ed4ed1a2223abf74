package order_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/order"
	orderstore "github.com/millionshop/million/order/store"
	"github.com/millionshop/million/payment"
	"github.com/millionshop/million/payment/simulated"
	"github.com/millionshop/million/pgtest"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// onEachEngine runs fn on a fixture over SQLite and over PostgreSQL.
func onEachEngine(t *testing.T, failTopic string, fn func(t *testing.T, f *orderFixture)) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			url := ""
			if engine == "postgres" {
				srv := pgtest.Cluster(t)
				url = srv.NewDatabase(t, srv.NewTemplate(t, "million_order_jobs", func(url string) error {
					ctx := context.Background()
					db, err := sqldb.OpenPostgres(ctx, url, sqldb.PostgresOptions{MaxConns: 2})
					if err != nil {
						return err
					}
					defer db.Close()
					_, err = db.Migrate(ctx, app.Migrations())
					return err
				}))
			}
			fn(t, newOrderFixtureOn(t, failTopic, url))
		})
	}
}

// topics returns the topics of the events recorded about an order, oldest
// first: the order's and its payment's events are keyed by the order ID.
func (f *orderFixture) topics(t *testing.T, orderID string) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := f.app.DB.Reader(ctx).QueryContext(ctx, `SELECT topic FROM outbox_events WHERE event_key = ? ORDER BY seq`, orderID)
	if err != nil {
		t.Fatalf("read the outbox: %v", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var topic string
		if err := rows.Scan(&topic); err != nil {
			t.Fatalf("read the outbox: %v", err)
		}
		out = append(out, topic)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read the outbox: %v", err)
	}
	return out
}

// checkout puts one of product into userID's cart and checks it out.
func (f *orderFixture) checkout(t *testing.T, userID, productID, key, token string) (order.Order, error) {
	t.Helper()
	if _, err := f.app.Carts.SetItem(context.Background(), userID, productID, 1); err != nil {
		t.Fatalf("fill cart: %v", err)
	}
	o, _, err := f.orders.Checkout(context.Background(), userID, key,
		order.CheckoutRequest{Payment: order.PaymentMethod{Method: "card", Token: token}})
	return o, err
}

// stuckAuthorized checks out with a capture that times out without taking
// effect: the order is left pending, its payment authorized.
func (f *orderFixture) stuckAuthorized(t *testing.T, userID, productID, key string) order.Order {
	t.Helper()
	f.provider.failCaptures.Add(1)
	if _, err := f.checkout(t, userID, productID, key, "tok_visa"); !fault.Is(err, fault.Unavailable) {
		t.Fatalf("checkout whose capture timed out: err = %v, want fault.Unavailable", err)
	}
	o := f.onlyOrder(t, userID)
	if pay := f.payment(t, o.ID); o.Status != order.StatusPending || pay.Status != payment.StatusAuthorized {
		t.Fatalf("after the timed-out capture: order %s, payment %s; want pending and authorized", o.Status, pay.Status)
	}
	return o
}

func (f *orderFixture) mustOrder(t *testing.T, userID, orderID string) order.Order {
	t.Helper()
	o, err := f.orders.Get(context.Background(), userID, orderID)
	if err != nil {
		t.Fatalf("get order %s: %v", orderID, err)
	}
	return o
}

// TestCaptureJobCompletesALostCapture: the capture took effect at the
// provider but its answer was lost, and the client never retried. After
// the grace period the capture job captures again (a no-op at the
// provider), marks the order paid through checkout's own path (one
// order.paid), and stores the outcome under the checkout's key, so a late
// client retry gets the paid order replayed.
func TestCaptureJobCompletesALostCapture(t *testing.T) {
	t.Parallel()
	onEachEngine(t, "", func(t *testing.T, f *orderFixture) {
		ctx := context.Background()
		p := f.product(t, 5)
		const userID = "user-lost-capture"
		if _, err := f.checkout(t, userID, p.ID, "k-lost", simulated.TokenTimeoutCapture); !fault.Is(err, fault.Unavailable) {
			t.Fatalf("checkout whose capture answer was lost: err = %v, want fault.Unavailable", err)
		}
		o := f.onlyOrder(t, userID)
		if n, err := f.orders.CaptureStalled(ctx); err != nil || n != 0 {
			t.Fatalf("capture job within the grace period = %d, %v; want 0, nil", n, err)
		}
		f.clock.add(order.DefaultCaptureAfter + time.Second)
		if n, err := f.orders.CaptureStalled(ctx); err != nil || n != 1 {
			t.Fatalf("capture job after the grace period = %d, %v; want 1, nil", n, err)
		}
		got := f.mustOrder(t, userID, o.ID)
		pay := f.payment(t, o.ID)
		if got.Status != order.StatusPaid || got.PaymentStatus != payment.StatusCaptured || pay.Status != payment.StatusCaptured {
			t.Fatalf("after the capture job: order %s/%s, payment %s; want paid and captured", got.Status, got.PaymentStatus, pay.Status)
		}
		if s := f.provider.State(pay.ProviderRef); s != payment.StatusCaptured {
			t.Fatalf("provider state = %s, want captured", s)
		}
		want := []string{order.TopicPlaced, payment.TopicAuthorized, payment.TopicCaptured, order.TopicPaid}
		if got := f.topics(t, o.ID); !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if n, err := f.orders.CaptureStalled(ctx); err != nil || n != 0 {
			t.Fatalf("capture job run again = %d, %v; want 0, nil", n, err)
		}
		again, replayed, err := f.orders.Checkout(ctx, userID, "k-lost",
			order.CheckoutRequest{Payment: order.PaymentMethod{Method: "card", Token: simulated.TokenTimeoutCapture}})
		if err != nil || !replayed || again.ID != o.ID || again.Status != order.StatusPaid {
			t.Fatalf("client retry = %+v, replayed %v, %v; want %s paid, replayed", again, replayed, err, o.ID)
		}
		if n := f.provider.Authorizations(); n != 1 {
			t.Fatalf("authorizations = %d, want 1", n)
		}
		if s := f.stock(t, p.ID); s != 4 {
			t.Fatalf("stock = %d, want 4", s)
		}
		if st := f.orders.JobStats(); st.Captured != 1 || st.CaptureFailures != 0 {
			t.Fatalf("job stats = %+v, want 1 captured, no failures", st)
		}
	})
}

// TestCaptureJobRetriesAFailingCaptureWithBackoff: the capture keeps
// timing out without taking effect. The job's failed attempt is retried
// only after a backoff, and the retry that gets through captures exactly
// once and marks the order paid.
func TestCaptureJobRetriesAFailingCaptureWithBackoff(t *testing.T) {
	t.Parallel()
	onEachEngine(t, "", func(t *testing.T, f *orderFixture) {
		ctx := context.Background()
		p := f.product(t, 5)
		const userID = "user-failing-capture"
		o := f.stuckAuthorized(t, userID, p.ID, "k-fail")
		f.provider.failCaptures.Add(1) // the job's first attempt fails too
		f.clock.add(order.DefaultCaptureAfter + time.Second)
		if n, err := f.orders.CaptureStalled(ctx); !fault.Is(err, fault.Unavailable) || n != 0 {
			t.Fatalf("capture job with a failing capture = %d, %v; want 0 and the provider timeout", n, err)
		}
		if got := f.mustOrder(t, userID, o.ID); got.Status != order.StatusPending {
			t.Fatalf("order after a failed capture = %s, want pending", got.Status)
		}
		if n, err := f.orders.CaptureStalled(ctx); err != nil || n != 0 {
			t.Fatalf("capture job within the backoff = %d, %v; want 0, nil (nothing tried)", n, err)
		}
		if n := f.provider.captures.Load(); n != 0 {
			t.Fatalf("captures that reached the provider = %d, want 0 so far", n)
		}
		f.clock.add(2*order.DefaultCaptureAfter + time.Second)
		if n, err := f.orders.CaptureStalled(ctx); err != nil || n != 1 {
			t.Fatalf("capture job after the backoff = %d, %v; want 1, nil", n, err)
		}
		if n := f.provider.captures.Load(); n != 1 {
			t.Fatalf("captures that reached the provider = %d, want exactly 1", n)
		}
		got := f.mustOrder(t, userID, o.ID)
		if got.Status != order.StatusPaid || f.provider.State(f.payment(t, o.ID).ProviderRef) != payment.StatusCaptured {
			t.Fatalf("order = %s, provider %s; want paid and captured", got.Status, f.provider.State(f.payment(t, o.ID).ProviderRef))
		}
		if st := f.orders.JobStats(); st.Captured != 1 || st.CaptureFailures != 1 {
			t.Fatalf("job stats = %+v, want 1 captured after 1 failure", st)
		}
	})
}

// TestCaptureJobRacesTheClientRetry: the capture job and the client's retry
// of the same checkout resume the same stuck order at once. They take turns
// on the checkout's key, so the provider is asked to capture once, the
// order is paid once (one payment.captured, one order.paid) and the client
// gets it.
func TestCaptureJobRacesTheClientRetry(t *testing.T) {
	t.Parallel()
	onEachEngine(t, "", func(t *testing.T, f *orderFixture) {
		ctx := context.Background()
		p := f.product(t, 5)
		const userID = "user-capture-race"
		o := f.stuckAuthorized(t, userID, p.ID, "k-race")
		f.clock.add(order.DefaultCaptureAfter + time.Second)
		// Were both to capture, they would meet here and both reach the
		// provider; taking turns, the second finds the payment captured.
		f.provider.onCapture = sqldbtest.Gate(2, 300*time.Millisecond)
		var wg sync.WaitGroup
		var jobErr error
		wg.Go(func() { _, jobErr = f.orders.CaptureStalled(ctx) })
		var got order.Order
		var err error
		for range 100 {
			got, _, err = f.orders.Checkout(ctx, userID, "k-race", visa)
			if !fault.HasCode(err, "idempotency_key_in_use") {
				break
			}
			time.Sleep(20 * time.Millisecond) // the job holds the key: retry as told
		}
		wg.Wait()
		if jobErr != nil {
			t.Fatalf("capture job: %v", jobErr)
		}
		if err != nil || got.ID != o.ID || got.Status != order.StatusPaid {
			t.Fatalf("client retry = %+v, %v; want %s paid", got, err, o.ID)
		}
		want := []string{order.TopicPlaced, payment.TopicAuthorized, payment.TopicCaptured, order.TopicPaid}
		if got := f.topics(t, o.ID); !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if n := f.provider.Authorizations(); n != 1 {
			t.Fatalf("authorizations = %d, want 1", n)
		}
		if n := f.provider.captures.Load(); n != 1 {
			t.Fatalf("captures that reached the provider = %d, want exactly 1", n)
		}
	})
}

// TestCaptureJobVersusCancel: a customer cancels an order whose payment is
// stuck authorized while the capture job captures it. Whichever wins at the
// provider, the payment is never both captured and voided, and the order
// agrees with the provider: captured and paid, voided and cancelled with
// its stock back, or (cancel after the capture) refunded and cancelled.
func TestCaptureJobVersusCancel(t *testing.T) {
	t.Parallel()
	onEachEngine(t, "", func(t *testing.T, f *orderFixture) {
		ctx := context.Background()
		const rounds = 6
		p := f.product(t, rounds)
		outcomes := map[string]int{}
		for i := range rounds {
			userID := fmt.Sprintf("user-cancel-race-%d", i)
			o := f.stuckAuthorized(t, userID, p.ID, "k")
			f.clock.add(order.DefaultCaptureAfter + time.Second)
			// The capture and the void meet at the provider, and one goes
			// first: the capture in even rounds, the void in odd ones.
			gate := sqldbtest.Gate(2, 2*time.Second)
			first, second := gate, func() { gate(); time.Sleep(20 * time.Millisecond) }
			if i%2 == 1 {
				first, second = second, first
			}
			f.provider.onCapture, f.provider.onVoid = first, second
			var wg sync.WaitGroup
			wg.Go(func() { _, _ = f.orders.CaptureStalled(ctx) })
			wg.Go(func() { _, _ = f.orders.Cancel(ctx, userID, o.ID) }) // may lose to the capture: 502
			wg.Wait()
			got := f.mustOrder(t, userID, o.ID)
			pay := f.payment(t, o.ID)
			at := f.provider.State(pay.ProviderRef)
			ok := false
			switch at {
			case payment.StatusCaptured:
				ok = got.Status == order.StatusPaid && pay.Status == payment.StatusCaptured
			case payment.StatusVoided:
				ok = got.Status == order.StatusCancelled && (pay.Status == payment.StatusVoided || pay.Status == payment.StatusFailed)
			case payment.StatusRefunded:
				ok = got.Status == order.StatusCancelled && pay.Status == payment.StatusRefunded
			}
			if !ok {
				t.Fatalf("round %d: provider %s, payment %s, order %s: inconsistent", i, at, pay.Status, got.Status)
			}
			topics := f.topics(t, o.ID)
			if slices.Contains(topics, payment.TopicCaptured) && slices.Contains(topics, payment.TopicVoided) {
				t.Fatalf("round %d: events %v: both captured and voided", i, topics)
			}
			outcomes[at]++
		}
		f.provider.onCapture, f.provider.onVoid = nil, nil
		sold := int64(outcomes[payment.StatusCaptured])
		if s := f.stock(t, p.ID); s != rounds-sold {
			t.Fatalf("stock = %d, want %d (%d sold, outcomes %v)", s, rounds-sold, sold, outcomes)
		}
		if outcomes[payment.StatusCaptured] == 0 || outcomes[payment.StatusVoided] == 0 {
			t.Fatalf("outcomes at the provider = %v; want the capture to win some rounds and the void others", outcomes)
		}
	})
}

// TestReaperCancelsAbandonedCheckouts: pending orders nobody pays for are
// cancelled after AbandonAfter, their holds voided and their stock
// returned; an order whose payment was captured is completed as paid,
// never cancelled; paid and recent orders are left alone.
func TestReaperCancelsAbandonedCheckouts(t *testing.T) {
	t.Parallel()
	// order.paid fails to record, with the capture and on its own: the
	// captured order stays pending, as after a crash between the capture
	// and the status change.
	onEachEngine(t, order.TopicPaid, func(t *testing.T, f *orderFixture) {
		ctx := context.Background()
		f.events.failTwice()
		p := f.product(t, 10)

		if _, err := f.checkout(t, "user-captured", p.ID, "k", "tok_visa"); fault.KindOf(err) != fault.Internal {
			t.Fatalf("checkout failing after the capture: err = %v, want an internal error", err)
		}
		captured := f.onlyOrder(t, "user-captured")
		authorized := f.stuckAuthorized(t, "user-authorized", p.ID, "k")
		f.provider.failAuthorizes.Add(1)
		if _, err := f.checkout(t, "user-unauthorized", p.ID, "k", "tok_visa"); !fault.Is(err, fault.Unavailable) {
			t.Fatalf("checkout whose authorization timed out: err = %v, want fault.Unavailable", err)
		}
		unauthorized := f.onlyOrder(t, "user-unauthorized")
		paid, err := f.checkout(t, "user-paid", p.ID, "k", "tok_visa")
		if err != nil || paid.Status != order.StatusPaid {
			t.Fatalf("checkout = %+v, %v; want paid", paid, err)
		}
		if s := f.stock(t, p.ID); s != 6 {
			t.Fatalf("stock = %d, want 6", s)
		}

		f.clock.add(time.Minute)
		if n, err := f.orders.ReapAbandoned(ctx); err != nil || n != 0 {
			t.Fatalf("reaper before AbandonAfter = %d, %v; want 0, nil", n, err)
		}
		f.clock.add(order.DefaultAbandonAfter)
		recent := f.stuckAuthorized(t, "user-recent", p.ID, "k")
		if n, err := f.orders.ReapAbandoned(ctx); err != nil || n != 2 {
			t.Fatalf("reaper = %d, %v; want 2, nil", n, err)
		}

		for _, c := range []struct {
			userID string
			o      order.Order
			status string
			pay    string
		}{
			{"user-authorized", authorized, order.StatusCancelled, payment.StatusVoided},
			{"user-unauthorized", unauthorized, order.StatusCancelled, payment.StatusVoided},
			{"user-captured", captured, order.StatusPaid, payment.StatusCaptured},
			{"user-paid", paid, order.StatusPaid, payment.StatusCaptured},
			{"user-recent", recent, order.StatusPending, payment.StatusAuthorized},
		} {
			got := f.mustOrder(t, c.userID, c.o.ID)
			pay := f.payment(t, c.o.ID)
			if got.Status != c.status || pay.Status != c.pay {
				t.Errorf("%s: order %s, payment %s; want %s and %s", c.userID, got.Status, pay.Status, c.status, c.pay)
			}
			if pay.ProviderRef != "" && f.provider.State(pay.ProviderRef) != c.pay {
				t.Errorf("%s: provider state %s, want %s", c.userID, f.provider.State(pay.ProviderRef), c.pay)
			}
		}
		if got := f.topics(t, authorized.ID); !slices.Contains(got, order.TopicCancelled) || !slices.Contains(got, payment.TopicVoided) {
			t.Errorf("events of the reaped order = %v, want order.cancelled and payment.voided", got)
		}
		if got := f.topics(t, captured.ID); slices.Contains(got, order.TopicCancelled) || !slices.Contains(got, order.TopicPaid) {
			t.Errorf("events of the captured order = %v, want order.paid, no order.cancelled", got)
		}
		// Two orders' stock came back; the captured, paid and recent ones keep theirs.
		if s := f.stock(t, p.ID); s != 7 {
			t.Fatalf("stock = %d, want 7", s)
		}
		// The reaped checkout's key answers with the cancelled order.
		again, replayed, err := f.orders.Checkout(ctx, "user-authorized", "k", visa)
		if err != nil || !replayed || again.ID != authorized.ID || again.Status != order.StatusCancelled {
			t.Fatalf("client retry of the reaped checkout = %+v, replayed %v, %v; want it cancelled, replayed", again, replayed, err)
		}
		if n, err := f.orders.ReapAbandoned(ctx); err != nil || n != 0 {
			t.Fatalf("reaper run again = %d, %v; want 0, nil", n, err)
		}
		if st := f.orders.JobStats(); st.Reaped != 2 {
			t.Fatalf("job stats = %+v, want 2 reaped", st)
		}
	})
}

// TestPurgeKeysKeepsRecentAndRunningKeys: keys of finished checkouts older
// than the retention are deleted; newer ones, and a running one whose
// lease is live however old, are kept.
func TestPurgeKeysKeepsRecentAndRunningKeys(t *testing.T) {
	t.Parallel()
	onEachEngine(t, "", func(t *testing.T, f *orderFixture) {
		ctx := context.Background()
		p := f.product(t, 5)
		for _, u := range []string{"user-old-1", "user-old-2"} {
			if o, err := f.checkout(t, u, p.ID, "k", "tok_visa"); err != nil || o.Status != order.StatusPaid {
				t.Fatalf("checkout = %+v, %v", o, err)
			}
		}
		keys := orderstore.New(f.app.DB)
		now := f.clock.now().UTC()
		running := order.KeyRecord{UserID: "user-running", Key: "k", RequestHash: "h", State: order.KeyRunning,
			LeaseUntil: now.Add(100 * time.Hour), LeaseGen: 1, CreatedAt: now}
		if err := keys.InsertKey(ctx, running); err != nil {
			t.Fatalf("insert a running key: %v", err)
		}
		f.clock.add(order.DefaultKeyRetention + time.Hour)
		if o, err := f.checkout(t, "user-recent", p.ID, "k", "tok_visa"); err != nil || o.Status != order.StatusPaid {
			t.Fatalf("checkout = %+v, %v", o, err)
		}
		if n, err := f.orders.PurgeKeys(ctx); err != nil || n != 2 {
			t.Fatalf("PurgeKeys = %d, %v; want 2, nil", n, err)
		}
		for userID, kept := range map[string]bool{"user-old-1": false, "user-old-2": false, "user-running": true, "user-recent": true} {
			_, err := keys.Key(ctx, userID, "k")
			if kept && err != nil {
				t.Errorf("key of %s after the purge: %v; want it kept", userID, err)
			}
			if !kept && !fault.Is(err, fault.NotFound) {
				t.Errorf("key of %s after the purge: %v; want it deleted", userID, err)
			}
		}
		if n, err := f.orders.PurgeKeys(ctx); err != nil || n != 0 {
			t.Fatalf("PurgeKeys again = %d, %v; want 0, nil", n, err)
		}
		if st := f.orders.JobStats(); st.KeysPurged != 2 {
			t.Fatalf("job stats = %+v, want 2 keys purged", st)
		}
	})
}

// TestPaymentEventsFollowStatusChanges: every status a payment reaches is
// recorded as a payment.* event in the outbox with the change, whether
// checkout, cancel or a provider webhook moved it, with the payment's ID,
// order, status, amount and currency.
func TestPaymentEventsFollowStatusChanges(t *testing.T) {
	t.Parallel()
	onEachEngine(t, "", func(t *testing.T, f *orderFixture) {
		ctx := context.Background()
		p := f.product(t, 5)

		declined, err := f.checkout(t, "user-declined", p.ID, "k", simulated.TokenDecline)
		if !fault.Is(err, fault.PaymentRequired) {
			t.Fatalf("declined checkout = %+v, %v; want payment required", declined, err)
		}
		want := []string{order.TopicPlaced, payment.TopicDeclined, order.TopicCancelled}
		if got := f.topics(t, f.onlyOrder(t, "user-declined").ID); !slices.Equal(got, want) {
			t.Errorf("events of a declined checkout = %v, want %v", got, want)
		}

		paid, err := f.checkout(t, "user-refunded", p.ID, "k", "tok_visa")
		if err != nil {
			t.Fatalf("checkout: %v", err)
		}
		if _, err := f.orders.Cancel(ctx, "user-refunded", paid.ID); err != nil {
			t.Fatalf("cancel: %v", err)
		}
		want = []string{order.TopicPlaced, payment.TopicAuthorized, payment.TopicCaptured, order.TopicPaid,
			payment.TopicRefunded, order.TopicCancelled}
		if got := f.topics(t, paid.ID); !slices.Equal(got, want) {
			t.Errorf("events of a paid then cancelled order = %v, want %v", got, want)
		}

		stuck := f.stuckAuthorized(t, "user-webhook", p.ID, "k")
		pay := f.payment(t, stuck.ID)
		f.webhook(t, "evt-void", "payment.voided", pay.ID)
		want = []string{order.TopicPlaced, payment.TopicAuthorized, payment.TopicVoided, order.TopicCancelled}
		if got := f.topics(t, stuck.ID); !slices.Equal(got, want) {
			t.Errorf("events of an order voided by webhook = %v, want %v", got, want)
		}
		f.webhook(t, "evt-void-again", "payment.voided", pay.ID) // no change: no event
		if got := f.topics(t, stuck.ID); !slices.Equal(got, want) {
			t.Errorf("events after a webhook that changed nothing = %v, want %v", got, want)
		}

		// A capture webhook for a stuck payment pays the order: order.paid.
		captured := f.stuckAuthorized(t, "user-webhook-capture", p.ID, "k")
		f.webhook(t, "evt-capture", "payment.captured", f.payment(t, captured.ID).ID)
		want = []string{order.TopicPlaced, payment.TopicAuthorized, payment.TopicCaptured, order.TopicPaid}
		if got := f.topics(t, captured.ID); !slices.Equal(got, want) {
			t.Errorf("events of an order captured by webhook = %v, want %v", got, want)
		}

		var body string
		if err := f.app.DB.Reader(ctx).QueryRowContext(ctx, `SELECT payload FROM outbox_events WHERE event_key = ? AND topic = ?`,
			paid.ID, payment.TopicCaptured).Scan(&body); err != nil {
			t.Fatalf("read the payment.captured event: %v", err)
		}
		var got payment.EventPayload
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		wantPayload := payment.EventPayload{PaymentID: f.payment(t, paid.ID).ID, OrderID: paid.ID, Status: payment.StatusCaptured,
			AmountCents: paid.TotalCents, Currency: "USD"}
		if got != wantPayload {
			t.Fatalf("payment.captured payload = %+v, want %+v", got, wantPayload)
		}
	})
}
