package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/millionshop/million/app"
)

// TestDrainKeepsServingWhileNotReady checks the graceful drain a gateway
// relies on: once stopped, the instance answers /readyz 503 at once but
// keeps serving requests for DrainDelay, and only then stops accepting.
func TestDrainKeepsServingWhileNotReady(t *testing.T) {
	t.Parallel()
	const delay = 2 * time.Second
	srv := Start(t, func(c *app.Config) { c.DrainDelay = delay })
	status := func(path string) int {
		resp, err := http.Get(srv.BaseURL + path)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/readyz"); got != http.StatusOK {
		t.Fatalf("readyz before the stop: %d", got)
	}
	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop() }()
	deadline := time.Now().Add(delay / 2)
	for status("/readyz") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatalf("readyz not 503 within %s of the stop", delay/2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := status("/v1/categories"); got != http.StatusOK {
		t.Fatalf("a request during the drain delay got %d, want it served", got)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(began); elapsed < delay {
		t.Fatalf("stopped after %s, before the drain delay of %s", elapsed, delay)
	}
	if got := status("/healthz"); got != -1 {
		t.Fatalf("still accepting after the stop: %d", got)
	}
}
