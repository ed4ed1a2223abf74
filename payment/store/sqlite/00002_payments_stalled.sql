-- +goose Up
-- The capture job looks for payments left in one status (authorized) since
-- before a point in time; without this it would scan every payment.
CREATE INDEX payments_status_updated ON payments (status, updated_at);

-- +goose Down
DROP INDEX payments_status_updated;
