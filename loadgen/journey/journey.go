// Package journey is the load of shoppers on million's public API, for
// loadgen: people browsing categories, listing and paging through products,
// opening product pages (revalidating the ones they have seen), searching
// with words from product names, logging in as seeded users, filling carts,
// checking out and looking at their orders.
//
// Every arrival is one request, so the arrival rate is the request rate. A
// step is drawn from the mix and given to a virtual user: one visitor with
// a browser's state (the page it listed, the ETags it holds) and, once
// logged in, a seeded account with its token and cart. Virtual users log in
// once and keep their token until it is about to expire, so most logged-in
// requests are not logins. Each account is held by one virtual user at a
// time and a user sends one write at a time, so carts and checkouts stay
// consistent and a correct server answers every request with success.
//
// Everything the journeys need is discovered through the API at start
// (categories, the first pages of each category's products), never read
// from the database, so they run against any deployment.
package journey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/millionshop/million/loadgen"
	"github.com/millionshop/million/seed"
)

// Config says who the shoppers are and what they do.
type Config struct {
	// Target is the shop's base URL, e.g. http://127.0.0.1:8080.
	Target string
	// Client sends every request; its transport should keep enough idle
	// connections for the concurrency (loadgen.NewHTTPClient).
	Client *http.Client
	// Mix weighs the steps; nil means DefaultMix.
	Mix Mix
	// Users is the population: virtual users log in as seeded users 1 to
	// Users (user<N>@seed.million.test), so it must not exceed how many were
	// seeded. Up to a million.
	Users int
	// Password is the seeded users' password; "" means seed.DefaultPassword.
	Password string
	// VirtualUsers is how many visitors are active at once, each with its
	// own state and, once logged in, its own account. At most Users.
	VirtualUsers int
	// ThinkTime is the mean pause (exponentially distributed) of a virtual
	// user between a response and its next request. The arrival rate does
	// not change; think time only spreads each user's requests out, as a
	// real shopper's are, so more virtual users take part.
	ThinkTime time.Duration
	// ProductSkew is the Zipf exponent of product popularity: 0 spreads
	// views evenly over the products discovered; DefaultProductSkew, what
	// million load uses, makes a few products draw most views, as in real
	// shops.
	ProductSkew float64
	// DiscoverPages is how many pages of 100 products per category are
	// fetched at start; the products found are the ones viewed and bought.
	DiscoverPages int
}

// Defaults of zero Config fields (ProductSkew aside, whose zero means even).
const (
	DefaultUsers         = 1000
	DefaultVirtualUsers  = 1000
	DefaultDiscoverPages = 5
	DefaultProductSkew   = 1.0
)

// MaxUsers is the largest population: million's peak scenario has a
// million seeded users.
const MaxUsers = 1_000_000

// Shop is the journeys' workload; it implements loadgen.Workload.
type Shop struct {
	cfg      Config
	base     string
	steps    []string
	cum      []float64 // cumulative weights of steps
	cats     []string  // category slugs
	products []product
	byID     map[string]int
	popular  []int     // product indexes from most to least popular
	zipf     []float64 // cumulative popularity by rank
	stocked  []int     // products carts are filled from
	// left[i] is how many more units of product i carts may take: its
	// stock at discovery minus what this run put in carts. Keeping it above
	// zero means checkouts never fail for stock the run itself used up.
	left []atomic.Int64
	vus  []*vu

	draws atomic.Uint64 // steps drawn so far: the next draw's place in the sequence

	accMu    sync.Mutex
	accounts []bool // accounts[n]: seeded user n is held by a virtual user

	cartMu sync.Mutex
	carts  []*vu // virtual users with a non-empty cart
}

// product is a product as the journeys know it.
type product struct {
	id    string
	words []string // its name's words, lower case, for searches
}

// vu is one virtual user.
type vu struct {
	mu      sync.Mutex
	busy    bool      // a write is in flight: one click at a time
	readyAt time.Time // thinking until then
	account int       // seeded user number; 0 when not logged in
	token   string
	expires time.Time // when to log in again, a little before the token expires
	cart    int       // items this user put in its cart since it last checked out
	inCarts int       // index in Shop.carts, or -1
	// What a browser remembers.
	category, sort, cursor string
	page                   []int          // products of the last page listed
	etags                  map[int]string // product index → ETag
}

// maxETags bounds each virtual user's remembered ETags, a small browser cache.
const maxETags = 32

// cartMargin is the stock left untouched in every product, so that carts
// left over by earlier runs do not find it gone either.
const cartMargin = 10

// New discovers the shop at cfg.Target (categories and products) and checks
// that the first and the last seeded user of the population can log in, so
// that a wrong --users or an unseeded database fails at once, not as a run
// full of 401s.
func New(ctx context.Context, cfg Config) (*Shop, error) {
	if cfg.Client == nil {
		cfg.Client = loadgen.NewHTTPClient(0)
	}
	if cfg.Mix == nil {
		cfg.Mix = DefaultMix()
	}
	if cfg.Users <= 0 {
		cfg.Users = DefaultUsers
	}
	if cfg.Users > MaxUsers {
		return nil, fmt.Errorf("journey: %d users is more than the %d supported", cfg.Users, MaxUsers)
	}
	if cfg.Password == "" {
		cfg.Password = seed.DefaultPassword
	}
	if cfg.VirtualUsers <= 0 {
		cfg.VirtualUsers = DefaultVirtualUsers
	}
	// Each logged-in virtual user holds an account of its own.
	cfg.VirtualUsers = min(cfg.VirtualUsers, cfg.Users)
	if cfg.DiscoverPages <= 0 {
		cfg.DiscoverPages = DefaultDiscoverPages
	}
	if cfg.ProductSkew < 0 {
		return nil, errors.New("journey: product skew must be ≥ 0")
	}
	u, err := url.Parse(cfg.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("journey: target %q is not an http(s) URL", cfg.Target)
	}
	s := &Shop{cfg: cfg, base: strings.TrimRight(cfg.Target, "/"), byID: map[string]int{},
		accounts: make([]bool, cfg.Users+1)}
	for _, step := range cfg.Mix.steps() {
		s.steps = append(s.steps, step)
		s.cum = append(s.cum, s.total()+cfg.Mix[step])
	}
	if len(s.steps) == 0 {
		return nil, errors.New("journey: the mix gives no step a weight")
	}
	if err := s.discover(ctx); err != nil {
		return nil, err
	}
	if cfg.Mix.needsLogin() {
		for _, n := range []int{1, cfg.Users} {
			if _, _, err := s.login(ctx, n); err != nil {
				return nil, fmt.Errorf("journey: log in as %s: %w (seed the users with `million seed --users %d`, or lower --users)",
					seed.Email(n), err, cfg.Users)
			}
		}
	}
	s.vus = make([]*vu, cfg.VirtualUsers)
	for i := range s.vus {
		s.vus[i] = &vu{inCarts: -1, etags: map[int]string{}}
	}
	return s, nil
}

// stepAt is the index of the step of the nth draw. The draws follow the
// golden-ratio (Weyl) sequence, the fractional parts of n times the
// golden ratio's conjugate, instead of independent random numbers: any
// stretch of a run holds each step within a draw or two of its weight, so
// that two runs (a bench's two sides) compare the same mix rather than two
// samples of it (checkouts at 1.5 % of 2,000 independent draws came out
// between 23 and 38). The kinds of step then come in a fixed rotation
// (a search is followed by a product page, say); which virtual user,
// product, page or words a step takes stays random.
func (s *Shop) stepAt(n uint64) int {
	// In fixed point: n times 2^64 over the golden ratio, modulo 2^64.
	u := float64((n*0x9E3779B97F4A7C15)>>11) / (1 << 53)
	i := sort.SearchFloat64s(s.cum, u*s.total())
	return min(i, len(s.steps)-1)
}

func (s *Shop) total() float64 {
	if len(s.cum) == 0 {
		return 0
	}
	return s.cum[len(s.cum)-1]
}

// Steps lists the steps that can appear in the report: those of the mix,
// login when the mix has logged-in steps and cart_add when it checks out,
// since a virtual user that must be logged in or hold a cart first does
// that instead.
func (s *Shop) Steps() []string {
	out := slices.Clone(s.steps)
	add := func(step string) {
		if !slices.Contains(out, step) {
			out = append(out, step)
		}
	}
	if s.cfg.Mix.needsLogin() {
		add(StepLogin)
	}
	if s.cfg.Mix[StepCheckout] > 0 {
		add(StepCartAdd)
	}
	slices.Sort(out)
	return out
}

// Description is what the report says about the workload.
type Description struct {
	Kind         string  `json:"kind"`
	Mix          Mix     `json:"mix"`
	ReadShare    float64 `json:"read_share"`
	Users        int     `json:"users"`
	VirtualUsers int     `json:"virtual_users"`
	ThinkTimeS   float64 `json:"think_time_s"`
	ProductSkew  float64 `json:"product_skew"`
	Categories   int     `json:"categories"`
	Products     int     `json:"products"` // discovered, and so viewed and bought
}

// Describe returns the description of the workload for the report.
func (s *Shop) Describe() Description {
	return Description{Kind: "shop journeys", Mix: s.cfg.Mix, ReadShare: s.cfg.Mix.ReadShare(), Users: s.cfg.Users,
		VirtualUsers: s.cfg.VirtualUsers, ThinkTimeS: s.cfg.ThinkTime.Seconds(), ProductSkew: s.cfg.ProductSkew,
		Categories: len(s.cats), Products: len(s.products)}
}

// discover lists the categories and the first pages of each one's products.
func (s *Shop) discover(ctx context.Context) error {
	var cats struct {
		Items []struct {
			Slug string `json:"slug"`
		} `json:"items"`
	}
	if status, _, err := s.call(ctx, request{method: http.MethodGet, path: "/v1/categories", into: &cats}); err != nil || status != http.StatusOK {
		return fmt.Errorf("journey: list the categories of %s: %s", s.base, failure(status, err))
	}
	for _, c := range cats.Items {
		s.cats = append(s.cats, c.Slug)
	}
	if len(s.cats) == 0 {
		return fmt.Errorf("journey: %s has no categories (fill it with `million seed`)", s.base)
	}
	var stocks []int64
	for _, slug := range s.cats {
		cursor := ""
		for range s.cfg.DiscoverPages {
			var page struct {
				Items []struct {
					ID    string `json:"id"`
					Name  string `json:"name"`
					Stock int64  `json:"stock"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			path := "/v1/products?limit=100&category=" + url.QueryEscape(slug)
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			if status, _, err := s.call(ctx, request{method: http.MethodGet, path: path, into: &page}); err != nil || status != http.StatusOK {
				return fmt.Errorf("journey: list the products of %s: %s", slug, failure(status, err))
			}
			for _, it := range page.Items {
				if _, dup := s.byID[it.ID]; dup {
					continue
				}
				s.byID[it.ID] = len(s.products)
				s.products = append(s.products, product{id: it.ID, words: strings.Fields(strings.ToLower(it.Name))})
				stocks = append(stocks, it.Stock)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
	}
	if len(s.products) == 0 {
		return fmt.Errorf("journey: %s has no products (fill it with `million seed`)", s.base)
	}
	s.left = make([]atomic.Int64, len(s.products))
	for i, st := range stocks {
		s.left[i].Store(st - cartMargin)
		if st > cartMargin {
			s.stocked = append(s.stocked, i)
		}
	}
	// Popularity follows a fixed shuffle, so it is not tied to the order
	// of the listing (the newest products need not be the most viewed) and
	// repeated runs on the same data view the same products most.
	s.popular = rand.New(rand.NewPCG(1, 2)).Perm(len(s.products))
	s.zipf = make([]float64, len(s.products))
	var sum float64
	for i := range s.zipf {
		sum += 1 / math.Pow(float64(i+1), s.cfg.ProductSkew)
		s.zipf[i] = sum
	}
	return nil
}

func failure(status int, err error) string {
	if err != nil {
		return err.Error()
	}
	return "status " + strconv.Itoa(status)
}

// Do implements loadgen.Workload: it draws a step and carries it out.
func (s *Shop) Do(ctx context.Context) loadgen.Outcome {
	switch step := s.steps[s.stepAt(s.draws.Add(1))]; step {
	case StepCategories:
		return s.categories(ctx)
	case StepList:
		return s.list(ctx, s.visitor())
	case StepProduct:
		return s.product(ctx, s.visitor())
	case StepSearch:
		return s.search(ctx)
	case StepOrders:
		if v := s.claim(loggedIn, false); v != nil {
			return s.orders(ctx, v)
		}
		return s.loginSomeone(ctx)
	case StepCartAdd:
		if v := s.claim(loggedIn, true); v != nil {
			return s.cartAdd(ctx, v)
		}
		return s.loginSomeone(ctx)
	case StepCheckout:
		if v := s.takeCart(); v != nil {
			if account, ok := v.session(); !ok {
				// The same account again: its cart is still there.
				return s.loginAs(ctx, v, account)
			}
			return s.checkout(ctx, v)
		}
		if v := s.claim(loggedIn, true); v != nil {
			return s.cartAdd(ctx, v)
		}
		return s.loginSomeone(ctx)
	default: // StepLogin: a visitor signs in, or a signed-in one leaves and another comes
		if v := s.claimForLogin(); v != nil {
			return s.loginAs(ctx, v, 0)
		}
		return noIdleUser(StepLogin)
	}
}

// claimForLogin claims a virtual user to log in: preferably one that is
// not logged in (or whose token is about to expire), else any idle one.
func (s *Shop) claimForLogin() *vu {
	if v := s.claim(notLoggedIn, true); v != nil {
		return v
	}
	return s.claim(anyone, true)
}

func noIdleUser(step string) loadgen.Outcome {
	return loadgen.Outcome{Step: step, Err: fmt.Errorf("%w: no idle virtual user (raise --virtual-users)", loadgen.ErrClient)}
}

func loggedIn(v *vu, now time.Time) bool    { return v.token != "" && now.Before(v.expires) }
func notLoggedIn(v *vu, now time.Time) bool { return !loggedIn(v, now) }
func anyone(*vu, time.Time) bool            { return true }

// probes is how many random virtual users are looked at to find one that
// fits: enough to find one when a fair share fit, cheap when none does.
const probes = 16

// claim finds an idle virtual user (not thinking, and with no write in
// flight when exclusive) for which ok holds, and marks it busy when
// exclusive. It tries a few at random, then, for an exclusive claim, all
// of them from a random one on, so that a write fails for want of an idle
// user only when there truly is none; it returns nil then.
func (s *Shop) claim(ok func(*vu, time.Time) bool, exclusive bool) *vu {
	now := time.Now()
	try := func(v *vu) bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		if (!exclusive || !v.busy) && !now.Before(v.readyAt) && ok(v, now) {
			if exclusive {
				v.busy = true
			}
			return true
		}
		return false
	}
	for range probes {
		if v := s.vus[rand.IntN(len(s.vus))]; try(v) {
			return v
		}
	}
	if exclusive {
		from := rand.IntN(len(s.vus))
		for i := range s.vus {
			if v := s.vus[(from+i)%len(s.vus)]; try(v) {
				return v
			}
		}
	}
	return nil
}

// visitor is the virtual user for an anonymous read: an idle one if the
// probes find one, else any, since reads need no exclusivity.
func (s *Shop) visitor() *vu {
	if v := s.claim(anyone, false); v != nil {
		return v
	}
	return s.vus[rand.IntN(len(s.vus))]
}

// release ends a virtual user's request: it starts thinking and, if it
// held the user exclusively, frees it.
func (s *Shop) release(v *vu, exclusive bool) {
	think := time.Duration(0)
	if s.cfg.ThinkTime > 0 {
		think = time.Duration(rand.ExpFloat64() * float64(s.cfg.ThinkTime))
	}
	v.mu.Lock()
	if exclusive {
		v.busy = false
	}
	v.readyAt = time.Now().Add(think)
	v.mu.Unlock()
}

// loginSomeone serves a logged-in step no logged-in user could take: a
// visitor logs in first, which is what the step would have cost a real
// shopper. A user whose token is about to expire logs in to the same
// account again, keeping its cart.
func (s *Shop) loginSomeone(ctx context.Context) loadgen.Outcome {
	v := s.claimForLogin()
	if v == nil {
		return noIdleUser(StepLogin)
	}
	account, _ := v.session()
	return s.loginAs(ctx, v, account)
}

// session returns v's account and whether its token is still good.
func (v *vu) session() (account int, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.account, loggedIn(v, time.Now())
}

// loginAs logs v in as seeded user n, or as a free account when n is 0
// (a new visitor: v leaves its account and cart behind). v must be claimed
// exclusively.
func (s *Shop) loginAs(ctx context.Context, v *vu, n int) loadgen.Outcome {
	defer s.release(v, true)
	if n == 0 {
		v.mu.Lock()
		old := v.account
		v.account, v.token, v.cart = 0, "", 0
		v.mu.Unlock()
		s.dropCart(v)
		n = s.swapAccount(old)
	}
	status, tok, err := s.login(ctx, n)
	v.mu.Lock()
	v.account = n
	if err == nil {
		v.token, v.expires = tok.token, tok.renewAt
	} else {
		v.token = ""
	}
	hasCart := v.cart > 0
	v.mu.Unlock()
	if hasCart {
		// Logged in again to the same account, whose cart is waiting.
		s.addCart(v)
	}
	return outcome(StepLogin, status, err)
}

// swapAccount frees account old (if any) and takes a random free one.
// There is always one: there are no more virtual users than accounts.
func (s *Shop) swapAccount(old int) int {
	s.accMu.Lock()
	defer s.accMu.Unlock()
	if old > 0 {
		s.accounts[old] = false
	}
	n := 1 + rand.IntN(s.cfg.Users)
	for range probes {
		if !s.accounts[n] {
			break
		}
		n = 1 + rand.IntN(s.cfg.Users)
	}
	for s.accounts[n] { // nearly every account is held: walk to a free one
		n = n%s.cfg.Users + 1
	}
	s.accounts[n] = true
	return n
}

type token struct {
	token   string
	renewAt time.Time
}

// login logs in as seeded user n.
func (s *Shop) login(ctx context.Context, n int) (int, token, error) {
	body, _ := json.Marshal(map[string]string{"email": seed.Email(n), "password": s.cfg.Password})
	var pair struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	start := time.Now()
	status, _, err := s.call(ctx, request{method: http.MethodPost, path: "/v1/auth/login", body: body, into: &pair})
	if err == nil && status != http.StatusOK {
		err = errStatus(status)
	}
	if err != nil {
		return status, token{}, err
	}
	// Log in again a little before the token expires, never with an
	// expired one (which would be a 401 of the generator's making).
	life := time.Duration(pair.ExpiresIn) * time.Second
	return status, token{token: pair.AccessToken, renewAt: start.Add(life - min(life/4, time.Minute))}, nil
}

func (s *Shop) categories(ctx context.Context) loadgen.Outcome {
	status, _, err := s.call(ctx, request{method: http.MethodGet, path: "/v1/categories"})
	return outcome(StepCategories, status, err)
}

// Sort orders as shoppers pick them: mostly the default (newest).
func pickSort() string {
	switch r := rand.IntN(10); {
	case r < 7:
		return ""
	case r < 9:
		return "price"
	default:
		return "-price"
	}
}

// list shows a category page; three times in ten the shopper goes on to
// the next page of what it listed last.
func (s *Shop) list(ctx context.Context, v *vu) loadgen.Outcome {
	defer s.release(v, false)
	v.mu.Lock()
	cat, order, cursor := v.category, v.sort, v.cursor
	v.mu.Unlock()
	if cursor == "" || rand.IntN(10) >= 3 {
		cat, order, cursor = s.cats[rand.IntN(len(s.cats))], pickSort(), ""
	}
	q := url.Values{"category": {cat}}
	if order != "" {
		q.Set("sort", order)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var seen []int
	var next string
	status, _, err := s.call(ctx, request{method: http.MethodGet, path: "/v1/products?" + q.Encode(), scan: func(body []byte) {
		seen, next = s.scanPage(body)
	}})
	if err == nil && status == http.StatusOK {
		v.mu.Lock()
		v.category, v.sort, v.cursor, v.page = cat, order, next, seen
		v.mu.Unlock()
	}
	return outcome(StepList, status, err)
}

var (
	idKey     = []byte(`"id":"`)
	cursorKey = []byte(`"next_cursor":"`)
)

// scanPage finds the products and the next cursor of a product page. It
// scans for the keys instead of decoding the page: decoding twenty
// products, descriptions and all, was most of the generator's CPU per
// request, which must stay small for one core to drive ten thousand
// requests a second. The scan is exact for million's compact JSON: "id"
// is the only key of that name in a product, and inside a string value
// the quotes around it would be escaped.
func (s *Shop) scanPage(body []byte) (products []int, cursor string) {
	rest := body
	for {
		i := bytes.Index(rest, idKey)
		if i < 0 {
			break
		}
		rest = rest[i+len(idKey):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			break
		}
		if p, ok := s.byID[string(rest[:end])]; ok {
			products = append(products, p)
		}
		rest = rest[end:]
	}
	if i := bytes.Index(body, cursorKey); i >= 0 {
		c := body[i+len(cursorKey)-1:] // from the opening quote
		if end := bytes.IndexByte(c[1:], '"'); end >= 0 {
			// Unquote in case the cursor holds escapes; it is opaque.
			_ = json.Unmarshal(c[:end+2], &cursor)
		}
	}
	return products, cursor
}

// popularProduct draws a product by popularity.
func (s *Shop) popularProduct() int {
	r := sort.SearchFloat64s(s.zipf, rand.Float64()*s.zipf[len(s.zipf)-1])
	return s.popular[min(r, len(s.popular)-1)]
}

// product opens a product page: half the time one from the page the
// shopper listed last, else a popular one. A page seen before is
// revalidated with its ETag, as a browser does, and may answer 304.
func (s *Shop) product(ctx context.Context, v *vu) loadgen.Outcome {
	defer s.release(v, false)
	v.mu.Lock()
	i := -1
	if len(v.page) > 0 && rand.IntN(2) == 0 {
		i = v.page[rand.IntN(len(v.page))]
	}
	if i < 0 {
		i = s.popularProduct()
	}
	etag := v.etags[i]
	v.mu.Unlock()
	req := request{method: http.MethodGet, path: "/v1/products/" + url.PathEscape(s.products[i].id)}
	if etag != "" {
		req.header = [2]string{"If-None-Match", etag}
	}
	status, hdr, err := s.call(ctx, req)
	if tag := hdr.Get("ETag"); err == nil && status == http.StatusOK && tag != "" {
		v.mu.Lock()
		if len(v.etags) >= maxETags {
			for k := range v.etags { // forget one at random
				delete(v.etags, k)
				break
			}
		}
		v.etags[i] = tag
		v.mu.Unlock()
	}
	return outcome(StepProduct, status, err)
}

// search looks for one or two consecutive words of a product's name.
func (s *Shop) search(ctx context.Context) loadgen.Outcome {
	words := s.products[rand.IntN(len(s.products))].words
	q := "shop"
	if len(words) > 0 {
		k := rand.IntN(len(words))
		q = words[k]
		if k+1 < len(words) && rand.IntN(5) < 2 {
			q += " " + words[k+1]
		}
	}
	status, _, err := s.call(ctx, request{method: http.MethodGet, path: "/v1/search?q=" + url.QueryEscape(q)})
	return outcome(StepSearch, status, err)
}

func (s *Shop) orders(ctx context.Context, v *vu) loadgen.Outcome {
	defer s.release(v, false)
	v.mu.Lock()
	tok := v.token
	v.mu.Unlock()
	status, _, err := s.call(ctx, request{method: http.MethodGet, path: "/v1/orders?limit=20", token: tok})
	s.forgetOn401(v, status)
	return outcome(StepOrders, status, err)
}

// cartAdd puts one unit of a product with stock to spare in v's cart. v
// must be claimed exclusively.
func (s *Shop) cartAdd(ctx context.Context, v *vu) loadgen.Outcome {
	defer s.release(v, true)
	i := -1
	for range min(probes, len(s.stocked)) {
		c := s.stocked[rand.IntN(len(s.stocked))]
		if s.left[c].Add(-1) >= 0 {
			i = c
			break
		}
		s.left[c].Add(1)
	}
	if i < 0 {
		return loadgen.Outcome{Step: StepCartAdd, Err: fmt.Errorf("%w: the discovered products are out of stock", loadgen.ErrClient)}
	}
	v.mu.Lock()
	tok := v.token
	v.mu.Unlock()
	status, _, err := s.call(ctx, request{method: http.MethodPut, path: "/v1/cart/items/" + url.PathEscape(s.products[i].id),
		token: tok, body: []byte(`{"quantity":1}`)})
	if err == nil && status == http.StatusOK {
		v.mu.Lock()
		v.cart++
		v.mu.Unlock()
		s.addCart(v)
	} else {
		s.left[i].Add(1)
		s.forgetOn401(v, status)
	}
	return outcome(StepCartAdd, status, err)
}

// checkout pays for v's cart with a card the simulated provider accepts. v
// was taken from the carts and claimed exclusively.
func (s *Shop) checkout(ctx context.Context, v *vu) loadgen.Outcome {
	defer s.release(v, true)
	v.mu.Lock()
	tok := v.token
	v.mu.Unlock()
	status, _, err := s.call(ctx, request{method: http.MethodPost, path: "/v1/checkout", token: tok,
		idempotencyKey: uuid.NewString(), body: []byte(`{"payment":{"method":"card","token":"tok_visa"}}`)})
	switch {
	case err == nil && status == http.StatusCreated:
		v.mu.Lock()
		v.cart = 0
		v.mu.Unlock()
	case err != nil || status >= 500:
		// The cart may or may not have been bought; try again later
		// (a new key, so a real retry rather than a replay).
		s.addCart(v)
	default:
		// 402, 409 and the like: the cart as it stands cannot be bought;
		// leave it and start over.
		v.mu.Lock()
		v.cart = 0
		v.mu.Unlock()
		s.forgetOn401(v, status)
	}
	return outcome(StepCheckout, status, err)
}

// forgetOn401 drops a token the server no longer accepts (a restarted
// server with a new key, a revoked session), so the user logs in again.
func (s *Shop) forgetOn401(v *vu, status int) {
	if status == http.StatusUnauthorized {
		v.mu.Lock()
		v.token = ""
		v.mu.Unlock()
	}
}

// addCart records that v has a cart to check out.
func (s *Shop) addCart(v *vu) {
	s.cartMu.Lock()
	defer s.cartMu.Unlock()
	if v.inCarts < 0 {
		v.inCarts = len(s.carts)
		s.carts = append(s.carts, v)
	}
}

// dropCart forgets v's cart.
func (s *Shop) dropCart(v *vu) {
	s.cartMu.Lock()
	defer s.cartMu.Unlock()
	s.removeCart(v)
}

func (s *Shop) removeCart(v *vu) {
	if i := v.inCarts; i >= 0 {
		last := s.carts[len(s.carts)-1]
		s.carts[i], last.inCarts = last, i
		s.carts = s.carts[:len(s.carts)-1]
		v.inCarts = -1
	}
}

// takeCart claims a virtual user with a cart to check out, or returns nil.
func (s *Shop) takeCart() *vu {
	now := time.Now()
	s.cartMu.Lock()
	defer s.cartMu.Unlock()
	for range min(probes, len(s.carts)) {
		v := s.carts[rand.IntN(len(s.carts))]
		v.mu.Lock()
		if !v.busy && !now.Before(v.readyAt) {
			v.busy = true
			v.mu.Unlock()
			s.removeCart(v)
			return v
		}
		v.mu.Unlock()
	}
	return nil
}

// request is one HTTP exchange.
type request struct {
	method, path   string
	token          string
	body           []byte
	header         [2]string // one extra header, name and value
	idempotencyKey string
	into           any          // decoded from a 2xx JSON body when set
	scan           func([]byte) // given a 2xx body when set
}

// bodies are the buffers scanned bodies are read into.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// call sends req and reads the whole response, decoding it into req.into
// on success. It returns the status and the response header.
func (s *Shop) call(ctx context.Context, req request) (int, http.Header, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, s.base+req.path, body)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", loadgen.ErrClient, err)
	}
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	if req.idempotencyKey != "" {
		hr.Header.Set("Idempotency-Key", req.idempotencyKey)
	}
	if req.header[0] != "" {
		hr.Header.Set(req.header[0], req.header[1])
	}
	resp, err := s.cfg.Client.Do(hr)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if req.into != nil && resp.StatusCode/100 == 2 {
		if err := json.NewDecoder(resp.Body).Decode(req.into); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("decode %s %s: %w", req.method, req.path, err)
		}
	}
	if req.scan != nil && resp.StatusCode/100 == 2 {
		buf := bodies.Get().(*bytes.Buffer)
		defer bodies.Put(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(resp.Body); err != nil {
			return resp.StatusCode, resp.Header, err
		}
		req.scan(buf.Bytes())
	}
	// Drain what is left, so the connection goes back to the pool.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, resp.Header, err
	}
	return resp.StatusCode, resp.Header, nil
}

type errStatus int

func (e errStatus) Error() string { return "status " + strconv.Itoa(int(e)) }

// outcome reports a step's request. An unexpected status is reported as
// that status, not as an error of the exchange; a response that came but
// could not be read or decoded is an error even with its 2xx status.
func outcome(step string, status int, err error) loadgen.Outcome {
	var es errStatus
	if errors.As(err, &es) {
		err = nil
	}
	return loadgen.Outcome{Step: step, Status: status, Err: err}
}
