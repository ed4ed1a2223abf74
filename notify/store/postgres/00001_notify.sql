-- +goose Up
CREATE TABLE notify_handled_events (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE notify_messages (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notify_messages_user ON notify_messages (user_id, id);

-- +goose Down
DROP TABLE notify_messages;
DROP TABLE notify_handled_events;
