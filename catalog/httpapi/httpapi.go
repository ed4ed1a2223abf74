// Package httpapi serves the catalog module over HTTP: /v1/categories and /v1/products.
package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/millionshop/million/catalog"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/web"
)

// Mount registers the catalog module's routes on rt.
func Mount(rt *web.Router, svc catalog.Service) {
	h := handlers{svc: svc}
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
}

func (h handlers) categories(w http.ResponseWriter, r *http.Request) error {
	cats, err := h.svc.Categories(r.Context())
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"items": cats})
	return nil
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
	web.WriteJSON(w, http.StatusOK, page)
	return nil
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
	body, err := json.Marshal(p)
	if err != nil {
		return fault.Wrap(err, "encode product")
	}
	// Clients and CDNs must revalidate, which is cheap: a 304 carries no body.
	w.Header().Set("Cache-Control", "public, no-cache")
	web.WriteCacheable(w, r, body)
	return nil
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
