package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

func TestProbe(t *testing.T) {
	db, err := sql.Open("sqlite", "file:/tmp/sdp2/million.db?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, q := range []string{`SELECT count(*) FROM search_products WHERE search_products MATCH ?`,
		`SELECT count(*) FROM (SELECT product_id FROM search_products WHERE search_products MATCH ? ORDER BY bm25(search_products, 0.0, 10.0, 1.0), product_id LIMIT 21)`,
		`SELECT count(*) FROM (SELECT product_id FROM search_products WHERE search_products MATCH ? ORDER BY rank LIMIT 21)`,
	} {
		for _, m := range []string{`"w"*`, `"wor"*`, `("wor"* OR "word" OR "work")`, `"leather" AND "b"*`} {
			var n int
			st := time.Now()
			for range 5 {
				if err := db.QueryRowContext(ctx, q, m).Scan(&n); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%-40s %8d %v", m, n, time.Since(st)/5)
		}
	}
	rows, _ := db.Query(`SELECT term FROM search_words_vocab WHERE term > 'wor' AND term < 'wos'`)
	for rows.Next() {
		var s string
		rows.Scan(&s)
		t.Log(s)
	}
}
