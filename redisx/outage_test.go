package redisx_test

import (
	"errors"
	"testing"
	"time"

	"github.com/millionshop/million/redisx"
)

// TestOutage: after a failure Redis is skipped for the pause (each skip
// counted as a fallback), then tried again; a success ends the outage at once.
func TestOutage(t *testing.T) {
	t.Parallel()
	o := redisx.NewOutage("test", 200*time.Millisecond, nil)
	if o.Skip() || o.Fallbacks() != 0 {
		t.Fatalf("fresh tracker: skip=%v fallbacks=%d", o.Skip(), o.Fallbacks())
	}
	o.Failed(errors.New("connection refused"))
	if !o.Skip() || !o.Skip() || o.Fallbacks() != 3 {
		t.Fatalf("after a failure: want 2 skips and 3 fallbacks, got fallbacks=%d", o.Fallbacks())
	}
	deadline := time.Now().Add(5 * time.Second)
	for o.Skip() {
		if time.Now().After(deadline) {
			t.Fatal("still skipping Redis 5 s after a 200 ms pause")
		}
		time.Sleep(10 * time.Millisecond)
	}
	o.Failed(errors.New("timeout"))
	o.OK()
	if o.Skip() {
		t.Fatal("skipping Redis after a success")
	}
}
