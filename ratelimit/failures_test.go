package ratelimit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/ratelimit"
	"github.com/millionshop/million/redistest"
	"github.com/millionshop/million/user"
)

var (
	_ user.FailureLimiter = (*ratelimit.Failures)(nil)
	_ user.FailureLimiter = (*ratelimit.RedisFailures)(nil)
)

var failureRules = []ratelimit.Rule{
	{Prefix: "login:account:", Limit: 3, Window: time.Minute},
	{Prefix: "short:", Limit: 2, Window: 1500 * time.Millisecond}, // long enough to outlast a stalled machine between two calls
}

// TestFailureLimiters holds Failures and RedisFailures to the same rules:
// blocked once the count reaches the limit for the rest of the window,
// keys independent, Reset forgets, unknown prefixes never blocked, and a
// key free again when its window ends.
func TestFailureLimiters(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := redisClient(t, srv)
	impls := map[string]func() user.FailureLimiter{
		"memory": func() user.FailureLimiter { return ratelimit.NewFailures(time.Now, failureRules...) },
		"redis": func() user.FailureLimiter {
			return ratelimit.NewRedisFailures(client, ratelimit.RedisOptions{Prefix: "f:" + uuid.NewString() + ":"}, failureRules...)
		},
	}
	for name, newLimiter := range impls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newLimiter()
			check := func(key string, wantBlocked bool, wantLimit int) time.Duration {
				t.Helper()
				blocked, limit, wait, err := f.Blocked(ctx, key)
				if err != nil || blocked != wantBlocked || limit != wantLimit {
					t.Fatalf("Blocked(%s) = %v, %d, %v, %v; want %v, %d", key, blocked, limit, wait, err, wantBlocked, wantLimit)
				}
				if blocked && (wait <= 0 || wait > time.Minute) {
					t.Fatalf("Blocked(%s) retry after %v, want within the window", key, wait)
				}
				return wait
			}
			acct := "login:account:a@example.com"
			check(acct, false, 3)
			for range 2 {
				_ = f.Fail(ctx, acct)
			}
			check(acct, false, 3)
			_ = f.Fail(ctx, acct)
			check(acct, true, 3)
			check("login:account:b@example.com", false, 3)
			_ = f.Fail(ctx, "nothing:x")
			check("nothing:x", false, 0)
			_ = f.Reset(ctx, acct)
			check(acct, false, 3)

			short := "short:k"
			_ = f.Fail(ctx, short)
			_ = f.Fail(ctx, short)
			start := time.Now()
			check(short, true, 2)
			deadline := start.Add(15 * time.Second)
			for {
				blocked, _, _, err := f.Blocked(ctx, short)
				if err != nil {
					t.Fatal(err)
				}
				if !blocked {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("key still blocked 15 s after its 1.5 s window")
				}
				time.Sleep(20 * time.Millisecond)
			}
			_ = f.Fail(ctx, short)
			check(short, false, 2) // a new window counts from 1
		})
	}
}

// TestRedisFailuresShared: failures recorded through three instances add
// up to one count (12 concurrent failures through 3 clients block a key
// whose limit is 10, whichever instance asks), and the counter key expires
// with its window.
func TestRedisFailuresShared(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rules := []ratelimit.Rule{{Prefix: "login:ip:", Limit: 10, Window: time.Minute}}
	var instances []*ratelimit.RedisFailures
	for range 3 {
		instances = append(instances, ratelimit.NewRedisFailures(redisClient(t, srv), ratelimit.RedisOptions{}, rules...))
	}
	ctx := context.Background()
	key := "login:ip:192.0.2.1"
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Go(func() {
			if err := instances[i%3].Fail(ctx, key); err != nil {
				t.Errorf("Fail: %v", err)
			}
		})
	}
	wg.Wait()
	for i, f := range instances {
		if blocked, _, _, err := f.Blocked(ctx, key); err != nil || blocked {
			t.Fatalf("instance %d after 9 failures: blocked=%v, %v; want not yet", i, blocked, err)
		}
	}
	_ = instances[1].Fail(ctx, key)
	for i, f := range instances {
		blocked, limit, wait, err := f.Blocked(ctx, key)
		if err != nil || !blocked || limit != 10 || wait <= 0 || wait > time.Minute {
			t.Fatalf("instance %d after 10 failures: %v, %d, %v, %v; want blocked for at most a minute", i, blocked, limit, wait, err)
		}
		if f.Fallbacks() != 0 {
			t.Fatalf("instance %d used its fallback with Redis up", i)
		}
	}
	client := redisClient(t, srv)
	pttl, err := client.Do(ctx, client.B().Pttl().Key("million:fail:"+key).Build()).AsInt64()
	if err != nil || pttl <= 0 || pttl > 60_000 {
		t.Fatalf("PTTL of the counter = %d, %v; want it to expire with its one-minute window", pttl, err)
	}
}

// TestRedisFailuresFallBack: with Redis stopped, logins are still limited,
// by this instance's own counters, without errors.
func TestRedisFailuresFallBack(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := ratelimit.NewRedisFailures(redisClient(t, srv), ratelimit.RedisOptions{}, failureRules...)
	ctx := context.Background()
	srv.Stop()
	key := "login:account:down@example.com"
	for range 3 {
		if err := f.Fail(ctx, key); err != nil {
			t.Fatalf("Fail with Redis down: %v", err)
		}
	}
	blocked, limit, _, err := f.Blocked(ctx, key)
	if err != nil || !blocked || limit != 3 {
		t.Fatalf("Blocked with Redis down after 3 failures = %v, %d, %v; want blocked by the fallback", blocked, limit, err)
	}
	if f.Fallbacks() == 0 {
		t.Fatal("Fallbacks = 0 with Redis down")
	}
}
