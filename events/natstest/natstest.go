// Package natstest runs a throwaway external NATS server with JetStream for
// tests: the real server from the nats-server module, listening on a free
// loopback port with its own store directory, so that clients reach it over
// TCP exactly as they reach a separate process. Tests stop and restart it to
// see what an outage does; the store survives a restart.
package natstest

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is one NATS server owned by a test.
type Server struct {
	// Addr is host:port of the server.
	Addr string
	dir  string

	mu  sync.Mutex
	srv *server.Server
}

// URL returns the nats:// URL of the server.
func (s *Server) URL() string { return "nats://" + s.Addr }

// Start starts a server for the test and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: t.TempDir()}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down, as an outage; its store stays. Stop on a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart starts the server again on the same address and store, and waits
// until it accepts connections.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	host, port, _ := net.SplitHostPort(s.Addr)
	p, _ := strconv.Atoi(port)
	srv, err := server.NewServer(&server.Options{
		ServerName:         "natstest",
		Host:               host,
		Port:               p,
		JetStream:          true,
		StoreDir:           s.dir,
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  256 << 20,
		NoSigs:             true,
		NoLog:              true,
	})
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("nats server on %s not ready after 30s", s.Addr)
	}
	s.srv = srv
	return nil
}
