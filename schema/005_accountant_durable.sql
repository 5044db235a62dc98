-- 005_accountant_durable: how far the accountant's event log is durable in
-- PostgreSQL.
--
-- The accountant commits its batches with synchronous_commit = off: every
-- event is already in its own fdatasync'ed event log before it is applied,
-- and the log is replayed (idempotently) from the checkpoint.  After each
-- batch it updates this single row in a transaction committed
-- synchronously, on a connection opened before the batches it covers.  The
-- WAL is one sequence, so once that commit is flushed, every earlier
-- (asynchronous) commit is flushed too, and the checkpoint may move to the
-- log position recorded here.  See docs/billing.md, "Commit durability".
CREATE TABLE accountant_durable (
	id SMALLINT PRIMARY KEY CHECK (id = 1),
	log_seq BIGINT NOT NULL DEFAULT 0,  -- event log segment
	log_off BIGINT NOT NULL DEFAULT 0,  -- byte offset in it
	at_ms BIGINT NOT NULL DEFAULT 0     -- unix ms of the last flush
);
INSERT INTO accountant_durable (id) VALUES (1);
