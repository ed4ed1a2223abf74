package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// h1pool sends body-less requests to one plain-http backend over its own
// keep-alive connections, on the handler's goroutine: write the request,
// read the response head, hand the body back. http.Transport runs two
// goroutines per connection and passes every request and response between
// them and the caller over channels; under load those handoffs and their
// selects were the largest cost of an attempt after the system calls.
// Requests with a body (where a backend may answer before reading it all,
// which needs reading and writing at once) and https backends still go
// through http.Transport.
type h1pool struct {
	addr          string // host:port to dial
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle       int
	idleTimeout   time.Duration
	headerTimeout time.Duration

	mu     sync.Mutex
	idle   []*h1conn // most recently used last
	closed bool
}

type h1conn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

// aLongTimeAgo is a deadline in the past: setting it makes blocked I/O on
// a connection return at once.
var aLongTimeAgo = time.Unix(1, 0)

func newH1Pool(u *url.URL, dial func(ctx context.Context, network, addr string) (net.Conn, error),
	maxIdle int, idleTimeout, headerTimeout time.Duration) *h1pool {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return &h1pool{addr: net.JoinHostPort(u.Hostname(), port), dial: dial, maxIdle: maxIdle,
		idleTimeout: idleTimeout, headerTimeout: headerTimeout}
}

// get returns an idle connection, or nil.
func (p *h1pool) get(now time.Time) *h1conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(c.idleAt) < p.idleTimeout {
			return c
		}
		c.nc.Close() // idle too long: the backend may be about to close it
	}
	return nil
}

// put returns c to the pool. The least recently used connections, at the
// bottom, are closed once idle too long, so a burst's surplus does not
// linger until the backend closes it.
func (p *h1pool) put(c *h1conn) {
	c.idleAt = time.Now()
	var stale []*h1conn
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && c.idleAt.Sub(p.idle[n].idleAt) >= p.idleTimeout {
		n++
	}
	if n > 0 {
		stale = append(stale, p.idle[:n]...)
		m := copy(p.idle, p.idle[n:])
		clear(p.idle[m:])
		p.idle = p.idle[:m]
	}
	keep := !p.closed && len(p.idle) < p.maxIdle
	if keep {
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	if !keep {
		c.nc.Close()
	}
	for _, s := range stale {
		s.nc.Close()
	}
}

// close closes the idle connections; with forever, also those that come
// back later (the backend left the list).
func (p *h1pool) close(forever bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if forever {
		p.closed = true
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// replayable mirrors http.Transport: a request that failed on a reused
// connection before any answer came is sent again on a new one only when
// running it twice is harmless.
func replayable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, ok := r.Header["Idempotency-Key"]
	return ok
}

// errNothingReceived is a reused connection closing before any answer: the
// backend closed it while it was idle.
var errNothingReceived = errors.New("backend closed the connection before answering")

// roundTrip sends req, whose body is empty, and returns the response head;
// the body returns the connection to the pool once read to its end and
// closed. sent is set once the request is being written. Nothing is read
// after the deadline; the context's end (the client leaving) aborts too.
func (p *h1pool) roundTrip(req *http.Request, sent *atomic.Bool, deadline time.Time) (*http.Response, error) {
	ctx := req.Context()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !time.Now().Before(deadline) {
			return nil, os.ErrDeadlineExceeded
		}
		c := p.get(time.Now())
		// A request that may not be sent twice must not find out on its own
		// that the backend closed the connection while idle (a restart
		// closes them all): check first. A replayable one just tries, and
		// on a closed one is sent again on a new connection, which is cheaper.
		for c != nil && !replayable(req) && !alive(c.nc) {
			c.nc.Close()
			c = p.get(time.Now())
		}
		reused := c != nil
		if c == nil {
			dctx, cancel := context.WithDeadline(ctx, deadline)
			nc, err := p.dial(dctx, "tcp", p.addr)
			cancel()
			if err != nil {
				return nil, err
			}
			c = &h1conn{nc: nc, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 4<<10)}
		}
		resp, err := p.exchange(ctx, c, req, sent, deadline)
		if err == nil {
			return resp, nil
		}
		c.nc.Close()
		if reused && errors.Is(err, errNothingReceived) && replayable(req) && ctx.Err() == nil && time.Now().Before(deadline) {
			continue // the backend closed it while idle: try a fresh connection
		}
		if ctx.Err() != nil {
			return nil, errors.Join(ctx.Err(), err)
		}
		return nil, err
	}
}

func (p *h1pool) exchange(ctx context.Context, c *h1conn, req *http.Request, sent *atomic.Bool, deadline time.Time) (*http.Response, error) {
	nc := c.nc
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		return nil, err
	}
	sent.Store(true)
	if err := req.Write(c.bw); err != nil {
		return fail(errors.Join(errNothingReceived, err))
	}
	if err := c.bw.Flush(); err != nil {
		return fail(errors.Join(errNothingReceived, err))
	}
	// No write deadline: a body-less request fits in the socket buffer, and
	// the context's end aborts a write anyway.
	headerBy, capped := deadline, false
	if p.headerTimeout > 0 {
		if t := time.Now().Add(p.headerTimeout); t.Before(headerBy) {
			headerBy, capped = t, true
		}
	}
	_ = nc.SetReadDeadline(headerBy)
	if _, err := c.br.Peek(1); err != nil {
		if err == io.EOF || errors.Is(err, net.ErrClosed) || isConnReset(err) {
			err = errors.Join(errNothingReceived, err)
		}
		return fail(err)
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		// Interim answers (100 Continue, 103 Early Hints) come before the
		// real one; 101 would switch protocols, which the gateway does not
		// proxy, so it ends the exchange like any final answer.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		break
	}
	// The body is read until the request's deadline. A small body already
	// in the buffer will not read the connection again, so the header
	// deadline may stay (the next exchange sets its own): one timer change
	// less.
	if capped && (resp.ContentLength < 0 || int64(c.br.Buffered()) < resp.ContentLength) {
		_ = nc.SetReadDeadline(deadline)
	}
	b := &h1body{rc: resp.Body, c: c, p: p, stop: stop, reuse: !resp.Close}
	if resp.Body == http.NoBody {
		b.eof = true
	}
	resp.Body = b
	return resp, nil
}

func isConnReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// h1body hands the connection back once the body was read to its end.
type h1body struct {
	rc     io.ReadCloser
	c      *h1conn
	p      *h1pool
	stop   func() bool
	eof    bool
	reuse  bool
	closed bool
}

func (b *h1body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.reuse = false
	}
	return n, err
}

// Close returns the connection to the pool after a body read to its end,
// else closes it: the rest of the body is never drained (it may be an
// endless stream).
func (b *h1body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	// stop reports false when the context ended and the deadline was set:
	// the connection is unusable then, whatever was read.
	live := b.stop()
	if b.eof && b.reuse && live && b.rc.Close() == nil && b.c.br.Buffered() == 0 {
		b.p.put(b.c)
		return nil
	}
	return b.c.nc.Close()
}
