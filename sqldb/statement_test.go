package sqldb

import "testing"

func TestStatementName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ query, want string }{
		{"SELECT id FROM products WHERE id = ?", "SELECT products"},
		{"select p.id from products p join categories c on c.id = p.category_id", "SELECT products"},
		{"INSERT INTO orders (id) VALUES (?)", "INSERT orders"},
		{"UPDATE products SET stock = stock - ?", "UPDATE products"},
		{"DELETE FROM cart_items WHERE user_id = ?", "DELETE cart_items"},
		{"\n\t  SELECT count(*) FROM outbox_events", "SELECT outbox_events"},
		{"PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA"},
		{"", "other"},
	} {
		if got := StatementName(tc.query); got != tc.want {
			t.Errorf("StatementName(%q) = %q, want %q", tc.query, got, tc.want)
		}
	}
}

func TestRebind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ query, want string }{
		{"SELECT 1", "SELECT 1"},
		{"WHERE a = ? AND b IN (?, ?)", "WHERE a = $1 AND b IN ($2, $3)"},
		{"WHERE a = '?' AND b = ?", "WHERE a = '?' AND b = $1"},
		{"VALUES (?, 'it''s', ?)", "VALUES ($1, 'it''s', $2)"},
	} {
		if got := rebind(tc.query); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.query, got, tc.want)
		}
	}
}
