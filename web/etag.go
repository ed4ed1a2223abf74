package web

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/millionshop/million/fault"
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

// Encoded is a public read's answer built once: the JSON body with its
// trailing newline, and the header values that go with it. A cached read
// serves the same version of an entity many thousands of times, and
// encoding it (JSON, ETag, Cache-Control, Surrogate-Key) on every request
// was a fifth of a cached product GET's CPU.
type Encoded struct {
	body []byte
	// Header values, each a one-element slice set directly into the
	// response header: net/http only reads them, and an Add by a later
	// writer appends to a full slice, which copies it.
	contentType, contentLength, etag, cacheControl, surrogateKeys []string
}

var jsonContentType = []string{"application/json"}

// Encode builds the answer of v for a public read cacheable for maxAge and
// then servable stale for staleWhileRevalidate while one request
// revalidates (cheap: the ETag turns it into a 304). surrogateKeys name
// what the answer depends on (e.g. "product-<id>", "products"), so a CDN
// can purge every answer about an entity at once.
func Encode(v any, maxAge, staleWhileRevalidate time.Duration, surrogateKeys ...string) (*Encoded, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fault.Wrap(err, "encode response")
	}
	tag := ETag(body)
	body = append(body, '\n')
	e := &Encoded{
		body:          body,
		contentType:   jsonContentType,
		contentLength: []string{strconv.Itoa(len(body))},
		etag:          []string{tag},
		cacheControl: []string{"public, max-age=" + strconv.Itoa(int(maxAge.Seconds())) +
			", stale-while-revalidate=" + strconv.Itoa(int(staleWhileRevalidate.Seconds()))},
	}
	if len(surrogateKeys) > 0 {
		e.surrogateKeys = []string{strings.Join(surrogateKeys, " ")}
	}
	return e, nil
}

// Write sends e, or 304 Not Modified when the request's If-None-Match
// already names its ETag. The ETag is that of the body without its
// newline.
func (e *Encoded) Write(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Etag"] = e.etag
	h["Cache-Control"] = e.cacheControl
	if e.surrogateKeys != nil {
		h["Surrogate-Key"] = e.surrogateKeys
	}
	if matchesETag(r.Header.Get("If-None-Match"), e.etag[0]) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = e.contentType
	h["Content-Length"] = e.contentLength
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.body)
}
