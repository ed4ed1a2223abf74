package app_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/millionshop/million/app"
)

// TestOpenRejectsBadRateLimits: a rate the operator mistyped stops the
// start with a message naming the setting, instead of running unlimited.
func TestOpenRejectsBadRateLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ip, user, want string }{
		{"fast", "", "rate limit per IP"},
		{"", "10/fortnight", "rate limit per user"},
	} {
		a, err := app.Open(context.Background(), app.Config{DataDir: t.TempDir(), RateLimitIP: tc.ip, RateLimitUser: tc.user},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			a.Close()
			t.Fatalf("Open(ip %q, user %q) succeeded", tc.ip, tc.user)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(ip %q, user %q) = %v, want it to name %q", tc.ip, tc.user, err, tc.want)
		}
	}
}
