package shed

import (
	"errors"
	"io"
	"net/http"
)

// Handler admits requests to next through s. Requests for which exempt
// reports true (health probes: shedding them would make a load balancer
// eject a busy instance, moving its load to the others) always pass;
// requests over the limit of an overloaded instance wait their turn briefly
// (Admit); refused requests go to refuse, which must answer quickly, and
// requests whose client left get nothing. A response of
// 500 or more counts as a failure and stays out of the capacity estimate.
func (s *Shedder) Handler(next http.Handler, exempt func(*http.Request) bool, refuse http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exempt != nil && exempt(r) {
			next.ServeHTTP(w, r)
			return
		}
		// A client that gave up while its request waited (in the listen
		// backlog or behind other goroutines) gets nothing for the work:
		// drop it before doing any, once net/http has noticed.
		if r.Context().Err() != nil {
			s.abandoned.Add(1)
			return
		}
		done, err := s.Admit(r.Context())
		if errors.Is(err, ErrOverloaded) {
			refuse.ServeHTTP(w, r)
			return
		} else if err != nil {
			return // the client left while the request was queued
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		// A panic propagates to net/http's recovery but must not leak an
		// in-flight slot, or the limit would shrink for good.
		defer func() { done(sw.status < 500) }()
		next.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// WriteString passes s on without copying it into a byte slice, when the
// underlying writer can (net/http's can): answers kept as strings are
// written this way.
func (w *statusWriter) WriteString(s string) (int, error) {
	w.wroteHeader = true
	return io.WriteString(w.ResponseWriter, s)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
