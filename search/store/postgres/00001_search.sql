-- +goose Up
-- unaccent folds "Café" to "Cafe"; it is a trusted extension (PostgreSQL 13+),
-- so the database owner may create it. Generated columns need an immutable
-- function, hence the wrapper with the dictionary named explicitly.
CREATE EXTENSION IF NOT EXISTS unaccent;

-- +goose StatementBegin
CREATE FUNCTION million_unaccent(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$;
-- +goose StatementEnd

-- One document per product. The english configuration stems words
-- ("boots" matches "boot"); the simple one keeps them whole, so a prefix
-- typed so far ("hiki") still matches "hiking". Weights rank a hit in the
-- name (A, C) above one in the description (B, D).
CREATE TABLE search_documents (
    product_id  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    document    tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', million_unaccent(name)), 'A') ||
        setweight(to_tsvector('english', million_unaccent(description)), 'B') ||
        setweight(to_tsvector('simple', million_unaccent(name)), 'C') ||
        setweight(to_tsvector('simple', million_unaccent(description)), 'D')
    ) STORED
);
CREATE INDEX search_documents_document ON search_documents USING gin (document);

-- +goose Down
DROP TABLE search_documents;
DROP FUNCTION million_unaccent(text);
