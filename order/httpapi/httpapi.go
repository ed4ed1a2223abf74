// Package httpapi serves the order module over HTTP: checkout and /v1/orders.
package httpapi

import (
	"net/http"

	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/order"
	"github.com/millionshop/million/web"
)

// Mount registers the order module's routes on rt.
func Mount(rt *web.Router, svc order.Service) {
	h := handlers{svc: svc}
	rt.Handle("POST /v1/checkout", web.Authenticated, h.checkout)
	rt.Handle("GET /v1/orders", web.Authenticated, h.list)
	rt.Handle("GET /v1/orders/{id}", web.Authenticated, h.get)
	rt.Handle("POST /v1/orders/{id}/cancel", web.Authenticated, h.cancel)
}

type handlers struct {
	svc order.Service
}

func caller(r *http.Request) string {
	p, _ := web.PrincipalFrom(r.Context())
	return p.UserID
}

func (h handlers) checkout(w http.ResponseWriter, r *http.Request) error {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return fault.Fields(fault.FieldError{Field: "Idempotency-Key", Message: "header is required"})
	}
	var req order.CheckoutRequest
	if err := web.Decode(w, r, &req); err != nil {
		return err
	}
	o, replayed, err := h.svc.Checkout(r.Context(), caller(r), key, req)
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/orders/"+o.ID)
	web.WriteJSON(w, http.StatusCreated, o)
	return nil
}

func (h handlers) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := web.Limit(q)
	if err != nil {
		return err
	}
	cursor, err := web.Cursor(q)
	if err != nil {
		return err
	}
	page, err := h.svc.List(r.Context(), caller(r), limit, cursor)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "private, no-store")
	web.WriteJSON(w, http.StatusOK, page)
	return nil
}

func (h handlers) get(w http.ResponseWriter, r *http.Request) error {
	id, err := web.PathID(r, "id")
	if err != nil {
		return err
	}
	o, err := h.svc.Get(r.Context(), caller(r), id)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "private, no-store")
	web.WriteJSON(w, http.StatusOK, o)
	return nil
}

func (h handlers) cancel(w http.ResponseWriter, r *http.Request) error {
	id, err := web.PathID(r, "id")
	if err != nil {
		return err
	}
	o, err := h.svc.Cancel(r.Context(), caller(r), id)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, o)
	return nil
}
