// Package httpapi serves the search module over HTTP: /v1/search.
package httpapi

import (
	"net/http"

	"github.com/millionshop/million/search"
	"github.com/millionshop/million/web"
)

// Mount registers the search module's routes on rt.
func Mount(rt *web.Router, svc search.Service) {
	rt.Handle("GET /v1/search", web.Public, func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		limit, err := web.Limit(q)
		if err != nil {
			return err
		}
		text, err := web.Single(q, "q")
		if err != nil {
			return err
		}
		cursor, err := web.Cursor(q)
		if err != nil {
			return err
		}
		page, err := svc.Search(r.Context(), text, limit, cursor)
		if err != nil {
			return err
		}
		web.WriteJSON(w, http.StatusOK, page)
		return nil
	})
}
