// Package httpapi serves the payment module over HTTP: the provider webhook.
package httpapi

import (
	"net/http"

	"github.com/millionshop/million/payment"
	"github.com/millionshop/million/web"
)

// Mount registers the payment module's routes on rt.
func Mount(rt *web.Router, svc payment.Service) {
	rt.Handle("POST /v1/payments/webhook", web.Public, func(w http.ResponseWriter, r *http.Request) error {
		body, err := web.ReadBody(w, r)
		if err != nil {
			return err
		}
		dup, err := svc.HandleWebhook(r.Context(), r.Header.Get("Payment-Signature"), body)
		if err != nil {
			return err
		}
		web.WriteJSON(w, http.StatusOK, map[string]bool{"received": true, "duplicate": dup})
		return nil
	})
}
