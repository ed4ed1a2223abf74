-- +goose Up
CREATE TABLE categories (
    id   TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL
);

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    currency    TEXT NOT NULL,
    category_id TEXT NOT NULL REFERENCES categories (id),
    stock       BIGINT NOT NULL CHECK (stock >= 0),
    image_url   TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX products_category_newest ON products (category_id, id);
CREATE INDEX products_price ON products (price_cents, id);
CREATE INDEX products_category_price ON products (category_id, price_cents, id);

-- +goose Down
DROP TABLE products;
DROP TABLE categories;
