package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/millionshop/million/redisx"
)

// RedisOptions tune the Redis limiters. Zero values mean the defaults.
type RedisOptions struct {
	// Prefix namespaces the keys; default "million:rl:" for request limits
	// and "million:fail:" for failure counters.
	Prefix string
	// Timeout bounds one Redis call; default 250 ms. Past it the request is
	// decided by the in-process fallback.
	Timeout time.Duration
	// Pause is how long the limiter keeps to its fallback after a Redis
	// failure before trying Redis again, so an absent Redis costs one
	// timeout per Pause instead of one per request; default 1 s.
	Pause time.Duration
	// Logger receives one warning when Redis starts failing and one line when
	// it answers again; nil discards them.
	Logger *slog.Logger
	// Now, when set, is the clock of the GCRA limiter and its fallback;
	// nil uses the Redis server's clock (TIME), so instances with skewed
	// clocks still agree, and time.Now for the fallback.
	Now func() time.Time
}

func (o *RedisOptions) defaults(prefix string) {
	if o.Prefix == "" {
		o.Prefix = prefix
	}
	if o.Timeout <= 0 {
		o.Timeout = 250 * time.Millisecond
	}
	if o.Pause <= 0 {
		o.Pause = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// gcraScript is GCRA on one key, atomic in Redis. KEYS[1] holds the key's
// theoretical arrival time in microseconds and expires when its bucket is
// full again (plus a slack). ARGV: emission interval (µs), burst, now (µs;
// "" for the server clock), expiry slack (ms). It returns {allowed, remaining, reset_after µs,
// retry_after µs}, the arithmetic of gcra in gcra.go.
var gcraScript = rueidis.NewLuaScript(`
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
local nxt = tat + interval
local allow_at = nxt - tolerance
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000) + tonumber(ARGV[4]))
return {1, math.floor((tolerance - (nxt - now)) / interval), nxt - now, 0}
`)

// Redis is the GCRA limiter shared by every instance through Redis: one
// script call per decision, atomic on the server. When Redis fails or is
// slower than Timeout the request is decided by an in-process limiter
// instead (fail open to per-instance limits): a Redis outage must not turn
// into an outage of the shop, and each instance still bounds what one
// client can do to it. Fallbacks counts those decisions.
type Redis struct {
	client   rueidis.Client
	opts     RedisOptions
	fallback *Memory
	out      *redisx.Outage
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a limiter on client.
func NewRedis(client rueidis.Client, opts RedisOptions) *Redis {
	opts.defaults("million:rl:")
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Redis{client: client, opts: opts, fallback: NewMemory(now),
		out: redisx.NewOutage("rate limits", opts.Pause, opts.Logger)}
}

// Allow implements Limiter.
func (l *Redis) Allow(ctx context.Context, key string, rate Rate) (Decision, error) {
	if !rate.Enabled() {
		return Decision{Allowed: true}, nil
	}
	if l.out.Skip() {
		return l.fallback.Allow(ctx, key, rate)
	}
	d, err := l.allowRedis(ctx, key, rate)
	if err != nil {
		if ctx.Err() == nil { // a client that went away says nothing about Redis
			l.out.Failed(err)
		}
		return l.fallback.Allow(ctx, key, rate)
	}
	l.out.OK()
	return d, nil
}

func (l *Redis) allowRedis(ctx context.Context, key string, rate Rate) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	// A key outliving its bucket is harmless (an old arrival time counts
	// as now), one expiring early forgets requests: the expiry gets a
	// slack, a long one with an injected clock, which Redis cannot follow.
	now, slack := "", "1000"
	if l.opts.Now != nil {
		now, slack = strconv.FormatInt(l.opts.Now().UnixMicro(), 10), "60000"
	}
	burst := rate.burst()
	vals, err := gcraScript.Exec(ctx, l.client, []string{l.opts.Prefix + key},
		[]string{strconv.FormatInt(rate.interval().Microseconds(), 10), strconv.Itoa(burst), now, slack}).AsIntSlice()
	if err != nil {
		return Decision{}, err
	}
	if len(vals) != 4 {
		return Decision{}, fmt.Errorf("gcra script returned %d values, want 4", len(vals))
	}
	return Decision{Allowed: vals[0] == 1, Limit: burst, Remaining: int(vals[1]),
		ResetAfter: time.Duration(vals[2]) * time.Microsecond, RetryAfter: time.Duration(vals[3]) * time.Microsecond}, nil
}

// Fallbacks returns how many decisions the in-process limiter made because
// Redis could not.
func (l *Redis) Fallbacks() uint64 { return l.out.Fallbacks() }

// failScript records one failure: a fixed window that starts with the
// first failure and expires with it. KEYS[1] counter; ARGV[1] window (ms).
var failScript = rueidis.NewLuaScript(`
local c = redis.call('INCR', KEYS[1])
if c == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return c
`)

// blockedScript reads a counter and its remaining window at once.
// KEYS[1] counter. It returns {count, pttl ms}.
var blockedScript = rueidis.NewLuaScriptReadOnly(`
local c = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
return {c, redis.call('PTTL', KEYS[1])}
`)

// RedisFailures is Failures shared by every instance through Redis, with
// the same rules: a fixed window per key starting at its first failure,
// blocked once the count reaches the limit, the key expiring with its
// window. When Redis fails the in-process Failures of this instance
// answers instead (fail open to per-instance counting), as for Redis.
type RedisFailures struct {
	client   rueidis.Client
	opts     RedisOptions
	rules    []Rule
	fallback *Failures
	out      *redisx.Outage
}

// NewRedisFailures returns failure counters on client applying the first
// rule whose prefix matches a key.
func NewRedisFailures(client rueidis.Client, opts RedisOptions, rules ...Rule) *RedisFailures {
	opts.defaults("million:fail:")
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &RedisFailures{client: client, opts: opts, rules: rules, fallback: NewFailures(now, rules...),
		out: redisx.NewOutage("failure counters", opts.Pause, opts.Logger)}
}

func (f *RedisFailures) rule(key string) (Rule, bool) { return f.fallback.rule(key) }

// run calls Redis unless it is believed down; on failure it switches to
// the fallback for a pause and reports false.
func (f *RedisFailures) run(ctx context.Context, call func(ctx context.Context) error) bool {
	if f.out.Skip() {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	if err := call(cctx); err != nil {
		if ctx.Err() == nil {
			f.out.Failed(err)
		}
		return false
	}
	f.out.OK()
	return true
}

// Blocked implements user.FailureLimiter.
func (f *RedisFailures) Blocked(ctx context.Context, key string) (bool, int, time.Duration, error) {
	r, ok := f.rule(key)
	if !ok {
		return false, 0, 0, nil
	}
	var vals []int64
	if !f.run(ctx, func(ctx context.Context) (err error) {
		vals, err = blockedScript.Exec(ctx, f.client, []string{f.opts.Prefix + key}, nil).AsIntSlice()
		if err == nil && len(vals) != 2 {
			err = fmt.Errorf("blocked script returned %d values, want 2", len(vals))
		}
		return err
	}) {
		return f.fallback.Blocked(ctx, key)
	}
	if vals[0] < int64(r.Limit) {
		return false, r.Limit, 0, nil
	}
	wait := time.Duration(vals[1]) * time.Millisecond
	if vals[1] < 0 {
		wait = r.Window // no expiry (cannot happen with failScript): the longest honest answer
	}
	return true, r.Limit, wait, nil
}

// Fail implements user.FailureLimiter.
func (f *RedisFailures) Fail(ctx context.Context, key string) error {
	r, ok := f.rule(key)
	if !ok {
		return nil
	}
	if !f.run(ctx, func(ctx context.Context) error {
		return failScript.Exec(ctx, f.client, []string{f.opts.Prefix + key},
			[]string{strconv.FormatInt(max(r.Window.Milliseconds(), 1), 10)}).Error()
	}) {
		return f.fallback.Fail(ctx, key)
	}
	return nil
}

// Reset implements user.FailureLimiter. It forgets the key in Redis and in
// the fallback, so failures counted during an outage do not linger.
func (f *RedisFailures) Reset(ctx context.Context, key string) error {
	_ = f.fallback.Reset(ctx, key)
	if _, ok := f.rule(key); !ok {
		return nil
	}
	f.run(ctx, func(ctx context.Context) error {
		return f.client.Do(ctx, f.client.B().Del().Key(f.opts.Prefix+key).Build()).Error()
	})
	return nil
}

// Fallbacks returns how many calls the in-process counters answered
// because Redis could not.
func (f *RedisFailures) Fallbacks() uint64 { return f.out.Fallbacks() }
