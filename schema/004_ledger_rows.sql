-- 004_ledger_rows: less work per billed request in the ledger insert.
--
-- usage_events.id (BIGSERIAL) fed nothing but its own primary-key index and
-- a sequence call per row: the ledger is keyed by event_id (exactly-once,
-- repeats, replay) and summed whole (audits).  event_id becomes the primary
-- key; its index keeps the name usage_events_event_id_key, which the
-- accountant recognises in a duplicate-key error and docs/billing.md names.
-- is_stream is stored with the event so that the consume log row is made
-- from the inserted ledger row alone (no join back to the batch input).
-- Rewrites the ledger's index once (ACCESS EXCLUSIVE lock while it runs:
-- stop the accountant for the migration on a big ledger).
ALTER TABLE usage_events DROP COLUMN id;
ALTER TABLE usage_events DROP CONSTRAINT usage_events_event_id_key;
ALTER TABLE usage_events
	ADD CONSTRAINT usage_events_event_id_key PRIMARY KEY (event_id);
ALTER TABLE usage_events ADD COLUMN is_stream BOOLEAN NOT NULL DEFAULT FALSE;
