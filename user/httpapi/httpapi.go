// Package httpapi serves the user module over HTTP: /v1/auth/* and /v1/me.
package httpapi

import (
	"net/http"

	"github.com/millionshop/million/user"
	"github.com/millionshop/million/web"
)

// Mount registers the user module's routes on rt.
func Mount(rt *web.Router, svc user.Service) {
	h := handlers{svc: svc}
	rt.Handle("POST /v1/auth/register", web.Public, h.register)
	rt.Handle("POST /v1/auth/login", web.Public, h.login)
	rt.Handle("POST /v1/auth/refresh", web.Public, h.refresh)
	rt.Handle("POST /v1/auth/logout", web.Authenticated, h.logout)
	rt.Handle("GET /v1/me", web.Authenticated, h.me)
	rt.Handle("PATCH /v1/me", web.Authenticated, h.updateMe)
}

type handlers struct {
	svc user.Service
}

type registerRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

func (h handlers) register(w http.ResponseWriter, r *http.Request) error {
	var req registerRequest
	if err := web.Decode(w, r, &req); err != nil {
		return err
	}
	u, err := h.svc.Register(r.Context(), user.Registration{Email: req.Email, Password: req.Password, Name: req.Name,
		ClientIP: web.ClientIPFrom(r.Context())})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, u)
	return nil
}

func (h handlers) login(w http.ResponseWriter, r *http.Request) error {
	var req user.Credentials
	if err := web.Decode(w, r, &req); err != nil {
		return err
	}
	pair, err := h.svc.Login(r.Context(), req, web.ClientIPFrom(r.Context()))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	web.WriteJSON(w, http.StatusOK, pair)
	return nil
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (h handlers) refresh(w http.ResponseWriter, r *http.Request) error {
	var req refreshRequest
	if err := web.Decode(w, r, &req); err != nil {
		return err
	}
	pair, err := h.svc.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	web.WriteJSON(w, http.StatusOK, pair)
	return nil
}

func (h handlers) logout(w http.ResponseWriter, r *http.Request) error {
	p, _ := web.PrincipalFrom(r.Context())
	if err := h.svc.Logout(r.Context(), p); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h handlers) me(w http.ResponseWriter, r *http.Request) error {
	p, _ := web.PrincipalFrom(r.Context())
	u, err := h.svc.Get(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "private, no-store")
	web.WriteJSON(w, http.StatusOK, u)
	return nil
}

type updateMeRequest struct {
	Name *string `json:"name"`
}

func (h handlers) updateMe(w http.ResponseWriter, r *http.Request) error {
	var req updateMeRequest
	if err := web.Decode(w, r, &req); err != nil {
		return err
	}
	p, _ := web.PrincipalFrom(r.Context())
	if req.Name == nil {
		return web.MissingField("name")
	}
	u, err := h.svc.Rename(r.Context(), p.UserID, *req.Name)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, u)
	return nil
}
