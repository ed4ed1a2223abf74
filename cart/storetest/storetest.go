// Package storetest is the contract every cart.Store must pass, whatever
// engine is behind it: one suite, run by each implementation's own tests
// (cart/store runs it on SQLite and on PostgreSQL), so a new backend is done
// when Run passes on it.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/millionshop/million/cart"
	"github.com/millionshop/million/fault"
)

var t0 = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

// unstorable are strings PostgreSQL cannot hold in text: NUL, alone or
// between storable bytes, and bytes that are not UTF-8. Appended to a stored
// key they also catch a store that cuts a key at the first bad byte.
var unstorable = []string{"\x00", "\x00tail", "\xff", "\xc3"}

// Run runs the contract against the stores newStore returns. Every subtest
// calls newStore for a fresh, empty store of its own and runs in parallel.
func Run(t *testing.T, newStore func(t *testing.T) cart.Store) {
	t.Helper()

	setup := func(t *testing.T) (cart.Store, context.Context) {
		t.Helper()
		t.Parallel()
		return newStore(t), context.Background()
	}

	t.Run("EmptyCartHasNoLines", func(t *testing.T) {
		s, _ := setup(t)
		wantLines(t, s, "nobody")
	})

	t.Run("SetInserts", func(t *testing.T) {
		s, ctx := setup(t)
		mustSet(t, ctx, s, "u1", "p1", 2, t0)
		wantLines(t, s, "u1", cart.Line{ProductID: "p1", Quantity: 2})
		mustSet(t, ctx, s, "u1", "p2", 99, t0.Add(time.Second))
		wantLines(t, s, "u1", cart.Line{ProductID: "p1", Quantity: 2}, cart.Line{ProductID: "p2", Quantity: 99})
	})

	t.Run("SetUpdatesQuantityInPlace", func(t *testing.T) {
		s, ctx := setup(t)
		mustSet(t, ctx, s, "u1", "p1", 2, t0)
		mustSet(t, ctx, s, "u1", "p2", 1, t0.Add(time.Second))
		// Setting p1 again, later, changes its quantity and keeps its place:
		// a line is ordered by when it was first added, not last changed.
		mustSet(t, ctx, s, "u1", "p1", 5, t0.Add(time.Minute))
		wantLines(t, s, "u1", cart.Line{ProductID: "p1", Quantity: 5}, cart.Line{ProductID: "p2", Quantity: 1})
		mustSet(t, ctx, s, "u1", "p1", 1, t0.Add(2*time.Minute))
		wantLines(t, s, "u1", cart.Line{ProductID: "p1", Quantity: 1}, cart.Line{ProductID: "p2", Quantity: 1})
	})

	t.Run("LinesInOrderOfAddedTime", func(t *testing.T) {
		s, ctx := setup(t)
		// Call order (b, c, a), name order (a, b, c) and time order
		// (c, a, b) all differ, so only ordering by the added time passes.
		mustSet(t, ctx, s, "u1", "p-b", 1, t0.Add(2*time.Microsecond))
		mustSet(t, ctx, s, "u1", "p-c", 2, t0)
		mustSet(t, ctx, s, "u1", "p-a", 3, t0.Add(time.Microsecond))
		wantLines(t, s, "u1",
			cart.Line{ProductID: "p-c", Quantity: 2},
			cart.Line{ProductID: "p-a", Quantity: 3},
			cart.Line{ProductID: "p-b", Quantity: 1})
	})

	t.Run("Remove", func(t *testing.T) {
		s, ctx := setup(t)
		mustSet(t, ctx, s, "u1", "p1", 1, t0)
		mustSet(t, ctx, s, "u1", "p2", 2, t0.Add(time.Second))
		mustSet(t, ctx, s, "u1", "p3", 3, t0.Add(2*time.Second))
		if err := s.Remove(ctx, "u1", "p2"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		wantLines(t, s, "u1", cart.Line{ProductID: "p1", Quantity: 1}, cart.Line{ProductID: "p3", Quantity: 3})
		if err := s.Remove(ctx, "u1", "p2"); err != nil {
			t.Fatalf("Remove of a line no longer there = %v, want nil", err)
		}
		if err := s.Remove(ctx, "nobody", "p1"); err != nil {
			t.Fatalf("Remove from an empty cart = %v, want nil", err)
		}
		wantLines(t, s, "u1", cart.Line{ProductID: "p1", Quantity: 1}, cart.Line{ProductID: "p3", Quantity: 3})
		// A removed product comes back as a new line, at the end.
		mustSet(t, ctx, s, "u1", "p2", 4, t0.Add(time.Minute))
		wantLines(t, s, "u1", cart.Line{ProductID: "p1", Quantity: 1}, cart.Line{ProductID: "p3", Quantity: 3}, cart.Line{ProductID: "p2", Quantity: 4})
	})

	t.Run("RemoveLines", func(t *testing.T) {
		s, ctx := setup(t)
		mustSet(t, ctx, s, "u1", "p1", 2, t0)
		mustSet(t, ctx, s, "u1", "p2", 5, t0.Add(time.Second))
		mustSet(t, ctx, s, "u1", "p3", 1, t0.Add(2*time.Second))
		mustSet(t, ctx, s, "u2", "p1", 2, t0)
		// p2 changed to 5 since it was ordered at 3: the line must survive,
		// and so must the line nobody ordered (p3) and another user's.
		ordered := []cart.Line{{ProductID: "p1", Quantity: 2}, {ProductID: "p2", Quantity: 3}, {ProductID: "p9", Quantity: 1}, {ProductID: "p\x00", Quantity: 1}}
		if err := s.RemoveLines(ctx, "u1", ordered); err != nil {
			t.Fatalf("RemoveLines: %v", err)
		}
		wantLines(t, s, "u1", cart.Line{ProductID: "p2", Quantity: 5}, cart.Line{ProductID: "p3", Quantity: 1})
		wantLines(t, s, "u2", cart.Line{ProductID: "p1", Quantity: 2})
		for _, lines := range [][]cart.Line{nil, {{ProductID: "p\xff", Quantity: 1}}} {
			if err := s.RemoveLines(ctx, "u1", lines); err != nil {
				t.Fatalf("RemoveLines(%+v) = %v, want nil", lines, err)
			}
		}
		if err := s.RemoveLines(ctx, "u1\x00", []cart.Line{{ProductID: "p2", Quantity: 5}}); err != nil {
			t.Fatalf("RemoveLines with unstorable user = %v, want nil", err)
		}
		wantLines(t, s, "u1", cart.Line{ProductID: "p2", Quantity: 5}, cart.Line{ProductID: "p3", Quantity: 1})
		// A whole cart of lines goes in one call.
		full := make([]cart.Line, cart.MaxLines)
		for i := range full {
			full[i] = cart.Line{ProductID: fmt.Sprintf("q%03d", i), Quantity: int64(i%cart.MaxQuantity + 1)}
			mustSet(t, ctx, s, "u3", full[i].ProductID, full[i].Quantity, t0.Add(time.Duration(i)*time.Second))
		}
		if err := s.RemoveLines(ctx, "u3", full); err != nil {
			t.Fatalf("RemoveLines of %d lines: %v", len(full), err)
		}
		wantLines(t, s, "u3")
	})

	t.Run("Clear", func(t *testing.T) {
		s, ctx := setup(t)
		mustSet(t, ctx, s, "u1", "p1", 1, t0)
		mustSet(t, ctx, s, "u1", "p2", 2, t0.Add(time.Second))
		if err := s.Clear(ctx, "u1"); err != nil {
			t.Fatalf("Clear: %v", err)
		}
		wantLines(t, s, "u1")
		if err := s.Clear(ctx, "u1"); err != nil {
			t.Fatalf("Clear of an empty cart = %v, want nil", err)
		}
		mustSet(t, ctx, s, "u1", "p2", 3, t0.Add(time.Minute))
		wantLines(t, s, "u1", cart.Line{ProductID: "p2", Quantity: 3})
	})

	t.Run("CartsAreIsolatedPerUser", func(t *testing.T) {
		s, ctx := setup(t)
		mustSet(t, ctx, s, "u1", "p1", 1, t0)
		mustSet(t, ctx, s, "u1", "p2", 2, t0.Add(time.Second))
		mustSet(t, ctx, s, "u2", "p1", 7, t0.Add(2*time.Second))
		mustSet(t, ctx, s, "u3", "p3", 3, t0)

		mustSet(t, ctx, s, "u1", "p1", 9, t0.Add(time.Minute))
		wantLines(t, s, "u2", cart.Line{ProductID: "p1", Quantity: 7})
		if err := s.Remove(ctx, "u2", "p1"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		wantLines(t, s, "u1", cart.Line{ProductID: "p1", Quantity: 9}, cart.Line{ProductID: "p2", Quantity: 2})
		wantLines(t, s, "u2")
		if err := s.Clear(ctx, "u1"); err != nil {
			t.Fatalf("Clear: %v", err)
		}
		wantLines(t, s, "u1")
		wantLines(t, s, "u3", cart.Line{ProductID: "p3", Quantity: 3})
	})

	t.Run("UnstorableText", func(t *testing.T) {
		s, ctx := setup(t)
		mustSet(t, ctx, s, "u1", "p1", 2, t0)
		// PostgreSQL text holds valid UTF-8 without NUL, SQLite anything:
		// every engine refuses to write the rest and finds nothing by it.
		for _, bad := range unstorable {
			for _, userID := range []string{bad, "u1" + bad} {
				wantLines(t, s, userID)
				if err := s.Set(ctx, userID, "p1", 1, t0); !fault.Is(err, fault.Invalid) {
					t.Errorf("Set(%q, p1) = %v, want fault.Invalid", userID, err)
				}
				if err := s.Remove(ctx, userID, "p1"); err != nil {
					t.Errorf("Remove(%q, p1) = %v, want nil as for any empty cart", userID, err)
				}
				if err := s.Clear(ctx, userID); err != nil {
					t.Errorf("Clear(%q) = %v, want nil as for any empty cart", userID, err)
				}
			}
			for _, productID := range []string{bad, "p1" + bad} {
				if err := s.Set(ctx, "u1", productID, 1, t0); !fault.Is(err, fault.Invalid) {
					t.Errorf("Set(u1, %q) = %v, want fault.Invalid", productID, err)
				}
				if err := s.Remove(ctx, "u1", productID); err != nil {
					t.Errorf("Remove(u1, %q) = %v, want nil as for any line not there", productID, err)
				}
			}
		}
		wantLines(t, s, "u1", cart.Line{ProductID: "p1", Quantity: 2})
	})
}

func mustSet(t *testing.T, ctx context.Context, s cart.Store, userID, productID string, quantity int64, now time.Time) {
	t.Helper()
	if err := s.Set(ctx, userID, productID, quantity, now); err != nil {
		t.Fatalf("Set(%s, %s, %d): %v", userID, productID, quantity, err)
	}
}

func wantLines(t *testing.T, s cart.Store, userID string, want ...cart.Line) {
	t.Helper()
	got, err := s.Lines(context.Background(), userID)
	if err != nil {
		t.Fatalf("Lines(%s): %v", userID, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Lines(%s) = %+v, want %+v", userID, got, want)
	}
}
