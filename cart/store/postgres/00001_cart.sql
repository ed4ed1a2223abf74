-- +goose Up
CREATE TABLE cart_items (
    user_id    TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

-- +goose Down
DROP TABLE cart_items;
