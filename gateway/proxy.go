package gateway

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/millionshop/million/ratelimit"
	"github.com/millionshop/million/web"
)

// Canonical header names, as fasthttp normalizes them.
const (
	hdrRequestID      = "X-Request-Id"
	hdrForwardedFor   = "X-Forwarded-For"
	hdrForwardedProto = "X-Forwarded-Proto"
	hdrForwardedHost  = "X-Forwarded-Host"
	hdrIdempotencyKey = "Idempotency-Key"
	hdrAuthorization  = "Authorization"
)

// reqState is what the gateway knows of one request: its ID and client IP,
// and what the proxy did, for the access log.
type reqState struct {
	id       string
	ip       string
	backend  string
	attempts int
}

// Server returns the public HTTP server: fasthttp's, which serves a
// connection's requests on one goroutine from pooled buffers, for a fraction
// of net/http's cost per request; the proxy's own work is a few header
// edits. Requests and responses are read whole (up to MaxRequestBody and
// MaxResponseBody), which makes every request replayable on another
// backend and every answer complete before the client sees its status; the
// gateway does not stream (no server-sent events through it; million's API
// has none).
func (g *Gateway) Server() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      g.serve,
		ErrorHandler:                 g.badRequest,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		NoDefaultDate:                true,
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  headerTimeout, // a body gets RequestTimeout (bodyTimeout)
		HeaderReceived:               g.bodyTimeout,
		WriteTimeout:                 g.opts.RequestTimeout + 5*time.Second,
		IdleTimeout:                  120 * time.Second,
		MaxRequestBodySize:           int(g.opts.MaxRequestBody),
		ReadBufferSize:               32 << 10, // also the limit of a request's head (431 beyond)
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{g},
	}
}

// headerTimeout bounds the wait for a request's head, so that connections
// trickling headers cannot hold the server (slowloris).
const headerTimeout = 5 * time.Second

// bodyTimeout gives a request with a body the whole RequestTimeout to send
// it; a body-less one keeps the head's deadline.
func (g *Gateway) bodyTimeout(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if h.ContentLength() == 0 {
		return fasthttp.RequestConfig{}
	}
	return fasthttp.RequestConfig{ReadTimeout: g.opts.RequestTimeout}
}

// fasthttpLogger sends the server's own complaints (a broken connection)
// to the gateway's log at debug level: they are the clients' business.
type fasthttpLogger struct{ g *Gateway }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.g.logger.Debug("http server", "message", strconv.Quote(format), "args", args)
}

// badRequest answers what fasthttp could not read, as problem+json.
func (g *Gateway) badRequest(ctx *fasthttp.RequestCtx, err error) {
	st := &reqState{id: web.NewRequestID()}
	ctx.SetConnectionClose() // what is left of the request on the connection is unread
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		g.problem(ctx, st, http.StatusRequestEntityTooLarge, "body_too_large",
			"the request body is larger than the gateway accepts ("+strconv.FormatInt(g.opts.MaxRequestBody, 10)+" bytes)")
	case errors.As(err, &small):
		g.problem(ctx, st, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large",
			"the request head is larger than the gateway accepts")
	case errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout():
		g.problem(ctx, st, http.StatusRequestTimeout, "request_timeout", "the request was not received in time")
	default:
		g.problem(ctx, st, http.StatusBadRequest, "malformed_request", "the request could not be parsed as HTTP/1.1")
	}
}

// serve is the public handler: request ID, client IP, rate limits, the
// proxy, the access log.
func (g *Gateway) serve(ctx *fasthttp.RequestCtx) {
	var start time.Time
	if g.opts.AccessLog {
		start = time.Now()
	}
	req := &ctx.Request
	st := &reqState{ip: g.clientIP(ctx)}
	var path string
	if g.opts.AccessLog {
		path = string(req.URI().PathOriginal())
	}
	if v := req.Header.Peek(hdrRequestID); len(v) > 0 && web.ValidRequestID(unsafeString(v)) {
		st.id = string(v)
	} else {
		st.id = web.NewRequestID()
	}
	if p := string(req.Header.Protocol()); p != "HTTP/1.1" && p != "HTTP/1.0" {
		// fasthttp reads any version and would pass it on.
		ctx.SetConnectionClose()
		g.problem(ctx, st, http.StatusHTTPVersionNotSupported, "http_version_not_supported",
			"the gateway speaks HTTP/1.1 and HTTP/1.0")
	} else if g.limitAndProxy(ctx, st) {
		ctx.Response.Header.Set(hdrRequestID, st.id)
	}
	if g.opts.AccessLog {
		g.logger.Info("request", "method", string(req.Header.Method()), "path", path,
			"status", ctx.Response.StatusCode(), "duration_ms", float64(time.Since(start).Microseconds())/1000,
			"backend", st.backend, "attempts", st.attempts, "client_ip", st.ip, "request_id", st.id)
	}
}

// limitAndProxy applies the rate limits, then proxies. It reports whether
// the answer came from a backend (the gateway's own carry the request ID
// already).
func (g *Gateway) limitAndProxy(ctx *fasthttp.RequestCtx, st *reqState) bool {
	var decision ratelimit.Decision
	limited := false
	if g.opts.RateLimit.Enabled() && !g.exempt(ctx) {
		subject := ""
		if g.opts.Subject != nil && g.opts.RateLimit.PerUser.Enabled() {
			if token := ratelimit.BearerToken(string(ctx.Request.Header.Peek(hdrAuthorization))); token != "" {
				subject = g.opts.Subject(token)
			}
		}
		// Not ctx itself: its Done is the server's shutdown, which would
		// turn a draining gateway's checks into local fallbacks.
		decision, limited = g.opts.RateLimit.Check(context.WithoutCancel(ctx), st.ip, subject)
		if limited && !decision.Allowed {
			g.metrics.gwErrors.WithLabelValues("rate_limited").Inc()
			g.writeError(ctx, st, decision.Refusal())
			return false
		}
	}
	proxied := g.proxy(ctx, st)
	if limited {
		// The backend's own limits, when it sends them, are the tighter.
		h := &ctx.Response.Header
		if len(h.Peek("Ratelimit-Limit")) == 0 {
			limit, remaining, reset := decision.Headers()
			h.Set("RateLimit-Limit", limit)
			h.Set("RateLimit-Remaining", remaining)
			h.Set("RateLimit-Reset", reset)
		}
	}
	return proxied
}

// exempt reports whether the request skips the rate limits: the health
// checks of whatever balances in front of the gateway.
func (g *Gateway) exempt(ctx *fasthttp.RequestCtx) bool {
	p := ctx.Request.URI().PathOriginal() // as the backend will see it
	return string(p) == "/healthz" || string(p) == "/readyz"
}

// clientIP is the address the request came from: the TCP peer, or the last
// X-Forwarded-For entry behind one trusted proxy (earlier entries are the
// client's to forge).
func (g *Gateway) clientIP(ctx *fasthttp.RequestCtx) string {
	if g.opts.TrustForwardedFor {
		// The last entry of the last line: a proxy adds its own line after
		// whatever lines the client sent.
		if lines := ctx.Request.Header.PeekAll(hdrForwardedFor); len(lines) > 0 {
			xff := lines[len(lines)-1]
			last := bytes.TrimSpace(xff[bytes.LastIndexByte(xff, ',')+1:])
			if ip := net.ParseIP(unsafeString(last)); ip != nil {
				return ip.String()
			}
		}
	}
	return g.remoteIP(ctx)
}

// idempotent reports whether running the request twice has the effect of
// running it once: the idempotent methods, and a POST with an
// Idempotency-Key to a path whose handler deduplicates by that key
// (Options.IdempotentPOST). Other POSTs may carry the header without the
// server honouring it.
func (g *Gateway) idempotent(req *fasthttp.Request) bool {
	switch string(req.Header.Method()) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	case http.MethodPost:
		return len(req.Header.Peek(hdrIdempotencyKey)) > 0 &&
			slices.Contains(g.opts.IdempotentPOST, string(req.URI().PathOriginal()))
	}
	return false
}

// attemptErr is how one attempt failed.
type attemptErr struct {
	err     error
	sent    bool // the request may have reached the backend
	timeout bool
}

// proxy sends the request to a backend, and to others while that is safe
// and useful, and leaves the answer in ctx.Response. It reports whether the
// answer is a backend's.
func (g *Gateway) proxy(ctx *fasthttp.RequestCtx, st *reqState) bool {
	req := &ctx.Request
	g.budget.request()
	deadline := time.Now().Add(g.opts.RequestTimeout)
	idem := g.idempotent(req)
	target := g.forward(ctx, st)
	defer target.restore(req)
	var triedBuf [4]*backend
	tried := triedBuf[:0]
	be := g.pick(st.ip, nil)
	if be == nil {
		ctx.Response.Header.Set("Retry-After", "1")
		g.problem(ctx, st, http.StatusServiceUnavailable, "no_backend", "no backend is configured")
		return false
	}
	for {
		tried = append(tried, be)
		st.backend, st.attempts = be.key, len(tried)
		aerr := g.roundTrip(ctx, st, be, &target, deadline)
		expired := !time.Now().Before(deadline)
		if aerr != nil && overLimit(aerr.err) {
			// Another backend would send the same answer.
			ctx.Response.Reset()
			g.problem(ctx, st, http.StatusBadGateway, "response_too_large",
				"the backend's answer is larger than the gateway passes on")
			return false
		}
		if aerr != nil {
			// A timeout after sending is not retried: the backend may still
			// be working on it, and the client has waited long enough.
			safe := !aerr.sent || idem
			if safe && !(aerr.timeout && aerr.sent) && !expired && len(tried) < g.opts.MaxAttempts {
				next, exhausted := g.retryTarget(st.ip, be, tried)
				if next != nil {
					be = next
					continue
				}
				if exhausted {
					ctx.Response.Reset()
					ctx.Response.Header.Set("Retry-After", "1")
					g.problem(ctx, st, http.StatusServiceUnavailable, "retry_budget_exhausted",
						"the backend failed and the retry budget is spent")
					return false
				}
			}
			ctx.Response.Reset()
			switch {
			case (aerr.timeout && aerr.sent) || expired:
				g.problem(ctx, st, http.StatusGatewayTimeout, "gateway_timeout", "the backend did not answer in time")
			case !aerr.sent:
				ctx.Response.Header.Set("Retry-After", "1")
				g.problem(ctx, st, http.StatusServiceUnavailable, "backend_unreachable", "no backend could be reached")
			default:
				g.problem(ctx, st, http.StatusBadGateway, "bad_gateway", "the backend failed before answering completely")
			}
			return false
		}
		if idem && slices.Contains(g.opts.RetryOnStatuses, ctx.Response.StatusCode()) &&
			len(tried) < g.opts.MaxAttempts && !expired {
			// Decide before discarding this answer: without another backend
			// or budget, it is the best answer there is.
			if next, _ := g.retryTarget(st.ip, be, tried); next != nil {
				be = next
				continue
			}
		}
		cleanResponse(&ctx.Response)
		return true
	}
}

// retryTarget returns the backend to try after be failed: one not tried
// yet, when the retry budget allows; exhausted reports that there was one
// but the budget refused the retry.
func (g *Gateway) retryTarget(ip string, be *backend, tried []*backend) (next *backend, exhausted bool) {
	next = g.pick(ip, tried)
	if next == nil {
		return nil, false
	}
	if !g.budget.tryRetry() {
		g.metrics.exhausted.Inc()
		return nil, true
	}
	be.metrics.retry()
	return next, false
}

// target is what each attempt's backend changes in the client's request:
// the path (for backends with a path prefix), and whether the client asked
// to close its connection (which must not close the backend's).
type target struct {
	path        []byte // as sent; copied only when a prefixed backend is tried
	prefixed    bool   // the request's path has a backend's prefix now
	clientClose bool
}

// restore puts back what the client sent, for the server's keep-alive
// decision and the access log.
func (t *target) restore(req *fasthttp.Request) {
	if t.prefixed {
		req.URI().SetPathBytes(t.path)
	}
	if t.clientClose {
		req.Header.SetConnectionClose()
	}
}

// forward turns the client's request into the one the backends get:
// hop-by-hop fields removed; X-Forwarded-For, -Proto and -Host, and the
// request ID set.
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, st *reqState) target {
	req := &ctx.Request
	h := &req.Header
	t := target{clientClose: h.ConnectionClose()}
	removeHopHeaders(h)
	h.ResetConnectionClose() // restored after the attempts (target.restore)
	ip := st.ip              // the peer's address, unless taken from X-Forwarded-For
	if g.opts.TrustForwardedFor {
		ip = g.remoteIP(ctx)
	}
	switch prior := h.PeekAll(hdrForwardedFor); len(prior) {
	case 0:
		h.Set(hdrForwardedFor, ip)
	case 1:
		h.Set(hdrForwardedFor, string(prior[0])+", "+ip)
	default:
		// Set keeps one line: the others' entries go into it, in order.
		h.Set(hdrForwardedFor, string(bytes.Join(prior, []byte(", ")))+", "+ip)
	}
	if ctx.IsTLS() {
		h.Set(hdrForwardedProto, "https")
	} else {
		h.Set(hdrForwardedProto, "http")
	}
	h.SetBytesV(hdrForwardedHost, req.URI().Host())
	h.Set(hdrRequestID, st.id)
	return t
}

// remoteIP is the TCP peer's address, which X-Forwarded-For gains.
func (g *Gateway) remoteIP(ctx *fasthttp.RequestCtx) string {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(ctx.RemoteAddr().String())
	if err != nil {
		return ctx.RemoteAddr().String()
	}
	return host
}

// headerFields is the part of fasthttp's request and response headers
// removeHopHeaders needs.
type headerFields interface {
	Peek(key string) []byte
	Del(key string)
}

// hopHeaders are meaningful for one connection only (RFC 9110 7.6.1), and
// Expect, which the gateway's server answered already (it has the body).
// Content-Length and Transfer-Encoding are fasthttp's to write.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Upgrade", "Expect"}

// removeHopHeaders deletes the hop-by-hop fields, those the Connection
// field names included. It looks fields up by name rather than walking
// them, which would make fasthttp parse and rewrite the cookies.
func removeHopHeaders(h headerFields) {
	if conn := h.Peek("Connection"); len(conn) > 0 {
		var named []string
		for f := range bytes.SplitSeq(conn, []byte{','}) {
			if f = bytes.TrimSpace(f); len(f) > 0 && !bytes.EqualFold(f, []byte("close")) && !bytes.EqualFold(f, []byte("keep-alive")) {
				named = append(named, string(f))
			}
		}
		for _, k := range named {
			h.Del(k)
		}
	}
	for _, k := range hopHeaders {
		if len(h.Peek(k)) > 0 {
			h.Del(k)
		}
	}
}

// cleanResponse makes a backend's answer the client's: its hop-by-hop
// fields go, and its wish to close the backend connection (already acted
// on) does not close the client's.
func cleanResponse(resp *fasthttp.Response) {
	removeHopHeaders(&resp.Header)
	resp.Header.ResetConnectionClose()
}

// roundTrip sends one attempt to be and reads its whole answer into
// ctx.Response.
func (g *Gateway) roundTrip(ctx *fasthttp.RequestCtx, st *reqState, be *backend, t *target, deadline time.Time) *attemptErr {
	req := &ctx.Request
	u := req.URI()
	if be.prefix != "" || t.prefixed {
		if t.path == nil {
			t.path = slices.Clone(u.PathOriginal())
		}
		u.SetPathBytes(append([]byte(be.prefix), t.path...))
		t.prefixed = be.prefix != ""
	}
	u.SetSchemeBytes(be.scheme)
	u.SetHostBytes(be.host)
	ctx.Response.Header.SetNoDefaultContentType(true)

	be.inFlight.Add(1)
	be.requests.Add(1)
	bm := be.metrics
	bm.addInFlight(1)
	start := time.Now()
	err := be.client.DoDeadline(req, &ctx.Response, deadline)
	bm.observeDuration(time.Since(start).Seconds())
	be.inFlight.Add(-1)
	bm.addInFlight(-1)
	if err != nil {
		bm.request(classError).Inc()
		if backendAtFault(err) {
			g.observe(be, true)
		}
		sent := !sentNothing(err)
		g.logger.Warn("backend attempt failed", "backend", be.key, "error", err.Error(), "sent", sent, "request_id", st.id)
		return &attemptErr{err: err, sent: sent, timeout: timedOut(err)}
	}
	bm.request(statusClassIndex(ctx.Response.StatusCode())).Inc()
	g.observe(be, failedAnswer(&ctx.Response))
	return nil
}

// failedAnswer reports whether resp counts towards ejecting its backend: a
// 5xx, except a 503 with Retry-After. That one is a backend refusing work
// it cannot finish in time (load shedding) or a shared dependency being
// down: ejecting it would move its load onto the others and spread the
// overload, or take out every backend one by one for the same database.
// The request itself is still retried elsewhere when that is safe.
func failedAnswer(resp *fasthttp.Response) bool {
	code := resp.StatusCode()
	if code == http.StatusServiceUnavailable && len(resp.Header.Peek("Retry-After")) > 0 {
		return false
	}
	return code >= 500
}

// problem writes an answer the gateway makes itself, as problem+json.
func (g *Gateway) problem(ctx *fasthttp.RequestCtx, st *reqState, status int, code, detail string) {
	g.metrics.gwErrors.WithLabelValues(code).Inc()
	web.WriteProblem(responseWriter(ctx), web.Problem{Type: "urn:million:problem:" + code, Title: http.StatusText(status),
		Status: status, Detail: detail, Code: code, RequestID: st.id})
	ctx.Response.Header.Set(hdrRequestID, st.id)
}

// writeError writes err as web.WriteError does for million serve.
func (g *Gateway) writeError(ctx *fasthttp.RequestCtx, st *reqState, err error) {
	r := (&http.Request{Method: string(ctx.Method()), URL: &url.URL{Path: string(ctx.Path())}}).
		WithContext(web.WithRequestID(context.Background(), st.id))
	web.WriteError(responseWriter(ctx), r, g.logger, err)
	ctx.Response.Header.Set(hdrRequestID, st.id)
}

// fastWriter is an http.ResponseWriter over a fasthttp response, so that
// the gateway's own answers go through the same problem+json code as
// million serve's.
type fastWriter struct {
	ctx    *fasthttp.RequestCtx
	header http.Header
	wrote  bool
}

func responseWriter(ctx *fasthttp.RequestCtx) *fastWriter {
	return &fastWriter{ctx: ctx, header: http.Header{}}
}

func (w *fastWriter) Header() http.Header { return w.header }

func (w *fastWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	resp := &w.ctx.Response
	resp.ResetBody()
	resp.SetStatusCode(code)
	for k, vv := range w.header {
		resp.Header.Del(k)
		for _, v := range vv {
			resp.Header.Add(k, v)
		}
	}
}

func (w *fastWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ctx.Response.BodyWriter().Write(p)
}

// unsafeString views b as a string for a lookup that does not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
