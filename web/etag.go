package web

import (
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
)

// ETag returns a strong entity tag for a response body. It is computed on
// every cacheable answer, so the hash is a fast non-cryptographic one: a
// tag only has to tell one version of a resource from its others, and 64
// bits make a collision between two of them negligible (SHA-256 cost ~3 %
// of a cached product GET's CPU).
func ETag(body []byte) string {
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], xxhash.Sum64(body))
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:]) + `"`
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

// SetPublicCache marks a public read cacheable by browsers and CDNs for
// maxAge, then servable stale for staleWhileRevalidate while one request
// revalidates (cheap: the ETag turns it into a 304). surrogateKeys name
// what the response depends on (e.g. "product-<id>", "products"), so a CDN
// can purge every response about an entity at once.
func SetPublicCache(w http.ResponseWriter, maxAge, staleWhileRevalidate time.Duration, surrogateKeys ...string) {
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(maxAge.Seconds()))+
		", stale-while-revalidate="+strconv.Itoa(int(staleWhileRevalidate.Seconds())))
	if len(surrogateKeys) > 0 {
		w.Header().Set("Surrogate-Key", strings.Join(surrogateKeys, " "))
	}
}
