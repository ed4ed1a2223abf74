package redisx_test

import (
	"context"
	"testing"
	"time"

	"github.com/millionshop/million/redistest"
	"github.com/millionshop/million/redisx"
)

func TestOpenPingsAndBoundsCalls(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c, err := redisx.Open(ctx, srv.URL(), redisx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Do(ctx, c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Do(ctx, c.B().Get().Key("k").Build()).ToString(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}

	// With the server gone a command fails within the configured bounds
	// instead of hanging.
	srv.Stop()
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Do(cctx, c.B().Get().Key("k").Build()).Error(); err == nil {
		t.Fatal("GET succeeded with the server stopped")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("GET took %v with the server stopped", d)
	}

	// It recovers on its own once the server is back.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.Do(ctx, c.B().Ping().Build()).Error()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOpenRejectsBadURLAndAbsentServer(t *testing.T) {
	if _, err := redisx.Open(context.Background(), "http://x", redisx.Options{}); err == nil {
		t.Fatal("accepted an http URL")
	}
	srv := redistest.Start(t)
	srv.Stop()
	start := time.Now()
	if _, err := redisx.Open(context.Background(), srv.URL(), redisx.Options{DialTimeout: 200 * time.Millisecond}); err == nil {
		t.Fatal("opened a stopped server")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v to fail", d)
	}
}
