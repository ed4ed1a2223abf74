package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"time"
)

// Directory finds the address to mail a user at; the user module has it.
type Directory interface {
	Email(ctx context.Context, userID string) (string, error)
}

// SMTPSender mails messages through an SMTP server (a relay or a
// provider's submission endpoint).
type SMTPSender struct {
	addr, host string
	implicit   bool // smtps: TLS from the first byte
	auth       smtp.Auth
	from       *mail.Address
	dir        Directory
	timeout    time.Duration
}

// NewSMTPSender returns a sender for rawURL: smtp://user:pass@host:port
// (port 587 by default, STARTTLS whenever the server offers it) or
// smtps://… (port 465, TLS from the start). Credentials are sent only over
// TLS, or to a server on loopback. from is the sender address ("Shop
// <shop@example.com>"); timeout bounds one whole delivery.
func NewSMTPSender(rawURL, from string, dir Directory, timeout time.Duration) (*SMTPSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("smtp url: %w", err)
	}
	s := &SMTPSender{dir: dir, timeout: timeout}
	port := "587"
	switch u.Scheme {
	case "smtp":
	case "smtps":
		s.implicit, port = true, "465"
	default:
		return nil, errors.New("smtp url must start with smtp:// or smtps://")
	}
	s.host = u.Hostname()
	if s.host == "" {
		return nil, errors.New("smtp url has no host")
	}
	if u.Port() != "" {
		port = u.Port()
	}
	s.addr = net.JoinHostPort(s.host, port)
	if u.User != nil {
		pass, _ := u.User.Password()
		s.auth = smtp.PlainAuth("", u.User.Username(), pass, s.host)
	}
	if s.from, err = mail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("mail from %q: %w", from, err)
	}
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	return s, nil
}

// Send implements Sender. The message's ID is its Message-ID, so a
// receiving system can drop a copy sent again after a crash.
func (s *SMTPSender) Send(ctx context.Context, m Message) (err error) {
	to, err := s.dir.Email(ctx, m.UserID)
	if err != nil {
		return fmt.Errorf("recipient of %s: %w", m.ID, err)
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return fmt.Errorf("recipient of %s: %w", m.ID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var conn net.Conn
	if s.implicit {
		d := tls.Dialer{Config: &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}}
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return fmt.Errorf("smtp dial %s: %w", s.addr, err)
	}
	// The deadline bounds every read and write of the conversation.
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello("million"); err != nil {
		return fmt.Errorf("smtp hello: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok && !s.implicit {
		if err := c.StartTLS(&tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("smtp starttls: %w", err)
		}
	}
	if s.auth != nil {
		if err := c.Auth(s.auth); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return fmt.Errorf("smtp mail from: %w", err)
	}
	if err := c.Rcpt(rcpt.Address); err != nil {
		return fmt.Errorf("smtp rcpt to: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if _, err := w.Write(s.compose(m, rcpt)); err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	return c.Quit()
}

// compose renders m as a plain-text mail with CRLF line ends.
func (s *SMTPSender) compose(m Message, to *mail.Address) []byte {
	var b strings.Builder
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", s.from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(m.Subject)))
	header("Date", m.CreatedAt.Format(time.RFC1123Z))
	header("Message-ID", "<"+oneLine(m.ID)+"@million>")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	for line := range strings.Lines(m.Body) {
		b.WriteString(strings.TrimRight(line, "\r\n") + "\r\n")
	}
	return []byte(b.String())
}

// oneLine keeps a header value from starting another header.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
