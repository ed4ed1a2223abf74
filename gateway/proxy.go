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

// headerTimeout bounds the wait for a request's head, so that connections
// trickling headers cannot hold the server (slowloris).
const headerTimeout = 5 * time.Second

// badRequest answers what could not be read as a request, as
// problem+json.
func (g *Gateway) badRequest(x *exchange, err error) {
	x.st = reqState{id: web.NewRequestID()}
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		g.problem(x, http.StatusRequestEntityTooLarge, "body_too_large",
			"the request body is larger than the gateway accepts ("+strconv.FormatInt(g.opts.MaxRequestBody, 10)+" bytes)")
	case errors.As(err, &small):
		g.problem(x, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large",
			"the request head is larger than the gateway accepts")
	case errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout():
		g.problem(x, http.StatusRequestTimeout, "request_timeout", "the request was not received in time")
	default:
		g.problem(x, http.StatusBadRequest, "malformed_request", "the request could not be parsed as HTTP/1.1")
	}
}

// exempt reports whether the request skips the rate limits: the health
// checks of whatever balances in front of the gateway.
func (g *Gateway) exempt(x *exchange) bool {
	p := x.req.URI().PathOriginal() // as the backend will see it
	return string(p) == "/healthz" || string(p) == "/readyz"
}

// clientIP is the address the request came from: the TCP peer, or the last
// X-Forwarded-For entry behind one trusted proxy (earlier entries are the
// client's to forge).
func (g *Gateway) clientIP(x *exchange) string {
	if g.opts.TrustForwardedFor {
		// The last entry of the last line: a proxy adds its own line after
		// whatever lines the client sent.
		if lines := x.req.Header.PeekAll(hdrForwardedFor); len(lines) > 0 {
			xff := lines[len(lines)-1]
			last := bytes.TrimSpace(xff[bytes.LastIndexByte(xff, ',')+1:])
			if ip := net.ParseIP(unsafeString(last)); ip != nil {
				return ip.String()
			}
		}
	}
	return x.cc.ip
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

// nextAttempt decides, after an attempt, whether another backend is to be
// tried (while that is safe and useful) and, when not, leaves the answer in
// x.resp: the backend's, or the gateway's problem.
func (g *Gateway) nextAttempt(x *exchange, aerr *attemptErr) (next *backend, retry bool) {
	expired := !time.Now().Before(x.deadline)
	be := x.be
	if aerr != nil && overLimit(aerr.err) {
		// Another backend would send the same answer.
		x.resp.Reset()
		g.problem(x, http.StatusBadGateway, "response_too_large",
			"the backend's answer is larger than the gateway passes on")
		return nil, false
	}
	if aerr != nil {
		// A timeout after sending is not retried: the backend may still
		// be working on it, and the client has waited long enough.
		safe := !aerr.sent || x.idem
		if safe && !(aerr.timeout && aerr.sent) && !expired && len(x.tried) < g.opts.MaxAttempts {
			next, exhausted := g.retryTarget(x.st.ip, be, x.tried)
			if next != nil {
				return next, true
			}
			if exhausted {
				x.resp.Reset()
				x.resp.Header.Set("Retry-After", "1")
				g.problem(x, http.StatusServiceUnavailable, "retry_budget_exhausted",
					"the backend failed and the retry budget is spent")
				return nil, false
			}
		}
		x.resp.Reset()
		switch {
		case (aerr.timeout && aerr.sent) || expired:
			g.problem(x, http.StatusGatewayTimeout, "gateway_timeout", "the backend did not answer in time")
		case !aerr.sent:
			x.resp.Header.Set("Retry-After", "1")
			g.problem(x, http.StatusServiceUnavailable, "backend_unreachable", "no backend could be reached")
		default:
			g.problem(x, http.StatusBadGateway, "bad_gateway", "the backend failed before answering completely")
		}
		return nil, false
	}
	if x.idem && slices.Contains(g.opts.RetryOnStatuses, x.resp.StatusCode()) &&
		len(x.tried) < g.opts.MaxAttempts && !expired {
		// Decide before discarding this answer: without another backend
		// or budget, it is the best answer there is.
		if next, _ := g.retryTarget(x.st.ip, be, x.tried); next != nil {
			return next, true
		}
	}
	cleanResponse(&x.resp)
	x.fromBackend = true
	return nil, false
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
func (g *Gateway) forward(x *exchange) target {
	req := &x.req
	h := &req.Header
	t := target{clientClose: h.ConnectionClose()}
	removeHopHeaders(h)
	h.ResetConnectionClose() // restored after the attempts (target.restore)
	ip := x.cc.ip            // the peer's address: X-Forwarded-For gains it
	switch prior := h.PeekAll(hdrForwardedFor); len(prior) {
	case 0:
		h.Set(hdrForwardedFor, ip)
	case 1:
		h.Set(hdrForwardedFor, string(prior[0])+", "+ip)
	default:
		// Set keeps one line: the others' entries go into it, in order.
		h.Set(hdrForwardedFor, string(bytes.Join(prior, []byte(", ")))+", "+ip)
	}
	h.Set(hdrForwardedProto, "http") // the gateway serves no TLS itself
	h.SetBytesV(hdrForwardedHost, req.URI().Host())
	h.Set(hdrRequestID, x.st.id)
	return t
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
func (g *Gateway) problem(x *exchange, status int, code, detail string) {
	g.metrics.gwErrors.WithLabelValues(code).Inc()
	web.WriteProblem(responseWriter(&x.resp), web.Problem{Type: "urn:million:problem:" + code, Title: http.StatusText(status),
		Status: status, Detail: detail, Code: code, RequestID: x.st.id})
	x.resp.Header.Set(hdrRequestID, x.st.id)
}

// writeError writes err as web.WriteError does for million serve.
func (g *Gateway) writeError(x *exchange, err error) {
	r := (&http.Request{Method: string(x.req.Header.Method()), URL: &url.URL{Path: string(x.req.URI().Path())}}).
		WithContext(web.WithRequestID(context.Background(), x.st.id))
	web.WriteError(responseWriter(&x.resp), r, g.logger, err)
	x.resp.Header.Set(hdrRequestID, x.st.id)
}

// fastWriter is an http.ResponseWriter over a fasthttp response, so that
// the gateway's own answers go through the same problem+json code as
// million serve's.
type fastWriter struct {
	resp   *fasthttp.Response
	header http.Header
	wrote  bool
}

func responseWriter(resp *fasthttp.Response) *fastWriter {
	return &fastWriter{resp: resp, header: http.Header{}}
}

func (w *fastWriter) Header() http.Header { return w.header }

func (w *fastWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	resp := w.resp
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
	return w.resp.BodyWriter().Write(p)
}

// unsafeString views b as a string for a lookup that does not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
