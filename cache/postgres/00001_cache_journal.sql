-- +goose Up
-- Invalidations recorded in the write's own transaction, deleted once Redis
-- took them; whatever stays is delivered by any instance's replay.
CREATE TABLE cache_invalidations (
    id         TEXT PRIMARY KEY,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX cache_invalidations_created ON cache_invalidations (created_at);

-- +goose Down
DROP TABLE cache_invalidations;
