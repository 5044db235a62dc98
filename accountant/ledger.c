/*
 * ledger.c -- batched, idempotent application of events (see ledger.h).
 */
#include "accountant/ledger.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/grow.h"
#include "common/ids.h"

/* All usage events of a batch, as 19 arrays in binary format (no text
 * to build or parse) unnested into rows: only the rows the ledger insert RETURNS (new
 * events of existing users) feed the balance updates, the hourly
 * aggregate and the consume log.  Two variants: with ON CONFLICT
 * (event_id) DO NOTHING, and without it for batches expected to be new
 * (no separate uniqueness probe per row; a repeat fails the statement
 * with a unique violation and the batch is redone with the first). */
#define USAGE_SQL(on_conflict)                                                 \
	"WITH e AS (SELECT * FROM unnest($2::text[], $3::int[], $4::int[], "   \
	"$5::int[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], "    \
	"$10::bool[], $11::bigint[], $12::bigint[], $13::bigint[], "           \
	"$14::bigint[], $15::bigint[], $16::bigint[], $17::text[], "           \
	"$18::bigint[], $19::bigint[], $20::bool[]) AS t(event_id, user_id, "  \
	"token_id, channel_id, model, prompt, completion, cached, estimated, " \
	"cost, pin, pout, pcached, pcall, ratio, reason, started, ended, "     \
	"stream)),\n"                                                          \
	"ins AS (INSERT INTO usage_events (event_id, kind, user_id, "          \
	"token_id, channel_id, model, prompt_tokens, completion_tokens, "      \
	"cached_tokens, estimated, cost, price_input_micros, "                 \
	"price_output_micros, price_cached_micros, price_call_micros, "        \
	"group_ratio_ppm, end_reason, started_at_ms, ended_at_ms, "            \
	"created_at, is_stream) "                                              \
	"SELECT event_id, 'usage', user_id, token_id, channel_id, model, "     \
	"prompt, completion, cached, estimated, cost, pin, pout, pcached, "    \
	"pcall, ratio, reason, started, ended, $1, stream FROM e "             \
	"WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = "                    \
	"e.user_id) " on_conflict                                              \
	"RETURNING event_id, user_id, token_id, channel_id, "                  \
	"model, prompt_tokens, completion_tokens, cost, end_reason, "          \
	"started_at_ms, ended_at_ms, is_stream),\n"                            \
	"us AS (UPDATE users SET quota = users.quota - s.c, "                  \
	"used_quota = users.used_quota + s.c, "                                \
	"request_count = users.request_count + s.n, updated_at = $1 "          \
	"FROM (SELECT user_id, sum(cost) AS c, count(*) AS n FROM ins "        \
	"GROUP BY user_id) s WHERE users.id = s.user_id "                      \
	"RETURNING users.id, users.quota, users.used_quota, "                  \
	"users.username),\n"                                                   \
	"tk AS (UPDATE tokens SET remain_quota = CASE WHEN "                   \
	"tokens.unlimited_quota THEN tokens.remain_quota ELSE "                \
	"tokens.remain_quota - s.c END, used_quota = tokens.used_quota + "     \
	"s.c, accessed_at = $1 "                                               \
	"FROM (SELECT token_id, sum(cost) AS c FROM ins WHERE token_id > 0 "   \
	"GROUP BY token_id) s WHERE tokens.id = s.token_id "                   \
	"RETURNING tokens.id, tokens.remain_quota, tokens.unlimited_quota, "   \
	"tokens.user_id, tokens.name),\n"                                      \
	"qd AS (INSERT INTO quota_data (user_id, username, model_name, "       \
	"created_at, token_used, count, quota) "                               \
	"SELECT s.user_id, u.username, s.m, s.h, s.tok, s.n, s.c FROM "        \
	"(SELECT user_id, left(model, 64) AS m, "                              \
	"(ended_at_ms / 3600000) * 3600 AS h, "                                \
	"sum(prompt_tokens + completion_tokens) AS tok, count(*) AS n, "       \
	"sum(cost) AS c FROM ins GROUP BY 1, 2, 3) s "                         \
	"JOIN us u ON u.id = s.user_id "                                       \
	"ON CONFLICT (user_id, model_name, created_at) DO UPDATE SET "         \
	"token_used = quota_data.token_used + EXCLUDED.token_used, "           \
	"count = quota_data.count + EXCLUDED.count, "                          \
	"quota = quota_data.quota + EXCLUDED.quota),\n"                        \
	"lg AS (INSERT INTO logs (user_id, created_at, type, content, "        \
	"username, token_name, model_name, quota, prompt_tokens, "             \
	"completion_tokens, use_time_ms, is_stream, channel_id, token_id, "    \
	"request_id, end_reason) "                                             \
	"SELECT i.user_id, i.ended_at_ms / 1000, 2, '', u.username, "          \
	"coalesce(t.name, ''), i.model, i.cost, i.prompt_tokens, "             \
	"i.completion_tokens, greatest(i.ended_at_ms - i.started_at_ms, 0), "  \
	"i.is_stream, i.channel_id, i.token_id, i.event_id, i.end_reason "     \
	"FROM ins i JOIN us u ON u.id = i.user_id "                            \
	"LEFT JOIN tk t ON t.id = i.token_id)\n"                               \
	"SELECT 1, event_id, 0, 0, 0 FROM ins "                                \
	"UNION ALL SELECT 2, id::text, quota, used_quota, 0 FROM us "          \
	"UNION ALL SELECT 3, id::text, remain_quota, unlimited_quota::int, "   \
	"user_id FROM tk"

static const char usage_sql[] = USAGE_SQL("ON CONFLICT (event_id) DO NOTHING ");
static const char usage_new_sql[] = USAGE_SQL("");
#define USAGE_NPARAMS 20
#define USAGE_NCOLS (USAGE_NPARAMS - 1)

/* One payment: the ledger row, the credit, the order flip, the log. */
static const char payment_sql[]
    = "WITH ins AS (INSERT INTO usage_events (event_id, kind, user_id, "
      "model, cost, end_reason, started_at_ms, ended_at_ms, created_at) "
      "SELECT $1, 'payment', $2, '', -($3::bigint), 'done', $4, $4, $5 "
      "WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) "
      "ON CONFLICT (event_id) DO NOTHING RETURNING user_id, cost),\n"
      "us AS (UPDATE users SET quota = users.quota - ins.cost, "
      "updated_at = $5 FROM ins WHERE users.id = ins.user_id "
      "RETURNING users.id, users.quota, users.used_quota, "
      "users.username),\n"
      "tu AS (UPDATE top_ups SET status = 'success', completed_at = $5 "
      "WHERE trade_no = $6 AND $6 <> '' AND status IN ('pending', "
      "'expired') AND EXISTS (SELECT 1 FROM ins)),\n"
      "lg AS (INSERT INTO logs (user_id, created_at, type, content, "
      "username, quota, request_id, end_reason) "
      "SELECT us.id, $5, 1, $7, us.username, $3, $1, 'done' FROM us)\n"
      "SELECT 2, id::text, quota, used_quota FROM us";
#define PAYMENT_NPARAMS 7

/* channels.used_quota is shared by every partition (acct_lanes): its rows
 * are locked last in the transaction and in id order, so that appliers
 * never deadlock on them and hold them only for the commit.  $1: channel
 * ids ascending, $2: the costs to add. */
static const char chlock_sql[]
    = "SELECT id FROM channels WHERE id = ANY($1::int[]) ORDER BY id "
      "FOR NO KEY UPDATE";
static const char chadd_sql[]
    = "UPDATE channels SET used_quota = channels.used_quota + s.c FROM "
      "unnest($1::int[], $2::bigint[]) AS s(id, c) WHERE channels.id = s.id";

static const char order_sql[]
    = "SELECT user_id, quota, status FROM top_ups WHERE trade_no = $1 "
      "FOR UPDATE";
static const char present_sql[]
    = "SELECT event_id FROM usage_events WHERE event_id = ANY($1::text[])";

/* One channel's share of a batch. */
struct ch_total {
	int64_t id, cost;
};

/* A growable text buffer for one array parameter. */
struct tbuf {
	char *p;
	size_t len, cap;
	int oom;
};

struct acct_ledger {
	PGconn *conn;
	struct tbuf cols[USAGE_NCOLS]; /* binary arrays of one batch */
	struct tbuf ids;               /* a text array of event ids */
	struct tbuf ch_ids, ch_costs;  /* channel totals of a batch */
	struct ch_total *ch;           /* n of a batch, sorted by channel */
	size_t cap_ch;
	/* The last failure was a deadlock or serialization failure: the
	 * transaction was rolled back and may simply be redone. */
	int conflict;
	/* Batches left to run with ON CONFLICT after one found a repeat
	 * (replays and retries come in runs); 0: expect new events. */
	unsigned careful;
	acct_user_balance *users;
	size_t n_users, cap_users;
	acct_token_balance *tokens;
	size_t n_tokens, cap_tokens;
	/* per batch: open-addressing index of ids -> first event */
	int32_t *slots;
	size_t n_slots;
};

/* Batches run with ON CONFLICT after a repeat was found. */
#define CAREFUL_BATCHES 16u

static const char *const reason_names[] = { "done", "client_gone",
	"upstream_error", "timeout", "worker_lost", "no_channel" };

const char *
acct_end_reason_name(int32_t reason)
{
	if (reason < 0
	    || (size_t)reason >= sizeof(reason_names) / sizeof(reason_names[0]))
		return NULL;
	return reason_names[reason];
}

/* ---- validation ---- */

static int
utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i <= k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000)
		    || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* Marks ev rejected; returns 0 so callers can `return reject(...)`. */
__attribute__((format(printf, 2, 3))) static int
reject(acct_event *ev, const char *fmt, ...)
{
	va_list ap;

	ev->outcome = ACCT_REJECTED;
	va_start(ap, fmt);
	vsnprintf(ev->reason, sizeof(ev->reason), fmt, ap);
	va_end(ap);
	return 0;
}

static int
id32(int64_t v)
{
	return v >= 0 && v <= INT32_MAX;
}

static int
init_usage(acct_event *ev, const pf_usage *u)
{
	pf_hex_encode(u->event_id, PF_ID_LEN, ev->id);
	if (u->user_id <= 0 || !id32(u->user_id) || !id32(u->token_id)
	    || !id32(u->channel_id))
		return reject(ev, "user, token or channel id out of range");
	if (u->cost < 0 || u->tokens.prompt < 0 || u->tokens.completion < 0
	    || u->tokens.cached < 0)
		return reject(ev, "negative cost or token count");
	if (u->tokens.prompt > INT64_MAX / 2
	    || u->tokens.completion > INT64_MAX / 2)
		return reject(ev, "token count out of range");
	if (acct_end_reason_name(u->reason) == NULL)
		return reject(ev, "unknown end reason %" PRId32, u->reason);
	if (u->model.len > PF_MODEL_NAME_MAX
	    || !utf8_ok(u->model.ptr, u->model.len))
		return reject(ev, "model name not valid UTF-8 text");
	if (u->started_ms < 0 || u->ended_ms < 0 || u->ended_ms > INT64_MAX / 2)
		return reject(ev, "timestamps out of range");
	return 0;
}

static int
init_payment(acct_event *ev, const pf_payment *p)
{
	const pf_bytes *id = &p->event_id;

	if (id->len == 0 || id->len > PF_EVENT_ID_MAX
	    || !utf8_ok(id->ptr, id->len)) {
		memcpy(ev->id, "invalid", 8);
		return reject(ev, "payment event id empty or not text");
	}
	memcpy(ev->id, id->ptr, id->len);
	ev->id[id->len] = '\0';
	if (strncmp(ev->id, "topup:", 6) != 0
	    && strncmp(ev->id, "redeem:", 7) != 0)
		return reject(ev,
		    "payment event id is not topup:<trade_no> or "
		    "redeem:<code>");
	if (strncmp(ev->id, "topup:", 6) == 0
	    && (p->trade_no.len != id->len - 6
	        || memcmp(p->trade_no.ptr, id->ptr + 6, p->trade_no.len) != 0))
		return reject(ev, "trade_no does not match the event id");
	if (p->user_id <= 0 || !id32(p->user_id))
		return reject(ev, "user id out of range");
	if (p->quota <= 0)
		return reject(ev, "payment quota must be positive");
	if (p->provider.len > 32 || !utf8_ok(p->provider.ptr, p->provider.len)
	    || !utf8_ok(p->trade_no.ptr, p->trade_no.len))
		return reject(ev, "provider or trade_no not valid text");
	return 0;
}

void
acct_event_init(acct_event *ev, const pf_msg *msg, int64_t ts_ms)
{
	memset(ev, 0, sizeof(*ev));
	ev->msg = msg;
	ev->ts_ms = ts_ms;
	ev->outcome = ACCT_PENDING;
	if (msg == NULL) {
		memcpy(ev->id, "invalid", 8);
		(void)reject(ev, "no message");
	} else if (msg->kind == PF_MSG_USAGE) {
		(void)init_usage(ev, &msg->u.usage);
	} else if (msg->kind == PF_MSG_PAYMENT) {
		(void)init_payment(ev, &msg->u.payment);
	} else {
		memcpy(ev->id, "invalid", 8);
		(void)reject(ev, "a %s message is not an event",
		    pf_msg_kind_name(msg->kind));
	}
}

/* ---- text arrays ---- */

static void
tb_reset(struct tbuf *b)
{
	b->len = 0;
	b->oom = 0;
}

static void
tb_put(struct tbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->cap - b->len < n + 1) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap - b->len < n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
tb_sep(struct tbuf *b)
{
	tb_put(b, b->len == 0 ? "{" : ",", 1);
}

/* An array element in double quotes with '"' and '\' escaped. */
static void
tb_text(struct tbuf *b, const void *s, size_t n)
{
	const char *p = s;

	tb_sep(b);
	tb_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			tb_put(b, "\\", 1);
		tb_put(b, &p[i], 1);
	}
	tb_put(b, "\"", 1);
}

static void
tb_close(struct tbuf *b)
{
	if (b->len == 0)
		tb_put(b, "{", 1);
	tb_put(b, "}", 1);
}

/* ---- ledger ---- */

static void
copy_err(char *errbuf, size_t errlen, const char *what, const char *msg)
{
	size_t n;

	if (errlen == 0)
		return;
	snprintf(errbuf, errlen, "%s: %s", what, msg ? msg : "");
	n = strlen(errbuf);
	while (n > 0 && (errbuf[n - 1] == '\n' || errbuf[n - 1] == ' '))
		errbuf[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (errbuf[i] == '\n' || errbuf[i] == '\t')
			errbuf[i] = ' ';
	}
}

/* Maps a failed result: data errors (classes 22, 23) are the event's
 * fault, anything else the database's. */
static pf_err
result_err(PGresult *res, const char *what, char *errbuf, size_t errlen)
{
	const char *state
	    = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg
	    = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	copy_err(errbuf, errlen, what, msg ? msg : "no result");
	if (state != NULL
	    && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
		return PF_EINVAL;
	return PF_EDB;
}

/* Whether res failed on a deadlock or a serialization failure (class 40:
 * the transaction was rolled back; running it again is the remedy). */
static int
is_conflict(PGresult *res)
{
	const char *state
	    = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return state != NULL && strncmp(state, "40", 2) == 0;
}

static pf_err
exec_simple(PGconn *conn, const char *sql, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	pf_err err = PF_OK;

	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		err = result_err(res, sql, errbuf, errlen);
	PQclear(res);
	return err;
}

pf_err
acct_ledger_new(
    PGconn *conn, acct_ledger **ret_ledger, char *errbuf, size_t errlen)
{
	static const struct {
		const char *name, *sql;
		int n;
	} stmts[] = {
		{ "acct_usage", usage_sql, USAGE_NPARAMS },
		{ "acct_usage_new", usage_new_sql, USAGE_NPARAMS },
		{ "acct_payment", payment_sql, PAYMENT_NPARAMS },
		{ "acct_order", order_sql, 1 },
		{ "acct_present", present_sql, 1 },
		{ "acct_chlock", chlock_sql, 1 },
		{ "acct_chadd", chadd_sql, 2 },
	};
	acct_ledger *l;

	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return PF_ENOMEM;
	l->conn = conn;
	/* The usage statement is one big plan: plan it once, not per batch
	 * (a custom plan costs ~15 ms and changes nothing for arrays). */
	if (exec_simple(conn, "SET plan_cache_mode = force_generic_plan",
	        errbuf, errlen)
	    != PF_OK) {
		acct_ledger_free(l);
		return PF_EDB;
	}
	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		PGresult *res = PQprepare(
		    conn, stmts[i].name, stmts[i].sql, stmts[i].n, NULL);

		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
			(void)result_err(res, "prepare", errbuf, errlen);
			PQclear(res);
			acct_ledger_free(l);
			return PF_EDB;
		}
		PQclear(res);
	}
	*ret_ledger = l;
	return PF_OK;
}

void
acct_ledger_free(acct_ledger *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < USAGE_NCOLS; i++)
		free(l->cols[i].p);
	free(l->ids.p);
	free(l->ch_ids.p);
	free(l->ch_costs.p);
	free(l->ch);
	free(l->users);
	free(l->tokens);
	free(l->slots);
	free(l);
}

const acct_user_balance *
acct_ledger_users(const acct_ledger *l, size_t *ret_n)
{
	*ret_n = l->n_users;
	return l->users;
}

const acct_token_balance *
acct_ledger_tokens(const acct_ledger *l, size_t *ret_n)
{
	*ret_n = l->n_tokens;
	return l->tokens;
}

uint64_t
acct_id_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* Finds the first event of the batch with id; -1 if none.  With add, an
 * absent id is inserted as index i. */
static int32_t
slot_find(acct_ledger *l, acct_event *ev, const char *id, int32_t add)
{
	size_t mask = l->n_slots - 1;

	for (size_t k = acct_id_hash(id) & mask;; k = (k + 1) & mask) {
		int32_t j = l->slots[k];

		if (j < 0) {
			if (add >= 0)
				l->slots[k] = add;
			return -1;
		}
		if (strcmp(ev[j].id, id) == 0)
			return j;
	}
}

pf_err
acct_id_slots_reset(int32_t **slots, size_t *n_slots, size_t n)
{
	size_t want = 16;

	while (want < 2 * n)
		want *= 2;
	if (*n_slots < want) {
		int32_t *p = realloc(*slots, want * sizeof(*p));

		if (p == NULL)
			return PF_ENOMEM;
		*slots = p;
		*n_slots = want;
	}
	for (size_t i = 0; i < *n_slots; i++)
		(*slots)[i] = -1;
	return PF_OK;
}

static pf_err
keep_user(acct_ledger *l, int64_t id, int64_t quota, int64_t used)
{
	acct_user_balance *p
	    = pf_grow(l->users, &l->cap_users, l->n_users + 1, sizeof(*p));

	if (p == NULL)
		return PF_ENOMEM;
	l->users = p;
	l->users[l->n_users].user_id = id;
	l->users[l->n_users].quota = quota;
	l->users[l->n_users].used_quota = used;
	l->n_users++;
	return PF_OK;
}

static pf_err
keep_token(
    acct_ledger *l, int64_t id, int64_t remain, int unlimited, int64_t user_id)
{
	acct_token_balance *p
	    = pf_grow(l->tokens, &l->cap_tokens, l->n_tokens + 1, sizeof(*p));

	if (p == NULL)
		return PF_ENOMEM;
	l->tokens = p;
	l->tokens[l->n_tokens].token_id = id;
	l->tokens[l->n_tokens].remain_quota = remain;
	l->tokens[l->n_tokens].unlimited = unlimited;
	l->tokens[l->n_tokens].user_id = user_id;
	l->n_tokens++;
	return PF_OK;
}

static int64_t
num(const char *s)
{
	return strtoll(s, NULL, 10);
}

/* Reads the "kind, id, a, b" rows of the usage/payment statements. */
static pf_err
take_rows(acct_ledger *l, acct_event *ev, PGresult *res)
{
	int rows = PQntuples(res);
	pf_err err = PF_OK;

	for (int r = 0; r < rows && err == PF_OK; r++) {
		int64_t kind = num(PQgetvalue(res, r, 0));
		const char *id = PQgetvalue(res, r, 1);
		int64_t a = num(PQgetvalue(res, r, 2));
		int64_t b = num(PQgetvalue(res, r, 3));

		if (kind == 1) {
			int32_t j = slot_find(l, ev, id, -1);

			if (j >= 0)
				ev[j].outcome = ACCT_APPLIED;
		} else if (kind == 2) {
			err = keep_user(l, num(id), a, b);
		} else if (kind == 3) {
			err = keep_token(
			    l, num(id), a, (int)b, num(PQgetvalue(res, r, 4)));
		}
	}
	return err;
}

/* ---- binary arrays (network byte order) ---- */

/* PostgreSQL type oids of the array elements */
#define OID_BOOL 16u
#define OID_INT8 20u
#define OID_INT4 23u
#define OID_TEXT 25u
#define ARRAY_HEAD 20u /* ndim, has-nulls, element type, length, lbound */

static void
put_be(char *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)(v >> (8 * (n - 1 - i)));
}

static void
ar_be(struct tbuf *b, uint64_t v, size_t n)
{
	char x[8];

	put_be(x, v, n);
	tb_put(b, x, n);
}

/* Starts an array: its head is written by ar_close. */
static void
ar_open(struct tbuf *b)
{
	static const char zero[ARRAY_HEAD];

	tb_reset(b);
	tb_put(b, zero, sizeof(zero));
}

static void
ar_close(struct tbuf *b, uint32_t oid, size_t count)
{
	if (b->oom)
		return;
	put_be(b->p, 1, 4); /* one dimension */
	put_be(b->p + 4, 0, 4);
	put_be(b->p + 8, oid, 4);
	put_be(b->p + 12, count, 4);
	put_be(b->p + 16, 1, 4);
}

static void
ar_int4(struct tbuf *b, int64_t v)
{
	ar_be(b, 4, 4);
	ar_be(b, (uint64_t)v, 4);
}

static void
ar_int8(struct tbuf *b, int64_t v)
{
	ar_be(b, 8, 4);
	ar_be(b, (uint64_t)v, 8);
}

static void
ar_bool(struct tbuf *b, int v)
{
	ar_be(b, 1, 4);
	tb_put(b, v ? "\1" : "\0", 1);
}

static void
ar_text(struct tbuf *b, const void *s, size_t n)
{
	ar_be(b, n, 4);
	if (n > 0)
		tb_put(b, s, n);
}

/* The element type of each usage column (parameters $2..$20). */
static const uint32_t usage_oids[USAGE_NCOLS]
    = { OID_TEXT, OID_INT4, OID_INT4, OID_INT4, OID_TEXT, OID_INT8, OID_INT8,
	      OID_INT8, OID_BOOL, OID_INT8, OID_INT8, OID_INT8, OID_INT8,
	      OID_INT8, OID_INT8, OID_TEXT, OID_INT8, OID_INT8, OID_BOOL };

/* Fills l->cols with the pending usage events of ev[0..n); *ret_count:
 * how many. */
static pf_err
build_usage(acct_ledger *l, acct_event *ev, size_t n, size_t *ret_count)
{
	struct tbuf *c = l->cols;
	size_t count = 0;

	for (size_t k = 0; k < USAGE_NCOLS; k++)
		ar_open(&c[k]);
	for (size_t i = 0; i < n; i++) {
		const pf_usage *u;
		const char *reason;

		if (ev[i].outcome != ACCT_PENDING
		    || ev[i].msg->kind != PF_MSG_USAGE)
			continue;
		u = &ev[i].msg->u.usage;
		reason = acct_end_reason_name(u->reason);
		ar_text(&c[0], ev[i].id, strlen(ev[i].id));
		ar_int4(&c[1], u->user_id);
		ar_int4(&c[2], u->token_id);
		ar_int4(&c[3], u->channel_id);
		ar_text(&c[4], u->model.ptr, u->model.len);
		ar_int8(&c[5], u->tokens.prompt);
		ar_int8(&c[6], u->tokens.completion);
		ar_int8(&c[7], u->tokens.cached);
		ar_bool(&c[8], u->tokens.estimated != 0);
		ar_int8(&c[9], u->cost);
		ar_int8(&c[10], u->price_input);
		ar_int8(&c[11], u->price_output);
		ar_int8(&c[12], u->price_cached);
		ar_int8(&c[13], u->price_call);
		ar_int8(&c[14], u->group_ratio_ppm);
		ar_text(&c[15], reason, strlen(reason));
		ar_int8(&c[16], u->started_ms);
		ar_int8(&c[17], u->ended_ms);
		ar_bool(&c[18], u->stream != 0);
		count++;
	}
	for (size_t k = 0; k < USAGE_NCOLS; k++) {
		ar_close(&c[k], usage_oids[k], count);
		if (c[k].oom)
			return PF_ENOMEM;
	}
	*ret_count = count;
	return PF_OK;
}

/* Whether res failed on a second copy of an event id (the optimistic
 * statement met an event already in the ledger). */
static int
is_repeat(PGresult *res)
{
	const char *state
	    = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *name
	    = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;

	return state != NULL && strcmp(state, "23505") == 0 && name != NULL
	    && strcmp(name, "usage_events_event_id_key") == 0;
}

/* Reads the results of a pipeline of nsent commands up to its sync; the
 * result of command keep (TUPLES_OK) goes to *ret_rows.  Returns the
 * first failed result in *ret_failed (or NULL).  0 when the pipeline was
 * read to its end. */
static int
read_pipeline(PGconn *conn, int nsent, int keep, PGresult **ret_rows,
    PGresult **ret_failed)
{
	int idx = 0, nulls = 0;

	*ret_rows = NULL;
	*ret_failed = NULL;
	for (;;) {
		PGresult *res = PQgetResult(conn);
		ExecStatusType st;

		if (res == NULL) {
			/* one NULL ends each command's results; two in a row:
			 * nothing more is coming (connection lost) */
			if (++nulls > 1)
				return -1;
			continue;
		}
		nulls = 0;
		st = PQresultStatus(res);
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			return idx == nsent ? 0 : -1;
		}
		if (idx == keep && st == PGRES_TUPLES_OK && *ret_rows == NULL) {
			*ret_rows = res;
		} else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK
		    && st != PGRES_PIPELINE_ABORTED && *ret_failed == NULL) {
			*ret_failed = res;
		} else {
			PQclear(res);
		}
		idx++;
	}
}

/*
 * Runs BEGIN and the usage statement over the pending usage events of
 * ev[0..n) as one pipeline (one round trip); the transaction stays open
 * (finish_tx ends it).  On failure nothing is decided and no transaction
 * is open.  PF_EAGAIN: the optimistic statement met a repeat; redo
 * (l->careful is set now).
 */
static pf_err
apply_usage(acct_ledger *l, acct_event *ev, size_t n, int64_t now_s,
    char *errbuf, size_t errlen)
{
	const char *params[USAGE_NPARAMS];
	int lengths[USAGE_NPARAMS], formats[USAGE_NPARAMS];
	char nowbuf[32];
	PGconn *conn = l->conn;
	PGresult *rows = NULL, *failed = NULL;
	size_t count;
	int careful = l->careful > 0, nsent = 0, ok, synced, whole;
	pf_err err;

	err = build_usage(l, ev, n, &count);
	if (err != PF_OK)
		return err;
	snprintf(nowbuf, sizeof(nowbuf), "%" PRId64, now_s);
	params[0] = nowbuf;
	lengths[0] = 0;
	formats[0] = 0; /* text */
	for (size_t k = 0; k < USAGE_NCOLS; k++) {
		params[k + 1] = l->cols[k].p;
		lengths[k + 1] = (int)l->cols[k].len;
		formats[k + 1] = 1; /* binary */
	}
	if (PQenterPipelineMode(conn) != 1) {
		copy_err(errbuf, errlen, "pipeline", PQerrorMessage(conn));
		return PF_EDB;
	}
	ok = PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
	nsent += ok;
	if (ok && count > 0) {
		ok = PQsendQueryPrepared(conn,
		    careful ? "acct_usage" : "acct_usage_new", USAGE_NPARAMS,
		    params, lengths, formats, 0);
		nsent += ok;
	}
	if (!ok) {
		copy_err(errbuf, errlen, "usage batch", PQerrorMessage(conn));
		err = PF_EDB;
	}
	/* Always end the pipeline with a sync and read up to it, so that the
	 * connection leaves pipeline mode; without the sync (connection lost)
	 * the caller drops the connection. */
	synced = PQpipelineSync(conn) == 1;
	whole = synced
	    && read_pipeline(conn, nsent, count > 0 ? 1 : -1, &rows, &failed)
	        == 0;
	if (PQexitPipelineMode(conn) != 1 && err == PF_OK) {
		copy_err(errbuf, errlen, "pipeline", PQerrorMessage(conn));
		err = PF_EDB;
	}
	if (err == PF_OK && failed != NULL) {
		if (!careful && is_repeat(failed)) {
			l->careful = CAREFUL_BATCHES;
			err = PF_EAGAIN;
		} else {
			l->conflict = is_conflict(failed);
			err = result_err(failed, "usage batch", errbuf, errlen);
		}
	} else if (err == PF_OK && !whole) {
		copy_err(errbuf, errlen, "usage batch", PQerrorMessage(conn));
		err = PF_EDB;
	} else if (err == PF_OK && count > 0 && rows == NULL) {
		copy_err(errbuf, errlen, "usage batch", "no rows returned");
		err = PF_EDB;
	}
	PQclear(failed);
	if (err != PF_OK) {
		PQclear(rows);
		if (PQstatus(conn) == CONNECTION_OK
		    && PQtransactionStatus(conn) != PQTRANS_IDLE)
			PQclear(PQexec(conn, "ROLLBACK"));
		return err;
	}
	if (careful && count > 0)
		l->careful--;
	if (rows != NULL)
		err = take_rows(l, ev, rows);
	PQclear(rows);
	return err;
}

/* Checks the order of a top-up; PF_OK to go on, or rejects ev (and
 * returns PF_OK with ev decided). */
static pf_err
check_order(acct_ledger *l, acct_event *ev, char *errbuf, size_t errlen)
{
	const pf_payment *p = &ev->msg->u.payment;
	const char *param = (const char *)p->trade_no.ptr;
	PGresult *res;
	pf_err err = PF_OK;

	if (p->trade_no.len == 0)
		return PF_OK;
	res = PQexecPrepared(l->conn, "acct_order", 1, &param, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = result_err(res, "order lookup", errbuf, errlen);
		PQclear(res);
		return err;
	}
	if (PQntuples(res) == 1) {
		int64_t user = num(PQgetvalue(res, 0, 0));
		int64_t quota = num(PQgetvalue(res, 0, 1));
		const char *status = PQgetvalue(res, 0, 2);

		if (user != p->user_id)
			reject(ev, "order belongs to another user");
		else if (quota != p->quota)
			reject(ev,
			    "amount mismatch: order credits %" PRId64
			    ", event %" PRId64,
			    quota, p->quota);
		else if (strcmp(status, "failed") == 0)
			reject(ev, "order is marked failed");
		else if (strcmp(status, "success") == 0)
			ev->reason[0] = 's'; /* decided below by the ledger */
	}
	PQclear(res);
	return err;
}

static pf_err
apply_payment(
    acct_ledger *l, acct_event *ev, int64_t now_s, char *errbuf, size_t errlen)
{
	const pf_payment *p = &ev->msg->u.payment;
	char user[32], quota[32], ts[32], now[32], content[512];
	const char *params[PAYMENT_NPARAMS];
	PGresult *res;
	pf_err err;

	err = check_order(l, ev, errbuf, errlen);
	if (err != PF_OK || ev->outcome != ACCT_PENDING)
		return err;
	snprintf(user, sizeof(user), "%" PRId64, p->user_id);
	snprintf(quota, sizeof(quota), "%" PRId64, p->quota);
	snprintf(ts, sizeof(ts), "%" PRId64, ev->ts_ms);
	snprintf(now, sizeof(now), "%" PRId64, now_s);
	snprintf(content, sizeof(content), "top-up via %s%s%s",
	    p->provider.len ? (const char *)p->provider.ptr : "unknown",
	    p->trade_no.len ? ", trade_no " : "",
	    p->trade_no.len ? (const char *)p->trade_no.ptr : "");
	params[0] = ev->id;
	params[1] = user;
	params[2] = quota;
	params[3] = ts;
	params[4] = now;
	params[5] = p->trade_no.len ? (const char *)p->trade_no.ptr : "";
	params[6] = content;
	res = PQexecPrepared(
	    l->conn, "acct_payment", PAYMENT_NPARAMS, params, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		l->conflict = is_conflict(res);
		err = result_err(res, "payment", errbuf, errlen);
		PQclear(res);
		return err;
	}
	if (PQntuples(res) == 1) {
		if (ev->reason[0] == 's') {
			/* The order says paid but the ledger never saw it:
			 * completed outside the accountant.  Refuse rather
			 * than credit a second time. */
			PQclear(res);
			copy_err(errbuf, errlen, "payment",
			    "order already completed outside the ledger");
			return PF_EINVAL;
		}
		ev->outcome = ACCT_APPLIED;
		err = keep_user(l, num(PQgetvalue(res, 0, 1)),
		    num(PQgetvalue(res, 0, 2)), num(PQgetvalue(res, 0, 3)));
	}
	ev->reason[0] = '\0';
	PQclear(res);
	return err;
}

/* Events still PENDING after the statements: already in the ledger
 * (PRESENT) or refused because their user does not exist. */
static pf_err
settle_rest(
    acct_ledger *l, acct_event *ev, size_t n, char *errbuf, size_t errlen)
{
	struct tbuf *b = &l->ids;
	const char *param;
	PGresult *res;
	size_t count = 0;
	pf_err err;

	tb_reset(b);
	for (size_t i = 0; i < n; i++) {
		if (ev[i].outcome == ACCT_PENDING) {
			tb_text(b, ev[i].id, strlen(ev[i].id));
			count++;
		}
	}
	if (count == 0)
		return PF_OK;
	tb_close(b);
	if (b->oom)
		return PF_ENOMEM;
	param = b->p;
	res = PQexecPrepared(l->conn, "acct_present", 1, &param, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = result_err(res, "ledger lookup", errbuf, errlen);
		PQclear(res);
		return err;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		int32_t j = slot_find(l, ev, PQgetvalue(res, r, 0), -1);

		if (j >= 0 && ev[j].outcome == ACCT_PENDING) {
			ev[j].outcome = ACCT_PRESENT;
			/* repeats come in runs (replays, retries) */
			l->careful = CAREFUL_BATCHES;
		}
	}
	PQclear(res);
	for (size_t i = 0; i < n; i++) {
		if (ev[i].outcome == ACCT_PENDING)
			reject(&ev[i], "unknown user %" PRId64,
			    ev[i].msg->kind == PF_MSG_USAGE
			        ? ev[i].msg->u.usage.user_id
			        : ev[i].msg->u.payment.user_id);
	}
	return PF_OK;
}

static int
ch_cmp(const void *a, const void *b)
{
	const struct ch_total *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/* Sums the cost of the batch's newly applied usage events per channel
 * into l->ch_ids / l->ch_costs (binary arrays, ascending channel ids);
 * returns how many channels. */
static pf_err
channel_totals(acct_ledger *l, const acct_event *ev, size_t n, size_t *ret)
{
	size_t m = 0, k = 0;

	if (l->cap_ch < n) {
		struct ch_total *p = realloc(l->ch, n * sizeof(*p));

		if (p == NULL)
			return PF_ENOMEM;
		l->ch = p;
		l->cap_ch = n;
	}
	for (size_t i = 0; i < n; i++) {
		const pf_usage *u;

		if (ev[i].outcome != ACCT_APPLIED
		    || ev[i].msg->kind != PF_MSG_USAGE)
			continue;
		u = &ev[i].msg->u.usage;
		if (u->channel_id <= 0)
			continue;
		l->ch[m].id = u->channel_id;
		l->ch[m].cost = u->cost;
		m++;
	}
	if (m > 1)
		qsort(l->ch, m, sizeof(*l->ch), ch_cmp);
	for (size_t i = 0; i < m; i++) {
		if (k > 0 && l->ch[k - 1].id == l->ch[i].id)
			l->ch[k - 1].cost += l->ch[i].cost;
		else
			l->ch[k++] = l->ch[i];
	}
	ar_open(&l->ch_ids);
	ar_open(&l->ch_costs);
	for (size_t i = 0; i < k; i++) {
		ar_int4(&l->ch_ids, l->ch[i].id);
		ar_int8(&l->ch_costs, l->ch[i].cost);
	}
	ar_close(&l->ch_ids, OID_INT4, k);
	ar_close(&l->ch_costs, OID_INT8, k);
	if (l->ch_ids.oom || l->ch_costs.oom)
		return PF_ENOMEM;
	*ret = k;
	return PF_OK;
}

/*
 * Ends the open transaction with end ("COMMIT" or "ROLLBACK"): the
 * channel totals of the batch first (rows locked in id order, as the last
 * thing before the commit: see chlock_sql), all in one pipeline.  On
 * failure the transaction is rolled back.
 */
static pf_err
finish_tx(acct_ledger *l, const acct_event *ev, size_t n, const char *end,
    char *errbuf, size_t errlen)
{
	PGconn *conn = l->conn;
	PGresult *rows = NULL, *failed = NULL;
	const char *params[2];
	int lengths[2], formats[2] = { 1, 1 };
	int nsent = 0, ok = 1, synced, whole;
	size_t k = 0;
	pf_err err;

	err = channel_totals(l, ev, n, &k);
	if (err != PF_OK)
		return err;
	if (k == 0)
		return exec_simple(conn, end, errbuf, errlen);
	params[0] = l->ch_ids.p;
	lengths[0] = (int)l->ch_ids.len;
	params[1] = l->ch_costs.p;
	lengths[1] = (int)l->ch_costs.len;
	if (PQenterPipelineMode(conn) != 1) {
		copy_err(errbuf, errlen, "pipeline", PQerrorMessage(conn));
		return PF_EDB;
	}
	ok = PQsendQueryPrepared(
	    conn, "acct_chlock", 1, params, lengths, formats, 0);
	nsent += ok;
	if (ok) {
		ok = PQsendQueryPrepared(
		    conn, "acct_chadd", 2, params, lengths, formats, 0);
		nsent += ok;
	}
	if (ok) {
		ok = PQsendQueryParams(conn, end, 0, NULL, NULL, NULL, NULL, 0);
		nsent += ok;
	}
	if (!ok) {
		copy_err(errbuf, errlen, "commit", PQerrorMessage(conn));
		err = PF_EDB;
	}
	synced = PQpipelineSync(conn) == 1;
	whole = synced && read_pipeline(conn, nsent, -1, &rows, &failed) == 0;
	if (PQexitPipelineMode(conn) != 1 && err == PF_OK) {
		copy_err(errbuf, errlen, "pipeline", PQerrorMessage(conn));
		err = PF_EDB;
	}
	if (err == PF_OK && failed != NULL) {
		l->conflict = is_conflict(failed);
		err = result_err(failed, "commit", errbuf, errlen);
	} else if (err == PF_OK && !whole) {
		copy_err(errbuf, errlen, "commit", PQerrorMessage(conn));
		err = PF_EDB;
	}
	PQclear(failed);
	PQclear(rows);
	if (err != PF_OK && PQstatus(conn) == CONNECTION_OK
	    && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
	return err;
}

/* One transaction over ev[0..n); outcomes are written to ev only when it
 * commits (or, dry run, would have). */
static pf_err
apply_tx(acct_ledger *l, acct_event *ev, size_t n, int flags, char *errbuf,
    size_t errlen)
{
	int64_t now_s = (int64_t)time(NULL);
	const char *end = (flags & ACCT_APPLY_DRY_RUN) ? "ROLLBACK" : "COMMIT";
	pf_err err;

	l->n_users = l->n_tokens = 0;
	/* BEGIN and the usage statement in one round trip; payments one
	 * statement each; the channel totals and the COMMIT in one more. */
	err = apply_usage(l, ev, n, now_s, errbuf, errlen);
	if (err == PF_EAGAIN) /* a repeat: again with ON CONFLICT */
		err = apply_usage(l, ev, n, now_s, errbuf, errlen);
	if (err != PF_OK)
		return err == PF_EAGAIN ? PF_EDB : err;
	for (size_t i = 0; i < n && err == PF_OK; i++) {
		if (ev[i].outcome == ACCT_PENDING
		    && ev[i].msg->kind == PF_MSG_PAYMENT)
			err = apply_payment(l, &ev[i], now_s, errbuf, errlen);
	}
	/* An event still pending is in the ledger already (a repeat) or its
	 * user does not exist (a read inside the transaction, only when some
	 * event is left). */
	if (err == PF_OK)
		err = settle_rest(l, ev, n, errbuf, errlen);
	if (err == PF_OK)
		return finish_tx(l, ev, n, end, errbuf, errlen);
	if (PQstatus(l->conn) == CONNECTION_OK
	    && PQtransactionStatus(l->conn) != PQTRANS_IDLE)
		PQclear(PQexec(l->conn, "ROLLBACK"));
	return err;
}

/* Deadlocks and serialization failures between partitions (acct_lanes)
 * are redone: the rolled-back transaction changed nothing. */
#define CONFLICT_RETRIES 5

/* apply_tx, redone after a conflict; outcomes restored from saved before
 * each new attempt. */
static pf_err
apply_tx_retry(acct_ledger *l, acct_event *ev, size_t n, int flags,
    const acct_outcome *saved, char *errbuf, size_t errlen)
{
	pf_err err;

	for (unsigned tries = 0;; tries++) {
		l->conflict = 0;
		err = apply_tx(l, ev, n, flags, errbuf, errlen);
		if (err == PF_OK || !l->conflict || tries == CONFLICT_RETRIES)
			return err;
		for (size_t i = 0; i < n; i++) {
			ev[i].outcome = saved[i];
			if (saved[i] != ACCT_REJECTED)
				ev[i].reason[0] = '\0';
		}
	}
}

pf_err
acct_ledger_apply(acct_ledger *l, acct_event *ev, size_t n, int flags,
    char *errbuf, size_t errlen)
{
	acct_outcome *saved = NULL;
	size_t pending = 0;
	pf_err err;

	if (n > PF_ACCT_BATCH_MAX)
		return PF_EINVAL;
	err = acct_id_slots_reset(&l->slots, &l->n_slots, n);
	if (err != PF_OK)
		return err;
	/* Repeats inside the batch are decided after the first copy. */
	for (size_t i = 0; i < n; i++) {
		if (ev[i].outcome != ACCT_PENDING)
			continue;
		if (slot_find(l, ev, ev[i].id, (int32_t)i) >= 0)
			ev[i].outcome = ACCT_PRESENT;
		else
			pending++;
	}
	if (pending == 0)
		return PF_OK;
	saved = malloc(n * sizeof(*saved));
	if (saved == NULL)
		return PF_ENOMEM;
	for (size_t i = 0; i < n; i++)
		saved[i] = ev[i].outcome;
	err = apply_tx_retry(l, ev, n, flags, saved, errbuf, errlen);
	if (err != PF_OK) {
		for (size_t i = 0; i < n; i++) {
			ev[i].outcome = saved[i];
			ev[i].reason[0] = saved[i] == ACCT_REJECTED
			    ? ev[i].reason[0]
			    : '\0';
		}
	}
	if (err == PF_EINVAL && pending > 1) {
		/* Bad data somewhere: one transaction per event isolates it. */
		err = PF_OK;
		for (size_t i = 0; i < n && err == PF_OK; i++) {
			if (ev[i].outcome != ACCT_PENDING)
				continue;
			err = acct_id_slots_reset(&l->slots, &l->n_slots, 1);
			if (err == PF_OK) {
				(void)slot_find(l, &ev[i], ev[i].id, 0);
				err = apply_tx_retry(l, &ev[i], 1, flags,
				    &saved[i], errbuf, errlen);
			}
			if (err == PF_EINVAL) {
				reject(&ev[i], "%s", errbuf);
				err = PF_OK;
			}
		}
		/* balances of the last single transaction only: reload */
		l->n_users = l->n_tokens = 0;
	} else if (err == PF_EINVAL) {
		for (size_t i = 0; i < n; i++) {
			if (ev[i].outcome == ACCT_PENDING)
				reject(&ev[i], "%s", errbuf);
		}
		err = PF_OK;
	}
	/* Repeats take their first copy's outcome. */
	/* (the table holds n already: the reset cannot fail) */
	if (err == PF_OK
	    && acct_id_slots_reset(&l->slots, &l->n_slots, n) == PF_OK) {
		for (size_t i = 0; i < n; i++) {
			if (saved[i] == ACCT_PENDING)
				(void)slot_find(l, ev, ev[i].id, (int32_t)i);
		}
		for (size_t i = 0; i < n; i++) {
			int32_t j;

			if (saved[i] != ACCT_PRESENT)
				continue;
			j = slot_find(l, ev, ev[i].id, -1);
			if (j >= 0 && ev[j].outcome == ACCT_REJECTED) {
				ev[i].outcome = ACCT_REJECTED;
				memcpy(ev[i].reason, ev[j].reason,
				    sizeof(ev[i].reason));
			}
		}
	}
	free(saved);
	return err;
}
