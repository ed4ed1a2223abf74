package gateway

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"
)

// Strategy chooses among the available backends.
type Strategy string

// The strategies.
const (
	RoundRobin Strategy = "rr"     // each in turn
	P2C        Strategy = "p2c"    // least in-flight requests of two picked at random (power of two choices)
	IPHash     Strategy = "iphash" // rendezvous hashing on the client IP: sticky, and a backend leaving moves only its clients
)

// ParseStrategy accepts rr, p2c or iphash.
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case RoundRobin, P2C, IPHash:
		return Strategy(s), nil
	}
	return "", fmt.Errorf("unknown strategy %q (want rr, p2c or iphash)", s)
}

// pick returns the backend for the next attempt, never one already tried
// for this request. When no untried backend is available it returns the
// least bad untried one, so a gateway whose backends all look down still
// tries instead of refusing outright; nil means every backend was tried.
func (g *Gateway) pick(clientIP string, tried []*backend) *backend {
	bs := g.snapshot()
	now := g.now()
	var candBuf [8]*backend // on the stack for the usual few backends
	cands := candBuf[:0]
	for _, b := range bs {
		if !contains(tried, b) && b.available(now) {
			cands = append(cands, b)
		}
	}
	if len(cands) == 0 {
		var best *backend
		bestScore := 0
		for _, b := range bs {
			if contains(tried, b) {
				continue
			}
			if s := b.badness(now); best == nil || s < bestScore {
				best, bestScore = b, s
			}
		}
		return best
	}
	if len(cands) == 1 {
		return cands[0]
	}
	switch g.opts.Strategy {
	case P2C:
		i := rand.IntN(len(cands))
		j := rand.IntN(len(cands) - 1)
		if j >= i {
			j++
		}
		if cands[j].inFlight.Load() < cands[i].inFlight.Load() {
			return cands[j]
		}
		return cands[i]
	case IPHash:
		var best *backend
		var bestScore uint64
		for _, b := range cands {
			if s := rendezvous(b.key, clientIP); best == nil || s > bestScore {
				best, bestScore = b, s
			}
		}
		return best
	default:
		return cands[g.rr.Add(1)%uint64(len(cands))]
	}
}

func contains(bs []*backend, b *backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

// rendezvous is the highest-random-weight score of (backend, client): each
// client goes to the backend with the highest score, so removing a backend
// moves only the clients that scored it highest.
func rendezvous(backendKey, client string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(backendKey))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(client))
	// FNV's low bits mix poorly for similar inputs; finish with splitmix64.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// retryBudget caps retries at a ratio of recent requests plus a small
// floor, so retries cannot multiply load when every backend is failing (a
// retry storm): over a sliding window of 10 one-second buckets.
type retryBudget struct {
	mu      sync.Mutex
	ratio   float64
	minimum int // retries always allowed per window
	now     func() time.Time
	buckets [10]budgetBucket
}

type budgetBucket struct {
	sec            int64
	reqs, attempts int
}

func (rb *retryBudget) bucket(sec int64) *budgetBucket {
	b := &rb.buckets[sec%int64(len(rb.buckets))]
	if b.sec != sec {
		*b = budgetBucket{sec: sec}
	}
	return b
}

// request records one incoming request.
func (rb *retryBudget) request() {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	rb.bucket(rb.now().Unix()).reqs++
}

// tryRetry takes one retry from the budget, or reports that none is left.
func (rb *retryBudget) tryRetry() bool {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	sec := rb.now().Unix()
	reqs, retries := 0, 0
	for i := range rb.buckets {
		if b := &rb.buckets[i]; b.sec > sec-int64(len(rb.buckets)) {
			reqs += b.reqs
			retries += b.attempts
		}
	}
	if float64(retries) >= rb.ratio*float64(reqs)+float64(rb.minimum) {
		return false
	}
	rb.bucket(sec).attempts++
	return true
}
