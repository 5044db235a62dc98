/*
 * test_reclog.c -- record logs: round trip, group fsync, rotation, a torn
 * tail cut at every byte offset, corruption in the middle with its offset,
 * segment removal and the one-writer lock.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/reclog.h"
#include "tests/tap.h"

struct seen {
	int n;
	size_t bytes;
	int bad; /* a payload not matching its expected content */
	int64_t last_ts;
	pf_reclog_pos pos[64];
};

/* Record i holds i+1 bytes of value (i & 0xff). */
static pf_err
collect_cb(void *arg, const pf_reclog_pos *pos, int64_t ts_ms,
    const uint8_t *rec, size_t len)
{
	struct seen *s = arg;

	if (len != (size_t)s->n + 1)
		s->bad = 1;
	for (size_t i = 0; i < len; i++) {
		if (rec[i] != (uint8_t)(s->n & 0xff))
			s->bad = 1;
	}
	if (s->n < 64)
		s->pos[s->n] = *pos;
	s->n++;
	s->bytes += len;
	s->last_ts = ts_ms;
	return PF_OK;
}

static void
rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
}

static int
append_n(pf_reclog *log, int n, pf_reclog_pos *pos)
{
	uint8_t buf[64];

	for (int i = 0; i < n; i++) {
		memset(buf, i & 0xff, sizeof(buf));
		if (pf_reclog_append(
		        log, buf, (size_t)i + 1, 1000 + i, pos ? &pos[i] : NULL)
		    != PF_OK)
			return -1;
	}
	return 0;
}

/* Takes every free descriptor under a soft limit of 64; returns how
 * many (release_fds closes them and restores the limit). */
static int fillers[64];
static struct rlimit saved_nofile;

static int
exhaust_fds(void)
{
	struct rlimit rl;
	int n = 0, fd;

	if (getrlimit(RLIMIT_NOFILE, &saved_nofile) != 0)
		return -1;
	rl = saved_nofile;
	rl.rlim_cur = 64;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	while (n < 64 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		fillers[n++] = fd;
	return n;
}

static void
release_fds(int n)
{
	for (int i = 0; i < n; i++)
		close(fillers[i]);
	(void)setrlimit(RLIMIT_NOFILE, &saved_nofile);
}

/* count_records reads segment seq of prefix in dir into a fresh seen. */
static int
count_records(const char *dir, const char *prefix, uint64_t seq, int *bad)
{
	char path[1024];
	struct seen s;

	memset(&s, 0, sizeof(s));
	if (pf_reclog_segment_path(dir, prefix, seq, path, sizeof(path))
	        != PF_OK
	    || pf_reclog_read_file(path, seq, 0, collect_cb, &s, NULL) != PF_OK)
		return -1;
	*bad = s.bad;
	return s.n;
}

/* Out of descriptors at a rotation: the writer stays on its segment and
 * rotates once a descriptor is free again. */
static void
test_rotate_without_fds(const char *dir)
{
	pf_reclog *log = NULL;
	pf_reclog_stats st;
	pf_reclog_pos pos[64];
	uint64_t seq0;
	int n, bad = 0;

	ok(pf_reclog_open(dir, "emf", 200, &log) == PF_OK, "open (emf)");
	if (log == NULL)
		return;
	seq0 = pf_reclog_current_seq(log);
	n = exhaust_fds();
	ok(n > 0, "no descriptor free (%d taken)", n);
	ok(append_n(log, 20, pos) == 0,
	    "20 appends past the segment size succeed without a descriptor");
	pf_reclog_get_stats(log, &st);
	ok(pf_reclog_current_seq(log) == seq0 && st.rotate_failures > 0
	        && st.rotations == 0 && pf_reclog_fileno(log) >= 0,
	    "stayed on segment %llu (%llu rotations failed), usable",
	    (unsigned long long)seq0, (unsigned long long)st.rotate_failures);
	release_fds(n);
	ok(pf_reclog_sync(log) == PF_OK, "sync");
	ok(count_records(dir, "emf", seq0, &bad) == 20 && !bad,
	    "all 20 records are in the oversized segment");
	{
		uint8_t b = 0;
		pf_reclog_pos p;

		ok(pf_reclog_append(log, &b, 1, 1, &p) == PF_OK
		        && p.seq == seq0 + 1,
		    "with a descriptor free the next append rotates");
	}
	pf_reclog_close(log);
}

/* A failed write breaks the writer; pf_reclog_repair opens a new
 * segment (not while no descriptor is free), the old one keeps what was
 * written before. */
static void
test_repair(const char *dir)
{
	pf_reclog *log = NULL;
	pf_reclog_stats st;
	uint64_t seq0;
	int n, bad = 0, ro;

	ok(pf_reclog_open(dir, "rep", 0, &log) == PF_OK, "open (rep)");
	if (log == NULL)
		return;
	seq0 = pf_reclog_current_seq(log);
	ok(pf_reclog_repair(log) == PF_OK && pf_reclog_current_seq(log) == seq0,
	    "repair of a sound writer: no-op");
	ok(append_n(log, 5, NULL) == 0 && pf_reclog_sync(log) == PF_OK,
	    "5 records synced");
	/* the segment's descriptor now refers to a read-only file */
	ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ok(ro >= 0 && dup2(ro, pf_reclog_fileno(log)) >= 0, "break the fd");
	close(ro);
	ok(append_n(log, 3, NULL) == 0 && pf_reclog_flush(log) == PF_EIO
	        && pf_reclog_fileno(log) == -1,
	    "a failed write leaves the writer broken");
	ok(append_n(log, 1, NULL) == -1, "a broken writer refuses appends");
	n = exhaust_fds();
	ok(n > 0 && pf_reclog_repair(log) == PF_EIO
	        && pf_reclog_fileno(log) == -1,
	    "repair without a free descriptor fails, still broken");
	release_fds(n);
	ok(pf_reclog_repair(log) == PF_OK && pf_reclog_fileno(log) >= 0
	        && pf_reclog_current_seq(log) == seq0 + 1,
	    "repair opens segment %llu", (unsigned long long)(seq0 + 1));
	ok(append_n(log, 4, NULL) == 0 && pf_reclog_sync(log) == PF_OK,
	    "4 records synced after the repair");
	pf_reclog_get_stats(log, &st);
	ok(st.repairs == 1, "one repair counted");
	ok(count_records(dir, "rep", seq0, &bad) == 5 && !bad,
	    "the broken segment keeps its 5 records");
	ok(count_records(dir, "rep", seq0 + 1, &bad) == 4 && !bad,
	    "the new segment has the 4");
	pf_reclog_close(log);
}

static uint8_t *
slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	*ret_len = (size_t)n;
	return buf;
}

static int
spit(const char *path, const uint8_t *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;

	if (f == NULL)
		return -1;
	if (len > 0 && fwrite(buf, 1, len, f) != len)
		rc = -1;
	fclose(f);
	return rc;
}

int
main(void)
{
	char tmpl[] = "/tmp/pf-reclog-XXXXXX";
	char *dir = mkdtemp(tmpl);
	char path[1024], copy[1100];
	pf_reclog *log = NULL, *other = NULL;
	pf_reclog_stats st;
	pf_reclog_scan scan;
	pf_reclog_pos pos[64];
	uint64_t *seqs = NULL;
	size_t nseqs = 0, flen = 0;
	struct seen s;
	uint8_t *file;
	pf_err err;
	int torn_ok = 1, torn_seen = 1;

	ok(dir != NULL, "temp dir");
	if (dir == NULL)
		return tap_done();

	ok(pf_crc32c(0, "123456789", 9) == 0xe3069283u, "crc32c check value");
	ok(pf_crc32c(pf_crc32c(0, "1234", 4), "56789", 5) == 0xe3069283u,
	    "crc32c chains");
	{ /* RFC 3720 B.4: 32 bytes, whole and split off 8-byte bounds */
		uint8_t v[32];
		uint32_t c;

		memset(v, 0, sizeof(v));
		ok(pf_crc32c(0, v, 32) == 0x8a9136aau, "crc32c of 32 zeros");
		memset(v, 0xff, sizeof(v));
		ok(pf_crc32c(0, v, 32) == 0x62a8ab43u, "crc32c of 32 0xff");
		for (int i = 0; i < 32; i++)
			v[i] = (uint8_t)i;
		c = pf_crc32c(
		    pf_crc32c(pf_crc32c(0, v, 3), v + 3, 13), v + 16, 16);
		ok(pf_crc32c(0, v, 32) == 0x46dd794eu && c == 0x46dd794eu,
		    "crc32c of 0..31, whole and in 3 pieces");
	}

	/* Group commit: 40 appends, one fdatasync. */
	err = pf_reclog_open(dir, "ev", 0, &log);
	ok(err == PF_OK, "open writer");
	if (err != PF_OK)
		return tap_done();
	ok(pf_reclog_open(dir, "ev", 0, &other) == PF_EEXIST,
	    "second writer on one directory refused");
	ok(pf_reclog_open(dir, "bad/prefix", 0, &other) == PF_EINVAL,
	    "prefix with a slash refused");
	ok(append_n(log, 40, pos) == 0, "40 appends");
	ok(pos[0].seq == 1 && pos[0].off == 0
	        && pos[1].off == PF_RECLOG_HEADER + 1,
	    "positions: first segment, packed records");
	pf_reclog_get_stats(log, &st);
	ok(st.syncs == 0 && st.appends == 40, "no fsync before sync");
	ok(pf_reclog_sync(log) == PF_OK, "sync");
	ok(pf_reclog_sync(log) == PF_OK, "sync again with nothing new");
	pf_reclog_get_stats(log, &st);
	ok(st.syncs == 1, "one fdatasync for 40 records (got %llu)",
	    (unsigned long long)st.syncs);
	ok(pf_reclog_append(log, NULL, PF_RECLOG_RECORD_MAX + 1, 0, NULL)
	        == PF_ETOOBIG,
	    "oversized record refused");
	pf_reclog_close(log);
	log = NULL;

	ok(pf_reclog_segment_path(dir, "ev", 1, path, sizeof(path)) == PF_OK,
	    "segment path");
	memset(&s, 0, sizeof(s));
	err = pf_reclog_read_file(path, 1, 0, collect_cb, &s, &scan);
	ok(err == PF_OK && s.n == 40 && !s.bad && scan.records == 40
	        && scan.valid_end == scan.file_size,
	    "read back 40 records intact");
	ok(s.last_ts == 1039, "timestamps kept");
	ok(s.pos[5].off == pos[5].off && s.pos[5].seq == 1,
	    "reader positions match writer positions");

	/* Reading from a record boundary in the middle. */
	memset(&s, 0, sizeof(s));
	s.n = 10;
	err = pf_reclog_read_file(path, 1, pos[10].off, collect_cb, &s, &scan);
	ok(err == PF_OK && s.n == 40 && !s.bad && scan.records == 30,
	    "read from an offset");

	/* Torn tail: cut the file at every byte offset. */
	file = slurp(path, &flen);
	ok(file != NULL && flen == scan.file_size, "segment read whole");
	snprintf(copy, sizeof(copy), "%s/cut.log", dir);
	for (size_t cut = 0; file != NULL && cut < flen; cut++) {
		uint64_t boundary = 0;
		int whole = 0, torn;

		/* records wholly before cut */
		for (int i = 0; i < 40; i++) {
			uint64_t end
			    = pos[i].off + PF_RECLOG_HEADER + (uint64_t)i + 1;

			if (end <= cut) {
				whole = i + 1;
				boundary = end;
			}
		}
		if (spit(copy, file, cut) != 0) {
			torn_ok = 0;
			break;
		}
		memset(&s, 0, sizeof(s));
		err = pf_reclog_read_file(copy, 1, 0, collect_cb, &s, &scan);
		torn = scan.valid_end < scan.file_size;
		if (err != PF_OK || s.n != whole || s.bad)
			torn_ok = 0;
		if (err == PF_OK && torn != (cut != boundary))
			torn_seen = 0;
		if (!torn_ok || !torn_seen) {
			printf("# cut %zu: err %d n %d want %d\n", cut, err,
			    s.n, whole);
			break;
		}
	}
	ok(torn_ok,
	    "a cut at every byte offset reads as the whole records "
	    "before it");
	ok(torn_seen, "a cut inside a record is reported as a torn tail");

	/* Repair: truncate at valid_end, then it reads clean. */
	if (file != NULL && spit(copy, file, pos[7].off + 5) == 0) {
		memset(&s, 0, sizeof(s));
		err = pf_reclog_read_file(copy, 1, 0, collect_cb, &s, &scan);
		ok(err == PF_OK && scan.valid_end == pos[7].off
		        && scan.file_size == pos[7].off + 5,
		    "torn tail reported at the record boundary");
		ok(pf_reclog_truncate(copy, scan.valid_end) == PF_OK,
		    "truncate");
		memset(&s, 0, sizeof(s));
		err = pf_reclog_read_file(copy, 1, 0, collect_cb, &s, &scan);
		ok(err == PF_OK && s.n == 7 && scan.valid_end == scan.file_size,
		    "clean after truncation");
	}

	/* Corruption in the middle: flip one payload byte of record 20. */
	if (file != NULL) {
		file[pos[20].off + PF_RECLOG_HEADER] ^= 0x40;
		ok(spit(copy, file, flen) == 0, "write corrupted copy");
		memset(&s, 0, sizeof(s));
		err = pf_reclog_read_file(copy, 1, 0, collect_cb, &s, &scan);
		ok(err == PF_EPROTO && scan.bad_offset == pos[20].off
		        && s.n == 20,
		    "mid-file corruption: PF_EPROTO at offset %llu (want "
		    "%llu), %d records before",
		    (unsigned long long)scan.bad_offset,
		    (unsigned long long)pos[20].off, s.n);
		file[pos[20].off + PF_RECLOG_HEADER] ^= 0x40;
		/* a bad magic in the middle */
		file[pos[30].off] = 'X';
		ok(spit(copy, file, flen) == 0, "write corrupted copy 2");
		err = pf_reclog_read_file(copy, 1, 0, collect_cb, &s, &scan);
		ok(err == PF_EPROTO && scan.bad_offset == pos[30].off,
		    "bad magic in the middle found at its offset");
		/* the same damage in the last record is a torn tail */
		file[pos[30].off] = 'P';
		file[pos[39].off + 3] = 'X';
		ok(spit(copy, file, flen) == 0, "write corrupted copy 3");
		memset(&s, 0, sizeof(s));
		err = pf_reclog_read_file(copy, 1, 0, collect_cb, &s, &scan);
		ok(err == PF_OK && s.n == 39 && scan.valid_end == pos[39].off,
		    "damage in the last record is a torn tail");
		unlink(copy);
	}
	free(file);

	/* Rotation: 200-byte segments; reopen starts a new segment. */
	err = pf_reclog_open(dir, "rot", 200, &log);
	ok(err == PF_OK, "open small-segment writer");
	if (err == PF_OK) {
		ok(append_n(log, 30, pos) == 0 && pf_reclog_sync(log) == PF_OK,
		    "30 appends with rotation");
		pf_reclog_get_stats(log, &st);
		ok(st.rotations > 3 && pos[29].seq == 1 + st.rotations,
		    "rotated %llu times", (unsigned long long)st.rotations);
		ok(pf_reclog_remove(log, pf_reclog_current_seq(log))
		        == PF_EINVAL,
		    "current segment cannot be removed");
		ok(pf_reclog_list(dir, "rot", &seqs, &nseqs) == PF_OK
		        && nseqs == st.rotations + 1 && seqs[0] == 1,
		    "list finds every segment in order");
		/* every segment but the newest within the limit */
		memset(&s, 0, sizeof(s));
		for (size_t i = 0; i < nseqs; i++) {
			struct stat sb;

			ok(pf_reclog_segment_path(
			       dir, "rot", seqs[i], path, sizeof(path))
			        == PF_OK,
			    "path");
			err = pf_reclog_read_file(
			    path, seqs[i], 0, collect_cb, &s, &scan);
			if (err != PF_OK || scan.valid_end != scan.file_size)
				break;
			if (stat(path, &sb) == 0 && sb.st_size > 200 && s.n > 1
			    && pos[s.n - 1].seq == seqs[i]
			    && s.pos[s.n - 1].off != 0)
				break;
		}
		ok(s.n == 30 && !s.bad, "all 30 records across segments");
		ok(pf_reclog_remove(log, seqs[0]) == PF_OK,
		    "remove an old segment");
		ok(pf_reclog_remove(log, seqs[0]) == PF_ENOTFOUND,
		    "remove twice: not found");
		free(seqs);
		ok(pf_reclog_rotate(log) == PF_OK, "rotate");
		ok(pf_reclog_rotate(log) == PF_OK
		        && pos[29].seq + 1 == pf_reclog_current_seq(log),
		    "rotating an empty segment is a no-op");
		pf_reclog_close(log);
		log = NULL;
		err = pf_reclog_open(dir, "rot", 200, &log);
		ok(err == PF_OK
		        && pf_reclog_current_seq(log) == pos[29].seq + 2,
		    "reopen continues after the newest segment");
		pf_reclog_close(log);
	}
	{
		size_t plen;
		uint64_t seq;

		ok(pf_reclog_parse_name("ev-00000000000000ff.log", &plen, &seq)
		        && plen == 2 && seq == 255,
		    "segment name parsed");
		ok(!pf_reclog_parse_name("ev-00000000000000fg.log", &plen, &seq)
		        && !pf_reclog_parse_name("ev.lock", &plen, &seq),
		    "other names ignored");
	}
	test_rotate_without_fds(dir);
	test_repair(dir);
	rm_rf(dir);
	return tap_done();
}
