package web

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// ETag returns a strong entity tag for a response body.
func ETag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}

// WriteCacheable writes a JSON body with its ETag, or 304 Not Modified when
// the request's If-None-Match already names it.
func WriteCacheable(w http.ResponseWriter, r *http.Request, body []byte) {
	tag := ETag(body)
	w.Header().Set("ETag", tag)
	if matchesETag(r.Header.Get("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	WriteRawJSON(w, http.StatusOK, body)
}

func matchesETag(header, tag string) bool {
	if header == "" {
		return false
	}
	for _, candidate := range strings.Split(header, ",") {
		candidate = strings.TrimSpace(candidate)
		if candidate == "*" || strings.TrimPrefix(candidate, "W/") == tag {
			return true
		}
	}
	return false
}
