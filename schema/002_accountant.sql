-- 002_accountant: what the accountant's batched ledger transaction needs.
--
-- The hourly aggregate is upserted per (user, model, hour): one row per
-- key, so a unique index (quota_data's columns and its 001 indexes stay
-- as they are).  created_at is the start of the hour, unix seconds.
CREATE UNIQUE INDEX idx_qdt_user_model_hour
	ON quota_data (user_id, model_name, created_at);


-- The accountant rewrites these rows on every batch; free space in each
-- page lets PostgreSQL update them in place (HOT: no new index entries).
ALTER TABLE users SET (fillfactor = 70);
ALTER TABLE tokens SET (fillfactor = 70);
ALTER TABLE channels SET (fillfactor = 50);
ALTER TABLE quota_data SET (fillfactor = 70);
