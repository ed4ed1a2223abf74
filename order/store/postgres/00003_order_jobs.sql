-- +goose Up
-- The abandoned-checkout reaper looks for old pending orders, and finds the
-- idempotency key each one was placed under; both would otherwise scan
-- every row. Partial, so paid and settled orders cost nothing.
CREATE INDEX orders_pending_created ON orders (created_at) WHERE status = 'pending';
CREATE INDEX order_idempotency_keys_order ON order_idempotency_keys (order_id) WHERE order_id <> '';

-- +goose Down
DROP INDEX order_idempotency_keys_order;
DROP INDEX orders_pending_created;
