// Package httpapi serves the cart module over HTTP: /v1/cart.
package httpapi

import (
	"net/http"

	"github.com/millionshop/million/cart"
	"github.com/millionshop/million/web"
)

// Mount registers the cart module's routes on rt.
func Mount(rt *web.Router, svc cart.Service) {
	h := handlers{svc: svc}
	rt.Handle("GET /v1/cart", web.Authenticated, h.get)
	rt.Handle("DELETE /v1/cart", web.Authenticated, h.clear)
	rt.Handle("PUT /v1/cart/items/{product_id}", web.Authenticated, h.setItem)
	rt.Handle("DELETE /v1/cart/items/{product_id}", web.Authenticated, h.removeItem)
}

type handlers struct {
	svc cart.Service
}

func caller(r *http.Request) string {
	p, _ := web.PrincipalFrom(r.Context())
	return p.UserID
}

func writeCart(w http.ResponseWriter, c cart.Cart) {
	w.Header().Set("Cache-Control", "private, no-store")
	web.WriteJSON(w, http.StatusOK, c)
}

func (h handlers) get(w http.ResponseWriter, r *http.Request) error {
	c, err := h.svc.Get(r.Context(), caller(r))
	if err != nil {
		return err
	}
	writeCart(w, c)
	return nil
}

func (h handlers) clear(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.Clear(r.Context(), caller(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type setItemRequest struct {
	Quantity *int64 `json:"quantity"`
}

func (h handlers) setItem(w http.ResponseWriter, r *http.Request) error {
	var req setItemRequest
	if err := web.Decode(w, r, &req); err != nil {
		return err
	}
	if req.Quantity == nil {
		return web.MissingField("quantity")
	}
	id, err := web.PathID(r, "product_id")
	if err != nil {
		return err
	}
	c, err := h.svc.SetItem(r.Context(), caller(r), id, *req.Quantity)
	if err != nil {
		return err
	}
	writeCart(w, c)
	return nil
}

func (h handlers) removeItem(w http.ResponseWriter, r *http.Request) error {
	id, err := web.PathID(r, "product_id")
	if err != nil {
		return err
	}
	c, err := h.svc.RemoveItem(r.Context(), caller(r), id)
	if err != nil {
		return err
	}
	writeCart(w, c)
	return nil
}
