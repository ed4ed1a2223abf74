package journey

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Steps of the shop journeys, as they are named in the mix and the report.
const (
	StepCategories = "categories" // GET /v1/categories
	StepList       = "list"       // GET /v1/products?category=…, sometimes the next page by cursor
	StepProduct    = "product"    // GET /v1/products/{id}, with If-None-Match when seen before
	StepSearch     = "search"     // GET /v1/search?q=… with words from product names
	StepOrders     = "orders"     // GET /v1/orders, logged in
	StepLogin      = "login"      // POST /v1/auth/login as a seeded user
	StepCartAdd    = "cart_add"   // PUT /v1/cart/items/{id}, logged in
	StepCheckout   = "checkout"   // POST /v1/checkout with an Idempotency-Key, logged in
)

// AllSteps lists every step in the order the mix is printed.
var AllSteps = []string{StepProduct, StepList, StepSearch, StepCategories, StepOrders, StepCartAdd, StepCheckout, StepLogin}

// readSteps change nothing on the server.
var readSteps = map[string]bool{StepCategories: true, StepList: true, StepProduct: true, StepSearch: true, StepOrders: true}

// Mix is the relative weight of each step among arrivals; weights need not
// add up to 100.
type Mix map[string]float64

// DefaultMix is a shop's day: 95 % reads, most of them product pages and
// category listings, and a few carts, checkouts and logins.
func DefaultMix() Mix {
	return Mix{
		StepProduct: 45, StepList: 25, StepSearch: 15, StepCategories: 5, StepOrders: 5,
		StepCartAdd: 3, StepCheckout: 1.5, StepLogin: 0.5,
	}
}

// ReadMix is DefaultMix without its writes (cart, checkout, login): what a
// read cache can serve. Users it needs logged in (orders) are logged in
// when no logged-in one is idle.
func ReadMix() Mix {
	m := DefaultMix()
	for step := range m {
		if !readSteps[step] {
			delete(m, step)
		}
	}
	return m
}

// ParseMix reads "step=weight" pairs separated by commas, such as
// "product=80,list=20". Steps left out get no arrivals.
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, weight, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || !slices.Contains(AllSteps, name) {
			return nil, fmt.Errorf("mix %q: want step=weight with a step among %s", part, strings.Join(AllSteps, ", "))
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(weight, "%")), 64)
		if err != nil || w < 0 {
			return nil, fmt.Errorf("mix %q: weight must be a number ≥ 0", part)
		}
		m[name] = w
	}
	if m.total() <= 0 {
		return nil, fmt.Errorf("mix %q gives no step a weight", s)
	}
	return m, nil
}

func (m Mix) total() float64 {
	var t float64
	for _, w := range m {
		t += w
	}
	return t
}

// ReadShare is the fraction of arrivals that only read.
func (m Mix) ReadShare() float64 {
	t := m.total()
	if t == 0 {
		return 0
	}
	var r float64
	for s, w := range m {
		if readSteps[s] {
			r += w
		}
	}
	return r / t
}

// String is the mix as ParseMix reads it, in percent.
func (m Mix) String() string {
	t := m.total()
	var parts []string
	for _, s := range AllSteps {
		if w := m[s]; w > 0 {
			parts = append(parts, s+"="+strconv.FormatFloat(100*w/t, 'g', 4, 64))
		}
	}
	return strings.Join(parts, ",")
}

// steps are the steps with a weight, sorted.
func (m Mix) steps() []string {
	var out []string
	for _, s := range slices.Sorted(maps.Keys(m)) {
		if m[s] > 0 {
			out = append(out, s)
		}
	}
	return out
}

// needsLogin says whether any step of the mix runs logged in.
func (m Mix) needsLogin() bool {
	return m[StepOrders] > 0 || m[StepCartAdd] > 0 || m[StepCheckout] > 0 || m[StepLogin] > 0
}
