package ratelimit_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/ratelimit"
	"github.com/millionshop/million/redistest"
	"github.com/millionshop/million/redisx"
	"github.com/redis/rueidis"
)

// clock is a manual clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// redisClient starts a real redis-server for the test and opens a client.
func redisClient(t *testing.T, srv *redistest.Server) rueidis.Client {
	t.Helper()
	c, err := redisx.Open(context.Background(), srv.URL(), redisx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// limiters returns every implementation on the clock c, each with its own
// key space, so one test table holds them all to the same arithmetic.
func limiters(t *testing.T) map[string]func(c *clock) ratelimit.Limiter {
	srv := redistest.Start(t)
	client := redisClient(t, srv)
	return map[string]func(c *clock) ratelimit.Limiter{
		"memory": func(c *clock) ratelimit.Limiter { return ratelimit.NewMemory(c.Now) },
		"redis": func(c *clock) ratelimit.Limiter {
			return ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: "t:" + uuid.NewString() + ":", Now: c.Now})
		},
	}
}

// step is one request of a scripted history: after advancing the clock by
// after, a request for key must get want.
type step struct {
	after time.Duration
	key   string
	want  ratelimit.Decision
}

func allowed(limit, remaining int, reset time.Duration) ratelimit.Decision {
	return ratelimit.Decision{Allowed: true, Limit: limit, Remaining: remaining, ResetAfter: reset}
}

func refused(limit int, reset, retry time.Duration) ratelimit.Decision {
	return ratelimit.Decision{Limit: limit, ResetAfter: reset, RetryAfter: retry}
}

const ms = time.Millisecond

// TestGCRA runs the same histories on every limiter: a burst up to the
// bucket, a steady rate at the emission interval, Retry-After exactly when
// the next request passes (not a microsecond earlier), refill after a quiet
// spell, and independent keys.
func TestGCRA(t *testing.T) {
	t.Parallel()
	tenPerSecBurst5 := ratelimit.Rate{Limit: 10, Period: time.Second, Burst: 5} // one request per 100 ms, 5 at once
	cases := []struct {
		name  string
		rate  ratelimit.Rate
		steps []step
	}{
		{"BurstThenRefused", tenPerSecBurst5, []step{
			{0, "a", allowed(5, 4, 100*ms)},
			{0, "a", allowed(5, 3, 200*ms)},
			{0, "a", allowed(5, 2, 300*ms)},
			{0, "a", allowed(5, 1, 400*ms)},
			{0, "a", allowed(5, 0, 500*ms)},
			{0, "a", refused(5, 500*ms, 100*ms)},
			{0, "a", refused(5, 500*ms, 100*ms)}, // a refused request costs nothing
		}},
		{"RetryAfterIsExact", tenPerSecBurst5, []step{
			{0, "a", allowed(5, 4, 100*ms)},
			{0, "a", allowed(5, 3, 200*ms)},
			{0, "a", allowed(5, 2, 300*ms)},
			{0, "a", allowed(5, 1, 400*ms)},
			{0, "a", allowed(5, 0, 500*ms)},
			{40 * ms, "a", refused(5, 460*ms, 60*ms)},
			{60*ms - time.Microsecond, "a", refused(5, 400*ms+time.Microsecond, time.Microsecond)},
			{time.Microsecond, "a", allowed(5, 0, 500*ms)},
		}},
		{"SteadyRateAtTheInterval", ratelimit.Rate{Limit: 10, Period: time.Second, Burst: 1}, []step{
			{0, "a", allowed(1, 0, 100*ms)},
			{50 * ms, "a", refused(1, 50*ms, 50*ms)},
			{50 * ms, "a", allowed(1, 0, 100*ms)},
			{100 * ms, "a", allowed(1, 0, 100*ms)},
			{99 * ms, "a", refused(1, 1*ms, 1*ms)},
			{1 * ms, "a", allowed(1, 0, 100*ms)},
		}},
		{"QuietSpellRefillsTheBucket", tenPerSecBurst5, []step{
			{0, "a", allowed(5, 4, 100*ms)},
			{0, "a", allowed(5, 3, 200*ms)},
			{0, "a", allowed(5, 2, 300*ms)},
			{150 * ms, "a", allowed(5, 2, 250*ms)}, // 2.5 requests of room: 2 whole ones
			{time.Hour, "a", allowed(5, 4, 100*ms)},
		}},
		{"DefaultBurstIsTheLimit", ratelimit.Rate{Limit: 2, Period: time.Minute}, []step{
			{0, "a", allowed(2, 1, 30*time.Second)},
			{0, "a", allowed(2, 0, time.Minute)},
			{0, "a", refused(2, time.Minute, 30*time.Second)},
		}},
		{"KeysAreIndependent", ratelimit.Rate{Limit: 1, Period: time.Second}, []step{
			{0, "a", allowed(1, 0, time.Second)},
			{0, "a", refused(1, time.Second, time.Second)},
			{0, "b", allowed(1, 0, time.Second)},
		}},
	}
	for name, newLimiter := range limiters(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					c := newClock()
					l := newLimiter(c)
					for i, s := range tc.steps {
						c.Advance(s.after)
						got, err := l.Allow(context.Background(), s.key, tc.rate)
						if err != nil {
							t.Fatalf("step %d: Allow: %v", i, err)
						}
						if got != s.want {
							t.Fatalf("step %d (+%v, key %s): Allow = %+v, want %+v", i, s.after, s.key, got, s.want)
						}
					}
				})
			}
			t.Run("DisabledRateAllows", func(t *testing.T) {
				t.Parallel()
				l := newLimiter(newClock())
				for range 3 {
					if d, err := l.Allow(context.Background(), "a", ratelimit.Rate{}); err != nil || !d.Allowed {
						t.Fatalf("Allow(disabled) = %+v, %v; want allowed", d, err)
					}
				}
			})
		})
	}
}

// TestRedisLimiterIsSharedAndAtomic: three instances (three clients) fire
// 300 requests at one key at once on the Redis clock; exactly the burst
// passes, never more (the script is atomic, the count is shared), and the
// key disappears with its bucket.
func TestRedisLimiterIsSharedAndAtomic(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var instances []*ratelimit.Redis
	for range 3 {
		instances = append(instances, ratelimit.NewRedis(redisClient(t, srv), ratelimit.RedisOptions{Prefix: "shared:"}))
	}
	rate := ratelimit.Rate{Limit: 50, Period: time.Hour}
	var passed atomic.Int64
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			d, err := instances[i%3].Allow(context.Background(), "k", rate)
			if err != nil {
				t.Errorf("Allow: %v", err)
			}
			if d.Allowed {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := passed.Load(); got != 50 {
		t.Fatalf("%d of 300 requests over 3 instances passed, want exactly the burst of 50", got)
	}
	for _, l := range instances {
		if n := l.Fallbacks(); n != 0 {
			t.Fatalf("Fallbacks = %d with Redis up, want 0", n)
		}
	}
	client := redisClient(t, srv)
	pttl, err := client.Do(context.Background(), client.B().Pttl().Key("shared:k").Build()).AsInt64()
	if err != nil || pttl <= 0 || pttl > int64((time.Hour+time.Second)/time.Millisecond) {
		t.Fatalf("PTTL of the bucket = %d, %v; want it to expire within the hour the bucket takes to refill", pttl, err)
	}
}

// TestRedisLimiterServerClock: with the Redis clock, a refused request's
// Retry-After is honest: waiting it out lets the next request through.
func TestRedisLimiterServerClock(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	l := ratelimit.NewRedis(redisClient(t, srv), ratelimit.RedisOptions{})
	rate := ratelimit.Rate{Limit: 5, Period: time.Second, Burst: 2} // one per 200 ms
	ctx := context.Background()
	for i := range 2 {
		if d, err := l.Allow(ctx, "k", rate); err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v, %v; want allowed", i, d, err)
		}
	}
	d, err := l.Allow(ctx, "k", rate)
	if err != nil || d.Allowed {
		t.Fatalf("3rd request at once: %+v, %v; want refused", d, err)
	}
	if d.RetryAfter <= 0 || d.RetryAfter > 200*ms {
		t.Fatalf("RetryAfter = %v, want in (0, 200ms]", d.RetryAfter)
	}
	time.Sleep(d.RetryAfter)
	if d, err := l.Allow(ctx, "k", rate); err != nil || !d.Allowed {
		t.Fatalf("request after waiting Retry-After: %+v, %v; want allowed", d, err)
	}
}

// TestRedisLimiterFallsBackWhenRedisFails: with Redis stopped every request
// is still decided, by the instance's own limiter at the same rate (fail
// open to per-instance limits, counted in Fallbacks), quickly; when Redis
// returns the limiter goes back to it after its pause.
func TestRedisLimiterFallsBackWhenRedisFails(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	l := ratelimit.NewRedis(redisClient(t, srv), ratelimit.RedisOptions{Prefix: "fb:", Pause: 200 * ms})
	rate := ratelimit.Rate{Limit: 3, Period: time.Hour}
	ctx := context.Background()
	if d, _ := l.Allow(ctx, "k", rate); !d.Allowed {
		t.Fatal("first request refused")
	}
	srv.Stop()
	start := time.Now()
	var got []bool
	for range 4 {
		d, err := l.Allow(ctx, "k", rate)
		if err != nil {
			t.Fatalf("Allow with Redis down: %v", err)
		}
		got = append(got, d.Allowed)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("4 decisions with Redis down took %v", took)
	}
	// The fallback has its own count: 3 more pass, the 4th does not.
	if fmt.Sprint(got) != "[true true true false]" {
		t.Fatalf("decisions with Redis down = %v, want the fallback's own burst of 3 then a refusal", got)
	}
	if l.Fallbacks() < 4 {
		t.Fatalf("Fallbacks = %d, want at least 4", l.Fallbacks())
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Redis came back empty: once the limiter uses it again, a fresh
	// bucket lets requests through and Fallbacks stops growing.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := l.Fallbacks()
		d, err := l.Allow(ctx, "k", rate)
		if err == nil && d.Allowed && l.Fallbacks() == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("limiter did not return to Redis: %+v, %v, fallbacks %d", d, err, l.Fallbacks())
		}
		time.Sleep(50 * ms)
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	good := map[string]ratelimit.Rate{
		"200/s":     {Limit: 200, Period: time.Second},
		"600/m":     {Limit: 600, Period: time.Minute},
		"10/h":      {Limit: 10, Period: time.Hour},
		"200/s:400": {Limit: 200, Period: time.Second, Burst: 400},
		"5/10s":     {Limit: 5, Period: 10 * time.Second},
		"0":         {},
		"off":       {},
		"":          {},
	}
	for in, want := range good {
		got, err := ratelimit.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, err := ratelimit.ParseRate(got.String()); err != nil || back != got {
			t.Errorf("ParseRate(%q.String() = %q) = %+v, %v; want %+v", in, got.String(), back, err, got)
		}
	}
	for _, in := range []string{"200", "x/s", "-1/s", "10/fortnight", "10/s:0", "10/s:x", "10/-1s", "1000000000000/s", "2000000/s"} {
		if r, err := ratelimit.ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %+v, want an error", in, r)
		}
	}
}

// TestFastestRateDoesNotDivideByZero: a Rate built in code with an
// interval under the microsecond the limiters count in is clamped, not a
// division by zero on every request.
func TestFastestRateDoesNotDivideByZero(t *testing.T) {
	m := ratelimit.NewMemory(time.Now)
	d, err := m.Allow(context.Background(), "k", ratelimit.Rate{Limit: 2_000_000, Period: time.Second})
	if err != nil || !d.Allowed {
		t.Fatalf("Allow = %+v, %v", d, err)
	}
}
