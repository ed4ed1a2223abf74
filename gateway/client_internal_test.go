package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/url"
	"testing"
	"time"
)

// TestPoolClosesConnectionsIdleTooLong: a connection idle past the idle
// timeout is closed when another one comes back, and never handed out.
func TestPoolClosesConnectionsIdleTooLong(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var d net.Dialer
	p := newH1Pool(&url.URL{Scheme: "http", Host: l.Addr().String()}, d.DialContext, 8, 50*time.Millisecond, time.Second)
	dial := func() (*h1conn, net.Conn) {
		nc, err := p.dial(context.Background(), "tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		srv := <-accepted
		t.Cleanup(func() { srv.Close() })
		return &h1conn{nc: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(nc)}, srv
	}
	old, oldSrv := dial()
	fresh, _ := dial()
	p.put(old)
	time.Sleep(100 * time.Millisecond) // older than the 50 ms idle timeout
	p.put(fresh)
	_ = oldSrv.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := oldSrv.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the stale connection's backend side read %v, want EOF (closed by the pool)", err)
	}
	if c := p.get(fresh.idleAt); c != fresh {
		t.Fatal("get did not return the fresh connection")
	}
	if c := p.get(fresh.idleAt); c != nil {
		t.Fatal("get returned a connection idle past the timeout")
	}
}
