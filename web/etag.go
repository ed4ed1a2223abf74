package web

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
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
//
// The body and the header values are one string, and the values are
// sliced from an array in the struct: serving an answer reads two
// allocations, not ten. Over a large catalogue every allocation a request
// reaches is a likely CPU cache and TLB miss, and those misses, not the
// instructions, were most of what a cached product GET cost beyond a bare
// server's.
type Encoded struct {
	body string
	// values are the header values, each set into the response header as a
	// full one-element slice of this array: net/http only reads them, and
	// an Add by a later writer appends to a full slice, which copies it.
	values [encodedHeaders]string
}

// The headers of an Encoded answer, as indexes of its values.
const (
	encContentLength = iota
	encETag
	encCacheControl
	encSurrogateKey
	encodedHeaders
)

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
	var values [encodedHeaders]string
	values[encETag] = ETag(body)
	values[encContentLength] = strconv.Itoa(len(body) + 1)
	values[encCacheControl] = "public, max-age=" + strconv.Itoa(int(maxAge.Seconds())) +
		", stale-while-revalidate=" + strconv.Itoa(int(staleWhileRevalidate.Seconds()))
	values[encSurrogateKey] = strings.Join(surrogateKeys, " ")

	var all strings.Builder
	all.Grow(len(body) + 1 + len(values[0]) + len(values[1]) + len(values[2]) + len(values[3]))
	all.Write(body)
	all.WriteByte('\n')
	for _, v := range values {
		all.WriteString(v)
	}
	s := all.String()
	e := &Encoded{body: s[:len(body)+1]}
	at := len(e.body)
	for i, v := range values {
		e.values[i] = s[at : at+len(v)]
		at += len(v)
	}
	return e, nil
}

// Write sends e, or 304 Not Modified when the request's If-None-Match
// already names its ETag. The ETag is that of the body without its
// newline.
func (e *Encoded) Write(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Etag"] = e.value(encETag)
	h["Cache-Control"] = e.value(encCacheControl)
	if e.values[encSurrogateKey] != "" {
		h["Surrogate-Key"] = e.value(encSurrogateKey)
	}
	if matchesETag(r.Header.Get("If-None-Match"), e.values[encETag]) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = e.value(encContentLength)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, e.body)
}

// value is header value i as a full one-element slice.
func (e *Encoded) value(i int) []string { return e.values[i : i+1 : i+1] }
