-- +goose Up
-- lease_gen fences a checkout's writes to its key: every claim or takeover
-- bumps it, and an attempt writes only while the generation is still its own,
-- so one whose lease was taken over cannot overwrite the winner's outcome.
ALTER TABLE order_idempotency_keys ADD COLUMN lease_gen INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE order_idempotency_keys DROP COLUMN lease_gen;
