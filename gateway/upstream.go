package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// hostPort is the address a backend URL names, with its scheme's default
// port when it gives none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// dialError marks a failure to connect: the request never left the gateway.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial backend: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// idleConnTimeout is how long a keep-alive connection to a backend may stay
// idle: below serve's 120 s, so the gateway closes first.
const idleConnTimeout = 90 * time.Second

// newUpstream returns the client of one TLS backend, which the event loops
// cannot reach themselves: fasthttp's HostClient, over a pool of
// keep-alive connections, called on a goroutine per attempt. It retries
// nothing itself (the gateway's retries choose another backend and spend
// the retry budget).
func newUpstream(u *url.URL, opts *Options, dialer *net.Dialer) *fasthttp.HostClient {
	tlsConfig := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	c := &fasthttp.HostClient{
		Addr:  hostPort(u),
		IsTLS: u.Scheme == "https",
		Dial: func(addr string) (net.Conn, error) {
			nc, err := dialer.Dial("tcp", addr)
			if err != nil {
				return nil, &dialError{err}
			}
			// The handshake belongs to the dial: a backend that cannot
			// complete it never received the request, which may then go to
			// another backend whatever its method.
			tc := tls.Client(nc, tlsConfig)
			ctx, cancel := context.WithTimeout(context.Background(), opts.DialTimeout)
			defer cancel()
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return nil, &dialError{err}
			}
			return tc, nil
		},
		MaxConns:                  opts.MaxConnsPerBackend,
		MaxConnWaitTimeout:        opts.DialTimeout,
		MaxIdleConnDuration:       idleConnTimeout,
		ReadTimeout:               opts.ResponseHeaderTimeout,
		MaxResponseBodySize:       int(opts.MaxResponseBody),
		MaxIdemponentCallAttempts: 1,
		NoDefaultUserAgentHeader:  true,
		DisablePathNormalizing:    true,     // forward the path as the client wrote it
		ReadBufferSize:            64 << 10, // also the limit of an answer's head, as large as a Go backend may send
		WriteBufferSize:           8 << 10,
	}
	if c.IsTLS {
		c.TLSConfig = tlsConfig
	}
	return c
}

// backendAtFault reports whether a failed attempt says something about the
// backend's health: not an answer over the gateway's own limits, nor a
// backend merely busy with all its connections.
func backendAtFault(err error) bool {
	return !overLimit(err) && !errors.Is(err, fasthttp.ErrNoFreeConns)
}

// overLimit reports whether the answer broke the gateway's size limits:
// another backend would send the same.
func overLimit(err error) bool {
	var small *fasthttp.ErrSmallBuffer
	return errors.Is(err, fasthttp.ErrBodyTooLarge) || errors.As(err, &small)
}

// sentNothing reports whether err means the request never reached the
// backend: no connection (the gateway's own Dial marks every failure,
// timeouts and TLS handshakes included), or none free in time.
func sentNothing(err error) bool {
	var de *dialError
	return errors.As(err, &de) || errors.Is(err, fasthttp.ErrNoFreeConns)
}

// timedOut reports whether err is a deadline passing.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout()
}
