-- +goose Up
-- version counts a product's admin writes (create, update, delete), so that
-- consumers of the catalog's events can tell an older event of a product
-- from a newer one whatever order they receive them in. A clock could not:
-- two writes may share a microsecond, and instances' clocks differ.
ALTER TABLE products ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- +goose Down
ALTER TABLE products DROP COLUMN version;
