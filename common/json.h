/*
 * json.h -- a small read-only JSON parser for the request path.
 *
 * jansson builds a tree of heap nodes (one malloc per string, key and
 * hash table) and reads its input byte by byte through callbacks: ~100
 * instructions per byte and ~120 allocations for a 500-byte completion.
 * The relay only looks up a few members, so pf_json validates the input
 * in one pass into a flat array of tokens that point into the caller's
 * bytes; strings are decoded only when read.
 *
 * It accepts exactly what json_loadb(buf, len, 0, ...) of jansson 2.14
 * accepts (tests/unit/common/test_json.c checks both on the same
 * inputs): an object or array at the top, nothing but whitespace after
 * it, valid UTF-8 in strings (no overlong forms, no surrogates), escapes
 * with valid surrogate pairs and no \u0000, integers that fit in int64,
 * reals that do not overflow a double, at most 2048 nested values.
 * Member lookups return the last of duplicate keys, as jansson keeps.
 * Error messages are not produced: a caller that answers one re-parses
 * with jansson for its text.
 */
#ifndef PF_COMMON_JSON_H
#define PF_COMMON_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum pf_json_type {
	PF_JSON_NONE = 0, /* no such value (a missing member) */
	PF_JSON_OBJECT,
	PF_JSON_ARRAY,
	PF_JSON_STRING,
	PF_JSON_INTEGER,
	PF_JSON_REAL,
	PF_JSON_TRUE,
	PF_JSON_FALSE,
	PF_JSON_NULL
};

/* One value.  Private to json.c; read through the functions below. */
typedef struct pf_json_tok {
	uint32_t _start; /* string: first byte after the quote; else first */
	uint32_t _len;   /* string: raw bytes; container: members/elements */
	uint32_t _next;  /* index of the token after this value's subtree */
	uint8_t _type;   /* enum pf_json_type */
	uint8_t _esc;    /* string with backslash escapes */
	int64_t _int;    /* PF_JSON_INTEGER */
} pf_json_tok;

/* tokens held without an allocation (a completion has ~40) */
#define PF_JSON_INLINE_TOKS 96

/* A parsed document.  Values are token indexes; the root is 0, -1 is
 * "none" (every function takes it and answers as for a missing value). */
typedef struct pf_json {
	const char *_src;
	pf_json_tok *_tok;
	uint32_t _n, _cap;
	char *_dec; /* decoded strings, at their raw offsets (malloc) */
	pf_json_tok _inline[PF_JSON_INLINE_TOKS];
} pf_json;

/* pf_json_init prepares an empty document (no allocation). */
void pf_json_init(pf_json *d);

/* pf_json_fini frees what the document allocated; it may be parsed into
 * again after pf_json_init. */
void pf_json_fini(pf_json *d);

/*
 * pf_json_parse parses buf[0..len) into d (initialised, empty).  buf is
 * borrowed and must outlive every read of d.  Errors: PF_EINVAL (jansson
 * would refuse it too; also any input of 4 GiB or more), PF_ENOMEM.
 * After an error d holds nothing, but still needs pf_json_fini.
 */
PF_NODISCARD pf_err pf_json_parse(pf_json *d, const void *buf, size_t len);

/* pf_json_type returns the type of value v (PF_JSON_NONE for -1). */
enum pf_json_type pf_json_type(const pf_json *d, int v);

/* pf_json_get returns the value of member key (NUL-terminated) of object
 * obj, the last one if the key repeats; -1 when obj is not an object or
 * has no such member. */
int pf_json_get(const pf_json *d, int obj, const char *key);

/* pf_json_count returns the number of elements of an array or members of
 * an object, 0 for anything else. */
size_t pf_json_count(const pf_json *d, int v);

/* pf_json_first returns the first element of array arr, -1 when arr is
 * not an array or is empty; pf_json_next the element after elem of the
 * same array, -1 after the last. */
int pf_json_first(const pf_json *d, int arr);
int pf_json_next(const pf_json *d, int arr, int elem);

/* pf_json_int returns the value of an integer, 0 for anything else. */
int64_t pf_json_int(const pf_json *d, int v);

/*
 * pf_json_str returns the decoded bytes of string v and their length in
 * *ret_len (not NUL-terminated; a string holds no NUL); NULL when v is not
 * a string.  Valid as long as d.
 */
const char *pf_json_str(pf_json *d, int v, size_t *ret_len);

/* pf_json_str_eq says whether v is a string equal to s[0..n). */
int pf_json_str_eq(const pf_json *d, int v, const char *s, size_t n);

#endif /* PF_COMMON_JSON_H */
