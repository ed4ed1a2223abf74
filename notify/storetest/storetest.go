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
	"sync/atomic"
	"testing"
	"time"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/notify"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

var t0 = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

// unstorable are strings PostgreSQL cannot hold in text: NUL, alone or
// between storable bytes, and bytes that are not UTF-8. Appended to a stored
// key they also catch a store that cuts a key at the first bad byte.
var unstorable = []string{"\x00", "\x00tail", "\xff", "\xc3"}

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
		fresh := sqldbtest.Concurrently(t, 20, func(int) (bool, error) { return s.MarkHandled(ctx, "notify", "e1", t0) })
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
		fresh := sqldbtest.Concurrently(t, 20, func(int) (bool, error) {
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
		want.CreatedAt = sqldbtest.Stored(created)
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

	t.Run("UnstorableText", func(t *testing.T) {
		s, ctx := setup(t)
		wantMark(t, s, "notify", "e1", true)
		m1 := message("m1", "u1", t0)
		if err := s.InsertMessage(ctx, m1); err != nil {
			t.Fatalf("InsertMessage(m1): %v", err)
		}
		// PostgreSQL text holds valid UTF-8 without NUL, SQLite anything:
		// every engine refuses to write the rest and finds nothing by it.
		for _, bad := range unstorable {
			for _, mark := range [][2]string{{"notify", bad}, {"notify", "e1" + bad}, {"notify" + bad, "e1"}} {
				if fresh, err := s.MarkHandled(ctx, mark[0], mark[1], t0); !fault.Is(err, fault.Invalid) || fresh {
					t.Errorf("MarkHandled(%q, %q) = %v, %v; want false, fault.Invalid", mark[0], mark[1], fresh, err)
				}
			}
			for _, userID := range []string{bad, "u1" + bad} {
				if got := mustMessages(t, s, userID); len(got) != 0 {
					t.Errorf("Messages(%q) = %+v, want none", userID, got)
				}
			}
			for _, field := range []func(m *notify.Message){
				func(m *notify.Message) { m.ID = bad },
				func(m *notify.Message) { m.UserID = "u1" + bad },
				func(m *notify.Message) { m.Kind = bad },
				func(m *notify.Message) { m.Subject = "Subject " + bad },
				func(m *notify.Message) { m.Body = "Body " + bad },
			} {
				m := message("m2", "u1", t0.Add(time.Second))
				field(&m)
				if err := s.InsertMessage(ctx, m); !fault.Is(err, fault.Invalid) {
					t.Errorf("InsertMessage(%+v) = %v, want fault.Invalid", m, err)
				}
			}
		}
		if got := mustMessages(t, s, "u1"); !slices.Equal(got, []notify.Message{m1}) {
			t.Errorf("Messages(u1) after refused writes = %+v, want only %+v", got, m1)
		}
		wantMark(t, s, "notify", "e1", false)
		wantMark(t, s, "notify", "e2", true)
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

	// A message that could not be sent is forgotten with its mark, so the
	// redelivery records and sends it again; other consumers, events and
	// messages keep theirs.
	t.Run("UnmarkAndDeleteMessage", func(t *testing.T) {
		s, ctx := setup(t)
		wantMark(t, s, "notify", "e1", true)
		wantMark(t, s, "ledger", "e1", true)
		wantMark(t, s, "notify", "e2", true)
		for _, m := range []notify.Message{message("m1", "u1", t0), message("m2", "u1", t0.Add(time.Second))} {
			if err := s.InsertMessage(ctx, m); err != nil {
				t.Fatalf("InsertMessage: %v", err)
			}
		}
		if err := s.Unmark(ctx, "notify", "e1"); err != nil {
			t.Fatalf("Unmark: %v", err)
		}
		if err := s.DeleteMessage(ctx, "m1"); err != nil {
			t.Fatalf("DeleteMessage: %v", err)
		}
		wantIDs(t, s, "u1", "m2")
		wantMark(t, s, "ledger", "e1", false)
		wantMark(t, s, "notify", "e2", false)
		wantMark(t, s, "notify", "e1", true)
		// Forgetting what is not there, or cannot be stored, is no error.
		for _, id := range append([]string{"absent"}, unstorable...) {
			if err := s.Unmark(ctx, "notify", id); err != nil {
				t.Errorf("Unmark(%q): %v", id, err)
			}
			if err := s.DeleteMessage(ctx, id); err != nil {
				t.Errorf("DeleteMessage(%q): %v", id, err)
			}
		}
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
