// Package catalog owns categories, products and inventory: public reads,
// admin writes, and the stock reservations checkout makes.
package catalog

import (
	"context"
	"time"
)

// Category groups products.
type Category struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// Product is a sellable item as clients see it.
type Product struct {
	ID          string    `json:"id"`
	SKU         string    `json:"sku"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	PriceCents  int64     `json:"price_cents"`
	Currency    string    `json:"currency"`
	Category    string    `json:"category"` // the category's slug
	Stock       int64     `json:"stock"`
	ImageURL    string    `json:"image_url"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// NewProduct is the input of CreateProduct. Pointers mark required fields
// so that "absent" and "zero" can be told apart.
type NewProduct struct {
	SKU         *string `json:"sku"`
	Name        *string `json:"name"`
	Description *string `json:"description"`
	PriceCents  *int64  `json:"price_cents"`
	Currency    *string `json:"currency"`
	Category    *string `json:"category"`
	Stock       *int64  `json:"stock"`
	ImageURL    *string `json:"image_url"`
}

// ProductPatch is the input of UpdateProduct; nil fields stay unchanged.
type ProductPatch struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	PriceCents  *int64  `json:"price_cents"`
	Category    *string `json:"category"`
	Stock       *int64  `json:"stock"`
	ImageURL    *string `json:"image_url"`
}

// Sort orders of product lists.
const (
	SortNewest    = "newest"
	SortPrice     = "price"
	SortPriceDesc = "-price"
)

// ListQuery selects a page of products.
type ListQuery struct {
	Category string // slug; "" means all
	Sort     string
	Limit    int
	Cursor   string
}

// Page is one page of products.
type Page struct {
	Items      []Product `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// Line is a quantity of one product, as checkout reserves it.
type Line struct {
	ProductID string
	Quantity  int64
}

// ReservedLine is a reserved line with the product as it was when reserved,
// so an order records the price it was sold at.
type ReservedLine struct {
	ProductID  string
	SKU        string
	Name       string
	PriceCents int64
	Quantity   int64
}

// Service is the catalog module's API.
type Service interface {
	// Categories lists every category by name.
	Categories(ctx context.Context) ([]Category, error)
	// CreateCategory adds a category. Errors: fault.Invalid, fault.Conflict (slug_taken).
	CreateCategory(ctx context.Context, slug, name string) (Category, error)
	// Products lists products. Errors: fault.Invalid (bad sort, limit or cursor).
	Products(ctx context.Context, q ListQuery) (Page, error)
	// Product returns one product. Errors: fault.NotFound.
	Product(ctx context.Context, id string) (Product, error)
	// ProductsByID returns the products that exist among ids, keyed by ID.
	ProductsByID(ctx context.Context, ids []string) (map[string]Product, error)
	// CreateProduct adds a product and records product.created with it.
	// Errors: fault.Invalid, fault.Conflict (sku_taken).
	CreateProduct(ctx context.Context, p NewProduct) (Product, error)
	// UpdateProduct changes a product and records product.updated with it.
	// Errors: fault.Invalid, fault.NotFound.
	UpdateProduct(ctx context.Context, id string, patch ProductPatch) (Product, error)
	// DeleteProduct removes a product and records product.deleted with it.
	// Errors: fault.NotFound.
	DeleteProduct(ctx context.Context, id string) error
	// Reserve takes stock for every line or for none. It joins the
	// transaction in ctx, if any. Errors: fault.Conflict (insufficient_stock),
	// fault.Invalid (a quantity outside 1..MaxStock).
	Reserve(ctx context.Context, lines []Line) ([]ReservedLine, error)
	// Release returns reserved stock. It joins the transaction in ctx, if any.
	// Errors: fault.Invalid (a quantity outside 1..MaxStock).
	Release(ctx context.Context, lines []Line) error
}

// Topics of the events the catalog records, in the transaction of each
// admin write, through Events. Checkout's stock reservations record none.
const (
	TopicProductCreated = "product.created" // payload ProductEvent
	TopicProductUpdated = "product.updated" // payload ProductEvent
	TopicProductDeleted = "product.deleted" // payload ProductDeleted
)

// Events records domain events atomically with the transaction in ctx.
type Events interface {
	Add(ctx context.Context, topic, key string, payload any) error
}

// ProductEvent is the payload of product.created and product.updated: the
// product as the write left it. Version grows by one with every admin
// write of the product, so a consumer keeps the highest it has seen and
// ignores an event at or below it: delivery is at least once, and a retried
// event can arrive after a newer one. Stock is the stock at that write;
// reservations change it without an event.
type ProductEvent struct {
	Product
	Version int64 `json:"version"`
}

// ProductDeleted is the payload of product.deleted. Its Version is one above
// the product's last, so a consumer can tell an update delivered late from
// one made before the deletion.
type ProductDeleted struct {
	ID        string    `json:"id"`
	Version   int64     `json:"version"`
	DeletedAt time.Time `json:"deleted_at"`
}

// ProductRow is a product as stored: the category by ID, not by slug.
type ProductRow struct {
	Product
	CategoryID string
}

// Store is the persistence the catalog module needs; implementations live in
// catalog/store and every one must pass catalog/storetest.
//
// Text a store cannot hold (sqldb.Storable: invalid UTF-8, NUL) is treated
// alike on every engine: a write that carries it fails with fault.Invalid
// (sqldb.ErrUnstorable), and a lookup by it finds nothing.
type Store interface {
	// InTx runs fn in one transaction (or joins the one in ctx).
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// Categories lists categories by name.
	Categories(ctx context.Context) ([]Category, error)
	// CategoryBySlug finds a category. Errors: fault.NotFound.
	CategoryBySlug(ctx context.Context, slug string) (Category, error)
	// CreateCategory inserts a category. Errors: fault.Conflict (slug_taken),
	// fault.Invalid (unstorable text).
	CreateCategory(ctx context.Context, c Category) error
	// ListProducts returns up to limit products after the cursor position.
	// Errors: fault.Invalid when after holds an ID no store can hold, so it
	// cannot be a position a list returned.
	ListProducts(ctx context.Context, categoryID, sort string, after *Position, limit int) ([]Product, error)
	// ProductsByID returns the products among ids that exist. Called inside
	// a transaction it locks them until the transaction ends, so a
	// read-modify-write (checkout's reservation, UpdateProduct's patch)
	// never loses a concurrent update.
	ProductsByID(ctx context.Context, ids []string) ([]Product, error)
	// Product is ProductsByID of one id (locking it inside a transaction
	// likewise): found is false when it does not exist.
	Product(ctx context.Context, id string) (p Product, found bool, err error)
	// InsertProduct inserts a product at version 1. Errors: fault.Conflict (sku_taken),
	// fault.Invalid (unstorable text).
	InsertProduct(ctx context.Context, p ProductRow) error
	// UpdateProduct writes the mutable fields of p (name, description,
	// price, category, stock, image URL, UpdatedAt) to the product p.ID and
	// returns its new version, one above the last. SKU, Currency and
	// CreatedAt are set once by InsertProduct and never written. Errors:
	// fault.NotFound, fault.Invalid (unstorable text).
	UpdateProduct(ctx context.Context, p ProductRow) (version int64, err error)
	// DeleteProduct removes a product and returns the version of its
	// deletion, one above its last. Errors: fault.NotFound.
	DeleteProduct(ctx context.Context, id string) (version int64, err error)
	// TakeStock takes every line's quantity out of its product's stock, or
	// none: a missing or short product is fault.Conflict
	// (insufficient_stock), and then its own transaction rolls back, or
	// the caller's must (lines taken before the shortfall was found are
	// in it). Lines name distinct products. On PostgreSQL the statement
	// locks its rows in the order its plan visits them, so callers whose
	// takes may overlap read the products in the transaction first, which
	// locks them in ID order (as Reserve does). A checkout takes all its
	// lines in a statement or a few, whatever the cart's size.
	TakeStock(ctx context.Context, lines []Line, now time.Time) error
	// PutStock increments stock.
	PutStock(ctx context.Context, id string, qty int64, now time.Time) error
}

// Position is a place in a sorted product list: the last item of a page.
type Position struct {
	Sort       string `json:"s"`
	PriceCents int64  `json:"p,omitempty"`
	ID         string `json:"id"`
}
