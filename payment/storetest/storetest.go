// Package storetest is the contract every payment.Store must pass, whatever
// engine is behind it: one suite, run by each implementation's own tests
// (payment/store runs it on SQLite and on PostgreSQL), so a new backend is
// done when Run passes on it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/payment"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

// when is a clock reading off UTC and below the microsecond, so the suite
// sees that stored times come back in UTC at microsecond precision.
var when = time.Date(2031, 2, 3, 4, 5, 6, 789012345, time.FixedZone("UTC+9", 9*3600))

// unstorable are strings PostgreSQL cannot hold in text: NUL, and bytes
// that are not UTF-8.
var unstorable = []string{"pay1\x00", "\x00", "p\xffy1", "\xc3"}

// Run runs the contract against the stores newStore returns. Every subtest
// calls newStore for a fresh, empty store of its own and runs in parallel.
func Run(t *testing.T, newStore func(t *testing.T) payment.Store) {
	t.Helper()

	setup := func(t *testing.T) (payment.Store, context.Context) {
		t.Helper()
		t.Parallel()
		return newStore(t), context.Background()
	}

	t.Run("InsertAndRead", func(t *testing.T) {
		s, ctx := setup(t)
		in := newPayment("pay1", "o1")
		in.Status, in.ProviderRef = payment.StatusAuthorized, "ch_123"
		in.UpdatedAt = when.Add(time.Second)
		mustPayment(t, s, in)
		mustPayment(t, s, newPayment("pay2", "o2"))
		got, err := s.ByID(ctx, "pay1")
		if err != nil {
			t.Fatalf("ByID: %v", err)
		}
		if d := paymentDiff(got, in); d != "" {
			t.Fatalf("ByID: %s", d)
		}
		got, err = s.ByOrder(ctx, "o1")
		if err != nil {
			t.Fatalf("ByOrder: %v", err)
		}
		if d := paymentDiff(got, in); d != "" {
			t.Fatalf("ByOrder: %s", d)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s, ctx := setup(t)
		mustPayment(t, s, newPayment("pay1", "o1"))
		if got, err := s.ByID(ctx, "nope"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("ByID(missing) = %+v, %v; want fault.NotFound", got, err)
		}
		if got, err := s.ByOrder(ctx, "nope"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("ByOrder(missing) = %+v, %v; want fault.NotFound", got, err)
		}
		if got, err := s.ByID(ctx, "o1"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("ByID(an order ID) = %+v, %v; want fault.NotFound", got, err)
		}
		if got, err := s.ByOrder(ctx, "pay1"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("ByOrder(a payment ID) = %+v, %v; want fault.NotFound", got, err)
		}
	})

	t.Run("SecondPaymentOfAnOrderIsConflict", func(t *testing.T) {
		s, ctx := setup(t)
		first := mustPayment(t, s, newPayment("pay1", "o1"))
		err := s.Insert(ctx, newPayment("pay2", "o1"))
		if !fault.Is(err, fault.Conflict) || !fault.HasCode(err, "payment_exists") {
			t.Fatalf("Insert(second payment of o1) = %v, want fault.Conflict payment_exists", err)
		}
		if got, err := s.ByID(ctx, "pay2"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("ByID(pay2) after the conflict = %+v, %v; want fault.NotFound", got, err)
		}
		if d := paymentDiff(mustByOrder(t, s, "o1"), first); d != "" {
			t.Fatalf("ByOrder(o1) after the conflict: %s", d)
		}
	})

	t.Run("InsertConcurrent", func(t *testing.T) {
		s, ctx := setup(t)
		// Retried checkouts of one order race to create its payment.
		const n = 10
		var mu sync.Mutex
		var lost []error
		won := sqldbtest.Concurrently(t, n, func(i int) (bool, error) {
			err := s.Insert(ctx, newPayment("pay"+strconv.Itoa(i), "o1"))
			if err != nil {
				mu.Lock()
				lost = append(lost, err)
				mu.Unlock()
			}
			return err == nil, nil
		})
		if won != 1 {
			t.Fatalf("%d of %d concurrent Inserts for one order succeeded, want exactly 1", won, n)
		}
		for _, err := range lost {
			if !fault.Is(err, fault.Conflict) || !fault.HasCode(err, "payment_exists") {
				t.Fatalf("a losing Insert = %v, want fault.Conflict payment_exists", err)
			}
		}
	})

	t.Run("SetStatus", func(t *testing.T) {
		s, ctx := setup(t)
		in := mustPayment(t, s, newPayment("pay1", "o1"))
		other := mustPayment(t, s, newPayment("pay2", "o2"))
		later := when.Add(time.Hour)
		// From a status it is not in: nothing changes.
		if ok, err := s.SetStatus(ctx, "pay1", []string{payment.StatusAuthorized, payment.StatusFailed}, payment.StatusCaptured, "ch_x", later); err != nil || ok {
			t.Fatalf("SetStatus(from authorized or failed) on a pending payment = %v, %v; want false", ok, err)
		}
		if d := paymentDiff(mustByID(t, s, "pay1"), in); d != "" {
			t.Fatalf("after a refused SetStatus: %s", d)
		}
		if ok, err := s.SetStatus(ctx, "pay1", nil, payment.StatusCaptured, "ch_x", later); err != nil || ok {
			t.Fatalf("SetStatus(from no status) = %v, %v; want false", ok, err)
		}
		if ok, err := s.SetStatus(ctx, "nope", []string{payment.StatusPending}, payment.StatusCaptured, "ch_x", later); err != nil || ok {
			t.Fatalf("SetStatus(missing payment) = %v, %v; want false", ok, err)
		}
		if ok, err := s.SetStatus(ctx, "pay1", []string{payment.StatusFailed, payment.StatusPending}, payment.StatusAuthorized, "ch_1", later); err != nil || !ok {
			t.Fatalf("SetStatus(from failed or pending) = %v, %v; want true", ok, err)
		}
		want := in
		want.Status, want.ProviderRef, want.UpdatedAt = payment.StatusAuthorized, "ch_1", later
		if d := paymentDiff(mustByID(t, s, "pay1"), want); d != "" {
			t.Fatalf("after SetStatus: %s", d)
		}
		if d := paymentDiff(mustByID(t, s, "pay2"), other); d != "" {
			t.Fatalf("another payment after SetStatus: %s", d)
		}
		// Any status to any other: the service, not the store, decides
		// which transitions are allowed.
		evenLater := later.Add(time.Minute)
		if ok, err := s.SetStatus(ctx, "pay1", []string{payment.StatusAuthorized}, payment.StatusPending, "", evenLater); err != nil || !ok {
			t.Fatalf("SetStatus back to pending = %v, %v; want true", ok, err)
		}
		want.Status, want.ProviderRef, want.UpdatedAt = payment.StatusPending, "", evenLater
		if d := paymentDiff(mustByOrder(t, s, "o1"), want); d != "" {
			t.Fatalf("after SetStatus back to pending: %s", d)
		}
	})

	t.Run("StalledOldestFirstByStatusAndAge", func(t *testing.T) {
		s, ctx := setup(t)
		// pay1..pay4 authorized at when+1s..+4s, inserted out of order;
		// pay5 pending and old, pay6 captured and old: not authorized.
		for _, i := range []int{3, 1, 4, 2} {
			p := newPayment("pay"+strconv.Itoa(i), "o"+strconv.Itoa(i))
			p.Status, p.ProviderRef = payment.StatusAuthorized, "ch_"+strconv.Itoa(i)
			p.UpdatedAt = when.Add(time.Duration(i) * time.Second)
			mustPayment(t, s, p)
		}
		mustPayment(t, s, newPayment("pay5", "o5"))
		captured := newPayment("pay6", "o6")
		captured.Status = payment.StatusCaptured
		mustPayment(t, s, captured)
		ids := func(ps []payment.Payment) string {
			var out []string
			for _, p := range ps {
				out = append(out, p.ID)
			}
			return strings.Join(out, ",")
		}
		for _, c := range []struct {
			before time.Time
			limit  int
			want   string
		}{
			{when.Add(time.Hour), 10, "pay1,pay2,pay3,pay4"},
			{when.Add(time.Hour), 2, "pay1,pay2"},
			{when.Add(3 * time.Second), 10, "pay1,pay2"}, // strictly before
			{when.Add(time.Second), 10, ""},
		} {
			got, err := s.Stalled(ctx, payment.StatusAuthorized, c.before, c.limit)
			if err != nil || ids(got) != c.want {
				t.Fatalf("Stalled(authorized, %v, %d) = %s, %v; want %s", c.before.Sub(when), c.limit, ids(got), err, c.want)
			}
		}
		got, err := s.Stalled(ctx, payment.StatusAuthorized, when.Add(2*time.Second), 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("Stalled = %+v, %v; want pay1", got, err)
		}
		want := newPayment("pay1", "o1")
		want.Status, want.ProviderRef, want.UpdatedAt = payment.StatusAuthorized, "ch_1", when.Add(time.Second)
		if d := paymentDiff(got[0], want); d != "" {
			t.Fatalf("Stalled row: %s", d)
		}
		// A status change takes a payment out of the list.
		if ok, err := s.SetStatus(ctx, "pay1", []string{payment.StatusAuthorized}, payment.StatusCaptured, "ch_1", when); err != nil || !ok {
			t.Fatalf("SetStatus: %v, %v", ok, err)
		}
		if got, err := s.Stalled(ctx, payment.StatusAuthorized, when.Add(time.Hour), 10); err != nil || ids(got) != "pay2,pay3,pay4" {
			t.Fatalf("Stalled after a capture = %s, %v; want pay2,pay3,pay4", ids(got), err)
		}
		if got, err := s.Stalled(ctx, payment.StatusPending, when.Add(time.Hour), 10); err != nil || ids(got) != "pay5" {
			t.Fatalf("Stalled(pending) = %s, %v; want pay5", ids(got), err)
		}
	})

	t.Run("RecordEventOnce", func(t *testing.T) {
		s, ctx := setup(t)
		for _, step := range []struct {
			id, typ string
			fresh   bool
		}{
			{"evt1", "payment.captured", true},
			{"evt1", "payment.captured", false},
			{"evt1", "payment.refunded", false},
			{"evt2", "payment.captured", true},
			{"evt2", "payment.captured", false},
		} {
			fresh, err := s.RecordEvent(ctx, step.id, step.typ, when)
			if err != nil || fresh != step.fresh {
				t.Fatalf("RecordEvent(%s, %s) = %v, %v; want %v", step.id, step.typ, fresh, err, step.fresh)
			}
		}
	})

	t.Run("RecordEventConcurrent", func(t *testing.T) {
		s, ctx := setup(t)
		// The provider delivers one event many times at once, each delivery
		// in its own transaction as payment.Payments.HandleWebhook runs it.
		const n = 20
		fresh := sqldbtest.Concurrently(t, n, func(int) (bool, error) {
			var fresh bool
			err := s.InTx(ctx, func(ctx context.Context) error {
				var err error
				fresh, err = s.RecordEvent(ctx, "evt1", "payment.captured", when)
				return err
			})
			return fresh, err
		})
		if fresh != 1 {
			t.Fatalf("%d of %d concurrent RecordEvent(evt1) reported a new event, want exactly 1", fresh, n)
		}
		alone := sqldbtest.Concurrently(t, n, func(int) (bool, error) {
			return s.RecordEvent(ctx, "evt2", "payment.captured", when)
		})
		if alone != 1 {
			t.Fatalf("%d of %d concurrent RecordEvent(evt2) outside transactions reported a new event, want exactly 1", alone, n)
		}
	})

	t.Run("SetStatusConcurrent", func(t *testing.T) {
		s, ctx := setup(t)
		mustPayment(t, s, newPayment("pay1", "o1"))
		// A cancel and an authorization (or two cancels) race from the
		// same status: exactly one compare-and-set applies.
		const n = 12
		won := sqldbtest.Concurrently(t, n, func(i int) (bool, error) {
			return s.SetStatus(ctx, "pay1", []string{payment.StatusPending}, payment.StatusAuthorized, "ch_"+strconv.Itoa(i), when)
		})
		if won != 1 {
			t.Fatalf("%d of %d concurrent SetStatus(from pending) applied, want exactly 1", won, n)
		}
	})

	t.Run("ReadInTxLocksThePayment", func(t *testing.T) {
		s, ctx := setup(t)
		mustPayment(t, s, newPayment("pay1", "o1"))
		const n = 12
		// Each transaction reads the payment, then writes a reference derived
		// from what it read, as a webhook decides from the status it read.
		reads := []func(ctx context.Context) (payment.Payment, error){
			func(ctx context.Context) (payment.Payment, error) { return s.ByID(ctx, "pay1") },
			func(ctx context.Context) (payment.Payment, error) { return s.ByOrder(ctx, "o1") },
		}
		wait := sqldbtest.Gate(n, 200*time.Millisecond)
		ok := sqldbtest.Concurrently(t, n, func(i int) (bool, error) {
			err := s.InTx(ctx, func(ctx context.Context) error {
				wait()
				p, err := reads[i%2](ctx)
				if err != nil {
					return err
				}
				time.Sleep(5 * time.Millisecond) // let the others read, unless the payment is locked
				_, err = s.SetStatus(ctx, p.ID, []string{p.Status}, p.Status, p.ProviderRef+"+", when)
				return err
			})
			return err == nil, err
		})
		if ok != n {
			t.Fatalf("%d of %d transactions committed", ok, n)
		}
		if got := strings.Count(mustByID(t, s, "pay1").ProviderRef, "+"); got != n {
			t.Fatalf("%d read-modify-write transactions left %d marks, want %d: an update was lost", n, got, n)
		}
	})

	t.Run("UnstorableText", func(t *testing.T) {
		s, ctx := setup(t)
		pay1 := mustPayment(t, s, newPayment("pay1", "o1"))
		// PostgreSQL text holds valid UTF-8 without NUL, SQLite anything:
		// every engine refuses to write the rest and finds nothing by it.
		for _, bad := range unstorable {
			if got, err := s.ByID(ctx, bad); !fault.Is(err, fault.NotFound) {
				t.Errorf("ByID(%q) = %+v, %v; want fault.NotFound", bad, got, err)
			}
			if got, err := s.ByOrder(ctx, bad); !fault.Is(err, fault.NotFound) {
				t.Errorf("ByOrder(%q) = %+v, %v; want fault.NotFound", bad, got, err)
			}
			p := newPayment("pay2", "o2")
			p.ProviderRef = bad
			if err := s.Insert(ctx, p); !fault.Is(err, fault.Invalid) {
				t.Errorf("Insert(provider ref %q) = %v, want fault.Invalid", bad, err)
			}
			if ok, err := s.SetStatus(ctx, "pay1", []string{payment.StatusPending}, payment.StatusAuthorized, bad, when); !fault.Is(err, fault.Invalid) || ok {
				t.Errorf("SetStatus(pay1, ref %q) = %v, %v; want fault.Invalid", bad, ok, err)
			}
			if ok, err := s.SetStatus(ctx, bad, []string{payment.StatusPending}, payment.StatusAuthorized, "ch_1", when); err != nil || ok {
				t.Errorf("SetStatus(%q) = %v, %v; want false as for any unknown payment", bad, ok, err)
			}
			if ok, err := s.SetStatus(ctx, "pay1", []string{bad}, payment.StatusAuthorized, "ch_1", when); err != nil || ok {
				t.Errorf("SetStatus(pay1, from %q) = %v, %v; want false", bad, ok, err)
			}
			if got, err := s.Stalled(ctx, bad, when.Add(time.Hour), 10); !fault.Is(err, fault.Invalid) || len(got) != 0 {
				t.Errorf("Stalled(%q) = %+v, %v; want fault.Invalid", bad, got, err)
			}
			if fresh, err := s.RecordEvent(ctx, bad, "payment.captured", when); !fault.Is(err, fault.Invalid) || fresh {
				t.Errorf("RecordEvent(%q) = %v, %v; want fault.Invalid", bad, fresh, err)
			}
		}
		if d := paymentDiff(mustByID(t, s, "pay1"), pay1); d != "" {
			t.Errorf("pay1 after refused writes: %s", d)
		}
		if got, err := s.ByOrder(ctx, "o2"); !fault.Is(err, fault.NotFound) {
			t.Errorf("ByOrder(o2) after a refused Insert = %+v, %v; want fault.NotFound", got, err)
		}
	})

	t.Run("InTxRollsBack", func(t *testing.T) {
		s, ctx := setup(t)
		mustPayment(t, s, newPayment("pay1", "o1"))
		boom := errors.New("boom")
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.Insert(ctx, newPayment("pay2", "o2")); err != nil {
				return err
			}
			if _, err := s.ByOrder(ctx, "o2"); err != nil {
				return fmt.Errorf("ByOrder in the transaction that inserted it: %w", err)
			}
			if ok, err := s.SetStatus(ctx, "pay1", []string{payment.StatusPending}, payment.StatusFailed, "x", when); err != nil || !ok {
				return fmt.Errorf("SetStatus in the transaction = %v, %v; want true", ok, err)
			}
			if fresh, err := s.RecordEvent(ctx, "evt1", "payment.failed", when); err != nil || !fresh {
				return fmt.Errorf("RecordEvent in the transaction = %v, %v; want true", fresh, err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want the error fn returned", err)
		}
		if got, err := s.ByID(ctx, "pay2"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("ByID after a rolled-back Insert = %+v, %v; want fault.NotFound", got, err)
		}
		if got := mustByID(t, s, "pay1"); got.Status != payment.StatusPending || got.ProviderRef != "" {
			t.Fatalf("payment after a rolled-back SetStatus = %s/%q, want pending/\"\"", got.Status, got.ProviderRef)
		}
		// The event of a rolled-back webhook was not processed: its retry is new.
		if fresh, err := s.RecordEvent(ctx, "evt1", "payment.failed", when); err != nil || !fresh {
			t.Fatalf("RecordEvent after a rolled-back RecordEvent = %v, %v; want true", fresh, err)
		}
	})
}

// newPayment is a pending payment of an order.
func newPayment(id, orderID string) payment.Payment {
	return payment.Payment{ID: id, OrderID: orderID, UserID: "u-" + orderID, AmountCents: 12_345,
		Currency: "EUR", Status: payment.StatusPending, Provider: "simulated", CreatedAt: when, UpdatedAt: when}
}

func mustPayment(t *testing.T, s payment.Store, p payment.Payment) payment.Payment {
	t.Helper()
	if err := s.Insert(context.Background(), p); err != nil {
		t.Fatalf("Insert(%s): %v", p.ID, err)
	}
	return p
}

func mustByID(t *testing.T, s payment.Store, id string) payment.Payment {
	t.Helper()
	p, err := s.ByID(context.Background(), id)
	if err != nil {
		t.Fatalf("ByID(%s): %v", id, err)
	}
	return p
}

func mustByOrder(t *testing.T, s payment.Store, orderID string) payment.Payment {
	t.Helper()
	p, err := s.ByOrder(context.Background(), orderID)
	if err != nil {
		t.Fatalf("ByOrder(%s): %v", orderID, err)
	}
	return p
}

// paymentDiff describes how got differs from want as stored, or returns "".
func paymentDiff(got, want payment.Payment) string {
	var d []string
	for _, tm := range []struct {
		name      string
		got, want time.Time
	}{{"CreatedAt", got.CreatedAt, want.CreatedAt}, {"UpdatedAt", got.UpdatedAt, want.UpdatedAt}} {
		if tm.got.Location() != time.UTC || !tm.got.Equal(sqldbtest.Stored(tm.want)) {
			d = append(d, fmt.Sprintf("%s = %v, want %v (UTC, microseconds)", tm.name, tm.got, sqldbtest.Stored(tm.want)))
		}
	}
	got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got != want {
		d = append(d, fmt.Sprintf("got %+v, want %+v", got, want))
	}
	return strings.Join(d, "; ")
}
