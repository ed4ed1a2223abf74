package store

import (
	"context"
	"strconv"
	"time"

	"github.com/millionshop/million/cache"
	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/sqldb"
)

// CacheTTLs are the lifetimes of the catalog's cache entries; zero values
// mean the defaults (products and lists 5 min, categories 24 h).
type CacheTTLs struct {
	Product  time.Duration
	List     time.Duration
	Category time.Duration
}

// Cached is a catalog.Store that answers reads from a cache.Cache and
// invalidates after every write commits; the catalog does not know it is
// there.
//
// Strategy:
//   - Product by ID: cache-aside, 5 min, not-found cached briefly. Every
//     write of a product (update, delete, and the stock changes of every
//     reservation and release) invalidates it after commit, so a read after
//     a write never sees the old price or stock.
//   - Product lists: the cache keeps the page's product IDs only, under a
//     generation that any insert, update or delete moves; the products
//     themselves come from the product entries. Stock changes therefore do
//     not flush lists: the IDs and their order do not depend on stock.
//   - Categories and categories by slug: 24 h, invalidated on create.
//   - Reads inside a transaction go to the database: they lock rows for a
//     read-modify-write (checkout, UpdateProduct) and must see the truth.
type Cached struct {
	inner      catalog.Store
	cache      *cache.Cache
	products   *cache.Entity[catalog.Product]
	lists      *cache.Entity[[]string]
	categories *cache.Entity[[]catalog.Category]
	bySlug     *cache.Entity[catalog.Category]
}

var _ catalog.Store = (*Cached)(nil)

// Versions of the cached shapes: bump one when its Go type changes.
const (
	productVersion  = 1
	listVersion     = 1
	categoryVersion = 1
)

// NewCached wraps inner with c.
func NewCached(inner catalog.Store, c *cache.Cache, ttl CacheTTLs) *Cached {
	if ttl.Product <= 0 {
		ttl.Product = 5 * time.Minute
	}
	if ttl.List <= 0 {
		ttl.List = 5 * time.Minute
	}
	if ttl.Category <= 0 {
		ttl.Category = 24 * time.Hour
	}
	return &Cached{
		inner:      inner,
		cache:      c,
		products:   cache.Register[catalog.Product](c, cache.Spec{Name: "product", Version: productVersion, TTL: ttl.Product}),
		lists:      cache.Register[[]string](c, cache.Spec{Name: "product_list", Version: listVersion, TTL: ttl.List, Generational: true}),
		categories: cache.Register[[]catalog.Category](c, cache.Spec{Name: "categories", Version: categoryVersion, TTL: ttl.Category}),
		bySlug:     cache.Register[catalog.Category](c, cache.Spec{Name: "category", Version: categoryVersion, TTL: ttl.Category}),
	}
}

// invalidate invalidates targets once ctx's transaction commits (at once
// outside one), in one message with the transaction's other changes (a
// checkout of ten lines sends one), recorded in the cache's journal within
// the transaction. The write's caller returns only after it, so its
// response never precedes the invalidation. An error means the record
// failed: returned, it rolls the write back.
func (s *Cached) invalidate(ctx context.Context, targets ...cache.Target) error {
	return s.cache.Defer(ctx, targets...)
}

// InTx implements catalog.Store.
func (s *Cached) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.inner.InTx(ctx, fn)
}

const allCategories = "all"

// Categories implements catalog.Store.
func (s *Cached) Categories(ctx context.Context) ([]catalog.Category, error) {
	if sqldb.InTransaction(ctx) {
		return s.inner.Categories(ctx)
	}
	out, _, err := s.categories.Get(ctx, allCategories, func(ctx context.Context) ([]catalog.Category, bool, error) {
		cats, err := s.inner.Categories(ctx)
		return cats, err == nil, err
	})
	if out == nil && err == nil {
		out = []catalog.Category{}
	}
	return out, err
}

var errNoCategory = fault.New(fault.NotFound, "", "no such category")

// CategoryBySlug implements catalog.Store.
func (s *Cached) CategoryBySlug(ctx context.Context, slug string) (catalog.Category, error) {
	if sqldb.InTransaction(ctx) {
		return s.inner.CategoryBySlug(ctx, slug)
	}
	cat, found, err := s.bySlug.Get(ctx, slug, func(ctx context.Context) (catalog.Category, bool, error) {
		cat, err := s.inner.CategoryBySlug(ctx, slug)
		if fault.Is(err, fault.NotFound) {
			return cat, false, nil
		}
		return cat, err == nil, err
	})
	if err == nil && !found {
		return catalog.Category{}, errNoCategory
	}
	return cat, err
}

// CreateCategory implements catalog.Store.
func (s *Cached) CreateCategory(ctx context.Context, c catalog.Category) error {
	if err := s.inner.CreateCategory(ctx, c); err != nil {
		return err
	}
	// The slug may be cached as not found.
	return s.invalidate(ctx, s.categories.Keys(allCategories), s.bySlug.Keys(c.Slug))
}

// ListProducts implements catalog.Store.
func (s *Cached) ListProducts(ctx context.Context, categoryID, sort string, after *catalog.Position, limit int) ([]catalog.Product, error) {
	if sqldb.InTransaction(ctx) {
		return s.inner.ListProducts(ctx, categoryID, sort, after, limit)
	}
	key := categoryID + "|" + sort + "|" + strconv.Itoa(limit)
	if after != nil {
		key += "|" + strconv.FormatInt(after.PriceCents, 10) + "|" + after.ID
	}
	ids, _, err := s.lists.Get(ctx, key, func(ctx context.Context) ([]string, bool, error) {
		items, err := s.inner.ListProducts(ctx, categoryID, sort, after, limit)
		if err != nil {
			return nil, false, err
		}
		ids := make([]string, len(items))
		for i, p := range items {
			ids[i] = p.ID
		}
		return ids, true, nil
	})
	if err != nil {
		return nil, err
	}
	products, found, err := s.productsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, ok := range found {
		if !ok {
			// Deleted between the list and the products: the list is from
			// an older generation that this instance has not heard moved
			// yet. Ask the database.
			return s.inner.ListProducts(ctx, categoryID, sort, after, limit)
		}
	}
	return products, nil
}

// product is one product through the coalesced, cluster-wide
// single-loader path.
func (s *Cached) product(ctx context.Context, id string) (catalog.Product, bool, error) {
	return s.products.Get(ctx, id, func(ctx context.Context) (catalog.Product, bool, error) {
		return s.inner.Product(ctx, id)
	})
}

// productsByID is the products of ids, in their order: products[i] is
// ids[i]'s when found[i].
func (s *Cached) productsByID(ctx context.Context, ids []string) (products []catalog.Product, found []bool, err error) {
	if len(ids) == 1 {
		p, ok, err := s.product(ctx, ids[0])
		if err != nil {
			return nil, nil, err
		}
		return []catalog.Product{p}, []bool{ok}, nil
	}
	return s.products.GetMany(ctx, ids, func(ctx context.Context, missing []string) (map[string]catalog.Product, error) {
		ps, err := s.inner.ProductsByID(ctx, missing)
		if err != nil {
			return nil, err
		}
		out := make(map[string]catalog.Product, len(ps))
		for _, p := range ps {
			out[p.ID] = p
		}
		return out, nil
	})
}

// Product implements catalog.Store.
func (s *Cached) Product(ctx context.Context, id string) (catalog.Product, bool, error) {
	if sqldb.InTransaction(ctx) {
		return s.inner.Product(ctx, id)
	}
	return s.product(ctx, id)
}

// ProductsByID implements catalog.Store.
func (s *Cached) ProductsByID(ctx context.Context, ids []string) ([]catalog.Product, error) {
	if sqldb.InTransaction(ctx) {
		return s.inner.ProductsByID(ctx, ids)
	}
	switch len(ids) {
	case 0:
		return []catalog.Product{}, nil
	case 1:
		// A product page, the most frequent read: no maps to build.
		p, found, err := s.product(ctx, ids[0])
		if err != nil {
			return nil, err
		}
		if !found {
			return []catalog.Product{}, nil
		}
		return []catalog.Product{p}, nil
	}
	products, found, err := s.productsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]catalog.Product, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		if found[i] && !seen[id] {
			seen[id] = true
			out = append(out, products[i])
		}
	}
	return out, nil
}

// changed invalidates a product and, when its list position may have
// moved, every product list.
func (s *Cached) changed(ctx context.Context, id string, lists bool) error {
	if lists {
		return s.invalidate(ctx, s.products.Keys(id), s.lists.All())
	}
	return s.invalidate(ctx, s.products.Keys(id))
}

// InsertProduct implements catalog.Store.
func (s *Cached) InsertProduct(ctx context.Context, p catalog.ProductRow) error {
	if err := s.inner.InsertProduct(ctx, p); err != nil {
		return err
	}
	return s.changed(ctx, p.ID, true) // it may be cached as not found
}

// UpdateProduct implements catalog.Store.
func (s *Cached) UpdateProduct(ctx context.Context, p catalog.ProductRow) (int64, error) {
	version, err := s.inner.UpdateProduct(ctx, p)
	if err != nil {
		return 0, err
	}
	return version, s.changed(ctx, p.ID, true)
}

// DeleteProduct implements catalog.Store.
func (s *Cached) DeleteProduct(ctx context.Context, id string) (int64, error) {
	version, err := s.inner.DeleteProduct(ctx, id)
	if err != nil {
		return 0, err
	}
	return version, s.changed(ctx, id, true)
}

// TakeStock implements catalog.Store. Stock is part of the cached product,
// so a reservation invalidates it: a product page never shows stock a
// checkout already took.
func (s *Cached) TakeStock(ctx context.Context, lines []catalog.Line, now time.Time) error {
	if err := s.inner.TakeStock(ctx, lines, now); err != nil {
		return err
	}
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.ProductID
	}
	return s.invalidate(ctx, s.products.Keys(ids...))
}

// PutStock implements catalog.Store.
func (s *Cached) PutStock(ctx context.Context, id string, qty int64, now time.Time) error {
	if err := s.inner.PutStock(ctx, id, qty, now); err != nil {
		return err
	}
	return s.changed(ctx, id, false)
}
