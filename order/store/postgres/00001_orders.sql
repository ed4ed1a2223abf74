-- +goose Up
CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    status         TEXT NOT NULL,
    total_cents    BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    payment_status TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX orders_user_newest ON orders (user_id, id);

CREATE TABLE order_items (
    order_id    TEXT NOT NULL REFERENCES orders (id),
    line        BIGINT NOT NULL,
    product_id  TEXT NOT NULL,
    sku         TEXT NOT NULL,
    name        TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    quantity    BIGINT NOT NULL,
    PRIMARY KEY (order_id, line)
);

CREATE TABLE order_idempotency_keys (
    user_id      TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state        TEXT NOT NULL,
    order_id     TEXT NOT NULL DEFAULT '',
    lease_until  BIGINT NOT NULL,
    err_kind     BIGINT NOT NULL DEFAULT 0,
    err_code     TEXT NOT NULL DEFAULT '',
    err_message  TEXT NOT NULL DEFAULT '',
    response     BYTEA,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX order_idempotency_keys_created ON order_idempotency_keys (created_at);

-- +goose Down
DROP TABLE order_idempotency_keys;
DROP TABLE order_items;
DROP TABLE orders;
