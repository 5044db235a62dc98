-- 001_init: the whole data model.  Money is BIGINT quota units everywhere
-- (quota_per_unit units = 1 USD); prices are BIGINT micro-USD.
-- Timestamps are BIGINT unix seconds unless the column name ends in _ms.

CREATE TABLE users (
	id SERIAL PRIMARY KEY,
	username VARCHAR(64) NOT NULL UNIQUE,
	password_hash TEXT NOT NULL DEFAULT '',
	display_name VARCHAR(128) NOT NULL DEFAULT '',
	email VARCHAR(255) NOT NULL DEFAULT '',
	google_id VARCHAR(255) DEFAULT '',
	role VARCHAR(8) NOT NULL DEFAULT 'user'
		CHECK (role IN ('user', 'admin', 'root')),
	status SMALLINT NOT NULL DEFAULT 1,	-- 1 enabled, 2 disabled
	"group" VARCHAR(64) NOT NULL DEFAULT 'default',
	quota BIGINT NOT NULL DEFAULT 0,	-- balance, quota units
	used_quota BIGINT NOT NULL DEFAULT 0,
	request_count BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
	updated_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT
);
CREATE INDEX idx_users_google_id ON users (google_id) WHERE google_id <> '';

CREATE TABLE tokens (
	id SERIAL PRIMARY KEY,
	user_id INT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name VARCHAR(64) NOT NULL DEFAULT '',
	key_hash CHAR(64) NOT NULL UNIQUE,	-- sha256 hex of the full "sk-..." key
	key_prefix VARCHAR(16) NOT NULL DEFAULT '',	-- shown to users: "sk-AbCd"
	status SMALLINT NOT NULL DEFAULT 1,	-- 1 enabled, 2 disabled
	remain_quota BIGINT NOT NULL DEFAULT 0,
	unlimited_quota BOOLEAN NOT NULL DEFAULT FALSE,
	used_quota BIGINT NOT NULL DEFAULT 0,
	expired_at BIGINT NOT NULL DEFAULT -1,	-- -1 = never
	models TEXT NOT NULL DEFAULT '',	-- comma list; '' = all
	allow_ips TEXT NOT NULL DEFAULT '',	-- comma list of CIDRs; '' = any
	"group" VARCHAR(64) NOT NULL DEFAULT '',	-- '' = the user's group
	created_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
	accessed_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX idx_tokens_user ON tokens (user_id);

CREATE TABLE channels (
	id SERIAL PRIMARY KEY,
	name VARCHAR(128) NOT NULL DEFAULT '',
	type SMALLINT NOT NULL DEFAULT 1,	-- 1 openai, 2 anthropic
	base_url TEXT NOT NULL,
	key TEXT NOT NULL DEFAULT '',	-- secret
	models TEXT NOT NULL DEFAULT '',	-- comma list
	"group" TEXT NOT NULL DEFAULT 'default',	-- comma list
	priority BIGINT NOT NULL DEFAULT 0,	-- higher tier tried first
	weight INT NOT NULL DEFAULT 1 CHECK (weight >= 0),
	model_mapping TEXT NOT NULL DEFAULT '',	-- JSON object {"asked":"sent"}
	proxy TEXT NOT NULL DEFAULT '',	-- '' = direct
	status SMALLINT NOT NULL DEFAULT 1,	-- 1 enabled, 2 disabled by admin, 3 auto-disabled
	disabled_reason TEXT NOT NULL DEFAULT '',
	disabled_at BIGINT NOT NULL DEFAULT 0,
	fail_count INT NOT NULL DEFAULT 0,
	connect_timeout_ms INT NOT NULL DEFAULT 0,	-- 0 = configured default
	first_byte_timeout_ms INT NOT NULL DEFAULT 0,
	idle_timeout_ms INT NOT NULL DEFAULT 0,
	total_timeout_ms INT NOT NULL DEFAULT 0,
	used_quota BIGINT NOT NULL DEFAULT 0,
	response_time_ms INT NOT NULL DEFAULT 0,
	test_at BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
	updated_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT
);

-- Delegated channel management: root lets a user manage these channels.
CREATE TABLE user_channels (
	user_id INT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	channel_id INT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
	created_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
	PRIMARY KEY (user_id, channel_id)
);
CREATE INDEX idx_user_channels_channel ON user_channels (channel_id);

-- Routing index: one row per (group, model, channel), derived from
-- channels.models x channels.group by the trigger below, so every writer
-- of channels keeps it right.
CREATE TABLE abilities (
	"group" VARCHAR(64) NOT NULL,
	model VARCHAR(128) NOT NULL,
	channel_id INT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
	enabled BOOLEAN NOT NULL DEFAULT TRUE,
	priority BIGINT NOT NULL DEFAULT 0,
	weight INT NOT NULL DEFAULT 1,
	PRIMARY KEY ("group", model, channel_id)
);
CREATE INDEX idx_abilities_channel ON abilities (channel_id);

CREATE FUNCTION channels_rebuild_abilities() RETURNS trigger AS $$
BEGIN
	DELETE FROM abilities WHERE channel_id = NEW.id;
	INSERT INTO abilities ("group", model, channel_id, enabled, priority, weight)
	SELECT DISTINCT btrim(g), btrim(m), NEW.id, NEW.status = 1, NEW.priority, NEW.weight
	FROM unnest(string_to_array(NEW."group", ',')) AS g,
	     unnest(string_to_array(NEW.models, ',')) AS m
	WHERE btrim(g) <> '' AND btrim(m) <> ''
	ON CONFLICT DO NOTHING;
	RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Only the columns abilities copy: counters (used_quota, response_time_ms,
-- fail_count...) are updated per request and must not rewrite abilities.
CREATE TRIGGER channels_abilities
	AFTER INSERT OR UPDATE OF models, "group", status, priority, weight
	ON channels
	FOR EACH ROW EXECUTE FUNCTION channels_rebuild_abilities();

-- Prices, micro-USD: per 1M tokens, or per call when call_micros > 0.
CREATE TABLE model_prices (
	model VARCHAR(128) PRIMARY KEY,
	input_micros BIGINT NOT NULL DEFAULT 0 CHECK (input_micros >= 0),
	output_micros BIGINT NOT NULL DEFAULT 0 CHECK (output_micros >= 0),
	cached_micros BIGINT NOT NULL DEFAULT 0 CHECK (cached_micros >= 0),
	call_micros BIGINT NOT NULL DEFAULT 0 CHECK (call_micros >= 0),
	updated_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT
);

-- Group multipliers in parts per million (1000000 = x1).
CREATE TABLE groups (
	name VARCHAR(64) PRIMARY KEY,
	ratio_ppm BIGINT NOT NULL DEFAULT 1000000 CHECK (ratio_ppm >= 0)
);
INSERT INTO groups (name, ratio_ppm) VALUES ('default', 1000000);

CREATE TABLE top_ups (
	id SERIAL PRIMARY KEY,
	user_id INT NOT NULL REFERENCES users (id),
	trade_no VARCHAR(128) NOT NULL UNIQUE,
	provider VARCHAR(32) NOT NULL,	-- epay, stripe, admin
	payment_method VARCHAR(32) NOT NULL DEFAULT '',
	amount BIGINT NOT NULL,	-- units bought (USD amount or quantity)
	money BIGINT NOT NULL,	-- minor units of currency charged (cents, fen)
	currency VARCHAR(8) NOT NULL DEFAULT 'USD',
	quota BIGINT NOT NULL,	-- quota units to credit
	status VARCHAR(16) NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'success', 'failed', 'expired')),
	created_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
	completed_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX idx_top_ups_user ON top_ups (user_id, id);

-- Every callback as received, before any decision (the order log).
CREATE TABLE payment_callbacks (
	id BIGSERIAL PRIMARY KEY,
	provider VARCHAR(32) NOT NULL,
	trade_no VARCHAR(128) NOT NULL DEFAULT '',
	received_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
	remote_ip VARCHAR(64) NOT NULL DEFAULT '',
	raw TEXT NOT NULL,
	signature_ok BOOLEAN NOT NULL DEFAULT FALSE,
	outcome VARCHAR(64) NOT NULL DEFAULT ''
);
CREATE INDEX idx_payment_callbacks_trade ON payment_callbacks (trade_no, id);

CREATE TABLE redemptions (
	id SERIAL PRIMARY KEY,
	name VARCHAR(64) NOT NULL DEFAULT '',
	code_hash CHAR(64) NOT NULL UNIQUE,	-- sha256 hex of the code
	quota BIGINT NOT NULL CHECK (quota > 0),
	status SMALLINT NOT NULL DEFAULT 1,	-- 1 unused, 2 disabled, 3 used
	created_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
	redeemed_at BIGINT NOT NULL DEFAULT 0,
	used_user_id INT NOT NULL DEFAULT 0,
	expired_at BIGINT NOT NULL DEFAULT -1
);

-- The ledger.  event_id is unique: an event is applied at most once.
CREATE TABLE usage_events (
	id BIGSERIAL PRIMARY KEY,
	event_id VARCHAR(128) NOT NULL UNIQUE,	-- hex request id, or topup:<trade_no>
	kind VARCHAR(8) NOT NULL CHECK (kind IN ('usage', 'payment')),
	user_id INT NOT NULL,
	token_id INT NOT NULL DEFAULT 0,
	channel_id INT NOT NULL DEFAULT 0,
	model VARCHAR(128) NOT NULL DEFAULT '',
	prompt_tokens BIGINT NOT NULL DEFAULT 0,
	completion_tokens BIGINT NOT NULL DEFAULT 0,
	cached_tokens BIGINT NOT NULL DEFAULT 0,
	estimated BOOLEAN NOT NULL DEFAULT FALSE,
	cost BIGINT NOT NULL,	-- quota units; negative for credits
	price_input_micros BIGINT NOT NULL DEFAULT 0,
	price_output_micros BIGINT NOT NULL DEFAULT 0,
	price_cached_micros BIGINT NOT NULL DEFAULT 0,
	price_call_micros BIGINT NOT NULL DEFAULT 0,
	group_ratio_ppm BIGINT NOT NULL DEFAULT 1000000,
	end_reason VARCHAR(16) NOT NULL DEFAULT 'done',
	started_at_ms BIGINT NOT NULL DEFAULT 0,
	ended_at_ms BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT
);
CREATE INDEX idx_usage_events_user ON usage_events (user_id, id);

-- User-visible log: 1 topup, 2 consume, 3 manage, 4 system, 5 error.
CREATE TABLE logs (
	id BIGSERIAL PRIMARY KEY,
	user_id INT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT,
	type SMALLINT NOT NULL,
	content TEXT NOT NULL DEFAULT '',
	username VARCHAR(64) NOT NULL DEFAULT '',
	token_name VARCHAR(64) NOT NULL DEFAULT '',
	model_name VARCHAR(128) NOT NULL DEFAULT '',
	quota BIGINT NOT NULL DEFAULT 0,
	prompt_tokens BIGINT NOT NULL DEFAULT 0,
	completion_tokens BIGINT NOT NULL DEFAULT 0,
	use_time_ms BIGINT NOT NULL DEFAULT 0,
	is_stream BOOLEAN NOT NULL DEFAULT FALSE,
	channel_id INT NOT NULL DEFAULT 0,
	token_id INT NOT NULL DEFAULT 0,
	"group" VARCHAR(64) NOT NULL DEFAULT '',
	ip VARCHAR(64) NOT NULL DEFAULT '',
	request_id VARCHAR(128) NOT NULL DEFAULT '',
	end_reason VARCHAR(16) NOT NULL DEFAULT ''
);
CREATE INDEX idx_logs_created ON logs (created_at, id);
CREATE INDEX idx_logs_user ON logs (user_id, id);
CREATE INDEX idx_logs_created_type ON logs (created_at, type);
CREATE INDEX idx_logs_model_user ON logs (model_name, username);

CREATE TABLE options (
	key VARCHAR(128) PRIMARY KEY,
	value TEXT NOT NULL DEFAULT ''
);

-- Hourly usage aggregate per (user, model).  quota and token_used are
-- widened from INT to BIGINT: a busy user passes 2^31 quota units (about
-- US$4,295 at 500000 per USD) within weeks, and an INT column would make
-- the accountant's transaction fail.
CREATE TABLE quota_data (
	id SERIAL PRIMARY KEY,
	user_id INT NOT NULL,
	username VARCHAR(64) NOT NULL DEFAULT '',
	model_name VARCHAR(64) NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	token_used BIGINT NOT NULL DEFAULT 0,
	count INT NOT NULL DEFAULT 0,
	quota BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX idx_qdt_model_user_name ON quota_data (model_name, username);
CREATE INDEX idx_qdt_created_at ON quota_data (created_at);
