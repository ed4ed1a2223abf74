package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/millionshop/million/ratelimit"
	"github.com/millionshop/million/web"
)

// The public server runs on event loops (gnet): each loop owns its client
// connections and its own keep-alive pools to the backends, and reads a
// socket only when epoll reports it readable. Go's netpoller reads first
// and waits on EAGAIN, and a goroutine per connection adds scheduler
// wake-ups; on a proxy, whose own work per request is a few header edits,
// those system calls and switches were more than half its CPU. A request
// and its answer are parsed by fasthttp's header and body readers and read
// whole, as before (MaxRequestBody, MaxResponseBody): every request can be
// replayed on another backend, and every answer is complete before the
// client sees its status.
//
// Nothing on a loop blocks. What may (a TLS backend, a rate limit kept in
// Redis) runs on a goroutine and hands its result back to the loop.

// loopTick is how often each loop checks its deadlines: timeouts fire up to
// this much late.
const loopTick = 50 * time.Millisecond

// maxRequestHead is the largest request head the gateway reads (431
// beyond); maxResponseHead a backend's answer's (a failed attempt beyond),
// as large as a Go backend may send.
const (
	maxRequestHead  = 32 << 10
	maxResponseHead = 64 << 10
)

// clientIdleTimeout is how long a client's keep-alive connection may stay
// idle between requests.
const clientIdleTimeout = 120 * time.Second

// maxUnsent is how much of its answers a client may leave unread before
// the gateway stops reading its next requests.
const maxUnsent = 1 << 20

// errClosedMidAnswer is a backend closing its connection before its answer
// was complete.
var errClosedMidAnswer = errors.New("gateway: backend closed the connection before its answer was complete")

// errNotRegistered is a dialled connection the event loop did not take.
var errNotRegistered = errors.New("gateway: the event loop did not register the connection")

// errUnasked is a backend sending bytes on an idle connection.
var errUnasked = errors.New("gateway: backend sent data nobody asked for")

// Server is the gateway's public listener. Create it with Gateway.Listen;
// Shutdown drains it.
type Server struct {
	g        *Gateway
	eng      gnet.Engine
	addr     net.Addr
	booted   chan struct{}
	stopped  chan struct{}
	runErr   error
	draining atomic.Bool
	clients  atomic.Int64 // open client connections

	mu    sync.Mutex
	loops map[gnet.EventLoop]*loopState
}

// Listen starts the public server on addr (host:port; port 0 picks one)
// with one event loop per GOMAXPROCS.
func (g *Gateway) Listen(addr string) (*Server, error) {
	s := &Server{g: g, booted: make(chan struct{}), stopped: make(chan struct{}), loops: map[gnet.EventLoop]*loopState{}}
	go func() {
		defer close(s.stopped)
		s.runErr = gnet.Run(&handler{s: s}, "tcp://"+addr,
			gnet.WithMulticore(true), gnet.WithNumEventLoop(runtime.GOMAXPROCS(0)),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithTicker(true),
			gnet.WithLogger(gnetLogger{g}))
	}()
	select {
	case <-s.booted:
		return s, nil
	case <-s.stopped:
		if s.runErr == nil {
			s.runErr = errors.New("gateway: the server stopped before it started")
		}
		return nil, fmt.Errorf("listen on %s: %w", addr, s.runErr)
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Done is closed when the server has stopped; Err then tells why.
func (s *Server) Done() <-chan struct{} { return s.stopped }

// Err is why the server stopped (nil after Shutdown).
func (s *Server) Err() error {
	select {
	case <-s.stopped:
		if s.draining.Load() {
			return nil
		}
		return s.runErr
	default:
		return nil
	}
}

// Shutdown drains the server: idle connections close at once, the others
// after their request's answer (which says Connection: close), new
// connections are closed as they arrive; then, or when ctx ends, the loops
// stop and every connection closes.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.each(func(ls *loopState) { ls.closeIdleClients() })
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	var err error
wait:
	for s.clients.Load() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-s.stopped:
			return s.runErr
		case <-t.C:
		}
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if serr := s.eng.Stop(stopCtx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
		err = errors.Join(err, serr)
	}
	<-s.stopped
	return err
}

// each runs f on every loop, on that loop.
func (s *Server) each(f func(*loopState)) {
	s.mu.Lock()
	loops := make([]*loopState, 0, len(s.loops))
	for _, ls := range s.loops {
		loops = append(loops, ls)
	}
	s.mu.Unlock()
	for _, ls := range loops {
		_ = ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			f(ls)
			return nil
		}))
	}
}

// handler is the server's gnet event handler, kept off Server's API.
type handler struct {
	gnet.BuiltinEventEngine
	s *Server
}

// OnBoot learns the listening address (port 0 picks one).
func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	s := h.s
	s.eng = eng
	fd, err := eng.Dup()
	if err != nil {
		s.runErr = err
		return gnet.Shutdown
	}
	sa, err := unix.Getsockname(fd)
	_ = unix.Close(fd)
	if err != nil {
		s.runErr = err
		return gnet.Shutdown
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		s.addr = &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		s.addr = &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	close(s.booted)
	return gnet.None
}

// OnTick runs each loop's deadline checks on that loop.
func (h *handler) OnTick() (time.Duration, gnet.Action) {
	h.s.each(func(ls *loopState) { ls.sweep(time.Now()) })
	return loopTick, gnet.None
}

// loopOf returns el's state, made on its first connection.
func (s *Server) loopOf(el gnet.EventLoop) *loopState {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.loops[el]
	if ls == nil {
		ls = &loopState{s: s, g: s.g, el: el, clients: map[*clientConn]struct{}{}, pools: map[*backend]*pool{},
			br: bufio.NewReaderSize(nil, maxResponseHead), bw: bufio.NewWriterSize(nil, 8<<10)}
		s.loops[el] = ls
	}
	return ls
}

// OnOpen takes a client's new connection, or a backend connection this
// loop dialled.
func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	s := h.s
	if bc, ok := c.Context().(*backendConn); ok {
		bc.c = c
		bc.pool.ls.opened(bc)
		return nil, gnet.None
	}
	if s.draining.Load() {
		// As a closed listener would: the client tries elsewhere or again.
		return nil, gnet.Close
	}
	ls := s.loopOf(c.EventLoop())
	cc := &clientConn{c: c, ls: ls, lastActive: time.Now()}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		cc.ip = a.IP.String()
	} else if c.RemoteAddr() != nil {
		cc.ip = c.RemoteAddr().String()
	}
	c.SetContext(cc)
	ls.clients[cc] = struct{}{}
	s.clients.Add(1)
	return nil, gnet.None
}

// OnClose forgets a closed connection; an exchange still running for a
// client that left finishes without an answer to write.
func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	s := h.s
	switch x := c.Context().(type) {
	case *clientConn:
		x.closed = true
		delete(x.ls.clients, x)
		s.clients.Add(-1)
	case *backendConn:
		x.pool.ls.backendClosed(x, err)
	}
	return gnet.None
}

// OnTraffic reads what a connection received.
func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	switch x := c.Context().(type) {
	case *clientConn:
		x.ls.takeClientInput(x)
		x.ls.readClient(x)
	case *backendConn:
		x.pool.ls.readBackend(x)
	}
	return gnet.None
}

// gnetLogger sends the event loops' own messages to the gateway's log
// (gnet's logging.Logger; its info goes to debug, as fasthttp's did).
type gnetLogger struct{ g *Gateway }

func (l gnetLogger) Debugf(format string, args ...any) {
	l.g.logger.Debug("event loop", "message", fmt.Sprintf(format, args...))
}
func (l gnetLogger) Infof(format string, args ...any) {
	l.g.logger.Debug("event loop", "message", fmt.Sprintf(format, args...))
}
func (l gnetLogger) Warnf(format string, args ...any) {
	l.g.logger.Warn("event loop", "message", fmt.Sprintf(format, args...))
}
func (l gnetLogger) Errorf(format string, args ...any) {
	l.g.logger.Error("event loop", "message", fmt.Sprintf(format, args...))
}
func (l gnetLogger) Fatalf(format string, args ...any) {
	l.g.logger.Error("event loop", "message", fmt.Sprintf(format, args...))
}

// loopState is what one event loop owns; only that loop touches it.
type loopState struct {
	s       *Server
	g       *Gateway
	el      gnet.EventLoop
	clients map[*clientConn]struct{}
	pools   map[*backend]*pool
	rd      bytes.Reader
	br      *bufio.Reader
	bw      *bufio.Writer
	out     bytes.Buffer
	free    []*exchange
}

// encode serializes a request or an answer into the loop's buffer, to be
// written to a connection in one call; the bytes are valid until the next
// encode.
func (ls *loopState) encode(m interface{ Write(*bufio.Writer) error }) ([]byte, error) {
	ls.out.Reset()
	ls.bw.Reset(&ls.out)
	if err := m.Write(ls.bw); err != nil {
		return nil, err
	}
	if err := ls.bw.Flush(); err != nil {
		return nil, err
	}
	return ls.out.Bytes(), nil
}

// reader returns the loop's reader over b.
func (ls *loopState) reader(b []byte) *bufio.Reader {
	ls.rd.Reset(b)
	ls.br.Reset(&ls.rd)
	return ls.br
}

// clientConn is a client's connection and the request being read or
// answered on it (one at a time: pipelined requests wait their turn).
type clientConn struct {
	c          gnet.Conn
	ls         *loopState
	ip         string
	x          *exchange // being answered
	in         []byte    // received; in[off:] not yet read as a request
	off        int
	reading    bool      // readClient is running for it
	served     bool      // a request was read
	writing    time.Time // since when answers wait to be sent; zero when none
	closed     bool
	closing    bool // answered its last request
	lastActive time.Time

	// The request being read.
	next      *exchange
	readStart time.Time // first byte of the request
	headLen   int       // 0 until the head is parsed
	bodyStart time.Time
	need      int // bytes of the whole request once known; -1 chunked, scanning from scan
	scan      int
}

// exchange is one request from a client and its answer.
type exchange struct {
	req  fasthttp.Request
	resp fasthttp.Response
	exchangeState
}

// exchangeState is an exchange's state but its messages, which keep their
// buffers from one request to the next.
type exchangeState struct {
	cc          *clientConn
	st          reqState
	start       time.Time
	path        string // for the access log
	deadline    time.Time
	idem        bool
	target      target
	triedBuf    [4]*backend
	tried       []*backend
	be          *backend
	attempt     time.Time
	freshOnly   bool // the last attempt found a pooled connection closed: use a new one
	limited     bool
	decision    ratelimit.Decision
	closeConn   bool // the client asked to close after this answer
	fromBackend bool // the answer is a backend's
}

// takeClientInput moves what arrived on cc into its own buffer. A client
// may send its next requests while one is answered (pipelining), up to
// about one more request of the largest size; beyond that it is closed,
// since the loop reads everything the socket has.
func (ls *loopState) takeClientInput(cc *clientConn) {
	data, _ := cc.c.Next(-1)
	if cc.closing {
		return // nothing more is read on it
	}
	if cc.off > 0 && cc.off >= len(cc.in)/2 {
		// Compact once half is read: each byte moves a bounded number of
		// times however many requests are pipelined.
		cc.in = append(cc.in[:0], cc.in[cc.off:]...)
		cc.off = 0
	}
	cc.in = append(cc.in, data...)
	if int64(len(cc.in)-cc.off) > maxRequestHead+ls.g.opts.MaxRequestBody+chunkSlack {
		// More than the largest request unread: held back (an answer in
		// progress, or answers the client leaves unread) or too large,
		// which readClient answers first.
		if cc.x != nil || cc.c.OutboundBuffered() > maxUnsent {
			// Closed now, answers unsent: waiting for them would let it
			// keep sending.
			cc.closing = true
			_ = cc.c.Close()
		}
	}
}

// readClient reads the requests in cc's buffer, one at a time. It stops
// while the client leaves its answers unread (the sweep resumes it).
func (ls *loopState) readClient(cc *clientConn) {
	cc.reading = true
	defer func() { cc.reading = false }()
	for cc.x == nil && !cc.closing && !cc.closed && cc.c.OutboundBuffered() <= maxUnsent {
		buf := cc.in[cc.off:]
		n := len(buf)
		if n == 0 {
			cc.in, cc.off = cc.in[:0], 0
			if cap(cc.in) > maxRequestHead {
				cc.in = nil // after a large body
			}
			return
		}
		now := time.Now()
		cc.lastActive = now
		if cc.readStart.IsZero() {
			cc.readStart = now
		}
		if cc.next == nil {
			cc.next = ls.newExchange(cc)
		}
		x := cc.next
		if cc.headLen == 0 {
			end := headEnd(buf)
			if end < 0 {
				if n > maxRequestHead {
					ls.refuse(cc, &fasthttp.ErrSmallBuffer{})
				}
				return
			}
			if end > maxRequestHead {
				ls.refuse(cc, &fasthttp.ErrSmallBuffer{})
				return
			}
			if err := x.req.Header.Read(ls.reader(buf[:end])); err != nil {
				ls.refuse(cc, err)
				return
			}
			cc.headLen, cc.bodyStart = end, now
			switch cl := x.req.Header.ContentLength(); {
			case cl > int(ls.g.opts.MaxRequestBody):
				ls.refuse(cc, fasthttp.ErrBodyTooLarge)
				return
			case cl >= 0:
				cc.need = end + cl
			case cl == -1:
				cc.need, cc.scan = -1, end
			default: // a request has no body without a length
				cc.need = end
			}
			if x.req.MayContinue() && (cc.need == -1 || n < cc.need) {
				_, _ = cc.c.Write(continueLine)
			}
		}
		if cc.need < 0 {
			next, done, err := scanChunks(buf, cc.scan)
			if err != nil {
				ls.refuse(cc, err)
				return
			}
			cc.scan = next
			if !done {
				if int64(n-cc.headLen) > ls.g.opts.MaxRequestBody+chunkSlack {
					ls.refuse(cc, fasthttp.ErrBodyTooLarge)
				}
				return
			}
			cc.need = next
		}
		if n < cc.need {
			return
		}
		if err := x.req.ContinueReadBody(ls.reader(buf[cc.headLen:cc.need]), int(ls.g.opts.MaxRequestBody), false); err != nil {
			ls.refuse(cc, err)
			return
		}
		cc.off += cc.need
		cc.served = true
		cc.next, cc.readStart, cc.headLen, cc.need, cc.scan = nil, time.Time{}, 0, 0, 0
		cc.x = x
		ls.begin(x)
	}
}

// continueLine answers Expect: 100-continue: the gateway reads bodies
// whole, so it asks for the body before choosing a backend.
var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// chunkSlack is what chunk framing may add to a body's size.
const chunkSlack = 64 << 10

// refuse answers what could not be read as a request, as badRequest did
// for fasthttp's server, and closes the connection: the rest of it is
// unread.
func (ls *loopState) refuse(cc *clientConn, err error) {
	x := cc.next
	if x == nil {
		x = ls.newExchange(cc)
	}
	cc.next = nil
	cc.x = x
	x.resp.Reset()
	ls.g.badRequest(x, err)
	x.closeConn = true
	ls.write(x)
}

// newExchange returns a reset exchange for cc.
func (ls *loopState) newExchange(cc *clientConn) *exchange {
	var x *exchange
	if n := len(ls.free); n > 0 {
		x = ls.free[n-1]
		ls.free = ls.free[:n-1]
	} else {
		x = &exchange{}
	}
	x.cc = cc
	return x
}

// recycle returns x to the loop's free list.
func (ls *loopState) recycle(x *exchange) {
	x.req.Reset()
	x.resp.Reset()
	x.exchangeState = exchangeState{}
	ls.free = append(ls.free, x)
}

// begin starts the gateway's work on a request that was read: its ID,
// rate limits, the proxy.
func (ls *loopState) begin(x *exchange) {
	g := ls.g
	if g.opts.AccessLog {
		x.start = time.Now()
		x.path = string(x.req.URI().PathOriginal())
	}
	x.st = reqState{ip: g.clientIP(x)}
	// HTTP/1.0 keeps a connection only when asked to.
	x.closeConn = x.req.Header.ConnectionClose() ||
		!x.req.Header.IsHTTP11() && !bytes.EqualFold(x.req.Header.Peek("Connection"), []byte("keep-alive"))
	if v := x.req.Header.Peek(hdrRequestID); len(v) > 0 && web.ValidRequestID(unsafeString(v)) {
		x.st.id = string(v)
	} else {
		x.st.id = web.NewRequestID()
	}
	if p := string(x.req.Header.Protocol()); p != "HTTP/1.1" && p != "HTTP/1.0" {
		x.closeConn = true
		g.problem(x, http.StatusHTTPVersionNotSupported, "http_version_not_supported", "the gateway speaks HTTP/1.1 and HTTP/1.0")
		ls.finish(x)
		return
	}
	if !g.opts.RateLimit.Enabled() || g.exempt(x) {
		ls.startProxy(x)
		return
	}
	subject := ""
	if g.opts.Subject != nil && g.opts.RateLimit.PerUser.Enabled() {
		if token := ratelimit.BearerToken(string(x.req.Header.Peek(hdrAuthorization))); token != "" {
			subject = g.opts.Subject(token)
		}
	}
	if g.localLimits {
		x.decision, x.limited = g.opts.RateLimit.Check(context.Background(), x.st.ip, subject)
		ls.afterLimit(x)
		return
	}
	go func() {
		x.decision, x.limited = g.opts.RateLimit.Check(context.Background(), x.st.ip, subject)
		ls.onLoop(func() { ls.afterLimit(x) })
	}()
}

// onLoop runs f on the loop.
func (ls *loopState) onLoop(f func()) {
	err := ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		f()
		return nil
	}))
	if err != nil {
		ls.g.logger.Error("event loop refused work; a request is dropped", "error", err.Error())
	}
}

// afterLimit refuses a request over its limit, or proxies it.
func (ls *loopState) afterLimit(x *exchange) {
	if x.cc.closed {
		ls.done(x)
		return
	}
	if x.limited && !x.decision.Allowed {
		ls.g.metrics.gwErrors.WithLabelValues("rate_limited").Inc()
		ls.g.writeError(x, x.decision.Refusal())
		ls.finish(x)
		return
	}
	ls.startProxy(x)
}

// startProxy begins the attempts of proxy(): the first backend.
func (ls *loopState) startProxy(x *exchange) {
	g := ls.g
	g.budget.request()
	x.deadline = time.Now().Add(g.opts.RequestTimeout)
	x.idem = g.idempotent(&x.req)
	x.target = g.forward(x)
	x.tried = x.triedBuf[:0]
	be := g.pick(x.st.ip, nil)
	if be == nil {
		ls.noBackend(x)
		return
	}
	ls.attempt(x, be)
}

// attempt sends x to be: on this loop over a pooled connection, or, for a
// TLS backend, on a goroutine with fasthttp's client.
func (ls *loopState) attempt(x *exchange, be *backend) {
	x.tried = append(x.tried, be)
	x.be = be
	x.st.backend, x.st.attempts = be.key, len(x.tried)
	u := x.req.URI()
	u.DisablePathNormalizing = true // forward the path as the client wrote it
	t := &x.target
	if be.prefix != "" || t.prefixed {
		if t.path == nil {
			t.path = append([]byte(nil), u.PathOriginal()...)
		}
		u.SetPathBytes(append([]byte(be.prefix), t.path...))
		t.prefixed = be.prefix != ""
	}
	u.SetSchemeBytes(be.scheme)
	u.SetHostBytes(be.host)
	x.resp.Reset()
	x.resp.Header.SetNoDefaultContentType(true)
	be.inFlight.Add(1)
	be.requests.Add(1)
	be.metrics.addInFlight(1)
	x.attempt = time.Now()
	if be.client != nil {
		go func() {
			err := be.client.DoDeadline(&x.req, &x.resp, x.deadline)
			ls.onLoop(func() { ls.attemptDone(x, err) })
		}()
		return
	}
	ls.pool(be).send(x)
}

// attemptDone is the end of one attempt: its metrics and passive health,
// then another attempt or the answer.
func (ls *loopState) attemptDone(x *exchange, err error) {
	g := ls.g
	be := x.be
	bm := be.metrics
	bm.observeDuration(time.Since(x.attempt).Seconds())
	be.inFlight.Add(-1)
	bm.addInFlight(-1)
	var aerr *attemptErr
	if err != nil {
		bm.request(classError).Inc()
		if backendAtFault(err) {
			g.observe(be, true)
		}
		sent := !sentNothing(err)
		g.logger.Warn("backend attempt failed", "backend", be.key, "error", err.Error(), "sent", sent, "request_id", x.st.id)
		aerr = &attemptErr{err: err, sent: sent, timeout: timedOut(err)}
	} else {
		bm.request(statusClassIndex(x.resp.StatusCode())).Inc()
		g.observe(be, failedAnswer(&x.resp))
	}
	if x.cc.closed {
		// Nobody waits for the answer: no retry either, but the access
		// log has it.
		ls.finish(x)
		return
	}
	if next, ok := g.nextAttempt(x, aerr); ok {
		ls.attempt(x, next)
		return
	}
	ls.finish(x)
}

// repick takes back x's attempt on a backend taken out of the list before
// the request went out, which is neither the backend's failure nor an
// attempt, and tries one still in the list.
func (ls *loopState) repick(x *exchange) {
	x.be.inFlight.Add(-1)
	x.be.metrics.addInFlight(-1)
	x.tried = x.tried[:len(x.tried)-1]
	if next := ls.g.pick(x.st.ip, x.tried); next != nil && !x.cc.closed {
		ls.attempt(x, next)
		return
	}
	ls.noBackend(x)
}

// noBackend answers x when there is no backend to send it to.
func (ls *loopState) noBackend(x *exchange) {
	x.resp.Reset()
	x.resp.Header.Set("Retry-After", "1")
	ls.g.problem(x, http.StatusServiceUnavailable, "no_backend", "no backend is configured")
	ls.finish(x)
}

// finish completes x: the gateway's fields on the answer, the access log,
// the answer written.
func (ls *loopState) finish(x *exchange) {
	g := ls.g
	x.target.restore(&x.req)
	if x.fromBackend {
		if x.limited {
			// The backend's own limits, when it sends them, are the tighter.
			h := &x.resp.Header
			if len(h.Peek("Ratelimit-Limit")) == 0 {
				limit, remaining, reset := x.decision.Headers()
				h.Set("RateLimit-Limit", limit)
				h.Set("RateLimit-Remaining", remaining)
				h.Set("RateLimit-Reset", reset)
			}
		}
		x.resp.Header.Set(hdrRequestID, x.st.id)
	}
	if g.opts.AccessLog {
		g.logger.Info("request", "method", string(x.req.Header.Method()), "path", x.path,
			"status", x.resp.StatusCode(), "duration_ms", float64(time.Since(x.start).Microseconds())/1000,
			"backend", x.st.backend, "attempts", x.st.attempts, "client_ip", x.st.ip, "request_id", x.st.id)
	}
	ls.write(x)
}

// write sends x's answer to its client, and reads the client's next
// request.
func (ls *loopState) write(x *exchange) {
	cc := x.cc
	if cc.closed {
		ls.done(x)
		return
	}
	if x.closeConn || ls.s.draining.Load() {
		x.resp.SetConnectionClose()
		cc.closing = true
	} else if !x.req.Header.IsHTTP11() {
		x.resp.Header.Set("Connection", "keep-alive") // an HTTP/1.0 client asked for it
	}
	x.resp.SkipBody = x.req.Header.IsHead()
	if b, err := ls.encode(&x.resp); err == nil {
		_, _ = cc.c.Write(b)
	} else {
		cc.closing = true
	}
	now := time.Now()
	cc.lastActive = now
	if cc.writing.IsZero() && cc.c.OutboundBuffered() > 0 {
		cc.writing = now
	}
	ls.done(x)
	if cc.closing {
		ls.closeWhenSent(cc, now)
		return
	}
	if !cc.reading {
		// An answer that came from a backend: the client's next request
		// may be waiting. (An answer made while reading returns to
		// readClient's loop instead of calling it again.)
		ls.readClient(cc)
	}
}

// closeWhenSent closes cc once its answers have left: gnet's close gives
// what is still queued one write, which a large answer may need more of.
func (ls *loopState) closeWhenSent(cc *clientConn, now time.Time) {
	cc.closing = true
	if cc.c.OutboundBuffered() == 0 {
		_ = cc.c.Close()
		return
	}
	if cc.writing.IsZero() {
		cc.writing = now
	}
}

// done releases x from its client connection.
func (ls *loopState) done(x *exchange) {
	if x.cc.x == x {
		x.cc.x = nil
	}
	ls.recycle(x)
}

// closeIdleClients closes the connections between requests (draining).
func (ls *loopState) closeIdleClients() {
	for cc := range ls.clients {
		if cc.x == nil && cc.next == nil && len(cc.in) == cc.off {
			ls.closeWhenSent(cc, time.Now())
		}
	}
}

// sweep enforces the deadlines: a request's head and body, an idle client,
// an answer, a wait for a backend connection, an idle backend connection.
func (ls *loopState) sweep(now time.Time) {
	g := ls.g
	for cc := range ls.clients {
		if !cc.writing.IsZero() {
			switch {
			case cc.c.OutboundBuffered() == 0:
				cc.writing = time.Time{}
			case now.Sub(cc.writing) > g.opts.RequestTimeout+5*time.Second:
				// The client does not read its answers.
				cc.closing = true
				_ = cc.c.Close()
				continue
			}
		}
		switch {
		case cc.closing:
			if cc.c.OutboundBuffered() == 0 {
				_ = cc.c.Close()
			}
		case cc.x != nil:
		case len(cc.in) > cc.off && cc.readStart.IsZero() && !cc.reading:
			ls.readClient(cc) // held back while its answers were unread
		case !cc.readStart.IsZero():
			limit := cc.readStart.Add(headerTimeout)
			if cc.headLen > 0 && cc.need != cc.headLen {
				limit = cc.bodyStart.Add(g.opts.RequestTimeout)
			}
			if now.After(limit) {
				ls.refuse(cc, fasthttp.ErrTimeout)
			}
		case ls.s.draining.Load() || now.Sub(cc.lastActive) > clientIdleTimeout ||
			!cc.served && now.Sub(cc.lastActive) > headerTimeout: // a first request is due as soon as a next one
			ls.closeWhenSent(cc, now)
		}
	}
	for be, p := range ls.pools {
		p.sweep(now)
		if be.removed.Load() && p.open == 0 && len(p.waiting) == 0 {
			delete(ls.pools, be)
		}
	}
}

// pool returns the loop's connections to be.
func (ls *loopState) pool(be *backend) *pool {
	p := ls.pools[be]
	if p == nil {
		p = &pool{ls: ls, be: be, addr: hostPort(be.url), busy: map[*backendConn]struct{}{}}
		ls.pools[be] = p
	}
	return p
}

// pool is one loop's keep-alive connections to one backend.
type pool struct {
	ls        *loopState
	be        *backend
	addr      string
	open      int // connections open or being dialled
	dialing   int
	shedAsked time.Time // last asked the other loops for an idle connection
	idle      []*backendConn
	busy      map[*backendConn]struct{}
	waiting   []*exchange // for a connection, oldest first
	waitAt    []time.Time
}

// backendConn is a connection to a backend and the exchange it carries.
type backendConn struct {
	c          gnet.Conn
	pool       *pool
	x          *exchange
	used       bool // an answer was read on it: the next request reuses it
	reused     bool // the current request went out on a reused connection
	idleAt     time.Time
	deadline   time.Time
	in         []byte // the answer received so far
	headLen    int
	need       int // -1 chunked (scanning from scan), -2 until the backend closes
	scan       int
	got        bool  // bytes of the answer arrived
	closeAfter bool  // the answer's framing says not to reuse the connection
	writeErr   error // writing the request failed: nothing was sent
	closing    bool
}

// send gives x a connection: an idle one, a new one, or the next one freed.
func (p *pool) send(x *exchange) {
	if p.be.removed.Load() {
		p.ls.repick(x) // taken out of the list meanwhile
		return
	}
	if !x.freshOnly {
		for len(p.idle) > 0 {
			bc := p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
			if bc.closing {
				continue
			}
			if !x.idem && !quiet(bc.c) {
				// A request that may not run twice goes out only on a
				// connection the backend has not closed meanwhile.
				p.discard(bc)
				continue
			}
			p.write(bc, x)
			return
		}
	}
	p.waiting = append(p.waiting, x)
	p.waitAt = append(p.waitAt, time.Now())
	p.dialIfNeeded()
}

// dialIfNeeded opens a connection when requests wait for more than are
// being opened, within the backend's limit (shared by the loops).
func (p *pool) dialIfNeeded() {
	for len(p.waiting) > p.dialing && !p.be.removed.Load() {
		if p.be.conns.Add(1) > int64(p.ls.g.opts.MaxConnsPerBackend) {
			// At the limit: wait for a connection to be released, and
			// ask the other loops to close one they keep idle.
			p.be.conns.Add(-1)
			if now := time.Now(); now.Sub(p.shedAsked) > loopTick {
				p.shedAsked = now
				p.ls.s.shedIdle(p.ls, p.be)
			}
			return
		}
		p.dial()
	}
}

// shedIdle asks every loop but from to close one idle connection to be,
// which frees some of the backend's connection limit for from.
func (s *Server) shedIdle(from *loopState, be *backend) {
	s.each(func(ls *loopState) {
		if ls == from {
			return
		}
		if p := ls.pools[be]; p != nil && len(p.idle) > 0 {
			bc := p.idle[0]
			p.idle = p.idle[1:]
			p.discard(bc)
		}
	})
}

// quiet reports whether an idle connection is still usable: the backend
// has neither closed it nor sent anything unasked (one non-blocking peek).
func quiet(c gnet.Conn) bool {
	var buf [1]byte
	_, _, err := syscall.Recvfrom(c.Fd(), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
}

// dial opens a connection to the backend on a goroutine and enrolls it in
// the loop, which then hands it to the oldest waiting request (opened).
func (p *pool) dial() {
	p.open++
	p.dialing++
	bc := &backendConn{pool: p}
	ls := p.ls
	dialer := ls.g.dialer
	go func() {
		nc, err := dialer.Dial("tcp", p.addr)
		if err == nil {
			var res <-chan gnet.RegisteredResult
			res, err = ls.el.Enroll(gnet.NewContext(context.Background(), bc), nc)
			if err == nil {
				if r, ok := <-res; ok && r.Err != nil {
					err = r.Err
				}
			} else {
				nc.Close()
			}
		}
		if err != nil {
			ls.onLoop(func() { p.dialFailed(&dialError{err}) })
			return
		}
		// The loop registered the connection before Enroll's result came,
		// and called OnOpen unless registering failed.
		ls.onLoop(func() {
			if bc.c == nil {
				p.dialFailed(&dialError{errNotRegistered})
			}
		})
	}()
}

// dialFailed fails the oldest waiting request: it never left the gateway.
func (p *pool) dialFailed(err error) {
	p.open--
	p.dialing--
	p.be.conns.Add(-1)
	if len(p.waiting) == 0 {
		return
	}
	x := p.waiting[0]
	p.waiting, p.waitAt = p.waiting[1:], p.waitAt[1:]
	p.ls.attemptDone(x, err)
	p.dialIfNeeded() // for the others still waiting
}

// opened hands a new backend connection to the oldest waiting request.
func (ls *loopState) opened(bc *backendConn) {
	bc.pool.dialing--
	bc.pool.release(bc)
}

// release makes bc available: to the oldest waiting request, or idle.
func (p *pool) release(bc *backendConn) {
	if p.be.removed.Load() {
		p.discard(bc)
		p.repickWaiting()
		return
	}
	for i, x := range p.waiting {
		if bc.used && x.freshOnly {
			continue // it found a reused connection closed: a new one
		}
		if bc.used && !x.idem && !quiet(bc.c) {
			// As send does for a request that may not run twice.
			p.discard(bc)
			p.dialIfNeeded()
			return
		}
		p.waiting = slices.Delete(p.waiting, i, i+1)
		p.waitAt = slices.Delete(p.waitAt, i, i+1)
		p.write(bc, x)
		return
	}
	bc.idleAt = time.Now()
	p.idle = append(p.idle, bc)
}

// discard closes bc; the loop forgets it when it is closed.
func (p *pool) discard(bc *backendConn) {
	if !bc.closing {
		bc.closing = true
		_ = bc.c.Close()
	}
}

// write sends x's request on bc.
func (p *pool) write(bc *backendConn, x *exchange) {
	ls := p.ls
	p.busy[bc] = struct{}{}
	x.freshOnly = false
	bc.x, bc.reused, bc.got, bc.writeErr = x, bc.used, false, nil
	bc.headLen, bc.need, bc.scan, bc.in, bc.closeAfter = 0, 0, 0, bc.in[:0], false
	bc.deadline = x.attempt.Add(ls.g.opts.ResponseHeaderTimeout)
	if x.deadline.Before(bc.deadline) {
		bc.deadline = x.deadline
	}
	b, err := ls.encode(&x.req)
	if err != nil {
		bc.x = nil
		delete(p.busy, bc)
		p.release(bc)
		ls.attemptDone(x, &dialError{fmt.Errorf("write request: %w", err)})
		return
	}
	if _, err := bc.c.Write(b); err != nil {
		bc.writeErr = err // gnet closes it; nothing went out (backendClosed)
	}
}

// readBackend reads the answer on bc.
func (ls *loopState) readBackend(bc *backendConn) {
	data, _ := bc.c.Next(-1)
	if len(data) == 0 || bc.closing {
		return
	}
	x := bc.x
	if x == nil {
		ls.g.logger.Debug("backend sent data on an idle connection", "backend", bc.pool.be.key, "error", errUnasked.Error())
		bc.pool.removeIdle(bc)
		bc.pool.discard(bc)
		return
	}
	bc.got = true
	bc.in = append(bc.in, data...)
	complete, err := ls.parseAnswer(bc, x, false)
	if err != nil {
		ls.failAttempt(bc, err)
		return
	}
	if complete {
		ls.answered(bc)
	}
}

// parseAnswer reads as much of x's answer as bc's buffer holds; atEOF says
// the backend closed the connection after it.
func (ls *loopState) parseAnswer(bc *backendConn, x *exchange, atEOF bool) (complete bool, err error) {
	maxBody := ls.g.opts.MaxResponseBody
	buf := bc.in
	for bc.headLen == 0 {
		end := headEnd(buf)
		if end < 0 || end > maxResponseHead {
			if len(buf) > maxResponseHead || end > maxResponseHead {
				return false, &fasthttp.ErrSmallBuffer{}
			}
			if atEOF {
				return false, errClosedMidAnswer
			}
			return false, nil
		}
		if err := x.resp.Header.Read(ls.reader(buf[:end])); err != nil {
			return false, err
		}
		code := x.resp.StatusCode()
		if code >= 100 && code < 200 {
			if code == fasthttp.StatusSwitchingProtocols {
				return false, errors.New("gateway: the backend switched protocols, which the gateway does not proxy")
			}
			// An interim answer: the final one follows.
			bc.in = append(bc.in[:0], bc.in[end:]...)
			buf = bc.in
			x.resp.Header.Reset()
			x.resp.Header.SetNoDefaultContentType(true)
			continue
		}
		bc.headLen = end
		switch cl := x.resp.Header.ContentLength(); {
		case x.req.Header.IsHead() || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified:
			bc.need = end
			x.resp.SkipBody = true
		case int64(cl) > maxBody:
			return false, fasthttp.ErrBodyTooLarge
		case cl >= 0:
			bc.need = end + cl
		case cl == -1:
			bc.need, bc.scan = -1, end
			// Chunked with a length too: the connection is not to be
			// trusted with another answer (RFC 9112, 6.3).
			bc.closeAfter = hasField(buf[:end], "content-length")
		default:
			bc.need = -2
		}
	}
	switch bc.need {
	case -1:
		next, done, err := scanChunks(buf, bc.scan)
		if err != nil {
			return false, err
		}
		bc.scan = next
		if !done {
			if int64(len(buf)-bc.headLen) > maxBody+chunkSlack {
				return false, fasthttp.ErrBodyTooLarge
			}
			if atEOF {
				return false, errClosedMidAnswer
			}
			return false, nil
		}
		bc.need = next
	case -2:
		if int64(len(buf)-bc.headLen) > maxBody {
			return false, fasthttp.ErrBodyTooLarge
		}
		if !atEOF {
			return false, nil
		}
		bc.need = len(buf)
	}
	if len(buf) < bc.need {
		if atEOF {
			return false, errClosedMidAnswer
		}
		return false, nil
	}
	if !x.resp.SkipBody {
		if err := x.resp.ReadBody(ls.reader(buf[bc.headLen:bc.need]), int(maxBody)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// answered ends an attempt whose answer is complete.
func (ls *loopState) answered(bc *backendConn) {
	x := bc.x
	p := bc.pool
	delete(p.busy, bc)
	bc.x, bc.used = nil, true
	// Bytes after the answer were not asked for: the connection is out of
	// step, and goes.
	unasked := len(bc.in) > bc.need
	bc.in = bc.in[:0]
	if cap(bc.in) > maxResponseHead {
		bc.in = nil // after a large answer
	}
	if x.resp.ConnectionClose() || unasked || bc.closeAfter {
		p.discard(bc)
	} else if !bc.closing {
		p.release(bc)
	}
	ls.attemptDone(x, nil)
}

// failAttempt ends the attempt on bc with err and closes bc.
func (ls *loopState) failAttempt(bc *backendConn, err error) {
	x := bc.x
	bc.x = nil
	delete(bc.pool.busy, bc)
	bc.pool.discard(bc)
	ls.attemptDone(x, err)
}

// backendClosed forgets a closed backend connection and ends the attempt
// it carried: complete if the backend ends its answer by closing,
// otherwise failed, or sent again on a new connection when a reused one
// turned out closed before any answer.
func (ls *loopState) backendClosed(bc *backendConn, cause error) {
	p := bc.pool
	p.open--
	p.be.conns.Add(-1)
	p.removeIdle(bc)
	delete(p.busy, bc)
	bc.closing = true
	if x := bc.x; x != nil {
		bc.x = nil
		if bc.got {
			complete, err := ls.parseAnswer(bc, x, true)
			if complete {
				ls.attemptDone(x, nil)
			} else {
				if err == nil {
					err = errClosedMidAnswer
				}
				ls.attemptDone(x, err)
			}
		} else if bc.writeErr != nil {
			ls.attemptDone(x, &dialError{bc.writeErr})
		} else if bc.reused && x.idem && !x.cc.closed {
			// The backend closed a kept-alive connection as the request
			// went out on it (a restarting instance): it never read it.
			// Once more on a new connection, no attempt spent.
			x.freshOnly = true
			p.send(x)
		} else {
			if cause == nil {
				cause = errClosedMidAnswer
			}
			ls.attemptDone(x, fmt.Errorf("%w: %w", errClosedMidAnswer, cause))
		}
	}
	if p.be.removed.Load() {
		p.repickWaiting()
		return
	}
	p.dialIfNeeded()
}

// repickWaiting sends the requests waiting for a connection to a backend
// taken out of the list to another.
func (p *pool) repickWaiting() {
	waiting := p.waiting
	p.waiting, p.waitAt = nil, nil
	for _, x := range waiting {
		p.ls.repick(x)
	}
}

// removeIdle takes bc out of the idle list, if it is there.
func (p *pool) removeIdle(bc *backendConn) {
	for i, c := range p.idle {
		if c == bc {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return
		}
	}
}

// sweep fails requests that waited too long for a connection or an
// answer, and closes connections idle too long or to a removed backend.
func (p *pool) sweep(now time.Time) {
	g := p.ls.g
	for len(p.waiting) > 0 && now.Sub(p.waitAt[0]) > g.opts.DialTimeout+loopTick {
		x := p.waiting[0]
		p.waiting, p.waitAt = p.waiting[1:], p.waitAt[1:]
		p.ls.attemptDone(x, fasthttp.ErrNoFreeConns)
	}
	kept := p.idle[:0]
	for _, bc := range p.idle {
		if p.be.removed.Load() || now.Sub(bc.idleAt) > idleConnTimeout {
			p.discard(bc)
			continue
		}
		kept = append(kept, bc)
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	if p.be.removed.Load() {
		p.repickWaiting()
	}
	p.dialIfNeeded() // another loop may have freed some of the backend's limit
	for bc := range p.busy {
		if now.After(bc.deadline) {
			p.ls.failAttempt(bc, fasthttp.ErrTimeout)
		}
	}
}

// hasField reports whether head has a field named name (lower case).
func hasField(head []byte, name string) bool {
	for line := range bytes.SplitSeq(head, []byte{'\n'}) {
		if k, _, ok := bytes.Cut(line, []byte{':'}); ok && bytes.EqualFold(bytes.TrimSpace(k), []byte(name)) {
			return true
		}
	}
	return false
}

// headEnd returns the length of the head at the start of b, through its
// blank line, or -1 when b does not hold all of it.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
		if i >= len(b) {
			return -1
		}
	}
}

// scanChunks follows a chunked body in b from off, the start of a chunk's
// size line. It returns where the scan stopped (the next size line, or the
// body's end when done), so that a later call resumes there. Lines end in
// CRLF, as fasthttp's parser, which reads the body afterwards, requires.
func scanChunks(b []byte, off int) (next int, done bool, err error) {
	for {
		line := bytes.IndexByte(b[off:], '\n')
		if line < 0 {
			if len(b)-off > 4096 {
				return off, false, errBadChunk
			}
			return off, false, nil
		}
		if line == 0 || b[off+line-1] != '\r' {
			return off, false, errBadChunk
		}
		size, ok := chunkSize(b[off : off+line-1])
		if !ok {
			return off, false, errBadChunk
		}
		if size == 0 {
			return trailerEnd(b, off, off+line+1)
		}
		dataEnd := off + line + 1 + size
		if dataEnd < 0 || len(b) < dataEnd+2 {
			return off, false, nil
		}
		if b[dataEnd] != '\r' || b[dataEnd+1] != '\n' {
			return off, false, errBadChunk
		}
		off = dataEnd + 2
	}
}

// trailerEnd finds the end of a chunked body's trailer section, which
// starts at t (after the last chunk's size line at off): an empty line, or
// fields up to one. Here fasthttp takes a bare LF for a line end.
func trailerEnd(b []byte, off, t int) (next int, done bool, err error) {
	switch {
	case len(b) <= t:
		return off, false, nil
	case b[t] == '\n':
		return t + 1, true, nil
	case b[t] == '\r' && len(b) == t+1:
		return off, false, nil
	case b[t] == '\r' && b[t+1] == '\n':
		return t + 2, true, nil
	}
	end := headEnd(b[t:])
	if end < 0 {
		if len(b)-t > maxRequestHead {
			return off, false, errBadChunk
		}
		return off, false, nil
	}
	return t + end, true, nil
}

// errBadChunk is chunked framing that does not parse.
var errBadChunk = errors.New("gateway: malformed chunked body")

// chunkSize parses a chunk-size line without its CRLF: hex digits,
// optional extensions.
func chunkSize(line []byte) (int, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	n := 0
	for _, c := range line {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int(d)
	}
	return n, true
}
