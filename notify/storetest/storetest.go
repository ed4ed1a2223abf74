// Package storetest is the contract every notify.Store must pass, whatever
// engine is behind it: one suite, run by each implementation's own tests
// (notify/store runs it on SQLite and on PostgreSQL), so a new backend is
// done when Run passes on it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/notify"
)

var t0 = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

// Run runs the contract against the stores newStore returns. Every subtest
// calls newStore for a fresh, empty store of its own and runs in parallel.
func Run(t *testing.T, newStore func(t *testing.T) notify.Store) {
	t.Helper()

	setup := func(t *testing.T) (notify.Store, context.Context) {
		t.Helper()
		t.Parallel()
		return newStore(t), context.Background()
	}

	t.Run("MarkHandledOnce", func(t *testing.T) {
		s, _ := setup(t)
		wantMark(t, s, "notify", "e1", true)
		wantMark(t, s, "notify", "e1", false)
		wantMark(t, s, "notify", "e1", false)
		// The record is per consumer and per event.
		wantMark(t, s, "ledger", "e1", true)
		wantMark(t, s, "notify", "e2", true)
		wantMark(t, s, "ledger", "e2", true)
		wantMark(t, s, "ledger", "e2", false)
	})

	t.Run("MarkHandledConcurrently", func(t *testing.T) {
		s, ctx := setup(t)
		fresh := concurrently(t, 20, func() (bool, error) { return s.MarkHandled(ctx, "notify", "e1", t0) })
		if fresh != 1 {
			t.Fatalf("%d of 20 concurrent MarkHandled calls reported the event fresh, want exactly 1", fresh)
		}
	})

	// This is how the notifier uses it: mark and record the message in one
	// transaction per delivery. Twenty deliveries of one event at once must
	// leave one message.
	t.Run("MarkHandledConcurrentlyInTransactions", func(t *testing.T) {
		s, ctx := setup(t)
		var n atomic.Int32
		fresh := concurrently(t, 20, func() (bool, error) {
			var fresh bool
			err := s.InTx(ctx, func(ctx context.Context) error {
				var err error
				fresh, err = s.MarkHandled(ctx, "notify", "e1", t0)
				if err != nil || !fresh {
					return err
				}
				m := message(fmt.Sprintf("m%d", n.Add(1)), "u1", t0)
				return s.InsertMessage(ctx, m)
			})
			return fresh, err
		})
		if fresh != 1 {
			t.Fatalf("%d of 20 concurrent transactions marked the event fresh, want exactly 1", fresh)
		}
		if got := mustMessages(t, s, "u1"); len(got) != 1 {
			t.Fatalf("messages after 20 concurrent deliveries = %+v, want exactly 1", got)
		}
	})

	t.Run("InsertMessageRoundTrips", func(t *testing.T) {
		s, ctx := setup(t)
		// A zone other than UTC and nanoseconds the store cannot keep: what
		// comes back is the same instant, cut to microseconds, in UTC.
		created := time.Date(2031, 1, 2, 3, 4, 5, 987654321, time.FixedZone("UTC-3", -3*3600))
		m := notify.Message{ID: "m1", UserID: "u1", Kind: "order.placed", Subject: "We received your order",
			Body: "Order o-1 for 12.50 USD is placed. Ünïcødé ✓ and 'quotes'", CreatedAt: created}
		if err := s.InsertMessage(ctx, m); err != nil {
			t.Fatalf("InsertMessage: %v", err)
		}
		got := mustMessages(t, s, "u1")
		want := m
		want.CreatedAt = created.Truncate(time.Microsecond).UTC()
		if len(got) != 1 || got[0] != want {
			t.Fatalf("Messages = %+v, want [%+v]", got, want)
		}
		if err := s.InsertMessage(ctx, message("m1", "u2", t0)); err == nil {
			t.Fatal("InsertMessage with an ID already stored succeeded")
		}
	})

	t.Run("MessagesOldestFirst", func(t *testing.T) {
		s, ctx := setup(t)
		// Insert order, ID order and time order all differ, so only ordering
		// by CreatedAt passes.
		for _, m := range []notify.Message{
			message("m-a", "u1", t0.Add(2*time.Microsecond)),
			message("m-c", "u1", t0),
			message("m-b", "u1", t0.Add(time.Microsecond)),
		} {
			if err := s.InsertMessage(ctx, m); err != nil {
				t.Fatalf("InsertMessage(%s): %v", m.ID, err)
			}
		}
		wantIDs(t, s, "u1", "m-c", "m-b", "m-a")
	})

	t.Run("MessagesAreIsolatedPerUser", func(t *testing.T) {
		s, ctx := setup(t)
		wantIDs(t, s, "u1")
		for _, m := range []notify.Message{
			message("m1", "u1", t0),
			message("m2", "u2", t0.Add(time.Second)),
			message("m3", "u1", t0.Add(2*time.Second)),
		} {
			if err := s.InsertMessage(ctx, m); err != nil {
				t.Fatalf("InsertMessage(%s): %v", m.ID, err)
			}
		}
		wantIDs(t, s, "u1", "m1", "m3")
		wantIDs(t, s, "u2", "m2")
		wantIDs(t, s, "u3")
	})

	t.Run("InTxCommits", func(t *testing.T) {
		s, ctx := setup(t)
		err := s.InTx(ctx, func(ctx context.Context) error {
			if fresh, err := s.MarkHandled(ctx, "notify", "e1", t0); err != nil || !fresh {
				t.Errorf("MarkHandled = %v, %v; want true", fresh, err)
			}
			return s.InsertMessage(ctx, message("m1", "u1", t0))
		})
		if err != nil {
			t.Fatalf("InTx: %v", err)
		}
		wantMark(t, s, "notify", "e1", false)
		wantIDs(t, s, "u1", "m1")
	})

	t.Run("InTxRollbackUndoesWrites", func(t *testing.T) {
		s, ctx := setup(t)
		if err := s.InsertMessage(ctx, message("m0", "u1", t0)); err != nil {
			t.Fatalf("InsertMessage: %v", err)
		}
		errAbort := errors.New("abort")
		err := s.InTx(ctx, func(ctx context.Context) error {
			if fresh, err := s.MarkHandled(ctx, "notify", "e1", t0); err != nil || !fresh {
				t.Errorf("MarkHandled = %v, %v; want true", fresh, err)
			}
			if err := s.InsertMessage(ctx, message("m1", "u1", t0.Add(time.Second))); err != nil {
				return err
			}
			// Reads in the transaction see its own writes.
			if got, err := s.Messages(ctx, "u1"); err != nil || len(got) != 2 {
				t.Errorf("Messages inside the transaction = %+v, %v; want m0 and m1", got, err)
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatalf("InTx = %v, want the error fn returned", err)
		}
		wantIDs(t, s, "u1", "m0")
		// The mark was rolled back with the message, so a redelivery handles it.
		wantMark(t, s, "notify", "e1", true)
	})
}

func message(id, userID string, at time.Time) notify.Message {
	return notify.Message{ID: id, UserID: userID, Kind: "order.placed", Subject: "Subject " + id, Body: "Body " + id, CreatedAt: at}
}

func wantMark(t *testing.T, s notify.Store, consumer, eventID string, want bool) {
	t.Helper()
	fresh, err := s.MarkHandled(context.Background(), consumer, eventID, t0)
	if err != nil || fresh != want {
		t.Fatalf("MarkHandled(%s, %s) = %v, %v; want %v", consumer, eventID, fresh, err, want)
	}
}

func mustMessages(t *testing.T, s notify.Store, userID string) []notify.Message {
	t.Helper()
	got, err := s.Messages(context.Background(), userID)
	if err != nil {
		t.Fatalf("Messages(%s): %v", userID, err)
	}
	return got
}

func wantIDs(t *testing.T, s notify.Store, userID string, want ...string) {
	t.Helper()
	got := mustMessages(t, s, userID)
	ids := make([]string, len(got))
	for i, m := range got {
		ids[i] = m.ID
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("Messages(%s) IDs = %v, want %v", userID, ids, want)
	}
}

// concurrently runs fn from n goroutines released together and returns how
// many reported true; an error fails the test.
func concurrently(t *testing.T, n int, fn func() (bool, error)) int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		yes   atomic.Int32
	)
	for range n {
		wg.Go(func() {
			<-start
			ok, err := fn()
			if err != nil {
				t.Errorf("concurrent call: %v", err)
				return
			}
			if ok {
				yes.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	return int(yes.Load())
}
