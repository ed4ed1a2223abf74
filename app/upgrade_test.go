package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/millionshop/million/app"
	"github.com/millionshop/million/catalog"
	catalogstore "github.com/millionshop/million/catalog/store"
	"github.com/millionshop/million/fault"
	"github.com/millionshop/million/order"
	orderstore "github.com/millionshop/million/order/store"
	"github.com/millionshop/million/outbox"
	"github.com/millionshop/million/payment"
	paymentstore "github.com/millionshop/million/payment/store"
	"github.com/millionshop/million/search"
	searchstore "github.com/millionshop/million/search/store"
	"github.com/millionshop/million/sqldb"
	"github.com/millionshop/million/sqldb/sqldbtest"
)

// previous is, per module, the last migration (SQLite, PostgreSQL) of the
// million before product versions, search document versions and the order
// and payment jobs: the schema a data directory of that million holds.
// Modules not listed gained nothing since, and are migrated whole.
var previous = map[string][2]int64{
	"catalog": {1, 1}, // 00002_product_version adds products.version
	"search":  {3, 1}, // 00004 (SQLite) / 00002 (PostgreSQL) add version and deleted
	"order":   {2, 2}, // 00003_order_jobs adds the jobs' partial indexes
	"payment": {1, 1}, // 00002_payments_stalled adds the capture job's index
}

// keptEvents keeps what the outbox's relay published, for the test to
// deliver to the index itself.
type keptEvents struct {
	mu     sync.Mutex
	events []outbox.Event
}

// Publish implements outbox.Publisher.
func (k *keptEvents) Publish(_ context.Context, e outbox.Event) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.events = append(k.events, e)
	return nil
}

// TestUpgradeKeepsOldRowsWorking is the upgrade of a data directory that
// an older million filled: on every engine, the schema as that million
// left it, rows written the way it wrote them, then the migrations the
// app applies when it opens, then today's code on the old rows. The
// catalog's writes to old products record events above the old search
// documents' version, so the index follows them, and refuses older ones;
// the order and payment jobs find the old orders, keys and payments.
func TestUpgradeKeepsOldRowsWorking(t *testing.T) {
	t.Parallel()
	for _, d := range sqldbtest.Dialects {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := sqldbtest.Open(t, d) // empty
			var old []sqldb.Migrations
			for _, m := range app.Migrations() {
				if v, ok := previous[m.Module]; ok {
					m = sqldbtest.Through(t, m, v[0], v[1])
				}
				old = append(old, m)
			}
			if _, err := db.Migrate(ctx, old); err != nil {
				t.Fatalf("migrate to the previous schema: %v", err)
			}
			now := time.Now().UTC()
			fillPreviousSchema(t, db, now)

			n, err := db.Migrate(ctx, app.Migrations())
			if err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			if n != len(previous) {
				t.Fatalf("upgrade applied %d migrations, want %d (one per module in previous)", n, len(previous))
			}
			checkCatalogAndSearch(t, db)
			checkOrderJobs(t, db, now)
			checkPaymentJobs(t, db, now)
		})
	}
}

// fillPreviousSchema writes, in plain SQL of the previous schema, what that
// million held: two products with their search documents, a pending and a
// paid order with the keys they were placed under, and an authorized and a
// captured payment.
func fillPreviousSchema(t *testing.T, db *sqldb.DB, now time.Time) {
	t.Helper()
	ctx := context.Background()
	ago := func(d time.Duration) int64 { return now.Add(-d).UnixMicro() }
	type stmt struct {
		sql  string
		args []any
	}
	stmts := []stmt{
		{`INSERT INTO categories (id, slug, name) VALUES ('cat-gear', 'gear', 'Gear')`, nil},
		{`INSERT INTO products (id, sku, name, description, price_cents, currency, category_id, stock, image_url, created_at, updated_at)
			VALUES ('p-kettle', 'kettle', 'Alpha Kettle', 'For camp.', 2500, 'USD', 'cat-gear', 7, '', ?, ?)`, []any{ago(48 * time.Hour), ago(48 * time.Hour)}},
		{`INSERT INTO products (id, sku, name, description, price_cents, currency, category_id, stock, image_url, created_at, updated_at)
			VALUES ('p-stove', 'stove', 'Camp Stove', 'Burns gas.', 4000, 'USD', 'cat-gear', 3, '', ?, ?)`, []any{ago(48 * time.Hour), ago(48 * time.Hour)}},
		{`INSERT INTO orders (id, user_id, status, total_cents, currency, payment_status, created_at, updated_at)
			VALUES ('o-pending', 'u-1', 'pending', 2500, 'USD', 'authorized', ?, ?)`, []any{ago(2 * time.Hour), ago(2 * time.Hour)}},
		{`INSERT INTO order_items (order_id, line, product_id, sku, name, price_cents, quantity)
			VALUES ('o-pending', 0, 'p-kettle', 'kettle', 'Alpha Kettle', 2500, 1)`, nil},
		{`INSERT INTO orders (id, user_id, status, total_cents, currency, payment_status, created_at, updated_at)
			VALUES ('o-paid', 'u-1', 'paid', 4000, 'USD', 'captured', ?, ?)`, []any{ago(3 * time.Hour), ago(3 * time.Hour)}},
		{`INSERT INTO order_idempotency_keys (user_id, key, request_hash, state, order_id, lease_until, lease_gen, response, created_at)
			VALUES ('u-1', 'key-pending', 'hash-1', 'done', 'o-pending', ?, 1, ?, ?)`, []any{ago(2 * time.Hour), []byte(`{"id":"o-pending"}`), ago(2 * time.Hour)}},
		{`INSERT INTO order_idempotency_keys (user_id, key, request_hash, state, order_id, lease_until, lease_gen, created_at)
			VALUES ('u-1', 'key-paid', 'hash-2', 'done', 'o-paid', ?, 1, ?)`, []any{ago(3 * time.Hour), ago(3 * time.Hour)}},
		{`INSERT INTO payments (id, order_id, user_id, amount_cents, currency, status, provider, provider_ref, created_at, updated_at)
			VALUES ('pay-pending', 'o-pending', 'u-1', 2500, 'USD', 'authorized', 'simulated', 'ref-1', ?, ?)`, []any{ago(2 * time.Hour), ago(2 * time.Hour)}},
		{`INSERT INTO payments (id, order_id, user_id, amount_cents, currency, status, provider, provider_ref, created_at, updated_at)
			VALUES ('pay-paid', 'o-paid', 'u-1', 4000, 'USD', 'captured', 'simulated', 'ref-2', ?, ?)`, []any{ago(3 * time.Hour), ago(3 * time.Hour)}},
	}
	if db.Dialect == sqldb.Postgres {
		stmts = append(stmts, stmt{`INSERT INTO search_documents (product_id, name, description) VALUES
			('p-kettle', 'Alpha Kettle', 'For camp.'), ('p-stove', 'Camp Stove', 'Burns gas.')`, nil})
	} else {
		// As the previous SQLite store indexed: a row in search_documents
		// gives the product its rowid in both full-text tables.
		for doc, p := range [][3]string{{"p-kettle", "Alpha Kettle", "For camp."}, {"p-stove", "Camp Stove", "Burns gas."}} {
			stmts = append(stmts, []stmt{
				{`INSERT INTO search_documents (doc, product_id) VALUES (?, ?)`, []any{doc + 1, p[0]}},
				{`INSERT INTO search_products (rowid, product_id, name, description) VALUES (?, ?, ?, ?)`, []any{doc + 1, p[0], p[1], p[2]}},
				{`INSERT INTO search_words (rowid, name, description) VALUES (?, ?, ?)`, []any{doc + 1, p[1], p[2]}},
			}...)
		}
	}
	for _, s := range stmts {
		if _, err := db.Writer(ctx).ExecContext(ctx, s.sql, s.args...); err != nil {
			t.Fatalf("fill the previous schema: %s: %v", s.sql, err)
		}
	}
}

// checkCatalogAndSearch updates and deletes the old products through the
// catalog and delivers the events recorded to the index.
func checkCatalogAndSearch(t *testing.T, db *sqldb.DB) {
	t.Helper()
	ctx := context.Background()
	idx := searchstore.New(db)
	index := search.NewIndex(idx, nil)
	match := func(when, q string, want ...string) {
		t.Helper()
		ids, err := idx.Match(ctx, search.Terms(q), 0, 10)
		if err != nil || !slices.Equal(ids, want) {
			t.Errorf("%s: match %q = %v, %v; want %v", when, q, ids, err, want)
		}
	}
	match("after the upgrade", "alpha", "p-kettle")
	match("after the upgrade", "stove", "p-stove")

	kept := &keptEvents{}
	ob := outbox.New(db, kept, slog.New(slog.DiscardHandler), time.Now)
	cat := catalog.NewCatalog(catalogstore.New(db), ob, "USD", time.Now)
	name := "Beta Kettle"
	p, err := cat.UpdateProduct(ctx, "p-kettle", catalog.ProductPatch{Name: &name})
	if err != nil {
		t.Fatalf("update an old product: %v", err)
	}
	if p.Name != name || p.SKU != "kettle" || p.Description != "For camp." || p.PriceCents != 2500 || p.Stock != 7 || p.Category != "gear" {
		t.Fatalf("updated old product = %+v, want the old row renamed", p)
	}
	if err := cat.DeleteProduct(ctx, "p-stove"); err != nil {
		t.Fatalf("delete an old product: %v", err)
	}
	if _, err := ob.RelayOnce(ctx, 10); err != nil {
		t.Fatalf("relay: %v", err)
	}
	if len(kept.events) != 2 {
		t.Fatalf("the writes recorded %d events, want 2", len(kept.events))
	}
	var updated catalog.ProductEvent
	var deleted catalog.ProductDeleted
	if err := json.Unmarshal(kept.events[0].Payload, &updated); err != nil || kept.events[0].Topic != catalog.TopicProductUpdated {
		t.Fatalf("first event = %s %s (%v), want %s", kept.events[0].Topic, kept.events[0].Payload, err, catalog.TopicProductUpdated)
	}
	if err := json.Unmarshal(kept.events[1].Payload, &deleted); err != nil || kept.events[1].Topic != catalog.TopicProductDeleted {
		t.Fatalf("second event = %s %s (%v), want %s", kept.events[1].Topic, kept.events[1].Payload, err, catalog.TopicProductDeleted)
	}
	// An old product is at version 1 and its old document at 0, so every
	// write of today's catalog is news to the index.
	if updated.Version != 2 || deleted.Version != 2 {
		t.Fatalf("event versions = %d (update), %d (delete); want 2 and 2", updated.Version, deleted.Version)
	}
	for _, e := range kept.events {
		if err := index.HandleProductEvent(ctx, e.Topic, e.Payload); err != nil {
			t.Fatalf("apply %s: %v", e.Topic, err)
		}
	}
	match("after the events", "beta", "p-kettle")
	match("after the events", "alpha")
	match("after the events", "stove")
	match("after the events", "camp", "p-kettle") // the kettle's description still says camp

	// Events at or below what the index holds, delivered late, change nothing.
	for _, v := range []int64{updated.Version, 1} {
		stale := updated
		stale.Name, stale.Version = "Alpha Kettle", v
		late, _ := json.Marshal(stale)
		if err := index.HandleProductEvent(ctx, catalog.TopicProductUpdated, late); err != nil {
			t.Fatalf("apply a late update at version %d: %v", v, err)
		}
		gone, _ := json.Marshal(catalog.ProductEvent{Product: catalog.Product{ID: "p-stove", Name: "Camp Stove"}, Version: v})
		if err := index.HandleProductEvent(ctx, catalog.TopicProductUpdated, gone); err != nil {
			t.Fatalf("apply a late update of the deleted product at version %d: %v", v, err)
		}
	}
	match("after late events", "beta", "p-kettle")
	match("after late events", "alpha")
	match("after late events", "stove")
}

// checkOrderJobs runs the reaper's, the capture job's and the key purge's
// order store queries over the old orders and keys.
func checkOrderJobs(t *testing.T, db *sqldb.DB, now time.Time) {
	t.Helper()
	ctx := context.Background()
	s := orderstore.New(db)
	pending, err := s.PendingOrders(ctx, now.Add(-time.Hour), 10)
	if err != nil || len(pending) != 1 || pending[0].ID != "o-pending" || len(pending[0].Items) != 1 || pending[0].Items[0].ProductID != "p-kettle" {
		t.Fatalf("PendingOrders = %+v, %v; want o-pending with its item", pending, err)
	}
	for orderID, key := range map[string]string{"o-pending": "key-pending", "o-paid": "key-paid"} {
		r, err := s.KeyByOrder(ctx, orderID)
		if err != nil || r.Key != key || r.State != order.KeyDone || r.LeaseGen != 1 {
			t.Fatalf("KeyByOrder(%s) = %+v, %v; want %s, done, generation 1", orderID, r, err, key)
		}
	}
	if r, _ := s.KeyByOrder(ctx, "o-pending"); string(r.Response) != `{"id":"o-pending"}` {
		t.Fatalf("KeyByOrder(o-pending).Response = %q, want the old answer", r.Response)
	}
	// Retention of 150 minutes: the 3-hour-old key goes, the 2-hour-old stays.
	if n, err := s.PurgeKeys(ctx, now.Add(-150*time.Minute), now, 10); err != nil || n != 1 {
		t.Fatalf("PurgeKeys = %d, %v; want 1", n, err)
	}
	if _, err := s.KeyByOrder(ctx, "o-paid"); !fault.Is(err, fault.NotFound) {
		t.Fatalf("KeyByOrder(o-paid) after the purge = %v, want fault.NotFound", err)
	}
	if _, err := s.KeyByOrder(ctx, "o-pending"); err != nil {
		t.Fatalf("KeyByOrder(o-pending) after the purge = %v, want it kept", err)
	}
}

// checkPaymentJobs runs the capture job's payment store query over the old
// payments.
func checkPaymentJobs(t *testing.T, db *sqldb.DB, now time.Time) {
	t.Helper()
	ctx := context.Background()
	got, err := paymentstore.New(db).Stalled(ctx, payment.StatusAuthorized, now.Add(-time.Hour), 10)
	if err != nil || len(got) != 1 || got[0].ID != "pay-pending" || got[0].OrderID != "o-pending" || got[0].ProviderRef != "ref-1" {
		t.Fatalf("Stalled(authorized) = %+v, %v; want pay-pending", got, err)
	}
}
