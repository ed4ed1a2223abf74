package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Capture is one response of million, recorded so that the bare baseline
// can answer with the same bytes.
type Capture struct {
	Path   string      `json:"path"` // what was asked for
	Status int         `json:"status"`
	Header http.Header `json:"header"` // without the headers net/http writes itself
	Body   []byte      `json:"body"`
}

// hopHeaders are written by net/http for every response, so a capture
// leaves them out and the bare server's own take their place.
var hopHeaders = []string{"Date", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive"}

// capture fetches base+path and records the response.
func capture(ctx context.Context, client *http.Client, base, path string) (*Capture, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	h := resp.Header.Clone()
	for _, k := range hopHeaders {
		h.Del(k)
	}
	return &Capture{Path: path, Status: resp.StatusCode, Header: h, Body: body}, nil
}

// ServeBare is the bare baseline: a plain net/http server that answers
// every request, whatever its path, with the captured response read from
// captureFile (status, headers, body). It is what the protocol compares
// million with: the cost of HTTP alone, for the same bytes. It logs
// {"msg":"serving","addr":…} once listening, like million serve, and
// serves until ctx ends.
func ServeBare(ctx context.Context, captureFile, addr string, logger *slog.Logger) error {
	b, err := os.ReadFile(captureFile)
	if err != nil {
		return err
	}
	var c Capture
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("read the capture %s: %w", captureFile, err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range c.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(c.Status)
		_, _ = w.Write(c.Body)
	})

	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	logger.Info("serving", "addr", l.Addr().String(), "capture", c.Path, "bytes", len(c.Body))
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
