package order

import (
	"testing"
	"time"
)

func TestRetryDelayDoublesUpToTheCap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		base     time.Duration
		failures int
		want     time.Duration
	}{
		{30 * time.Second, 0, 30 * time.Second},
		{30 * time.Second, 1, time.Minute},
		{30 * time.Second, 4, 8 * time.Minute},
		{30 * time.Second, 5, maxBackoff},
		{30 * time.Second, 1000, maxBackoff},
		// A base past the cap, or one a shift would overflow, still waits the cap.
		{72 * time.Hour, 3, maxBackoff},
		{time.Duration(1) << 62, 40, maxBackoff},
	} {
		if got := retryDelay(tc.base, tc.failures); got != tc.want {
			t.Errorf("retryDelay(%v, %d) = %v, want %v", tc.base, tc.failures, got, tc.want)
		}
	}
}
