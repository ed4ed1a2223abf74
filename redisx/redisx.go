// Package redisx opens million's Redis client (rueidis) with the bounds every
// outbound call needs: dial, write and command timeouts, so a slow or absent
// Redis costs a request milliseconds, never a hang.
package redisx

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/redis/rueidis"
)

// Options tunes the client. Zero values mean the defaults.
type Options struct {
	// DialTimeout bounds connecting; default 1 s.
	DialTimeout time.Duration
	// WriteTimeout bounds a connection's writes and its wait for replies
	// (rueidis' ConnWriteTimeout); default 1 s.
	WriteTimeout time.Duration
	// DisableCache turns off server-assisted client-side caching (CLIENT
	// TRACKING), e.g. for a server that does not support RESP3.
	DisableCache bool
}

// Open connects to the Redis server at url (redis://[user:pass@]host:port[/db]
// or rediss:// for TLS) and checks it answers PING.
func Open(ctx context.Context, url string, opts Options) (rueidis.Client, error) {
	co, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = time.Second
	}
	co.Dialer = net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	co.ConnWriteTimeout = opts.WriteTimeout
	co.DisableCache = opts.DisableCache
	client, err := rueidis.NewClient(co)
	if err != nil {
		return nil, fmt.Errorf("connect to redis: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout+opts.WriteTimeout)
	defer cancel()
	if err := client.Do(pctx, client.B().Ping().Build()).Error(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redis ping: %w", err)
	}
	return client, nil
}
