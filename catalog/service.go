package catalog

import (
	"context"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

// Limits on product fields.
const (
	MaxPriceCents = 100_000_000
	MaxStock      = 1_000_000
)

var (
	slugPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	skuPattern  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// Catalog implements Service.
type Catalog struct {
	store    Store
	events   Events
	currency string
	now      func() time.Time
}

var _ Service = (*Catalog)(nil)

// NewCatalog returns the catalog service. currency is the store currency
// every price is in; events records the product events, and must join the
// store's transactions (the same database).
func NewCatalog(store Store, events Events, currency string, now func() time.Time) *Catalog {
	return &Catalog{store: store, events: events, currency: currency, now: now}
}

func textOK(s string, minLen, maxLen int) bool {
	n := utf8.RuneCountInString(s)
	if n < minLen || n > maxLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return false
		}
	}
	return true
}

func validImageURL(s string) bool {
	if s == "" {
		return true
	}
	if len(s) > 2048 {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// Categories implements Service.
func (c *Catalog) Categories(ctx context.Context) ([]Category, error) { return c.store.Categories(ctx) }

// CreateCategory implements Service.
func (c *Catalog) CreateCategory(ctx context.Context, slug, name string) (Category, error) {
	name = strings.TrimSpace(name)
	var v fault.Validator
	v.Check(len(slug) <= 64 && slugPattern.MatchString(slug), "slug", "must be 1 to 64 lowercase letters, digits and single hyphens")
	v.Check(textOK(name, 1, 100), "name", "must be 1 to 100 characters")
	if err := v.Err(); err != nil {
		return Category{}, err
	}
	cat := Category{ID: uuid.Must(uuid.NewV7()).String(), Slug: slug, Name: name}
	if err := c.store.CreateCategory(ctx, cat); err != nil {
		return Category{}, err
	}
	return cat, nil
}

// Products implements Service.
func (c *Catalog) Products(ctx context.Context, q ListQuery) (Page, error) {
	if q.Sort == "" {
		q.Sort = SortNewest
	}
	if q.Sort != SortNewest && q.Sort != SortPrice && q.Sort != SortPriceDesc {
		return Page{}, fault.Fields(fault.FieldError{Field: "sort", Message: "must be newest, price or -price"})
	}
	if q.Limit < 1 || q.Limit > web.MaxLimit {
		return Page{}, fault.Fields(fault.FieldError{Field: "limit", Message: "must be an integer from 1 to 100"})
	}
	var after *Position
	if q.Cursor != "" {
		var pos Position
		if err := web.DecodeCursor(q.Cursor, &pos); err != nil {
			return Page{}, err
		}
		if pos.Sort != q.Sort || !web.ValidID(pos.ID) || pos.PriceCents < 0 {
			return Page{}, fault.Fields(fault.FieldError{Field: "cursor", Message: "does not belong to this sort order"})
		}
		after = &pos
	}
	categoryID := ""
	if q.Category != "" {
		cat, err := c.store.CategoryBySlug(ctx, q.Category)
		if fault.Is(err, fault.NotFound) {
			return Page{Items: []Product{}}, nil
		}
		if err != nil {
			return Page{}, err
		}
		categoryID = cat.ID
	}
	items, err := c.store.ListProducts(ctx, categoryID, q.Sort, after, q.Limit+1)
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: items}
	if len(items) > q.Limit {
		page.Items = items[:q.Limit]
		last := page.Items[q.Limit-1]
		pos := Position{Sort: q.Sort, ID: last.ID}
		if q.Sort != SortNewest {
			pos.PriceCents = last.PriceCents
		}
		page.NextCursor = web.EncodeCursor(pos)
	}
	return page, nil
}

// Product implements Service.
func (c *Catalog) Product(ctx context.Context, id string) (Product, error) {
	p, found, err := c.store.Product(ctx, id)
	if err != nil {
		return Product{}, err
	}
	if !found {
		return Product{}, errNoProduct
	}
	return p, nil
}

var errNoProduct = fault.New(fault.NotFound, "", "no such product")

// ProductsByID implements Service.
func (c *Catalog) ProductsByID(ctx context.Context, ids []string) (map[string]Product, error) {
	found, err := c.store.ProductsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Product, len(found))
	for _, p := range found {
		out[p.ID] = p
	}
	return out, nil
}

func (c *Catalog) categoryFor(ctx context.Context, slug string) (Category, error) {
	cat, err := c.store.CategoryBySlug(ctx, slug)
	if fault.Is(err, fault.NotFound) {
		return Category{}, fault.Fields(fault.FieldError{Field: "category", Message: "is not an existing category slug"})
	}
	return cat, err
}

// CreateProduct implements Service.
func (c *Catalog) CreateProduct(ctx context.Context, np NewProduct) (Product, error) {
	var v fault.Validator
	v.Check(np.SKU != nil && skuPattern.MatchString(*np.SKU), "sku", "is required: 1 to 64 letters, digits, '.', '_' or '-'")
	v.Check(np.Name != nil && textOK(strings.TrimSpace(*np.Name), 1, 200), "name", "is required: 1 to 200 characters")
	v.Check(np.Description != nil && textOK(*np.Description, 0, 5000), "description", "is required: up to 5000 characters")
	v.Check(np.PriceCents != nil && *np.PriceCents >= 0 && *np.PriceCents <= MaxPriceCents, "price_cents", "is required: an integer from 0 to 100000000")
	v.Check(np.Currency == nil || *np.Currency == c.currency, "currency", "must be the store currency "+c.currency)
	v.Check(np.Category != nil && *np.Category != "", "category", "is required: an existing category slug")
	v.Check(np.Stock != nil && *np.Stock >= 0 && *np.Stock <= MaxStock, "stock", "is required: an integer from 0 to 1000000")
	v.Check(np.ImageURL == nil || validImageURL(*np.ImageURL), "image_url", "must be an http or https URL up to 2048 characters")
	if err := v.Err(); err != nil {
		return Product{}, err
	}
	cat, err := c.categoryFor(ctx, *np.Category)
	if err != nil {
		return Product{}, err
	}
	now := c.now().UTC().Truncate(time.Microsecond)
	row := ProductRow{CategoryID: cat.ID, Product: Product{
		ID: uuid.Must(uuid.NewV7()).String(), SKU: *np.SKU, Name: strings.TrimSpace(*np.Name),
		Description: *np.Description, PriceCents: *np.PriceCents, Currency: c.currency,
		Category: cat.Slug, Stock: *np.Stock, CreatedAt: now, UpdatedAt: now,
	}}
	if np.ImageURL != nil {
		row.ImageURL = *np.ImageURL
	}
	err = c.store.InTx(ctx, func(ctx context.Context) error {
		if err := c.store.InsertProduct(ctx, row); err != nil {
			return err
		}
		return c.events.Add(ctx, TopicProductCreated, row.ID, ProductEvent{Product: row.Product, Version: 1})
	})
	if err != nil {
		return Product{}, err
	}
	return row.Product, nil
}

// UpdateProduct implements Service.
func (c *Catalog) UpdateProduct(ctx context.Context, id string, patch ProductPatch) (Product, error) {
	var v fault.Validator
	v.Check(patch != (ProductPatch{}), "body", "must change at least one field")
	v.Check(patch.Name == nil || textOK(strings.TrimSpace(*patch.Name), 1, 200), "name", "must be 1 to 200 characters")
	v.Check(patch.Description == nil || textOK(*patch.Description, 0, 5000), "description", "must be up to 5000 characters")
	v.Check(patch.PriceCents == nil || (*patch.PriceCents >= 0 && *patch.PriceCents <= MaxPriceCents), "price_cents", "must be an integer from 0 to 100000000")
	v.Check(patch.Category == nil || *patch.Category != "", "category", "must be an existing category slug")
	v.Check(patch.Stock == nil || (*patch.Stock >= 0 && *patch.Stock <= MaxStock), "stock", "must be an integer from 0 to 1000000")
	v.Check(patch.ImageURL == nil || validImageURL(*patch.ImageURL), "image_url", "must be an http or https URL up to 2048 characters")
	if err := v.Err(); err != nil {
		return Product{}, err
	}
	var out Product
	err := c.store.InTx(ctx, func(ctx context.Context) error {
		p, found, err := c.store.Product(ctx, id) // locks the row until the transaction ends
		if err != nil {
			return err
		}
		if !found {
			return errNoProduct
		}
		row := ProductRow{Product: p}
		if patch.Category != nil {
			cat, err := c.categoryFor(ctx, *patch.Category)
			if err != nil {
				return err
			}
			row.Category, row.CategoryID = cat.Slug, cat.ID
		} else {
			cat, err := c.store.CategoryBySlug(ctx, p.Category)
			if err != nil {
				return err
			}
			row.CategoryID = cat.ID
		}
		if patch.Name != nil {
			row.Name = strings.TrimSpace(*patch.Name)
		}
		if patch.Description != nil {
			row.Description = *patch.Description
		}
		if patch.PriceCents != nil {
			row.PriceCents = *patch.PriceCents
		}
		if patch.Stock != nil {
			row.Stock = *patch.Stock
		}
		if patch.ImageURL != nil {
			row.ImageURL = *patch.ImageURL
		}
		row.UpdatedAt = c.now().UTC().Truncate(time.Microsecond)
		version, err := c.store.UpdateProduct(ctx, row)
		if err != nil {
			return err
		}
		out = row.Product
		return c.events.Add(ctx, TopicProductUpdated, row.ID, ProductEvent{Product: row.Product, Version: version})
	})
	return out, err
}

// DeleteProduct implements Service.
func (c *Catalog) DeleteProduct(ctx context.Context, id string) error {
	return c.store.InTx(ctx, func(ctx context.Context) error {
		version, err := c.store.DeleteProduct(ctx, id)
		if err != nil {
			return err
		}
		return c.events.Add(ctx, TopicProductDeleted, id, ProductDeleted{ID: id, Version: version,
			DeletedAt: c.now().UTC().Truncate(time.Microsecond)})
	})
}

// Reserve implements Service.
func (c *Catalog) Reserve(ctx context.Context, lines []Line) ([]ReservedLine, error) {
	if err := checkQuantities(lines); err != nil {
		return nil, err
	}
	lines = mergeLines(lines)
	var out []ReservedLine
	err := c.store.InTx(ctx, func(ctx context.Context) error {
		ids := make([]string, len(lines))
		for i, l := range lines {
			ids[i] = l.ProductID
		}
		products, err := c.ProductsByID(ctx, ids)
		if err != nil {
			return err
		}
		// The products are read in this transaction (and locked on
		// PostgreSQL), so their stock is what TakeStock will see: a
		// shortfall is named here, and TakeStock's own guard stays the
		// last word.
		for _, l := range lines {
			p, ok := products[l.ProductID]
			if !ok {
				return fault.New(fault.Conflict, "insufficient_stock", "a product in the cart is no longer sold")
			}
			if p.Stock < l.Quantity {
				return fault.New(fault.Conflict, "insufficient_stock", "not enough stock for "+p.Name)
			}
			out = append(out, ReservedLine{ProductID: p.ID, SKU: p.SKU, Name: p.Name, PriceCents: p.PriceCents, Quantity: l.Quantity})
		}
		return c.store.TakeStock(ctx, lines, c.now().UTC())
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Release implements Service.
func (c *Catalog) Release(ctx context.Context, lines []Line) error {
	if err := checkQuantities(lines); err != nil {
		return err
	}
	lines = mergeLines(lines)
	return c.store.InTx(ctx, func(ctx context.Context) error {
		now := c.now().UTC()
		for _, l := range lines {
			if err := c.store.PutStock(ctx, l.ProductID, l.Quantity, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkQuantities refuses quantities outside 1..MaxStock: a negative one
// would turn a reservation into a restock (and a release into a sale), and
// bounding them keeps the sums of mergeLines far from overflowing.
func checkQuantities(lines []Line) error {
	for _, l := range lines {
		if l.Quantity < 1 || l.Quantity > MaxStock {
			return fault.New(fault.Invalid, "", "a quantity must be an integer from 1 to 1000000")
		}
	}
	return nil
}

// mergeLines sums quantities per product and orders lines by product ID, so
// concurrent reservations lock rows in the same order.
func mergeLines(lines []Line) []Line {
	sum := map[string]int64{}
	for _, l := range lines {
		sum[l.ProductID] += l.Quantity
	}
	out := make([]Line, 0, len(sum))
	for id, q := range sum {
		out = append(out, Line{ProductID: id, Quantity: q})
	}
	slices.SortFunc(out, func(a, b Line) int { return strings.Compare(a.ProductID, b.ProductID) })
	return out
}
