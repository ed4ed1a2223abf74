-- +goose Up
-- Messages are listed oldest first by created_at (ID breaks ties).
DROP INDEX notify_messages_user;
CREATE INDEX notify_messages_user_time ON notify_messages (user_id, created_at, id);

-- +goose Down
DROP INDEX notify_messages_user_time;
CREATE INDEX notify_messages_user ON notify_messages (user_id, id);
