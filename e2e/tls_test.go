package e2e

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/pgtest"
)

// tlsOpenBound is how long a refused connection may take to fail: the
// pool's connect timeout (2 s) plus slack. A misconfigured TLS setting must
// fail start-up with a reason, not hang it.
const tlsOpenBound = 5 * time.Second

// tlsURL returns url with its sslmode replaced by the given parameters.
func tlsURL(t *testing.T, raw string, params url.Values) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// tlsOpenFails opens million on databaseURL and expects start-up to fail
// fast with an error containing want.
func tlsOpenFails(t *testing.T, databaseURL, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := app.Config{DataDir: t.TempDir(), DatabaseURL: databaseURL, PaymentWebhookSecret: WebhookSecret, PasswordParams: fastPasswords}
	began := time.Now()
	a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	took := time.Since(began)
	if err == nil {
		a.Close()
		t.Fatalf("app.Open(%s) succeeded, want a failure mentioning %q", databaseURL, want)
	}
	t.Logf("app.Open failed in %s: %v", took.Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("app.Open(%s) failed with %q, want it to mention %q", databaseURL, err, want)
	}
	if took > tlsOpenBound {
		t.Errorf("app.Open(%s) took %s to fail, want under %s", databaseURL, took, tlsOpenBound)
	}
}

// TestTLSVerifyFull proves that TLS to the database is configured by the
// connection string alone: against a server that admits TCP clients only
// over TLS (pg_hba hostssl), million started with sslmode=verify-full and
// the right CA migrates, serves the API, and every connection of its pool
// is encrypted; a CA that did not sign the server's certificate, or
// sslmode=disable, makes start-up fail at once with the reason.
func TestTLSVerifyFull(t *testing.T) {
	t.Parallel()
	ca := pgtest.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1", "localhost")
	pg := pgtest.NewDedicated(t, pgtest.WithTLS(cert, key), pgtest.WithHBA("hostssl all all 127.0.0.1/32 trust"))
	plain := pg.NewDatabase(t, "") // empty: app.Open migrates it, over TLS
	verified := tlsURL(t, plain, url.Values{"sslmode": {"verify-full"}, "sslrootcert": {ca.CertFile(t)}})

	t.Run("wrong CA", func(t *testing.T) {
		t.Parallel()
		other := pgtest.NewCA(t)
		tlsOpenFails(t, tlsURL(t, plain, url.Values{"sslmode": {"verify-full"}, "sslrootcert": {other.CertFile(t)}}),
			"certificate signed by unknown authority")
	})
	t.Run("no TLS", func(t *testing.T) {
		t.Parallel()
		tlsOpenFails(t, plain, "no pg_hba.conf entry")
	})
	t.Run("verify-full", func(t *testing.T) {
		t.Parallel()
		s := Start(t, func(c *app.Config) { c.DatabaseURL = verified })
		tg := targetFor(t, s)
		admin := tg.Admin(t)
		p := admin.NewProduct(t, admin.NewCategory(t), "Sealed Lantern", 2500, 10)
		shopper := tg.Register(t)
		checkoutPut(t, shopper, p.ID, 2)
		o := checkoutPaid(t, shopper, "tls-1")
		if len(o.Items) != 1 || o.Items[0].ProductID != p.ID || o.TotalCents != 5000 {
			t.Errorf("order over TLS = %+v, want 2 × %s for 5000", o, p.ID)
		}
		checkoutWantStock(t, tg.Client(), p.ID, 8)
		tg.Client().Expect(t, http.StatusOK, "GET", "/readyz", nil)

		// Every backend serving million's database came in over TLS, not
		// only the one this query runs on.
		var total, encrypted int
		err := s.App.DB.Write.QueryRowContext(context.Background(), `
			SELECT count(*), count(*) FILTER (WHERE s.ssl)
			FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
			WHERE a.datname = current_database()`).Scan(&total, &encrypted)
		if err != nil {
			t.Fatalf("pg_stat_ssl: %v", err)
		}
		if total == 0 || encrypted != total {
			t.Errorf("%d of %d connections to million's database use TLS, want all", encrypted, total)
		}
	})
}
