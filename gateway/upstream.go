package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// errStaleConn is a keep-alive connection found closed (or sending unasked)
// before a request was written on it: nothing was sent, so any request,
// even one that may not run twice, goes out again on another connection.
var errStaleConn = errors.New("gateway: idle backend connection was closed")

// dialError marks a failure to connect: the request never left the gateway.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial backend: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// idleConnTimeout is how long a keep-alive connection to a backend may stay
// idle: below serve's 120 s, so the gateway closes first.
const idleConnTimeout = 90 * time.Second

// newUpstream returns the client of one backend: fasthttp's HostClient,
// which writes the request and reads the answer on the calling goroutine
// over a pool of keep-alive connections (no goroutine handoff per request,
// as net/http's Transport needs). It retries nothing itself except a
// request that found its pooled connection dead before sending (the
// gateway's retries choose another backend and spend the retry budget).
func newUpstream(u *url.URL, opts *Options, dialer *net.Dialer) *fasthttp.HostClient {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	tlsConfig := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	c := &fasthttp.HostClient{
		Addr:  net.JoinHostPort(u.Hostname(), port),
		IsTLS: u.Scheme == "https",
		Dial: func(addr string) (net.Conn, error) {
			nc, err := dialer.Dial("tcp", addr)
			if err != nil {
				return nil, &dialError{err}
			}
			if u.Scheme == "https" {
				// The handshake belongs to the dial: a backend that cannot
				// complete it never received the request, which may then go
				// to another backend whatever its method. (TLS may also send
				// unasked records on an idle connection, which a peek would
				// take for a dead one: no peekConn here.)
				tc := tls.Client(nc, tlsConfig)
				ctx, cancel := context.WithTimeout(context.Background(), opts.DialTimeout)
				defer cancel()
				if err := tc.HandshakeContext(ctx); err != nil {
					nc.Close()
					return nil, &dialError{err}
				}
				return tc, nil
			}
			return &peekConn{Conn: nc}, nil
		},
		MaxConns:                  opts.MaxConnsPerBackend,
		MaxConnWaitTimeout:        opts.DialTimeout,
		MaxIdleConnDuration:       idleConnTimeout,
		ReadTimeout:               opts.ResponseHeaderTimeout,
		MaxResponseBodySize:       int(opts.MaxResponseBody),
		MaxIdemponentCallAttempts: 1 << 20, // RetryIfErr decides, and only retries stale connections
		RetryIfErr:                retryStale,
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

// retryStale lets HostClient retry a request on a fresh connection only
// when the pooled one was found dead before anything was written on it.
// Each such retry closes one dead connection, so a pool emptied by a
// restarting backend drains without a request failing.
func retryStale(_ *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	return false, errors.Is(err, errStaleConn)
}

// peekConn checks, before the first write of each request on a reused
// connection, that the backend has not closed it meanwhile (a restarting
// instance closes its idle connections): one non-blocking peek instead of
// a request lost on a dead connection, which a request that may not run
// twice could not survive.
type peekConn struct {
	net.Conn
	// Both are touched only by the goroutine holding the connection;
	// the pool's lock orders one holder after the next.
	used    bool // a response was read: the next write starts a request on a reused connection
	writing bool
}

func (c *peekConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.used = true
	c.writing = false
	return n, err
}

func (c *peekConn) Write(p []byte) (int, error) {
	if !c.writing {
		c.writing = true
		if c.used && !alive(c.Conn) {
			return 0, errStaleConn
		}
	}
	return c.Conn.Write(p)
}

// alive reports whether an idle keep-alive connection is still usable: the
// backend has neither closed it nor sent anything unasked.
func alive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	return peekQuiet(raw)
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
// timeouts and TLS handshakes included), a pooled one found dead, or none
// free in time.
func sentNothing(err error) bool {
	var de *dialError
	return errors.As(err, &de) || errors.Is(err, errStaleConn) || errors.Is(err, fasthttp.ErrNoFreeConns)
}

// timedOut reports whether err is a deadline passing.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout()
}
