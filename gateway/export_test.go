package gateway

import (
	"context"
	"testing"
	"time"
)

// ServeForTest serves g's public server on a loopback port until the test
// ends; the package's internal and external tests share it.
func ServeForTest(t testing.TB, g *Gateway) *Server {
	t.Helper()
	srv, err := g.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}
