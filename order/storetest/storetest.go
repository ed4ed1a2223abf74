// Package storetest is the contract every order.Store must pass, whatever
// engine is behind it: one suite, run by each implementation's own tests
// (order/store runs it on SQLite and on PostgreSQL), so a new backend is done
// when Run passes on it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/order"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

// when is a clock reading off UTC and below the microsecond, so the suite
// sees that stored times come back in UTC at microsecond precision.
var when = time.Date(2031, 2, 3, 4, 5, 6, 789012345, time.FixedZone("UTC-3", -3*3600))

// unstorable are strings PostgreSQL cannot hold in text: NUL, and bytes
// that are not UTF-8.
var unstorable = []string{"o1\x00", "\x00", "o\xff1", "\xc3"}

// Run runs the contract against the stores newStore returns. Every subtest
// calls newStore for a fresh, empty store of its own and runs in parallel.
func Run(t *testing.T, newStore func(t *testing.T) order.Store) {
	t.Helper()

	setup := func(t *testing.T) (order.Store, context.Context) {
		t.Helper()
		t.Parallel()
		return newStore(t), context.Background()
	}

	t.Run("InsertOrderAndReadBack", func(t *testing.T) {
		s, ctx := setup(t)
		in := newOrder("o1", "u1", 3)
		in.Items[1].Name = "Café crème — 250 g"
		in.UpdatedAt = when.Add(time.Minute)
		mustOrder(t, s, in)
		mustOrder(t, s, newOrder("o2", "u1", 1))
		got, err := s.Order(ctx, "u1", "o1")
		if err != nil {
			t.Fatalf("Order: %v", err)
		}
		if d := orderDiff(got, in); d != "" {
			t.Fatalf("Order: %s", d)
		}
		got, err = s.OrderByID(ctx, "o1")
		if err != nil {
			t.Fatalf("OrderByID: %v", err)
		}
		if d := orderDiff(got, in); d != "" {
			t.Fatalf("OrderByID: %s", d)
		}
		// Items are written several hundred to a statement: a long order
		// spans statements and keeps its lines in order.
		long := mustOrder(t, s, newOrder("o3", "u2", 1234))
		if got, err = s.Order(ctx, "u2", "o3"); err != nil {
			t.Fatalf("Order(long): %v", err)
		}
		if d := orderDiff(got, long); d != "" {
			t.Fatalf("Order(long): %s", d)
		}
	})

	t.Run("OrderWithoutItems", func(t *testing.T) {
		s, ctx := setup(t)
		in := newOrder("o1", "u1", 0)
		mustOrder(t, s, in)
		got, err := s.Order(ctx, "u1", "o1")
		if err != nil {
			t.Fatalf("Order: %v", err)
		}
		if d := orderDiff(got, in); d != "" {
			t.Fatalf("Order: %s", d)
		}
	})

	t.Run("OrderNotFound", func(t *testing.T) {
		s, ctx := setup(t)
		mustOrder(t, s, newOrder("o1", "u1", 1))
		if got, err := s.Order(ctx, "u2", "o1"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("Order(another user's order) = %+v, %v; want fault.NotFound", got, err)
		}
		if got, err := s.Order(ctx, "u1", "nope"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("Order(missing) = %+v, %v; want fault.NotFound", got, err)
		}
		if got, err := s.OrderByID(ctx, "nope"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("OrderByID(missing) = %+v, %v; want fault.NotFound", got, err)
		}
		if got, err := s.OrderByID(ctx, "o1"); err != nil || got.UserID != "u1" {
			t.Fatalf("OrderByID(o1) = %+v, %v; want the order of u1 whoever asks", got, err)
		}
	})

	t.Run("OrdersNewestFirstByUser", func(t *testing.T) {
		s, ctx := setup(t)
		const n = 11
		mine := map[string]order.Order{}
		// Inserted out of ID order, interleaved with another user's orders,
		// each with a different number of items.
		for i := range n {
			k := (i * 7) % n
			o := mustOrder(t, s, newOrder(fmt.Sprintf("o%02d", k), "u1", k%4))
			mine[o.ID] = o
			if i%3 == 0 {
				mustOrder(t, s, newOrder(fmt.Sprintf("o%02dx", k), "u2", 1))
			}
		}
		want := make([]string, 0, n)
		for id := range mine {
			want = append(want, id)
		}
		slices.Sort(want)
		slices.Reverse(want)
		for _, limit := range []int{1, 2, 3, n, 50} {
			var got []string
			before := ""
			for page := 0; ; page++ {
				if page > n+1 {
					t.Fatalf("limit %d: more pages than orders", limit)
				}
				// One more than limit, as order.Orders.List asks.
				list, err := s.Orders(ctx, "u1", before, limit+1)
				if err != nil {
					t.Fatalf("Orders(u1, %q, %d): %v", before, limit+1, err)
				}
				if len(list) > limit+1 {
					t.Fatalf("Orders(limit %d) returned %d orders", limit+1, len(list))
				}
				for _, o := range list[:min(len(list), limit)] {
					w, ok := mine[o.ID]
					if !ok {
						t.Fatalf("Orders(u1) returned %q, not an order of u1", o.ID)
					}
					if d := orderDiff(o, w); d != "" {
						t.Fatalf("Orders item %s: %s", o.ID, d)
					}
					got = append(got, o.ID)
				}
				if len(list) <= limit {
					break
				}
				before = list[limit-1].ID
			}
			if !slices.Equal(got, want) {
				t.Errorf("limit %d: pages give %v, want %v", limit, got, want)
			}
		}
		theirs, err := s.Orders(ctx, "u2", "", 50)
		if err != nil || len(theirs) != 4 {
			t.Fatalf("Orders(u2) = %v, %v; want its 4 orders", orderIDs(theirs), err)
		}
		if got, err := s.Orders(ctx, "u3", "", 50); err != nil || len(got) != 0 {
			t.Fatalf("Orders(user without orders) = %v, %v; want none", orderIDs(got), err)
		}
		if got, err := s.Orders(ctx, "u1", "o00", 50); err != nil || len(got) != 0 {
			t.Fatalf("Orders(u1, before the oldest) = %v, %v; want none", orderIDs(got), err)
		}
	})

	t.Run("SetStatusOnlyFromGivenStatuses", func(t *testing.T) {
		s, ctx := setup(t)
		mustOrder(t, s, newOrder("o1", "u1", 1))
		other := mustOrder(t, s, newOrder("o2", "u1", 1))
		later := when.Add(time.Hour)
		ok, err := s.SetStatus(ctx, "u1", "o1", []string{order.StatusPaid, order.StatusCancelled}, order.StatusRefunded, "refunded", later)
		if err != nil || ok {
			t.Fatalf("SetStatus(from paid or cancelled) on a pending order = %v, %v; want false", ok, err)
		}
		got := mustGet(t, s, "o1")
		if got.Status != order.StatusPending || got.PaymentStatus != "none" || !got.UpdatedAt.Equal(sqldbtest.Stored(when)) {
			t.Fatalf("order after a refused SetStatus = %+v; want it unchanged", got)
		}
		ok, err = s.SetStatus(ctx, "u1", "o1", []string{order.StatusCancelled, order.StatusPending}, order.StatusPaid, "captured", later)
		if err != nil || !ok {
			t.Fatalf("SetStatus(from cancelled or pending) on a pending order = %v, %v; want true", ok, err)
		}
		want := newOrder("o1", "u1", 1)
		want.Status, want.PaymentStatus, want.UpdatedAt = order.StatusPaid, "captured", later
		if d := orderDiff(mustGet(t, s, "o1"), want); d != "" {
			t.Fatalf("after SetStatus: %s", d)
		}
		if d := orderDiff(mustGet(t, s, "o2"), other); d != "" {
			t.Fatalf("another order after SetStatus: %s", d)
		}
		if ok, err := s.SetStatus(ctx, "u1", "o1", nil, order.StatusCancelled, "voided", later); err != nil || ok {
			t.Fatalf("SetStatus(from no status) = %v, %v; want false", ok, err)
		}
		if ok, err := s.SetStatus(ctx, "u1", "nope", []string{order.StatusPending}, order.StatusPaid, "captured", later); err != nil || ok {
			t.Fatalf("SetStatus(missing order) = %v, %v; want false", ok, err)
		}
		if ok, err := s.SetStatus(ctx, "u2", "o1", []string{order.StatusPaid}, order.StatusCancelled, "voided", later); err != nil || ok {
			t.Fatalf("SetStatus(another user's order) = %v, %v; want false", ok, err)
		}
		// The same status as a source and a target: the payment status moves alone.
		if ok, err := s.SetStatus(ctx, "u1", "o1", []string{order.StatusPaid}, order.StatusPaid, "refunded", later); err != nil || !ok {
			t.Fatalf("SetStatus(paid to paid) = %v, %v; want true", ok, err)
		}
		if got := mustGet(t, s, "o1"); got.Status != order.StatusPaid || got.PaymentStatus != "refunded" {
			t.Fatalf("after SetStatus(paid to paid, refunded) = %s/%s, want paid/refunded", got.Status, got.PaymentStatus)
		}
	})

	t.Run("SetStatusConcurrent", func(t *testing.T) {
		s, ctx := setup(t)
		mustOrder(t, s, newOrder("o1", "u1", 1))
		won := sqldbtest.Concurrently(t, 20, func(i int) (bool, error) {
			status := order.StatusPaid
			if i%2 == 0 {
				status = order.StatusCancelled
			}
			return s.SetStatus(ctx, "u1", "o1", []string{order.StatusPending}, status, "p"+strconv.Itoa(i), when)
		})
		if won != 1 {
			t.Fatalf("%d of 20 concurrent SetStatus(from pending) succeeded, want exactly 1", won)
		}
	})

	t.Run("OrderReadInTxLocksTheOrder", func(t *testing.T) {
		s, ctx := setup(t)
		mustOrder(t, s, newOrder("o1", "u1", 1))
		const n = 12
		// Each transaction reads the order, then writes a payment status
		// derived from what it read, as order.Orders.PaymentChanged does.
		reads := []func(ctx context.Context) (order.Order, error){
			func(ctx context.Context) (order.Order, error) { return s.OrderByID(ctx, "o1") },
			func(ctx context.Context) (order.Order, error) { return s.Order(ctx, "u1", "o1") },
		}
		wait := sqldbtest.Gate(n, 200*time.Millisecond)
		ok := sqldbtest.Concurrently(t, n, func(i int) (bool, error) {
			err := s.InTx(ctx, func(ctx context.Context) error {
				wait()
				o, err := reads[i%2](ctx)
				if err != nil {
					return err
				}
				time.Sleep(5 * time.Millisecond) // let the others read, unless the order is locked
				_, err = s.SetStatus(ctx, "u1", "o1", []string{o.Status}, o.Status, o.PaymentStatus+"+", when)
				return err
			})
			return err == nil, err
		})
		if ok != n {
			t.Fatalf("%d of %d transactions committed", ok, n)
		}
		if got := strings.Count(mustGet(t, s, "o1").PaymentStatus, "+"); got != n {
			t.Fatalf("%d read-modify-write transactions left %d marks, want %d: an update was lost", n, got, n)
		}
	})

	t.Run("UnstorableText", func(t *testing.T) {
		s, ctx := setup(t)
		o1 := mustOrder(t, s, newOrder("o1", "u1", 2))
		k1 := newKey("u1", "k1")
		mustKey(t, s, k1)
		// PostgreSQL text holds valid UTF-8 without NUL, SQLite anything:
		// every engine refuses to write the rest and finds nothing by it.
		for _, bad := range unstorable {
			if got, err := s.Order(ctx, "u1", bad); !fault.Is(err, fault.NotFound) {
				t.Errorf("Order(u1, %q) = %+v, %v; want fault.NotFound", bad, got, err)
			}
			if got, err := s.Order(ctx, bad, "o1"); !fault.Is(err, fault.NotFound) {
				t.Errorf("Order(%q, o1) = %+v, %v; want fault.NotFound", bad, got, err)
			}
			if got, err := s.OrderByID(ctx, bad); !fault.Is(err, fault.NotFound) {
				t.Errorf("OrderByID(%q) = %+v, %v; want fault.NotFound", bad, got, err)
			}
			if got, err := s.Orders(ctx, bad, "", 10); err != nil || len(got) != 0 {
				t.Errorf("Orders(%q) = %v, %v; want none", bad, orderIDs(got), err)
			}
			if got, err := s.Orders(ctx, "u1", bad, 10); !fault.Is(err, fault.Invalid) {
				t.Errorf("Orders(u1, before %q) = %v, %v; want fault.Invalid", bad, orderIDs(got), err)
			}
			if ok, err := s.SetStatus(ctx, "u1", bad, []string{order.StatusPending}, order.StatusPaid, "captured", when); err != nil || ok {
				t.Errorf("SetStatus(%q) = %v, %v; want false", bad, ok, err)
			}
			if ok, err := s.SetStatus(ctx, bad, "o1", []string{order.StatusPending}, order.StatusPaid, "captured", when); err != nil || ok {
				t.Errorf("SetStatus(user %q, o1) = %v, %v; want false", bad, ok, err)
			}
			if ok, err := s.SetStatus(ctx, "u1", "o1", []string{bad}, order.StatusPaid, "captured", when); err != nil || ok {
				t.Errorf("SetStatus(o1, from %q) = %v, %v; want false", bad, ok, err)
			}
			if ok, err := s.SetStatus(ctx, "u1", "o1", []string{order.StatusPending}, order.StatusPaid, bad, when); !fault.Is(err, fault.Invalid) || ok {
				t.Errorf("SetStatus(o1, payment status %q) = %v, %v; want fault.Invalid", bad, ok, err)
			}
			o := newOrder("o2", "u1", 2)
			o.Items[1].Name = bad
			if err := s.InsertOrder(ctx, o); !fault.Is(err, fault.Invalid) {
				t.Errorf("InsertOrder(item name %q) = %v, want fault.Invalid", bad, err)
			}
			if got, err := s.Key(ctx, "u1", bad); !fault.Is(err, fault.NotFound) {
				t.Errorf("Key(u1, %q) = %+v, %v; want fault.NotFound", bad, got, err)
			}
			if got, err := s.Key(ctx, bad, "k1"); !fault.Is(err, fault.NotFound) {
				t.Errorf("Key(%q, k1) = %+v, %v; want fault.NotFound", bad, got, err)
			}
			if err := s.InsertKey(ctx, newKey("u1", bad)); !fault.Is(err, fault.Invalid) {
				t.Errorf("InsertKey(%q) = %v, want fault.Invalid", bad, err)
			}
			failed := k1
			failed.State, failed.ErrKind, failed.ErrCode, failed.ErrMessage = order.KeyDone, int(fault.BadGateway), "payment_provider_error", bad
			if _, err := s.UpdateKey(ctx, failed, failed.LeaseGen); !fault.Is(err, fault.Invalid) {
				t.Errorf("UpdateKey(message %q) = %v, want fault.Invalid", bad, err)
			}
			if ok, err := s.DeleteKey(ctx, "u1", bad, k1.LeaseGen); err != nil || ok {
				t.Errorf("DeleteKey(u1, %q) = %v, %v; want false, nil as for any unknown key", bad, ok, err)
			}
		}
		if d := orderDiff(mustGet(t, s, "o1"), o1); d != "" {
			t.Errorf("o1 after refused writes: %s", d)
		}
		if got, err := s.Orders(ctx, "u1", "", 10); err != nil || !slices.Equal(orderIDs(got), []string{"o1"}) {
			t.Errorf("orders after refused writes = %v, %v; want only o1", orderIDs(got), err)
		}
		if d := keyDiff(mustGetKey(t, s, "u1", "k1"), k1); d != "" {
			t.Errorf("k1 after refused writes: %s", d)
		}
	})

	t.Run("InsertOrderRollsBackWithTheTransaction", func(t *testing.T) {
		s, ctx := setup(t)
		boom := errors.New("boom")
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.InsertOrder(ctx, newOrder("o1", "u1", 2)); err != nil {
				return err
			}
			if _, err := s.OrderByID(ctx, "o1"); err != nil {
				return fmt.Errorf("OrderByID in the transaction that inserted it: %w", err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want the error fn returned", err)
		}
		if got, err := s.OrderByID(ctx, "o1"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("OrderByID after a rolled-back insert = %+v, %v; want fault.NotFound", got, err)
		}
		// Its items went with it: the same ID can be placed again.
		in := mustOrder(t, s, newOrder("o1", "u1", 1))
		if d := orderDiff(mustGet(t, s, "o1"), in); d != "" {
			t.Fatalf("after inserting again: %s", d)
		}
	})

	t.Run("PendingOrdersOldestFirst", func(t *testing.T) {
		s, ctx := setup(t)
		// o1..o4 pending, placed at when+1m..+4m and inserted out of
		// order; o5 old but paid.
		for _, i := range []int{3, 1, 4, 2} {
			o := newOrder("o"+strconv.Itoa(i), "u1", 1)
			o.CreatedAt = when.Add(time.Duration(i) * time.Minute)
			mustOrder(t, s, o)
		}
		paid := newOrder("o5", "u2", 1)
		paid.Status = order.StatusPaid
		mustOrder(t, s, paid)
		for _, c := range []struct {
			before time.Time
			limit  int
			want   []string
		}{
			{when.Add(time.Hour), 10, []string{"o1", "o2", "o3", "o4"}},
			{when.Add(time.Hour), 2, []string{"o1", "o2"}},
			{when.Add(3 * time.Minute), 10, []string{"o1", "o2"}}, // strictly before
			{when.Add(time.Minute), 10, []string{}},
		} {
			got, err := s.PendingOrders(ctx, c.before, c.limit)
			if err != nil || !slices.Equal(orderIDs(got), c.want) {
				t.Fatalf("PendingOrders(%v, %d) = %v, %v; want %v", c.before.Sub(when), c.limit, orderIDs(got), err, c.want)
			}
		}
		got, err := s.PendingOrders(ctx, when.Add(90*time.Second), 10)
		if err != nil || len(got) != 1 || len(got[0].Items) != 1 {
			t.Fatalf("PendingOrders = %+v, %v; want o1 with its item", got, err)
		}
		// Leaving pending takes an order out of the list.
		if ok, err := s.SetStatus(ctx, "u1", "o1", []string{order.StatusPending}, order.StatusCancelled, "voided", when); err != nil || !ok {
			t.Fatalf("SetStatus: %v, %v", ok, err)
		}
		if got, err := s.PendingOrders(ctx, when.Add(time.Hour), 10); err != nil || !slices.Equal(orderIDs(got), []string{"o2", "o3", "o4"}) {
			t.Fatalf("PendingOrders after a cancel = %v, %v; want o2 o3 o4", orderIDs(got), err)
		}
	})

	t.Run("KeyByOrder", func(t *testing.T) {
		s, ctx := setup(t)
		bound := newKey("u1", "k1")
		bound.OrderID = "o1"
		mustKey(t, s, bound)
		mustKey(t, s, newKey("u1", "k2")) // no order yet
		if d := keyDiff(func() order.KeyRecord {
			r, err := s.KeyByOrder(ctx, "o1")
			if err != nil {
				t.Fatalf("KeyByOrder(o1): %v", err)
			}
			return r
		}(), bound); d != "" {
			t.Fatalf("KeyByOrder(o1): %s", d)
		}
		for _, id := range append([]string{"", "o2", "k1"}, unstorable...) {
			if got, err := s.KeyByOrder(ctx, id); !fault.Is(err, fault.NotFound) {
				t.Fatalf("KeyByOrder(%q) = %+v, %v; want fault.NotFound", id, got, err)
			}
		}
	})

	t.Run("PurgeKeysOnlyOldFinishedOnes", func(t *testing.T) {
		s, ctx := setup(t)
		now := when.Add(72 * time.Hour)
		cutoff := when.Add(48 * time.Hour)
		key := func(name string, created time.Time, state string, lease time.Time) {
			r := newKey("u1", name)
			r.CreatedAt, r.State, r.LeaseUntil = created, state, lease
			mustKey(t, s, r)
		}
		key("old-done", when, order.KeyDone, when)
		key("old-done-2", when.Add(time.Hour), order.KeyDone, when)
		key("old-expired", when, order.KeyRunning, now.Add(-time.Second))
		key("old-running", when, order.KeyRunning, now.Add(time.Minute)) // lease live: never
		key("recent-done", cutoff.Add(time.Second), order.KeyDone, when)
		key("recent-expired", cutoff.Add(time.Second), order.KeyRunning, when)
		n, err := s.PurgeKeys(ctx, cutoff, now, 2)
		if err != nil || n != 2 {
			t.Fatalf("PurgeKeys(limit 2) = %d, %v; want 2", n, err)
		}
		n, err = s.PurgeKeys(ctx, cutoff, now, 10)
		if err != nil || n != 1 {
			t.Fatalf("PurgeKeys(the rest) = %d, %v; want 1", n, err)
		}
		if n, err := s.PurgeKeys(ctx, cutoff, now, 10); err != nil || n != 0 {
			t.Fatalf("PurgeKeys(nothing left) = %d, %v; want 0", n, err)
		}
		for name, kept := range map[string]bool{"old-done": false, "old-done-2": false, "old-expired": false,
			"old-running": true, "recent-done": true, "recent-expired": true} {
			_, err := s.Key(ctx, "u1", name)
			if kept && err != nil {
				t.Errorf("Key(%s) after PurgeKeys: %v; want it kept", name, err)
			}
			if !kept && !fault.Is(err, fault.NotFound) {
				t.Errorf("Key(%s) after PurgeKeys: %v; want it purged", name, err)
			}
		}
	})

	t.Run("KeyInsertAndRead", func(t *testing.T) {
		s, ctx := setup(t)
		if got, err := s.Key(ctx, "u1", "k1"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("Key(missing) = %+v, %v; want fault.NotFound", got, err)
		}
		in := newKey("u1", "k1")
		mustKey(t, s, in)
		if d := keyDiff(mustGetKey(t, s, "u1", "k1"), in); d != "" {
			t.Fatalf("Key after InsertKey: %s", d)
		}
		// Keys belong to users: another user's same key is another record.
		theirs := newKey("u2", "k1")
		theirs.RequestHash = "other-hash"
		mustKey(t, s, theirs)
		if d := keyDiff(mustGetKey(t, s, "u2", "k1"), theirs); d != "" {
			t.Fatalf("another user's same key: %s", d)
		}
		if got, err := s.Key(ctx, "u3", "k1"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("Key(a user who never used it) = %+v, %v; want fault.NotFound", got, err)
		}
		dup := newKey("u1", "k1")
		dup.RequestHash = "third-hash"
		sqldbtest.WantFault(t, "InsertKey(existing)", s.InsertKey(ctx, dup), fault.Conflict, "")
		if d := keyDiff(mustGetKey(t, s, "u1", "k1"), in); d != "" {
			t.Fatalf("Key after a conflicting InsertKey: %s", d)
		}
	})

	t.Run("InsertKeyConcurrent", func(t *testing.T) {
		s, ctx := setup(t)
		const n = 8
		var mu sync.Mutex
		var conflicts int
		won := sqldbtest.Concurrently(t, n, func(i int) (bool, error) {
			// As order.Orders.claim does: look, then insert, in one transaction.
			inserted := false
			err := s.InTx(ctx, func(ctx context.Context) error {
				if _, err := s.Key(ctx, "u1", "k1"); !fault.Is(err, fault.NotFound) {
					return err
				}
				r := newKey("u1", "k1")
				r.RequestHash = "hash-" + strconv.Itoa(i)
				if err := s.InsertKey(ctx, r); err != nil {
					return err
				}
				inserted = true
				time.Sleep(20 * time.Millisecond) // hold the new row while the others try
				return nil
			})
			if err == nil {
				return inserted, nil
			}
			if fault.Is(err, fault.Conflict) {
				mu.Lock()
				conflicts++
				mu.Unlock()
				return false, nil
			}
			return false, err
		})
		// A transaction that saw the key already committed has nothing to
		// insert and counts as neither.
		if won != 1 {
			t.Fatalf("%d of %d concurrent transactions inserted the key (%d conflicts), want exactly 1", won, n, conflicts)
		}
		if _, err := s.Key(ctx, "u1", "k1"); err != nil {
			t.Fatalf("Key after the race: %v", err)
		}
	})

	t.Run("InsertKeyBothInsertConcurrently", func(t *testing.T) {
		s, ctx := setup(t)
		// Two transactions insert the same key without looking first: one
		// commits and the other gets a conflict, never both a success.
		var mu sync.Mutex
		var errs []error
		won := sqldbtest.Concurrently(t, 2, func(i int) (bool, error) {
			err := s.InTx(ctx, func(ctx context.Context) error {
				r := newKey("u1", "k1")
				r.RequestHash = "hash-" + strconv.Itoa(i)
				if err := s.InsertKey(ctx, r); err != nil {
					return err
				}
				time.Sleep(50 * time.Millisecond)
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
			return err == nil, nil
		})
		if won != 1 {
			t.Fatalf("%d of 2 concurrent InsertKey transactions committed (%v), want exactly 1", won, errs)
		}
		for _, err := range errs {
			if err != nil && !fault.Is(err, fault.Conflict) {
				t.Fatalf("the losing InsertKey = %v, want fault.Conflict", err)
			}
		}
	})

	t.Run("UpdateKeyRoundTripsEveryField", func(t *testing.T) {
		s, ctx := setup(t)
		in := newKey("u1", "k1")
		mustKey(t, s, in)
		mustKey(t, s, newKey("u1", "k2"))
		done := in
		done.State, done.OrderID = order.KeyDone, "o1"
		done.LeaseUntil = when.Add(-time.Hour)
		done.ErrKind, done.ErrCode, done.ErrMessage = int(fault.PaymentRequired), "payment_declined", "the payment was declined — «card»"
		done.Response = []byte{0, 1, 2, 0xff, 0xfe, '{', '"', '\\', 0x80, 0}
		done.LeaseGen = in.LeaseGen + 1
		if ok, err := s.UpdateKey(ctx, done, in.LeaseGen); err != nil || !ok {
			t.Fatalf("UpdateKey = %v, %v; want true", ok, err)
		}
		if d := keyDiff(mustGetKey(t, s, "u1", "k1"), done); d != "" {
			t.Fatalf("Key after UpdateKey: %s", d)
		}
		if d := keyDiff(mustGetKey(t, s, "u1", "k2"), newKey("u1", "k2")); d != "" {
			t.Fatalf("another key after UpdateKey: %s", d)
		}
		// A done record is final: not even its own generation turns it
		// back into a running one without an outcome.
		if ok, err := s.UpdateKey(ctx, in, done.LeaseGen); err != nil || ok {
			t.Fatalf("UpdateKey of a done record = %v, %v; want false", ok, err)
		}
		if d := keyDiff(mustGetKey(t, s, "u1", "k1"), done); d != "" {
			t.Fatalf("Key after an UpdateKey of a done record: %s", d)
		}
		// A running record goes through every field and back.
		running := newKey("u1", "k3")
		mustKey(t, s, running)
		moved := running
		moved.OrderID, moved.LeaseUntil, moved.LeaseGen = "o3", when.Add(time.Hour), running.LeaseGen+1
		moved.Response = done.Response
		if ok, err := s.UpdateKey(ctx, moved, running.LeaseGen); err != nil || !ok {
			t.Fatalf("UpdateKey of a running record = %v, %v; want true", ok, err)
		}
		if d := keyDiff(mustGetKey(t, s, "u1", "k3"), moved); d != "" {
			t.Fatalf("Key after UpdateKey: %s", d)
		}
		if ok, err := s.UpdateKey(ctx, running, moved.LeaseGen); err != nil || !ok {
			t.Fatalf("UpdateKey back = %v, %v; want true", ok, err)
		}
		if d := keyDiff(mustGetKey(t, s, "u1", "k3"), running); d != "" {
			t.Fatalf("Key after UpdateKey back: %s", d)
		}
	})

	t.Run("DeleteKey", func(t *testing.T) {
		s, ctx := setup(t)
		mustKey(t, s, newKey("u1", "k1"))
		mustKey(t, s, newKey("u1", "k2"))
		mustKey(t, s, newKey("u2", "k1"))
		if ok, err := s.DeleteKey(ctx, "u1", "k1", 1); err != nil || !ok {
			t.Fatalf("DeleteKey = %v, %v; want true", ok, err)
		}
		if got, err := s.Key(ctx, "u1", "k1"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("Key after DeleteKey = %+v, %v; want fault.NotFound", got, err)
		}
		mustGetKey(t, s, "u1", "k2")
		mustGetKey(t, s, "u2", "k1")
		// A deleted key is free for a new request.
		again := newKey("u1", "k1")
		again.RequestHash = "new-hash"
		mustKey(t, s, again)
		if d := keyDiff(mustGetKey(t, s, "u1", "k1"), again); d != "" {
			t.Fatalf("Key after inserting it again: %s", d)
		}
	})

	t.Run("KeyWritesFencedByGeneration", func(t *testing.T) {
		s, ctx := setup(t)
		first := newKey("u1", "k1")
		mustKey(t, s, first)
		// A retry takes the key over: generation 2.
		taken := first
		taken.LeaseGen, taken.LeaseUntil = 2, when.Add(time.Hour)
		if ok, err := s.UpdateKey(ctx, taken, first.LeaseGen); err != nil || !ok {
			t.Fatalf("takeover UpdateKey = %v, %v; want true", ok, err)
		}
		// The first attempt, still running, must not overwrite it...
		stale := first
		stale.State, stale.OrderID, stale.LeaseUntil = order.KeyDone, "o-stale", when.Add(2*time.Hour)
		if ok, err := s.UpdateKey(ctx, stale, first.LeaseGen); err != nil || ok {
			t.Fatalf("UpdateKey with a superseded generation = %v, %v; want false", ok, err)
		}
		// ...nor give it back.
		if ok, err := s.DeleteKey(ctx, "u1", "k1", first.LeaseGen); err != nil || ok {
			t.Fatalf("DeleteKey with a superseded generation = %v, %v; want false", ok, err)
		}
		if d := keyDiff(mustGetKey(t, s, "u1", "k1"), taken); d != "" {
			t.Fatalf("Key after fenced-off writes: %s", d)
		}
		if ok, err := s.UpdateKey(ctx, newKey("u1", "missing"), 1); err != nil || ok {
			t.Fatalf("UpdateKey(missing) = %v, %v; want false", ok, err)
		}
		if ok, err := s.DeleteKey(ctx, "u1", "missing", 1); err != nil || ok {
			t.Fatalf("DeleteKey(missing) = %v, %v; want false", ok, err)
		}
		// Concurrent writers holding the same generation: one wins.
		const n = 10
		won := sqldbtest.Concurrently(t, n, func(i int) (bool, error) {
			r := taken
			r.LeaseGen, r.OrderID = 3, "o"+strconv.Itoa(i)
			return s.UpdateKey(ctx, r, taken.LeaseGen)
		})
		if won != 1 {
			t.Fatalf("%d of %d concurrent UpdateKey with the same generation applied, want exactly 1", won, n)
		}
		if got := mustGetKey(t, s, "u1", "k1"); got.LeaseGen != 3 {
			t.Fatalf("LeaseGen = %d, want 3", got.LeaseGen)
		}
	})

	t.Run("KeyReadInTxLocksTheRecord", func(t *testing.T) {
		s, ctx := setup(t)
		abandoned := newKey("u1", "k1")
		abandoned.LeaseUntil = when.Add(-time.Minute)
		mustKey(t, s, abandoned)
		// Several retries find the lease expired at once; as in
		// order.Orders.claim, only one may take the record over.
		const n = 10
		wait := sqldbtest.Gate(n, 200*time.Millisecond)
		won := sqldbtest.Concurrently(t, n, func(i int) (bool, error) {
			took := false
			err := s.InTx(ctx, func(ctx context.Context) error {
				wait()
				r, err := s.Key(ctx, "u1", "k1")
				if err != nil || !r.LeaseUntil.Before(when) {
					return err
				}
				time.Sleep(5 * time.Millisecond) // let the others read, unless the record is locked
				r.LeaseUntil = when.Add(time.Hour)
				r.OrderID = "taken-by-" + strconv.Itoa(i)
				gen := r.LeaseGen
				r.LeaseGen++
				ok, err := s.UpdateKey(ctx, r, gen)
				took = ok
				return err
			})
			return took && err == nil, err
		})
		if won != 1 {
			t.Fatalf("%d of %d concurrent transactions took over the expired lease, want exactly 1", won, n)
		}
	})

	t.Run("InsertKeyRollsBackWithTheTransaction", func(t *testing.T) {
		s, ctx := setup(t)
		boom := errors.New("boom")
		err := s.InTx(ctx, func(ctx context.Context) error {
			if err := s.InsertKey(ctx, newKey("u1", "k1")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want the error fn returned", err)
		}
		if got, err := s.Key(ctx, "u1", "k1"); !fault.Is(err, fault.NotFound) {
			t.Fatalf("Key after a rolled-back InsertKey = %+v, %v; want fault.NotFound", got, err)
		}
		mustKey(t, s, newKey("u1", "k1"))
	})
}

// newOrder is a pending order with items lines.
func newOrder(id, userID string, items int) order.Order {
	o := order.Order{ID: id, UserID: userID, Status: order.StatusPending, Items: []order.Item{},
		Currency: "USD", PaymentStatus: "none", CreatedAt: when, UpdatedAt: when}
	for i := range items {
		it := order.Item{ProductID: fmt.Sprintf("%s-p%d", id, i), SKU: fmt.Sprintf("SKU-%s-%d", id, i),
			Name: "Item " + strconv.Itoa(i), PriceCents: int64(100*i + 99), Quantity: int64(i + 1)}
		o.Items = append(o.Items, it)
		o.TotalCents += it.PriceCents * it.Quantity
	}
	return o
}

func mustOrder(t *testing.T, s order.Store, o order.Order) order.Order {
	t.Helper()
	if err := s.InsertOrder(context.Background(), o); err != nil {
		t.Fatalf("InsertOrder(%s): %v", o.ID, err)
	}
	return o
}

func mustGet(t *testing.T, s order.Store, id string) order.Order {
	t.Helper()
	o, err := s.OrderByID(context.Background(), id)
	if err != nil {
		t.Fatalf("OrderByID(%s): %v", id, err)
	}
	return o
}

func orderIDs(os []order.Order) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = o.ID
	}
	return out
}

// orderDiff describes how got differs from want as stored, or returns "".
func orderDiff(got, want order.Order) string {
	var d []string
	d = appendTimeDiff(d, "CreatedAt", got.CreatedAt, want.CreatedAt)
	d = appendTimeDiff(d, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	if !slices.Equal(got.Items, want.Items) {
		d = append(d, fmt.Sprintf("Items = %+v, want %+v", got.Items, want.Items))
	}
	got.Items, want.Items = nil, nil
	got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		d = append(d, fmt.Sprintf("got %+v, want %+v", got, want))
	}
	return strings.Join(d, "; ")
}

// newKey is a running record without an outcome, as a checkout claims it.
func newKey(userID, key string) order.KeyRecord {
	return order.KeyRecord{UserID: userID, Key: key, RequestHash: "hash-" + userID + "-" + key,
		State: order.KeyRunning, LeaseUntil: when.Add(30 * time.Second), LeaseGen: 1, CreatedAt: when}
}

func mustKey(t *testing.T, s order.Store, r order.KeyRecord) {
	t.Helper()
	if err := s.InsertKey(context.Background(), r); err != nil {
		t.Fatalf("InsertKey(%s, %s): %v", r.UserID, r.Key, err)
	}
}

func mustGetKey(t *testing.T, s order.Store, userID, key string) order.KeyRecord {
	t.Helper()
	r, err := s.Key(context.Background(), userID, key)
	if err != nil {
		t.Fatalf("Key(%s, %s): %v", userID, key, err)
	}
	return r
}

// keyDiff describes how got differs from want as stored, or returns "".
// An absent and an empty Response are the same.
func keyDiff(got, want order.KeyRecord) string {
	var d []string
	d = appendTimeDiff(d, "LeaseUntil", got.LeaseUntil, want.LeaseUntil)
	d = appendTimeDiff(d, "CreatedAt", got.CreatedAt, want.CreatedAt)
	if !bytes.Equal(got.Response, want.Response) {
		d = append(d, fmt.Sprintf("Response = %x, want %x", got.Response, want.Response))
	}
	got.Response, want.Response = nil, nil
	got.LeaseUntil, got.CreatedAt, want.LeaseUntil, want.CreatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		d = append(d, fmt.Sprintf("got %+v, want %+v", got, want))
	}
	return strings.Join(d, "; ")
}

func appendTimeDiff(d []string, name string, got, want time.Time) []string {
	if got.Location() != time.UTC || !got.Equal(sqldbtest.Stored(want)) {
		d = append(d, fmt.Sprintf("%s = %v, want %v (UTC, microseconds)", name, got, sqldbtest.Stored(want)))
	}
	return d
}
