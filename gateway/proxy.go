package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/millionshop/million/web"
)

type ctxKey int

const stateKey ctxKey = 0

// ClientIPFrom returns the client IP the gateway resolved for the request
// (for a rate limiter installed with Options.Wrap).
func ClientIPFrom(ctx context.Context) string {
	if st, _ := ctx.Value(stateKey).(*reqState); st != nil {
		return st.ip
	}
	return ""
}

// reqState is what the gateway knows of a request: the client IP, and
// what the proxy learned for the access log. One context value for both.
type reqState struct {
	ip       string
	backend  string
	attempts int
}

// Canonical header keys, so the hot path indexes the header maps directly
// instead of canonicalizing (which allocates for "X-Request-ID").
const (
	hdrRequestID      = "X-Request-Id"
	hdrForwardedFor   = "X-Forwarded-For"
	hdrForwardedProto = "X-Forwarded-Proto"
	hdrForwardedHost  = "X-Forwarded-Host"
	hdrUserAgent      = "User-Agent"
	hdrConnection     = "Connection"
)

// Handler returns the public handler: request IDs, client IP, access log,
// Options.Wrap, then the proxy.
func (g *Gateway) Handler() http.Handler {
	var inner http.Handler = http.HandlerFunc(g.proxy)
	if g.opts.Wrap != nil {
		inner = g.opts.Wrap(inner)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var start time.Time
		if g.opts.AccessLog {
			start = time.Now()
		}
		var id string
		if v := r.Header[hdrRequestID]; len(v) > 0 && web.ValidRequestID(v[0]) {
			id = v[0]
		} else {
			id = web.NewRequestID()
			r.Header[hdrRequestID] = []string{id}
		}
		w.Header()[hdrRequestID] = []string{id}
		ip := web.ClientIP(r, g.opts.TrustForwardedFor)
		st := &reqState{ip: ip}
		ctx := web.WithRequestID(r.Context(), id)
		ctx = context.WithValue(ctx, stateKey, st)
		r = r.WithContext(ctx)
		if !g.opts.AccessLog {
			inner.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			status := sw.status
			if status == 0 {
				status = 499 // the client went away before an answer
			}
			g.logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", status,
				"duration_ms", float64(time.Since(start).Microseconds())/1000, "backend", st.backend,
				"attempts", st.attempts, "client_ip", ip, "request_id", id)
		}()
		inner.ServeHTTP(sw, r)
	})
}

// idempotent reports whether running r twice has the effect of running it
// once: the idempotent methods, and a POST with an Idempotency-Key to a
// path whose handler deduplicates by that key (Options.IdempotentPOST).
// Other POSTs may carry the header without the server honouring it.
func (g *Gateway) idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	case http.MethodPost:
		return r.Header.Get("Idempotency-Key") != "" && slices.Contains(g.opts.IdempotentPOST, r.URL.Path)
	}
	return false
}

// body is the request body as the proxy sends it: buffered (replayable)
// when it fits in MaxReplayBody, else streamed once.
type body struct {
	buf       []byte
	replay    bool
	stream    io.Reader
	streamed  atomic.Int64 // bytes of the stream handed to a backend
	length    int64
	hasStream bool
}

func (b *body) reader() io.ReadCloser {
	switch {
	case b.replay && len(b.buf) == 0:
		return http.NoBody
	case b.replay:
		return io.NopCloser(bytes.NewReader(b.buf))
	}
	return &countingReader{r: b.stream, n: &b.streamed}
}

// untouched reports whether a retry can still send the whole body.
func (b *body) untouched() bool { return b.replay || b.streamed.Load() == 0 }

// countingReader counts what a backend consumed and ignores Close, since the
// transport closes request bodies on failure and a stream untouched by a
// refused connection must stay readable for the next backend.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return nil }

// emptyBody is every body-less request's body: nothing in it changes, so
// one serves them all.
var emptyBody = &body{replay: true}

func (g *Gateway) readBody(r *http.Request) (*body, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return emptyBody, nil
	}
	if r.ContentLength > g.opts.MaxReplayBody {
		return &body{stream: r.Body, length: r.ContentLength, hasStream: true}, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, g.opts.MaxReplayBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) > g.opts.MaxReplayBody {
		return &body{stream: io.MultiReader(bytes.NewReader(buf), r.Body), length: r.ContentLength, hasStream: true}, nil
	}
	return &body{buf: buf, replay: true, length: int64(len(buf))}, nil
}

// attemptErr is how one attempt failed.
type attemptErr struct {
	err     error
	sent    bool // the request reached the backend (headers written)
	timeout bool
}

// deadline bounds a whole request, its retries included
// (Options.RequestTimeout). The gateway's own client enforces it with
// connection deadlines; only attempts through http.Transport need a
// context with a timer, made on first need.
type deadline struct {
	at     time.Time
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
}

func (d *deadline) expired() bool { return d.parent.Err() != nil || !time.Now().Before(d.at) }

func (d *deadline) context() context.Context {
	if d.ctx == nil {
		d.ctx, d.cancel = context.WithDeadline(d.parent, d.at)
	}
	return d.ctx
}

func (d *deadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}

func (g *Gateway) proxy(w http.ResponseWriter, r *http.Request) {
	info, _ := r.Context().Value(stateKey).(*reqState)
	if info == nil {
		info = &reqState{}
	}
	g.budget.request()
	dl := deadline{at: time.Now().Add(g.opts.RequestTimeout), parent: r.Context()}
	defer dl.stop()
	b, err := g.readBody(r)
	if err != nil {
		if r.Context().Err() == nil {
			g.problem(w, r, http.StatusBadRequest, "body_unreadable", "the request body could not be read")
		}
		return
	}
	idem := g.idempotent(r)
	ip := info.ip
	var triedBuf [4]*backend
	tried := triedBuf[:0]
	be := g.pick(ip, nil)
	if be == nil {
		w.Header().Set("Retry-After", "1")
		g.problem(w, r, http.StatusServiceUnavailable, "no_backend", "no backend is configured")
		return
	}
	for {
		tried = append(tried, be)
		info.backend, info.attempts = be.key, len(tried)
		resp, aerr := g.roundTrip(&dl, r, be, b)
		if aerr != nil {
			if r.Context().Err() != nil {
				return // the client left; nobody reads an answer
			}
			safe := (!aerr.sent && b.untouched()) || (idem && b.replay)
			// A timeout after sending is not retried: the backend may still
			// be working on it, and the client has waited long enough.
			if safe && !(aerr.timeout && aerr.sent) && !dl.expired() && len(tried) < g.opts.MaxAttempts {
				next := g.pick(ip, tried)
				if next != nil {
					if g.budget.tryRetry() {
						be.metrics.retry()
						be = next
						continue
					}
					g.metrics.exhausted.Inc()
					w.Header().Set("Retry-After", "1")
					g.problem(w, r, http.StatusServiceUnavailable, "retry_budget_exhausted",
						"the backend failed and the retry budget is spent")
					return
				}
			}
			switch {
			case (aerr.timeout && aerr.sent) || dl.expired():
				g.problem(w, r, http.StatusGatewayTimeout, "gateway_timeout", "the backend did not answer in time")
			case !aerr.sent:
				w.Header().Set("Retry-After", "1")
				g.problem(w, r, http.StatusServiceUnavailable, "backend_unreachable", "no backend could be reached")
			default:
				g.problem(w, r, http.StatusBadGateway, "bad_gateway", "the backend failed before answering")
			}
			return
		}
		if idem && b.replay && slices.Contains(g.opts.RetryOnStatuses, resp.StatusCode) &&
			len(tried) < g.opts.MaxAttempts && !dl.expired() {
			// Decide before discarding this answer: without another backend
			// or budget, it is the best answer there is.
			if next := g.pick(ip, tried); next != nil {
				if g.budget.tryRetry() {
					be.metrics.retry()
					_, _ = copyDiscard(resp.Body, 64<<10)
					resp.Body.Close()
					be.inFlight.Add(-1)
					be.metrics.addInFlight(-1)
					be = next
					continue
				}
				g.metrics.exhausted.Inc()
			}
		}
		g.writeResponse(w, r, be, resp)
		return
	}
}

// attempt is one attempt's trace: whether the request reached the backend.
// One allocation for the trace hooks and the flag.
type attempt struct {
	sent  atomic.Bool
	trace httptrace.ClientTrace
}

func (a *attempt) wroteHeaders() { a.sent.Store(true) }

// roundTrip sends one attempt. On success the caller owns resp and the
// backend's in-flight count, released by writeResponse.
func (g *Gateway) roundTrip(dl *deadline, r *http.Request, be *backend, b *body) (*http.Response, *attemptErr) {
	at := &attempt{}
	// Body-less requests to http backends go through the gateway's own
	// client, which reports sending itself and keeps the deadline; the rest
	// through http.Transport, with the deadline in the context and traced.
	direct := be.h1 != nil && b.replay && len(b.buf) == 0
	ctx := r.Context()
	if !direct {
		at.trace.WroteHeaders = at.wroteHeaders
		ctx = httptrace.WithClientTrace(dl.context(), &at.trace)
	}
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = be.url.Scheme, be.url.Host
	if be.url.Path != "" {
		out.URL.Path = be.url.Path + r.URL.Path
		if r.URL.RawPath != "" {
			out.URL.RawPath = be.url.Path + r.URL.RawPath
		}
	}
	out.Host = be.url.Host
	out.Close = false
	out.Body = b.reader()
	out.ContentLength = b.length
	if b.replay {
		out.ContentLength = int64(len(b.buf))
		if len(b.buf) > 0 {
			buf := b.buf
			out.GetBody = func() (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(buf)), nil
			}
		}
	}
	g.forwardHeaders(out, r)

	be.inFlight.Add(1)
	be.requests.Add(1)
	bm := be.metrics
	bm.addInFlight(1)
	start := time.Now()
	var resp *http.Response
	var err error
	if direct {
		resp, err = be.h1.roundTrip(out, &at.sent, dl.at)
	} else {
		resp, err = g.transport.RoundTrip(out)
	}
	bm.observeDuration(time.Since(start).Seconds())
	if err != nil {
		be.inFlight.Add(-1)
		bm.addInFlight(-1)
		if r.Context().Err() == nil {
			bm.request(classError).Inc()
			g.observe(be, true)
			g.logger.Warn("backend attempt failed", "backend", be.key, "error", err.Error(),
				"sent", at.sent.Load(), "request_id", web.RequestIDFrom(r.Context()))
		}
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
		return nil, &attemptErr{err: err, sent: at.sent.Load(), timeout: timeout}
	}
	bm.request(statusClassIndex(resp.StatusCode)).Inc()
	g.observe(be, failedAnswer(resp))
	return resp, nil
}

// failedAnswer reports whether resp counts towards ejecting its backend: a
// 5xx, except a 503 with Retry-After. That one is a backend refusing work
// it cannot finish in time (load shedding) or a shared dependency being
// down: ejecting it would move its load onto the others and spread the
// overload, or take out every backend one by one for the same database.
// The request itself is still retried elsewhere when that is safe.
func failedAnswer(resp *http.Response) bool {
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
		return false
	}
	return resp.StatusCode >= 500
}

// hopHeaders are meaningful for one connection only (RFC 9110 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopHeaders(h http.Header) {
	if len(h) == 0 {
		return
	}
	for _, f := range h[hdrConnection] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, k := range hopHeaders { // canonical already: no need for Del's canonicalization
		delete(h, k)
	}
}

func (g *Gateway) forwardHeaders(out, in *http.Request) {
	h := out.Header
	removeHopHeaders(h)
	ip, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		ip = in.RemoteAddr
	}
	if prior := strings.Join(in.Header[hdrForwardedFor], ", "); prior != "" {
		ip = prior + ", " + ip
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	// One backing array for the four single values: one allocation, not four.
	vals := [4]string{ip, proto, in.Host, web.RequestIDFrom(in.Context())}
	h[hdrForwardedFor] = vals[0:1:1]
	h[hdrForwardedProto] = vals[1:2:2]
	h[hdrForwardedHost] = vals[2:3:3]
	h[hdrRequestID] = vals[3:4:4]
	if _, ok := h[hdrUserAgent]; !ok {
		h[hdrUserAgent] = []string{""} // not Go's default
	}
}

// copyBufs are the buffers responses are copied through: 32 KiB each, kept
// between requests instead of allocated (and zeroed) for each.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (g *Gateway) writeResponse(w http.ResponseWriter, r *http.Request, be *backend, resp *http.Response) {
	defer func() {
		be.inFlight.Add(-1)
		be.metrics.addInFlight(-1)
	}()
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	h := w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	id := web.RequestIDFrom(r.Context())
	if v := h[hdrRequestID]; len(v) == 1 {
		v[0] = id // the backend's own slice, ours to change
	} else {
		h[hdrRequestID] = []string{id}
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	// Stream as it comes when the length is unknown (server-sent events,
	// long responses); otherwise let the server buffer.
	flush := resp.ContentLength == -1
	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(w)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client left
			}
			if flush {
				_ = rc.Flush()
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			// The backend broke mid-body: abort the client's response so it
			// cannot mistake a truncated body for a complete one.
			if r.Context().Err() == nil {
				g.observe(be, true)
				g.logger.Warn("backend failed mid-response", "backend", be.key, "error", err.Error(),
					"request_id", web.RequestIDFrom(r.Context()))
			}
			panic(http.ErrAbortHandler)
		}
	}
}

// problem writes a response the gateway makes itself, as problem+json.
func (g *Gateway) problem(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
	g.metrics.gwErrors.WithLabelValues(code).Inc()
	web.WriteProblem(w, web.Problem{Type: "urn:million:problem:" + code, Title: http.StatusText(status),
		Status: status, Detail: detail, Code: code, RequestID: web.RequestIDFrom(r.Context())})
}

func copyDiscard(r io.Reader, limit int64) (int64, error) {
	return io.Copy(io.Discard, io.LimitReader(r, limit))
}

// statusWriter records the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
