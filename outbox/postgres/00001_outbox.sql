-- +goose Up
CREATE TABLE outbox_events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    event_key    TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    published_at BIGINT,
    attempts     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX outbox_unpublished ON outbox_events (seq) WHERE published_at IS NULL;

-- +goose Down
DROP TABLE outbox_events;
