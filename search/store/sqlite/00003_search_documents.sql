-- +goose Up
-- search_documents gives each indexed product its rowid in search_products
-- and search_words. FTS5 cannot index product_id, so without it finding a
-- product's document scanned the whole index on every catalog write.
CREATE TABLE search_documents (
    doc        INTEGER PRIMARY KEY,
    product_id TEXT NOT NULL UNIQUE
);
-- Upsert always replaced a product's document, but nothing in the old
-- schema forbade two; if there are, the latest is the current one.
INSERT INTO search_documents (doc, product_id)
    SELECT max(rowid), product_id FROM search_products
    WHERE product_id IS NOT NULL GROUP BY product_id;
DELETE FROM search_products WHERE rowid NOT IN (SELECT doc FROM search_documents);
-- The seed filled search_products alone, so search_words may lack
-- documents, and a contentless table cannot say which: it is rebuilt.
INSERT INTO search_words (search_words) VALUES ('delete-all');
INSERT INTO search_words (rowid, name, description)
    SELECT rowid, name, description FROM search_products;

-- +goose Down
DROP TABLE search_documents;
