// Package smtptest is a mail sink for tests: a real SMTP server on a free
// loopback port that accepts every message (optionally after checking
// PLAIN credentials) and keeps it, so tests can count what million mailed.
// It can also refuse recipients or stall, to test failures and timeouts.
package smtptest

import (
	"bufio"
	"encoding/base64"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
)

// Mail is one accepted message.
type Mail struct {
	From string
	To   []string
	Msg  *mail.Message
	Raw  string
}

// Sink is a running SMTP sink.
type Sink struct {
	// Addr is host:port of the server.
	Addr string
	l    net.Listener
	mu   sync.Mutex
	mail []Mail
	// refuse makes RCPT answer 550 while set; stall makes the server never
	// answer after the greeting.
	refuse, stall bool
	// user and password, when set, are the only PLAIN credentials accepted.
	user, password string
	conns          map[net.Conn]bool
	wg             sync.WaitGroup
}

// Start starts a sink for the test and stops it when the test ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{Addr: l.Addr().String(), l: l, conns: map[net.Conn]bool{}}
	s.wg.Go(s.serve)
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// RequireAuth makes the sink accept mail only after PLAIN authentication
// with these credentials.
func (s *Sink) RequireAuth(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.password = user, password
}

// URL returns the smtp:// URL of the sink, with its credentials if any.
func (s *Sink) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.user != "" {
		return "smtp://" + s.user + ":" + s.password + "@" + s.Addr
	}
	return "smtp://" + s.Addr
}

// Refuse makes the sink refuse (or accept again) every recipient.
func (s *Sink) Refuse(on bool) { s.mu.Lock(); s.refuse = on; s.mu.Unlock() }

// Stall makes the sink stop answering after its greeting.
func (s *Sink) Stall(on bool) { s.mu.Lock(); s.stall = on; s.mu.Unlock() }

// Mail returns the accepted messages, in order.
func (s *Sink) Mail() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mail...)
}

func (s *Sink) serve() {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		conns.Go(func() {
			s.session(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		})
	}
}

func (s *Sink) session(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(line string) bool {
		_, err := c.Write([]byte(line + "\r\n"))
		return err == nil
	}
	s.mu.Lock()
	stall, user, password := s.stall, s.user, s.password
	s.mu.Unlock()
	if !say("220 smtptest ESMTP") {
		return
	}
	var cur Mail
	authed := user == ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if stall {
			continue // read and never answer, until the client gives up
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			say("250-smtptest\r\n250-8BITMIME\r\n250 AUTH PLAIN")
		case "AUTH":
			mech, b64, _ := strings.Cut(arg, " ")
			raw, err := base64.StdEncoding.DecodeString(b64)
			parts := strings.Split(string(raw), "\x00")
			if strings.ToUpper(mech) != "PLAIN" || err != nil || len(parts) != 3 || parts[1] != user || parts[2] != password {
				say("535 authentication failed")
				continue
			}
			authed = true
			say("235 ok")
		case "MAIL":
			if !authed {
				say("530 authentication required")
				continue
			}
			cur = Mail{From: addr(arg)}
			say("250 ok")
		case "RCPT":
			s.mu.Lock()
			refuse := s.refuse
			s.mu.Unlock()
			if refuse {
				say("550 no such mailbox")
				continue
			}
			cur.To = append(cur.To, addr(arg))
			say("250 ok")
		case "DATA":
			say("354 go ahead")
			var body strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(strings.TrimPrefix(l, "."))
			}
			cur.Raw = body.String()
			cur.Msg, _ = mail.ReadMessage(strings.NewReader(cur.Raw))
			s.mu.Lock()
			s.mail = append(s.mail, cur)
			s.mu.Unlock()
			say("250 queued")
		case "RSET", "NOOP":
			say("250 ok")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// addr takes the address out of "FROM:<a@b>" or "TO:<a@b> SIZE=…".
func addr(arg string) string {
	_, v, _ := strings.Cut(arg, ":")
	v, _, _ = strings.Cut(strings.TrimSpace(v), " ")
	return strings.Trim(v, "<>")
}
