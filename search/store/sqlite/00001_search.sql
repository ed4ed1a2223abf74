-- +goose Up
-- Porter stemming matches "shoes" to "shoe"; unicode61 folds case and
-- diacritics so "cafe" finds "Café".
CREATE VIRTUAL TABLE search_products USING fts5 (
    product_id UNINDEXED,
    name,
    description,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- +goose Down
DROP TABLE search_products;
