package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/seed"
)

// checkoutSide measures POST /v1/checkout alone. A checkout needs a full
// cart, and a cart is a logged-in user's, and logging in costs an argon2id
// hash (~30 ms of the server's one core), so the side logs in CartUsers
// seeded users once and then works in phases: fill every empty cart with 3
// products (PUT /v1/cart/items, not measured, the server otherwise idle),
// then check the carts out, which is what is measured. Capacity is the
// checkouts answered over the checkout phases' time, phases following one
// another until they add up to the duration; each phase ends when its carts
// are bought, so the last few requests of a phase run below full
// concurrency (a small understatement, ≤ connections / CartUsers). The
// latency run is one open-model phase at half that rate, as long as the
// carts last (at most the duration).
type checkoutSide struct {
	r       *runner
	srv     *server
	pg      *pgCluster
	t       *httpTarget
	users   []*cartUser
	stocked []string // products with stock to spare
	// profile is the file for the server's CPU profile over the next
	// measured run; "" once written, or when none is asked for.
	profile string
}

// cartUser is a logged-in seeded user.
type cartUser struct {
	token string
	full  bool // holds a 3-item cart not checked out yet
}

// itemsPerCart is the cart the target of bench.md names.
const itemsPerCart = 3

// minStock is the stock a product needs to be put in carts: far more than
// a run's checkouts take from one product when spread over thousands.
const minStock = 50

func runPgCheckout(ctx context.Context, r *runner, res *ScenarioResult) error {
	pg, err := r.postgres(ctx)
	if err != nil {
		return err
	}
	r.describePg(res, pg)
	// Tokens must outlive the run: logging in again would cost the hash.
	srv, err := r.startMillion(ctx, res.Name, "--database", pg.millionURL, "--access-token-ttl", "6h", noShed)
	if err != nil {
		return err
	}
	defer srv.stop()
	target, err := newCheckoutSide(ctx, r, srv, pg.cluster)
	if err != nil {
		return err
	}
	defer target.t.close()
	target.profile = r.profileFile(res.Name)
	res.Notes = append(res.Notes,
		fmt.Sprintf("%s seeded users logged in once, each with a cart of %d products drawn at random from the %s with stock ≥ %d; carts refilled between measured phases",
			thousands(int64(len(target.users))), itemsPerCart, thousands(int64(len(target.stocked))), minStock),
		"card payment through the simulated provider (no added latency); every checkout has its own Idempotency-Key")
	baseline := &pgbenchSide{r: r, pg: pg, name: "pgbench TPC-B -M prepared"}
	return r.compare(ctx, res, baseline, target)
}

func newCheckoutSide(ctx context.Context, r *runner, srv *server, pg *pgCluster) (*checkoutSide, error) {
	base := "http://" + srv.addr
	products, err := discoverProducts(ctx, base)
	if err != nil {
		return nil, err
	}
	s := &checkoutSide{r: r, srv: srv, pg: pg, t: newHTTPTarget(srv.addr, r.cfg.Connections)}
	for _, p := range products {
		if p.Stock >= minStock {
			s.stocked = append(s.stocked, "/v1/cart/items/"+url.PathEscape(p.ID))
		}
	}
	if len(s.stocked) < itemsPerCart {
		return nil, errors.New("too few products with stock to fill carts")
	}
	start := time.Now()
	r.logf("logging in %s users (one argon2id hash each on the server core)", thousands(int64(r.cfg.CartUsers)))
	s.users = make([]*cartUser, r.cfg.CartUsers)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for w := range errs {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(s.users) || ctx.Err() != nil {
					return
				}
				tok, err := login(ctx, base, i+1)
				if err != nil {
					errs[w] = err
					return
				}
				s.users[i] = &cartUser{token: tok}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.logf("logged in in %s", time.Since(start).Round(10*time.Millisecond))
	return s, ctx.Err()
}

// login logs seeded user n in and returns the access token.
func login(ctx context.Context, base string, n int) (string, error) {
	body, _ := json.Marshal(map[string]string{"email": seed.Email(n), "password": seed.DefaultPassword})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/auth/login", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := setupClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("log in as %s: status %d", seed.Email(n), resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

func (s *checkoutSide) pause()  { s.srv.pause() }
func (s *checkoutSide) resume() { s.srv.resume() }

var cartItemBody = []byte(`{"quantity":1}`)

// fill puts itemsPerCart products in every empty cart.
func (s *checkoutSide) fill(ctx context.Context) error {
	var empty []*cartUser
	for _, u := range s.users {
		if !u.full {
			empty = append(empty, u)
		}
	}
	var next atomic.Int64
	var failed atomic.Pointer[string]
	var wg sync.WaitGroup
	for range cap(s.t.conns) {
		wg.Go(func() {
			c := <-s.t.conns
			defer func() { s.t.conns <- c }()
			for ctx.Err() == nil && failed.Load() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(empty) {
					return
				}
				u := empty[i]
				seen := map[int]bool{}
				for len(seen) < itemsPerCart {
					k := rand.IntN(len(s.stocked))
					if seen[k] {
						continue
					}
					seen[k] = true
					req := &request{method: http.MethodPut, path: s.stocked[k], token: u.token, body: cartItemBody}
					status, err := c.do(s.t.addr, req, time.Now().Add(30*time.Second))
					if err != nil || status != http.StatusOK {
						msg := describe(req, status, err)
						failed.Store(&msg)
						return
					}
				}
				u.full = true
			}
		})
	}
	wg.Wait()
	if m := failed.Load(); m != nil {
		return fmt.Errorf("fill the carts: %s", *m)
	}
	return ctx.Err()
}

var checkoutBody = []byte(`{"payment":{"method":"card","token":"tok_visa"}}`)

// queue hands out a checkout for every full cart, once; a cart handed out
// counts as bought whatever the answer (a failure is counted as an error,
// and the next fill tops the cart up with 3 more products).
func (s *checkoutSide) queue() nextFunc {
	var full []*cartUser
	for _, u := range s.users {
		if u.full {
			full = append(full, u)
		}
	}
	var next atomic.Int64
	return func() (*request, bool) {
		i := int(next.Add(1)) - 1
		if i >= len(full) {
			return nil, false
		}
		u := full[i]
		u.full = false
		return &request{method: http.MethodPost, path: "/v1/checkout", token: u.token, idem: uuid.NewString(),
			body: checkoutBody, want: http.StatusCreated}, true
	}
}

func (s *checkoutSide) warm(ctx context.Context, d time.Duration) error {
	if err := s.fill(ctx); err != nil {
		return err
	}
	p := s.t.saturate(ctx, d, s.queue())
	if p.OK == 0 {
		return fmt.Errorf("no checkout succeeded: %s", p.Sample)
	}
	return nil
}

func (s *checkoutSide) measure(ctx context.Context, d time.Duration) (*Side, error) {
	m := &Side{Name: "million"}
	mt := newMeter(s.srv.pid(), s.pg.pid())
	var elapsed time.Duration
	// The profile covers the start of the run: a phase lasts as long as
	// the filled carts do, a few seconds, and filling is not measured.
	profiled := func() {}
	defer func() { profiled() }()
	for elapsed < d && ctx.Err() == nil {
		if err := s.fill(ctx); err != nil {
			return m, err
		}
		if s.profile != "" {
			profiled = s.r.startProfile(ctx, s.srv, &s.profile, min(d, 3*time.Second))
		}
		mt.start()
		p := s.t.saturate(ctx, d-elapsed, s.queue())
		mt.stop()
		elapsed += p.Elapsed
		m.OK += p.OK
		m.Errors += p.Errors
		if m.ErrorSample == "" {
			m.ErrorSample = p.Sample
		}
		if p.OK == 0 && p.Errors == 0 {
			break
		}
	}
	m.DurationS = elapsed.Seconds()
	if elapsed > 0 {
		m.ThroughputRPS = float64(m.OK) / elapsed.Seconds()
	}
	mt.report(s.r.cfg.Pins, m)
	if m.OK == 0 {
		return m, fmt.Errorf("no checkout succeeded: %s", m.ErrorSample)
	}
	if err := s.fill(ctx); err != nil {
		return m, err
	}
	rate := m.ThroughputRPS / 2
	dl := min(d, time.Duration(0.9*float64(len(s.users))/rate*float64(time.Second)))
	var err error
	m.Latency, err = openModel(ctx, s.r.cfg.Pins, s.t, s.queue(), "checkout", rate, dl)
	return m, err
}
