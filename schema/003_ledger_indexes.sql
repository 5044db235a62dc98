-- 003_ledger_indexes: fewer index entries per billed request.
--
-- The accountant writes one usage_events row and one logs row per request;
-- every index on them is one more B-tree insert in the batch transaction
-- (profiled: index inserts are most of the apply time).  These two add
-- nothing a query needs:
--   idx_logs_created_type (created_at, type): a time-range listing filtered
--     by type reads idx_logs_created (created_at, id) and checks type on
--     the row; the leading column is the same.
--   idx_logs_model_user (model_name, username): log searches by user go
--     through idx_logs_user (user_id, id) (the username names one user);
--     a search by model alone is bounded by a time range
--     (idx_logs_created).
--   idx_usage_events_user (user_id, id): the ledger is read by event_id
--     (repeats, replay) and summed whole (audits); a user's history is
--     the consume log, idx_logs_user (one logs row per ledger row, with
--     request_id = event_id).
-- Kept: logs (id), (created_at, id), (user_id, id); usage_events (id),
-- (event_id) unique (exactly-once).
DROP INDEX IF EXISTS idx_logs_created_type;
DROP INDEX IF EXISTS idx_logs_model_user;
DROP INDEX IF EXISTS idx_usage_events_user;
