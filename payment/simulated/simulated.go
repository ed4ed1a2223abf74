// Package simulated is an in-process payment provider for development and
// tests: it authorizes, captures, voids and refunds with configurable latency
// and decline rules, so every payment path can run without a card network.
package simulated

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/payment"
)

// Card tokens with fixed outcomes; every other token is authorized.
const (
	TokenDecline = "tok_decline" // always declined
	TokenError   = "tok_error"   // the provider fails
	// TokenTimeoutCapture authorizes; its first capture takes effect at the
	// provider but the caller never hears back (a timeout), as when the
	// network drops the answer. Later captures answer normally.
	TokenTimeoutCapture = "tok_timeout_capture"
)

// errNoAnswer is what a caller sees when the provider's answer was lost.
var errNoAnswer = fmt.Errorf("simulated provider: no answer: %w", context.DeadlineExceeded)

type charge struct {
	ref    string
	amount int64
	state  string
	token  string
	lost   bool // the answer of a TokenTimeoutCapture capture was dropped once
}

// Provider is the simulated provider. It is safe for concurrent use.
type Provider struct {
	latency time.Duration

	mu      sync.Mutex
	byKey   map[string]*charge
	byRef   map[string]*charge
	authors int // authorizations made, for tests that count charges
}

var _ payment.Provider = (*Provider)(nil)

// New returns a provider that takes latency per call.
func New(latency time.Duration) *Provider {
	return &Provider{latency: latency, byKey: map[string]*charge{}, byRef: map[string]*charge{}}
}

// Name implements payment.Provider.
func (p *Provider) Name() string { return "simulated" }

func (p *Provider) wait(ctx context.Context) error {
	if p.latency <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(p.latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Authorize implements payment.Provider.
func (p *Provider) Authorize(ctx context.Context, key string, amount int64, currency, token string) (string, error) {
	if err := p.wait(ctx); err != nil {
		return "", err // a timeout: the caller cannot know whether it happened
	}
	switch token {
	case TokenDecline:
		return "", payment.ErrDeclined
	case TokenError:
		return "", payment.ErrProvider
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.byKey[key]; ok {
		return c.ref, nil
	}
	c := &charge{ref: "sim_" + uuid.NewString(), amount: amount, state: payment.StatusAuthorized, token: token}
	p.byKey[key], p.byRef[c.ref] = c, c
	p.authors++
	return c.ref, nil
}

func (p *Provider) transition(ctx context.Context, ref string, from []string, to string) error {
	if err := p.wait(ctx); err != nil {
		return err // a timeout: the caller cannot know whether it happened
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.byRef[ref]
	if !ok {
		return &fault.Error{Kind: fault.BadGateway, Code: "payment_provider_error", Message: "unknown charge"}
	}
	if c.state == to {
		return nil // a repeat of a call that took effect: idempotent
	}
	for _, f := range from {
		if c.state == f {
			c.state = to
			if to == payment.StatusCaptured && c.token == TokenTimeoutCapture && !c.lost {
				c.lost = true
				return errNoAnswer
			}
			return nil
		}
	}
	return &fault.Error{Kind: fault.BadGateway, Code: "payment_provider_error", Message: "charge is " + c.state}
}

// Capture implements payment.Provider.
func (p *Provider) Capture(ctx context.Context, ref string) error {
	return p.transition(ctx, ref, []string{payment.StatusAuthorized}, payment.StatusCaptured)
}

// Void implements payment.Provider.
func (p *Provider) Void(ctx context.Context, ref string) error {
	return p.transition(ctx, ref, []string{payment.StatusAuthorized}, payment.StatusVoided)
}

// Refund implements payment.Provider.
func (p *Provider) Refund(ctx context.Context, ref string) error {
	return p.transition(ctx, ref, []string{payment.StatusCaptured}, payment.StatusRefunded)
}

// State returns the provider's own state of the charge ref ("" when it
// does not know it), for tests that compare it with what was recorded.
func (p *Provider) State(ref string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.byRef[ref]; ok {
		return c.state
	}
	return ""
}

// Authorizations returns how many distinct authorizations were made.
func (p *Provider) Authorizations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.authors
}
