package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/millionshop/million/loadgen"
)

// request is what one arrival sends.
type request struct {
	method string
	path   string
	token  string // Authorization: Bearer, when set
	idem   string // Idempotency-Key, when set
	body   []byte // sent as application/json
	want   int    // the status that counts as success; 200 when 0
}

// httpTarget is a server the generator measures, over a fixed set of
// keep-alive HTTP/1.1 connections: one per request in flight, as a
// proxy speaks to an origin. The generator writes requests and parses
// responses on the connection itself (http.ReadResponse) rather than
// through http.Client, whose transport adds two goroutine hand-offs per
// request: on one core the generator must keep up with a bare net/http
// server, and every microsecond it spends is one the baseline is not
// measured for.
type httpTarget struct {
	addr  string // host:port
	conns chan *rawConn
}

func newHTTPTarget(addr string, conns int) *httpTarget {
	t := &httpTarget{addr: addr, conns: make(chan *rawConn, conns)}
	for range conns {
		t.conns <- &rawConn{}
	}
	return t
}

// close closes every connection; the target must be idle.
func (t *httpTarget) close() {
	for range cap(t.conns) {
		c := <-t.conns
		c.close()
		t.conns <- c
	}
}

// rawConn is one keep-alive connection; nil nc means not connected yet (or
// dropped after an error), and the next request dials.
type rawConn struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte
}

func (c *rawConn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// errStatus is an answer that was not the expected status.
var errStatus = errors.New("unexpected status")

// do sends req and reads the whole response, by the deadline. A failure
// drops the connection.
func (c *rawConn) do(addr string, req *request, deadline time.Time) (status int, err error) {
	if c.nc == nil {
		d := net.Dialer{Deadline: deadline}
		if c.nc, err = d.Dial("tcp", addr); err != nil {
			c.nc = nil
			return 0, err
		}
		if c.br == nil {
			c.br = bufio.NewReaderSize(c.nc, 16<<10)
		} else {
			c.br.Reset(c.nc)
		}
	}
	b := c.buf[:0]
	b = append(b, req.method...)
	b = append(b, ' ')
	b = append(b, req.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, addr...)
	b = append(b, "\r\nUser-Agent: million-bench\r\n"...)
	if req.token != "" {
		b = append(b, "Authorization: Bearer "...)
		b = append(b, req.token...)
		b = append(b, "\r\n"...)
	}
	if req.idem != "" {
		b = append(b, "Idempotency-Key: "...)
		b = append(b, req.idem...)
		b = append(b, "\r\n"...)
	}
	if req.body != nil {
		b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(req.body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, req.body...)
	c.buf = b

	if err := c.nc.SetDeadline(deadline); err != nil {
		c.close()
		return 0, err
	}
	if _, err := c.nc.Write(b); err != nil {
		c.close()
		return 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		c.close()
		return resp.StatusCode, err
	}
	if resp.Close {
		c.close()
	}
	return resp.StatusCode, nil
}

// ok says whether status is the success req expects.
func (r *request) ok(status int) bool {
	if r.want == 0 {
		return status == http.StatusOK
	}
	return status == r.want
}

// nextFunc returns the request of the next arrival, or false when there is
// nothing left to send (a checkout phase whose carts are all bought). It
// is called concurrently.
type nextFunc func() (*request, bool)

// probe is a closed-loop saturation run: every connection sends its next
// request as soon as the previous answer is in, so the server is never
// idle and its throughput is its capacity.
type probe struct {
	OK      int64         // successful answers
	Errors  int64         // other answers and failures
	Elapsed time.Duration // from the start until the deadline or the last answer
	Sample  string        // one error, to explain them
}

// rps is the successful answers per second.
func (p probe) rps() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.OK) / p.Elapsed.Seconds()
}

// saturate runs every connection of t in a closed loop for d, or until
// next runs out. Requests still in flight at the deadline finish but do not
// count: the throughput is what was answered within d.
func (t *httpTarget) saturate(ctx context.Context, d time.Duration, next nextFunc) probe {
	var ok, errs atomic.Int64
	var sampleOnce sync.Once
	var sample string
	start := time.Now()
	end := start.Add(d)
	var last atomic.Int64 // when the last answer counted came, in ns since start
	var wg sync.WaitGroup
	for range cap(t.conns) {
		wg.Go(func() {
			c := <-t.conns
			defer func() { t.conns <- c }()
			for ctx.Err() == nil {
				req, more := next()
				if !more {
					return
				}
				status, err := c.do(t.addr, req, time.Now().Add(loadgen.DefaultTimeout))
				now := time.Now()
				if now.After(end) {
					return
				}
				last.Store(int64(now.Sub(start)))
				if err == nil && req.ok(status) {
					ok.Add(1)
					continue
				}
				errs.Add(1)
				sampleOnce.Do(func() { sample = describe(req, status, err) })
			}
		})
	}
	wg.Wait()
	elapsed := min(time.Since(start), d)
	if l := time.Duration(last.Load()); l > 0 && l < elapsed {
		// The work ran out before the deadline (a checkout phase): the
		// time after the last answer measured nothing.
		elapsed = l
	}
	return probe{OK: ok.Load(), Errors: errs.Load(), Elapsed: elapsed, Sample: sample}
}

func describe(req *request, status int, err error) string {
	if err != nil {
		return fmt.Sprintf("%s %s: %v", req.method, req.path, err)
	}
	return fmt.Sprintf("%s %s: status %d", req.method, req.path, status)
}

// workload adapts a target to loadgen's open model: every arrival takes a
// connection, sends the next request and reports how it went. loadgen runs
// at most cap(conns) arrivals at once, so a connection is always free.
type workload struct {
	t    *httpTarget
	next nextFunc
	step string
}

// Do implements loadgen.Workload.
func (w *workload) Do(ctx context.Context) loadgen.Outcome {
	req, more := w.next()
	if !more {
		return loadgen.Outcome{Step: w.step, Err: fmt.Errorf("%w: nothing left to send", loadgen.ErrClient)}
	}
	c := <-w.t.conns
	defer func() { w.t.conns <- c }()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(loadgen.DefaultTimeout)
	}
	status, err := c.do(w.t.addr, req, deadline)
	if err == nil && !req.ok(status) && status/100 == 2 {
		// A 2xx the scenario does not expect (200 instead of 201) is
		// still a failure of the scenario.
		err = fmt.Errorf("%w %d", errStatus, status)
	}
	return loadgen.Outcome{Step: w.step, Status: status, Err: err}
}
