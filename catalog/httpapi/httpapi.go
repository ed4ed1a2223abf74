// Package httpapi serves the catalog module over HTTP: /v1/categories and /v1/products.
package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/web"
)

// Options tune the handlers.
type Options struct {
	// AnswerBytes bounds the memory of the encoded answers kept for reuse
	// (products and list pages, about 1 KiB per product): 0 means 128 MiB,
	// negative keeps none.
	AnswerBytes int64
}

// Mount registers the catalog module's routes on rt.
func Mount(rt *web.Router, svc catalog.Service, opts Options) {
	budget := max(opts.AnswerBytes, 0)
	if opts.AnswerBytes == 0 {
		budget = 128 << 20
	}
	productSlots, listSlots := productAnswerSlots, listAnswerSlots
	if budget == 0 {
		productSlots, listSlots = 1, 1 // nothing is kept: no slots to allocate
	}
	h := handlers{svc: svc,
		productAnswers: web.NewComparableMemo(productSlots, budget*3/4,
			web.MemoOptions[catalog.Product]{Same: sameProductMemory}),
		listAnswers: web.NewMemo(listSlots, budget/4, sameListPage,
			web.MemoOptions[listPage]{ValueSize: listPageSize}),
		categoryAnswers: web.NewMemo(1, min(budget, 1<<20), slices.Equal[[]catalog.Category],
			web.MemoOptions[[]catalog.Category]{}),
	}
	rt.Handle("GET /v1/categories", web.Public, h.categories)
	rt.Handle("POST /v1/categories", web.Admin, h.createCategory)
	rt.Handle("GET /v1/products", web.Public, h.products)
	rt.Handle("POST /v1/products", web.Admin, h.createProduct)
	rt.Handle("GET /v1/products/{id}", web.Public, h.product)
	rt.Handle("PATCH /v1/products/{id}", web.Admin, h.updateProduct)
	rt.Handle("DELETE /v1/products/{id}", web.Admin, h.deleteProduct)
}

type handlers struct {
	svc catalog.Service
	// The answers last built for each product, list page and the
	// categories, reused while the service returns the same value.
	productAnswers  *web.Memo[catalog.Product]
	listAnswers     *web.Memo[listPage]
	categoryAnswers *web.Memo[[]catalog.Category]
}

// Slots of the answer memos (16 bytes each): an answer may take any of the
// four slots of its set, and about five slots per answer kept leaves next
// to no set full (a key that finds its set full takes the place of another
// one, which is encoded again when next asked for). The product memo's
// 8 MiB of slots serve 100,000 products.
const (
	productAnswerSlots = 1 << 19
	listAnswerSlots    = 1 << 14
)

// listPage is what a list page's answer is built from: the page and the
// category it lists, which its Surrogate-Key names (two categories' empty
// pages are equal, their answers are not).
type listPage struct {
	category string
	page     catalog.Page
}

func sameListPage(a, b listPage) bool {
	return a.category == b.category && a.page.NextCursor == b.page.NextCursor &&
		(a.page.Items == nil) == (b.page.Items == nil) && // they encode as null and []
		slices.Equal(a.page.Items, b.page.Items)
}

// sameProductMemory reports whether two equal products were read from one
// cache entry: one load made all of a product's strings, so its ID's
// bytes tell.
func sameProductMemory(a, b catalog.Product) bool {
	return unsafe.StringData(a.ID) == unsafe.StringData(b.ID)
}

// listPageSize is what a kept list page holds beyond what its products
// share with the cache: the array of the page, built for each request.
func listPageSize(v listPage) int64 {
	return int64(cap(v.page.Items)) * int64(unsafe.Sizeof(catalog.Product{}))
}

// HTTP cache lifetimes of public reads. Browsers and CDNs may keep a
// product or list for productMaxAge after a change (the server-side caches
// never serve it stale; checkout always prices from the database), then
// revalidate with the ETag.
const (
	productMaxAge    = 5 * time.Second
	productSWR       = 30 * time.Second
	categoriesMaxAge = 60 * time.Second
	categoriesSWR    = 10 * time.Minute
)

// writeMemoized writes the answer of v (with an ETag, 304 when it matches,
// and the public cache headers), built by build unless memo has it for an
// equal value under key.
func writeMemoized[V any](w http.ResponseWriter, r *http.Request, memo *web.Memo[V], key string, v V, build func(V) (*web.Encoded, error)) error {
	enc, err := memo.Get(key, v, build)
	if err != nil {
		return err
	}
	enc.Write(w, r)
	return nil
}

func (h handlers) categories(w http.ResponseWriter, r *http.Request) error {
	cats, err := h.svc.Categories(r.Context())
	if err != nil {
		return err
	}
	return writeMemoized(w, r, h.categoryAnswers, "", cats, func(cats []catalog.Category) (*web.Encoded, error) {
		return web.Encode(map[string]any{"items": cats}, categoriesMaxAge, categoriesSWR, "categories")
	})
}

type categoryRequest struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

func (h handlers) createCategory(w http.ResponseWriter, r *http.Request) error {
	var req categoryRequest
	if err := web.Decode(w, r, &req); err != nil {
		return err
	}
	c, err := h.svc.CreateCategory(r.Context(), req.Slug, req.Name)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, c)
	return nil
}

func (h handlers) products(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := web.Limit(q)
	if err != nil {
		return err
	}
	var lq catalog.ListQuery
	lq.Limit = limit
	for name, dst := range map[string]*string{"category": &lq.Category, "sort": &lq.Sort} {
		if *dst, err = web.Single(q, name); err != nil {
			return err
		}
	}
	if lq.Cursor, err = web.Cursor(q); err != nil {
		return err
	}
	page, err := h.svc.Products(r.Context(), lq)
	if err != nil {
		return err
	}
	key := lq.Category + "\x00" + lq.Sort + "\x00" + lq.Cursor + "\x00" + strconv.Itoa(lq.Limit)
	// The category as a part of key, a string of its own: lq.Category is
	// a part of the request line, which a kept answer would keep alive.
	category := key[:len(lq.Category)]
	return writeMemoized(w, r, h.listAnswers, key, listPage{category, page}, func(v listPage) (*web.Encoded, error) {
		keys := []string{"products"}
		if v.category != "" {
			keys = append(keys, "category-"+v.category)
		}
		return web.Encode(v.page, productMaxAge, productSWR, keys...)
	})
}

func (h handlers) product(w http.ResponseWriter, r *http.Request) error {
	id, err := web.PathID(r, "id")
	if err != nil {
		return err
	}
	p, err := h.svc.Product(r.Context(), id)
	if err != nil {
		return err
	}
	// Keyed by the ID of the path, which the request has just read, rather
	// than the product's, which lies wherever its cache entry does.
	return writeMemoized(w, r, h.productAnswers, id, p, encodeProduct)
}

func encodeProduct(p catalog.Product) (*web.Encoded, error) {
	return web.Encode(p, productMaxAge, productSWR, "product-"+p.ID, "products", "category-"+p.Category)
}

func (h handlers) createProduct(w http.ResponseWriter, r *http.Request) error {
	var req catalog.NewProduct
	if err := web.Decode(w, r, &req); err != nil {
		return err
	}
	p, err := h.svc.CreateProduct(r.Context(), req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/products/"+p.ID)
	web.WriteJSON(w, http.StatusCreated, p)
	return nil
}

func (h handlers) updateProduct(w http.ResponseWriter, r *http.Request) error {
	var req catalog.ProductPatch
	if err := web.Decode(w, r, &req); err != nil {
		return err
	}
	id, err := web.PathID(r, "id")
	if err != nil {
		return err
	}
	p, err := h.svc.UpdateProduct(r.Context(), id, req)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (h handlers) deleteProduct(w http.ResponseWriter, r *http.Request) error {
	id, err := web.PathID(r, "id")
	if err != nil {
		return err
	}
	if err := h.svc.DeleteProduct(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
