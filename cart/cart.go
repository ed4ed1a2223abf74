// Package cart owns shopping carts: one per user, lines of product and
// quantity, priced from the catalog when read.
package cart

import (
	"context"
	"time"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
)

// Limits on a cart.
const (
	MaxQuantity = 99
	MaxLines    = 100
)

// Item is one priced line of a cart.
type Item struct {
	ProductID  string `json:"product_id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Quantity   int64  `json:"quantity"`
}

// Cart is a user's cart as clients see it.
type Cart struct {
	Items      []Item `json:"items"`
	TotalCents int64  `json:"total_cents"`
	Currency   string `json:"currency"`
}

// Line is a stored cart line.
type Line struct {
	ProductID string
	Quantity  int64
}

// Service is the cart module's API. Every method acts on the caller's own cart.
type Service interface {
	// Get returns the user's cart, priced now. Products no longer sold are left out.
	Get(ctx context.Context, userID string) (Cart, error)
	// SetItem sets the quantity of a product. Errors: fault.Invalid, fault.NotFound (unknown product).
	SetItem(ctx context.Context, userID, productID string, quantity int64) (Cart, error)
	// RemoveItem removes a product from the cart (no error if absent).
	RemoveItem(ctx context.Context, userID, productID string) (Cart, error)
	// Clear empties the cart. It joins the transaction in ctx, if any.
	Clear(ctx context.Context, userID string) error
	// RemoveLines removes the given lines, each only if its quantity is
	// still the given one: checkout takes out what it ordered and keeps a
	// line added or changed meanwhile. It joins the transaction in ctx, if any.
	RemoveLines(ctx context.Context, userID string, lines []Line) error
	// Lines returns the lines Get shows, unpriced: those of products still
	// sold, in the order they were added. It joins the transaction in ctx,
	// if any, so checkout buys exactly what the cart shows.
	Lines(ctx context.Context, userID string) ([]Line, error)
}

// ProductReader is what the cart needs from the catalog.
type ProductReader interface {
	ProductsByID(ctx context.Context, ids []string) (map[string]catalog.Product, error)
}

// Store persists carts.
type Store interface {
	// Lines returns a user's lines in the order they were added.
	Lines(ctx context.Context, userID string) ([]Line, error)
	// Set inserts or updates a line.
	Set(ctx context.Context, userID, productID string, quantity int64, now time.Time) error
	// Remove deletes a line.
	Remove(ctx context.Context, userID, productID string) error
	// RemoveLines deletes each of lines that still holds its quantity, in
	// one statement, so a line changed concurrently survives.
	RemoveLines(ctx context.Context, userID string, lines []Line) error
	// Clear deletes every line of a user.
	Clear(ctx context.Context, userID string) error
}

// Carts implements Service.
type Carts struct {
	store    Store
	products ProductReader
	currency string
	now      func() time.Time
}

var _ Service = (*Carts)(nil)

// NewCarts returns the cart service.
func NewCarts(store Store, products ProductReader, currency string, now func() time.Time) *Carts {
	return &Carts{store: store, products: products, currency: currency, now: now}
}

// live returns the user's lines whose product is still sold, with those
// products. A deleted product leaves its lines behind in the store; they are
// invisible everywhere, so a cart never holds a line its owner cannot see.
func (c *Carts) live(ctx context.Context, userID string) ([]Line, map[string]catalog.Product, error) {
	lines, err := c.store.Lines(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.ProductID
	}
	products, err := c.products.ProductsByID(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	out := lines[:0]
	for _, l := range lines {
		if _, ok := products[l.ProductID]; ok {
			out = append(out, l)
		}
	}
	return out, products, nil
}

// Get implements Service.
func (c *Carts) Get(ctx context.Context, userID string) (Cart, error) {
	lines, products, err := c.live(ctx, userID)
	if err != nil {
		return Cart{}, err
	}
	out := Cart{Items: make([]Item, 0, len(lines)), Currency: c.currency}
	for _, l := range lines {
		p := products[l.ProductID]
		out.Items = append(out.Items, Item{ProductID: p.ID, Name: p.Name, PriceCents: p.PriceCents, Quantity: l.Quantity})
		out.TotalCents += p.PriceCents * l.Quantity
	}
	return out, nil
}

// SetItem implements Service.
func (c *Carts) SetItem(ctx context.Context, userID, productID string, quantity int64) (Cart, error) {
	if quantity < 1 || quantity > MaxQuantity {
		return Cart{}, fault.Fields(fault.FieldError{Field: "quantity", Message: "must be an integer from 1 to 99"})
	}
	products, err := c.products.ProductsByID(ctx, []string{productID})
	if err != nil {
		return Cart{}, err
	}
	if _, ok := products[productID]; !ok {
		return Cart{}, fault.New(fault.NotFound, "", "no such product")
	}
	lines, _, err := c.live(ctx, userID)
	if err != nil {
		return Cart{}, err
	}
	if len(lines) >= MaxLines && !hasProduct(lines, productID) {
		return Cart{}, fault.New(fault.Conflict, "cart_full", "a cart holds at most 100 different products")
	}
	if err := c.store.Set(ctx, userID, productID, quantity, c.now().UTC()); err != nil {
		return Cart{}, err
	}
	return c.Get(ctx, userID)
}

func hasProduct(lines []Line, productID string) bool {
	for _, l := range lines {
		if l.ProductID == productID {
			return true
		}
	}
	return false
}

// RemoveItem implements Service.
func (c *Carts) RemoveItem(ctx context.Context, userID, productID string) (Cart, error) {
	if err := c.store.Remove(ctx, userID, productID); err != nil {
		return Cart{}, err
	}
	return c.Get(ctx, userID)
}

// Clear implements Service.
func (c *Carts) Clear(ctx context.Context, userID string) error { return c.store.Clear(ctx, userID) }

// RemoveLines implements Service. It compares with the lines as stored now
// (not as Lines shows them): on PostgreSQL another request may have changed
// a line since checkout read it.
func (c *Carts) RemoveLines(ctx context.Context, userID string, lines []Line) error {
	return c.store.RemoveLines(ctx, userID, lines)
}

// Lines implements Service.
func (c *Carts) Lines(ctx context.Context, userID string) ([]Line, error) {
	lines, _, err := c.live(ctx, userID)
	return lines, err
}
