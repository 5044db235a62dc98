/*
 * replay_msg.c -- the 'fuzz' suite without a fuzzer: feeds every file of
 * the corpus, plus a bounded number of deterministic mutations of each
 * (bit flips, truncations, length-field bumps, byte edits, splices), to
 * the decoder and checks the property in fuzz_check.h.
 *
 *   replay_msg CORPUS_DIR [MUTATIONS_PER_FILE]
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "fuzz_check.h"
#include "tests/tap.h"

#define MAX_FILES 4096
#define FILE_CAP (1024u * 1024u) /* corpus seeds are small */

struct seed {
	char name[256];
	uint8_t *data;
	size_t len;
};

static struct seed seeds[MAX_FILES];
static size_t nseeds;
static uint64_t rng = 0x2545f4914f6cdd1du;

static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(
	    ((const struct seed *)a)->name, ((const struct seed *)b)->name);
}

static int
load(const char *dir)
{
	DIR *d = opendir(dir);
	uint8_t *tmp = malloc(FILE_CAP);
	struct dirent *e;

	if (d == NULL) {
		free(tmp);
		return -1;
	}
	while ((e = readdir(d)) != NULL && nseeds < MAX_FILES) {
		struct seed *s = &seeds[nseeds];
		char path[1024];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "rb");
		if (f == NULL)
			continue;
		s->len = fread(tmp, 1, FILE_CAP, f);
		fclose(f);
		s->data = malloc(s->len ? s->len : 1);
		memcpy(s->data, tmp, s->len);
		snprintf(s->name, sizeof(s->name), "%s", e->d_name);
		nseeds++;
	}
	closedir(d);
	free(tmp);
	qsort(seeds, nseeds, sizeof(seeds[0]), by_name);
	return 0;
}

static int
is_len_header(uint8_t t)
{
	return (t >= 0x80 && t <= 0xbf) || (t >= 0xc4 && t <= 0xc9)
	    || (t >= 0xd9 && t <= 0xdf);
}

/* Writes one mutation of s into out (capacity cap); returns its length. */
static size_t
mutate(const struct seed *s, uint8_t *out, size_t cap)
{
	static const uint8_t interesting[] = { 0x00, 0x01, 0x7f, 0x80, 0x90,
		0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc6, 0xcc, 0xcf, 0xd3,
		0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff };
	size_t len = s->len < cap ? s->len : cap;
	size_t pos = len ? next() % len : 0;

	memcpy(out, s->data, len);
	switch (next() % 8) {
	case 0: /* bit flip */
		if (len)
			out[pos] ^= (uint8_t)(1u << (next() % 8));
		break;
	case 1: /* truncate */
		return len ? next() % len : 0;
	case 2: /* bump a length/count header */
		for (size_t i = 0; i < len; i++) {
			size_t j = (pos + i) % len;
			if (!is_len_header(out[j]))
				continue;
			if (out[j] >= 0x80 && out[j] <= 0xbf) {
				out[j] = (uint8_t)(out[j] + 1 + next() % 2);
			} else if (j + 1 < len) {
				/* first length byte: +1, or all ones */
				out[j + 1] = next() % 2
				    ? (uint8_t)(out[j + 1] + 1)
				    : 0xff;
			}
			break;
		}
		break;
	case 3: /* interesting byte */
		if (len)
			out[pos] = interesting[next() % sizeof(interesting)];
		break;
	case 4: /* delete a byte */
		if (len) {
			memmove(out + pos, out + pos + 1, len - pos - 1);
			len--;
		}
		break;
	case 5: /* insert a byte */
		if (len < cap) {
			memmove(out + pos + 1, out + pos, len - pos);
			out[pos] = (uint8_t)next();
			len++;
		}
		break;
	case 6: { /* splice: our head, another seed's tail */
		const struct seed *o = &seeds[next() % nseeds];
		size_t from = o->len ? next() % o->len : 0;
		size_t n = o->len - from;

		if (pos + n > cap)
			n = cap - pos;
		memcpy(out + pos, o->data + from, n);
		len = pos + n;
		break;
	}
	default: /* random byte */
		if (len)
			out[pos] = (uint8_t)next();
		break;
	}
	return len;
}

int
main(int argc, char **argv)
{
	unsigned per_file
	    = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2000;
	size_t cap = FILE_CAP + 64;
	uint8_t *buf = malloc(cap);
	unsigned long tried = 0, accepted = 0, broken = 0;
	unsigned valid = 0, bad = 0;

	if (argc < 2 || load(argv[1]) != 0 || nseeds == 0) {
		ok(0, "corpus directory %s readable and not empty",
		    argc > 1 ? argv[1] : "(none)");
		return tap_done();
	}
	for (size_t i = 0; i < nseeds; i++) {
		const struct seed *s = &seeds[i];
		char why[256] = "";
		int decoded = 0;
		const char *err
		    = fuzz_check(s->data, s->len, &decoded, why, sizeof(why));

		if (strncmp(s->name, "valid-", 6) == 0) {
			pf_msg *m = NULL;
			pf_buf b;
			int same = 0;

			pf_buf_init(&b);
			if (pf_msg_decode(s->data, s->len, &m) == PF_OK
			    && pf_msg_encode(m, &b) == PF_OK)
				same = b.len == s->len
				    && memcmp(b.data, s->data, s->len) == 0;
			pf_msg_free(m);
			pf_buf_fini(&b);
			ok(err == NULL && same,
			    "%s decodes and re-encodes byte-identical %s %s",
			    s->name, err ? err : "", why);
			valid++;
		} else if (strncmp(s->name, "ok-", 3) == 0) {
			ok(err == NULL && decoded, "%s decodes %s %s", s->name,
			    err ? err : "", why);
		} else if (strncmp(s->name, "bad-", 4) == 0) {
			ok(err == NULL && !decoded, "%s is rejected", s->name);
			bad++;
		} else {
			ok(err == NULL, "%s holds the property %s %s", s->name,
			    err ? err : "", why);
		}
	}
	ok(valid >= 33 && bad >= 10, "corpus has %u valid and %u bad seeds",
	    valid, bad);

	for (size_t i = 0; i < nseeds; i++) {
		for (unsigned k = 0; k < per_file; k++) {
			size_t len = mutate(&seeds[i], buf, cap);
			uint8_t *copy = malloc(len ? len : 1);
			char why[256] = "";
			int decoded = 0;
			const char *err;

			/* exact-size copy so ASan flags any overread */
			memcpy(copy, buf, len);
			err = fuzz_check(copy, len, &decoded, why, sizeof(why));
			tried++;
			accepted += (unsigned long)decoded;
			if (err != NULL) {
				broken++;
				if (broken <= 5) {
					printf("# %s mutation %u: %s %s\n#  ",
					    seeds[i].name, k, err, why);
					for (size_t j = 0; j < len && j < 64;
					     j++)
						printf("%02x", copy[j]);
					printf("\n");
				}
			}
			free(copy);
		}
	}
	ok(broken == 0, "%lu mutations: %lu decoded, %lu broke the property",
	    tried, accepted, broken);
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i].data);
	free(buf);
	return tap_done();
}
