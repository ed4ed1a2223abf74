-- +goose Up
-- The index follows the catalog through its events, which may arrive late,
-- twice or out of order. Each product keeps the highest event version
-- applied to it, so an older event changes nothing; a deleted product keeps
-- its row (deleted = 1, no document) so that a late update cannot bring it
-- back. Documents indexed before, or by the seed, are at version 0, below
-- every event.
ALTER TABLE search_documents ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE search_documents ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE search_documents DROP COLUMN deleted;
ALTER TABLE search_documents DROP COLUMN version;
