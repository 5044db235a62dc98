/*
 * reclog.c -- segmented append-only record logs (see reclog.h).
 */
#include "common/reclog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/limits.h"

#define PATH_MAX_LEN 4096
#define SEQ_DIGITS 16

static const uint32_t crc_table[256] = {
	0x00000000u,
	0xf26b8303u,
	0xe13b70f7u,
	0x1350f3f4u,
	0xc79a971fu,
	0x35f1141cu,
	0x26a1e7e8u,
	0xd4ca64ebu,
	0x8ad958cfu,
	0x78b2dbccu,
	0x6be22838u,
	0x9989ab3bu,
	0x4d43cfd0u,
	0xbf284cd3u,
	0xac78bf27u,
	0x5e133c24u,
	0x105ec76fu,
	0xe235446cu,
	0xf165b798u,
	0x030e349bu,
	0xd7c45070u,
	0x25afd373u,
	0x36ff2087u,
	0xc494a384u,
	0x9a879fa0u,
	0x68ec1ca3u,
	0x7bbcef57u,
	0x89d76c54u,
	0x5d1d08bfu,
	0xaf768bbcu,
	0xbc267848u,
	0x4e4dfb4bu,
	0x20bd8edeu,
	0xd2d60dddu,
	0xc186fe29u,
	0x33ed7d2au,
	0xe72719c1u,
	0x154c9ac2u,
	0x061c6936u,
	0xf477ea35u,
	0xaa64d611u,
	0x580f5512u,
	0x4b5fa6e6u,
	0xb93425e5u,
	0x6dfe410eu,
	0x9f95c20du,
	0x8cc531f9u,
	0x7eaeb2fau,
	0x30e349b1u,
	0xc288cab2u,
	0xd1d83946u,
	0x23b3ba45u,
	0xf779deaeu,
	0x05125dadu,
	0x1642ae59u,
	0xe4292d5au,
	0xba3a117eu,
	0x4851927du,
	0x5b016189u,
	0xa96ae28au,
	0x7da08661u,
	0x8fcb0562u,
	0x9c9bf696u,
	0x6ef07595u,
	0x417b1dbcu,
	0xb3109ebfu,
	0xa0406d4bu,
	0x522bee48u,
	0x86e18aa3u,
	0x748a09a0u,
	0x67dafa54u,
	0x95b17957u,
	0xcba24573u,
	0x39c9c670u,
	0x2a993584u,
	0xd8f2b687u,
	0x0c38d26cu,
	0xfe53516fu,
	0xed03a29bu,
	0x1f682198u,
	0x5125dad3u,
	0xa34e59d0u,
	0xb01eaa24u,
	0x42752927u,
	0x96bf4dccu,
	0x64d4cecfu,
	0x77843d3bu,
	0x85efbe38u,
	0xdbfc821cu,
	0x2997011fu,
	0x3ac7f2ebu,
	0xc8ac71e8u,
	0x1c661503u,
	0xee0d9600u,
	0xfd5d65f4u,
	0x0f36e6f7u,
	0x61c69362u,
	0x93ad1061u,
	0x80fde395u,
	0x72966096u,
	0xa65c047du,
	0x5437877eu,
	0x4767748au,
	0xb50cf789u,
	0xeb1fcbadu,
	0x197448aeu,
	0x0a24bb5au,
	0xf84f3859u,
	0x2c855cb2u,
	0xdeeedfb1u,
	0xcdbe2c45u,
	0x3fd5af46u,
	0x7198540du,
	0x83f3d70eu,
	0x90a324fau,
	0x62c8a7f9u,
	0xb602c312u,
	0x44694011u,
	0x5739b3e5u,
	0xa55230e6u,
	0xfb410cc2u,
	0x092a8fc1u,
	0x1a7a7c35u,
	0xe811ff36u,
	0x3cdb9bddu,
	0xceb018deu,
	0xdde0eb2au,
	0x2f8b6829u,
	0x82f63b78u,
	0x709db87bu,
	0x63cd4b8fu,
	0x91a6c88cu,
	0x456cac67u,
	0xb7072f64u,
	0xa457dc90u,
	0x563c5f93u,
	0x082f63b7u,
	0xfa44e0b4u,
	0xe9141340u,
	0x1b7f9043u,
	0xcfb5f4a8u,
	0x3dde77abu,
	0x2e8e845fu,
	0xdce5075cu,
	0x92a8fc17u,
	0x60c37f14u,
	0x73938ce0u,
	0x81f80fe3u,
	0x55326b08u,
	0xa759e80bu,
	0xb4091bffu,
	0x466298fcu,
	0x1871a4d8u,
	0xea1a27dbu,
	0xf94ad42fu,
	0x0b21572cu,
	0xdfeb33c7u,
	0x2d80b0c4u,
	0x3ed04330u,
	0xccbbc033u,
	0xa24bb5a6u,
	0x502036a5u,
	0x4370c551u,
	0xb11b4652u,
	0x65d122b9u,
	0x97baa1bau,
	0x84ea524eu,
	0x7681d14du,
	0x2892ed69u,
	0xdaf96e6au,
	0xc9a99d9eu,
	0x3bc21e9du,
	0xef087a76u,
	0x1d63f975u,
	0x0e330a81u,
	0xfc588982u,
	0xb21572c9u,
	0x407ef1cau,
	0x532e023eu,
	0xa145813du,
	0x758fe5d6u,
	0x87e466d5u,
	0x94b49521u,
	0x66df1622u,
	0x38cc2a06u,
	0xcaa7a905u,
	0xd9f75af1u,
	0x2b9cd9f2u,
	0xff56bd19u,
	0x0d3d3e1au,
	0x1e6dcdeeu,
	0xec064eedu,
	0xc38d26c4u,
	0x31e6a5c7u,
	0x22b65633u,
	0xd0ddd530u,
	0x0417b1dbu,
	0xf67c32d8u,
	0xe52cc12cu,
	0x1747422fu,
	0x49547e0bu,
	0xbb3ffd08u,
	0xa86f0efcu,
	0x5a048dffu,
	0x8ecee914u,
	0x7ca56a17u,
	0x6ff599e3u,
	0x9d9e1ae0u,
	0xd3d3e1abu,
	0x21b862a8u,
	0x32e8915cu,
	0xc083125fu,
	0x144976b4u,
	0xe622f5b7u,
	0xf5720643u,
	0x07198540u,
	0x590ab964u,
	0xab613a67u,
	0xb831c993u,
	0x4a5a4a90u,
	0x9e902e7bu,
	0x6cfbad78u,
	0x7fab5e8cu,
	0x8dc0dd8fu,
	0xe330a81au,
	0x115b2b19u,
	0x020bd8edu,
	0xf0605beeu,
	0x24aa3f05u,
	0xd6c1bc06u,
	0xc5914ff2u,
	0x37faccf1u,
	0x69e9f0d5u,
	0x9b8273d6u,
	0x88d28022u,
	0x7ab90321u,
	0xae7367cau,
	0x5c18e4c9u,
	0x4f48173du,
	0xbd23943eu,
	0xf36e6f75u,
	0x0105ec76u,
	0x12551f82u,
	0xe03e9c81u,
	0x34f4f86au,
	0xc69f7b69u,
	0xd5cf889du,
	0x27a40b9eu,
	0x79b737bau,
	0x8bdcb4b9u,
	0x988c474du,
	0x6ae7c44eu,
	0xbe2da0a5u,
	0x4c4623a6u,
	0x5f16d052u,
	0xad7d5351u,
};

static uint32_t
crc32c_table(uint32_t c, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		c = crc_table[(c ^ p[i]) & 0xffu] ^ (c >> 8);
	return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The SSE 4.2 crc32 instruction computes the same CRC32C, 8 bytes at a
 * time (the spool and the event log checksum every record they write
 * and read: the table loop was ~2 % of the billing threads' time). */
__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t c, const uint8_t *p, size_t len)
{
	uint64_t c64 = c;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c64 = __builtin_ia32_crc32di(c64, v);
	}
	c = (uint32_t)c64;
	for (; len > 0; p++, len--)
		c = __builtin_ia32_crc32qi(c, *p);
	return c;
}
#endif

uint32_t
pf_crc32c(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	static int sse42 = -1; /* racy but idempotent: every thread agrees */

	if (sse42 < 0)
		sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	if (sse42)
		return ~crc32c_sse42(~crc, buf, len);
#endif
	return ~crc32c_table(~crc, buf, len);
}

static void
put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* CRC of a record: length and timestamp fields, then the payload. */
static uint32_t
record_crc(const uint8_t *hdr, const void *payload, size_t len)
{
	return pf_crc32c(pf_crc32c(0, hdr + 4, 12), payload, len);
}

/* ---- names ---- */

static int
valid_prefix(const char *prefix)
{
	if (prefix == NULL || prefix[0] == '\0' || strlen(prefix) > 64)
		return 0;
	for (const char *p = prefix; *p != '\0'; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		        || (c >= '0' && c <= '9') || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

int
pf_reclog_parse_name(
    const char *name, size_t *ret_prefix_len, uint64_t *ret_seq)
{
	size_t n = strlen(name);
	const char *hex;
	uint64_t seq = 0;

	/* at least "x-" + 16 hex + ".log" */
	if (n < 2 + SEQ_DIGITS + 4 || strcmp(name + n - 4, ".log") != 0)
		return 0;
	hex = name + n - 4 - SEQ_DIGITS;
	if (hex[-1] != '-')
		return 0;
	for (int i = 0; i < SEQ_DIGITS; i++) {
		char c = hex[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return 0;
		seq = seq << 4 | d;
	}
	*ret_prefix_len = (size_t)(hex - 1 - name);
	*ret_seq = seq;
	return 1;
}

pf_err
pf_reclog_segment_path(
    const char *dir, const char *prefix, uint64_t seq, char *out, size_t outlen)
{
	int n = snprintf(
	    out, outlen, "%s/%s-%016" PRIx64 ".log", dir, prefix, seq);

	if (n < 0 || (size_t)n >= outlen)
		return PF_ETOOBIG;
	return PF_OK;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

pf_err
pf_reclog_list(
    const char *dir, const char *prefix, uint64_t **ret_seqs, size_t *ret_n)
{
	size_t plen = strlen(prefix), n = 0, cap = 0;
	uint64_t *seqs = NULL, *grown, seq;
	struct dirent *de;
	size_t got_plen;
	DIR *d;

	d = opendir(dir);
	if (d == NULL) {
		if (errno != ENOENT)
			return PF_EIO;
		*ret_seqs = NULL;
		*ret_n = 0;
		return PF_OK;
	}
	while ((de = readdir(d)) != NULL) {
		if (!pf_reclog_parse_name(de->d_name, &got_plen, &seq))
			continue;
		if (got_plen != plen || strncmp(de->d_name, prefix, plen) != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			grown = realloc(seqs, cap * sizeof(*seqs));
			if (grown == NULL) {
				free(seqs);
				closedir(d);
				return PF_ENOMEM;
			}
			seqs = grown;
		}
		seqs[n++] = seq;
	}
	closedir(d);
	if (n > 1)
		qsort(seqs, n, sizeof(*seqs), cmp_u64);
	*ret_seqs = seqs;
	*ret_n = n;
	return PF_OK;
}

/* ---- writer ---- */

struct pf_reclog {
	char dir[PATH_MAX_LEN];
	char prefix[80];
	int dirfd;
	int lockfd;
	int fd;
	int broken;
	uint64_t seq;
	uint64_t seg_max;
	uint64_t seg_size; /* bytes of the segment, buffered ones included */
	uint8_t *buf;      /* appended, not yet written */
	size_t buf_len, buf_cap;
	int unsynced; /* written or buffered since the last fdatasync */
	pf_reclog_stats stats;
};

static pf_err
mkdir_p(const char *dir)
{
	char tmp[PATH_MAX_LEN];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return PF_EINVAL;
	memcpy(tmp, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return PF_EIO;
		if (i < n)
			tmp[i] = '/';
	}
	return PF_OK;
}

static pf_err
write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return PF_EIO;
		}
		p += w;
		len -= (size_t)w;
	}
	return PF_OK;
}

static pf_err
flush_buf(pf_reclog *log)
{
	pf_err err;

	if (log->buf_len == 0)
		return PF_OK;
	err = write_all(log->fd, log->buf, log->buf_len);
	if (err != PF_OK) {
		log->broken = 1;
		return err;
	}
	log->buf_len = 0;
	return PF_OK;
}

/* create_segment creates segment seq (empty, durable in the directory)
 * and returns its descriptor, or -1. */
static int
create_segment(pf_reclog *log, uint64_t seq)
{
	char path[PATH_MAX_LEN];
	int fd;

	if (pf_reclog_segment_path(
	        log->dir, log->prefix, seq, path, sizeof(path))
	    != PF_OK)
		return -1;
	fd = open(
	    path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (fsync(log->dirfd) != 0) {
		close(fd);
		(void)unlink(path); /* so that a retry can create it */
		return -1;
	}
	return fd;
}

/* Makes the new segment fd, numbered seq, the current one (the caller
 * closed or keeps the old descriptor). */
static void
switch_segment(pf_reclog *log, int fd, uint64_t seq)
{
	log->fd = fd;
	log->seq = seq;
	log->seg_size = 0;
}

static pf_err
open_segment(pf_reclog *log)
{
	int fd = create_segment(log, log->seq);

	if (fd < 0)
		return PF_EIO;
	switch_segment(log, fd, log->seq);
	return PF_OK;
}

int
pf_reclog_fileno(const pf_reclog *log)
{
	return log->broken ? -1 : log->fd;
}

pf_err
pf_reclog_flush(pf_reclog *log)
{
	if (log->broken)
		return PF_EIO;
	return flush_buf(log);
}

pf_err
pf_reclog_sync(pf_reclog *log)
{
	pf_err err;

	if (log->broken)
		return PF_EIO;
	if (!log->unsynced)
		return PF_OK;
	err = flush_buf(log);
	if (err != PF_OK)
		return err;
	if (fdatasync(log->fd) != 0) {
		log->broken = 1;
		return PF_EIO;
	}
	log->stats.syncs++;
	log->unsynced = 0;
	return PF_OK;
}

/*
 * Opens the next segment, syncs the current one and only then closes it:
 * when the next cannot be opened (say, the process is out of descriptors
 * for a moment) the writer stays on the current segment, usable, at the
 * cost of one open attempt, and the caller may retry later.  PF_EIO from
 * the sync leaves the writer broken on the current segment
 * (pf_reclog_repair).
 */
static pf_err
next_segment(pf_reclog *log)
{
	int fd = create_segment(log, log->seq + 1);
	pf_err err;

	if (fd < 0) {
		log->stats.rotate_failures++;
		return PF_EIO;
	}
	err = pf_reclog_sync(log);
	if (err != PF_OK) {
		char path[PATH_MAX_LEN];

		close(fd);
		if (pf_reclog_segment_path(
		        log->dir, log->prefix, log->seq + 1, path, sizeof(path))
		    == PF_OK)
			(void)unlink(path);
		return err;
	}
	close(log->fd);
	switch_segment(log, fd, log->seq + 1);
	return PF_OK;
}

pf_err
pf_reclog_repair(pf_reclog *log)
{
	int fd;

	if (!log->broken)
		return PF_OK;
	fd = create_segment(log, log->seq + 1);
	if (fd < 0)
		return PF_EIO;
	/* the buffered records and whatever the failed write or sync left
	 * of the segment are given up with it (a reader stops at its torn
	 * tail); the caller kept what they said */
	if (log->fd >= 0)
		close(log->fd);
	switch_segment(log, fd, log->seq + 1);
	log->buf_len = 0;
	log->broken = 0;
	log->unsynced = 0;
	log->stats.repairs++;
	return PF_OK;
}

pf_err
pf_reclog_open(
    const char *dir, const char *prefix, uint64_t seg_max, pf_reclog **ret_log)
{
	char lockpath[PATH_MAX_LEN];
	uint64_t *seqs = NULL;
	size_t n = 0;
	pf_reclog *log;
	pf_err err;
	int len;

	if (dir == NULL || !valid_prefix(prefix)
	    || strlen(dir) >= PATH_MAX_LEN - 128)
		return PF_EINVAL;
	err = mkdir_p(dir);
	if (err != PF_OK)
		return err;
	log = calloc(1, sizeof(*log));
	if (log == NULL)
		return PF_ENOMEM;
	memcpy(log->dir, dir, strlen(dir) + 1);
	memcpy(log->prefix, prefix, strlen(prefix) + 1);
	log->dirfd = log->lockfd = log->fd = -1;
	log->seg_max = seg_max ? seg_max : PF_RECLOG_SEGMENT_DEFAULT;
	err = PF_EIO;
	log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dirfd < 0)
		goto fail;
	len = snprintf(lockpath, sizeof(lockpath), "%s/%s.lock", dir, prefix);
	if (len < 0 || (size_t)len >= sizeof(lockpath))
		goto fail;
	log->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (log->lockfd < 0)
		goto fail;
	if (flock(log->lockfd, LOCK_EX | LOCK_NB) != 0) {
		err = errno == EWOULDBLOCK ? PF_EEXIST : PF_EIO;
		goto fail;
	}
	err = pf_reclog_list(dir, prefix, &seqs, &n);
	if (err != PF_OK)
		goto fail;
	log->seq = n > 0 ? seqs[n - 1] + 1 : 1;
	free(seqs);
	err = open_segment(log);
	if (err != PF_OK)
		goto fail;
	*ret_log = log;
	return PF_OK;
fail:
	pf_reclog_close(log);
	return err;
}

pf_err
pf_reclog_append(pf_reclog *log, const void *rec, size_t len, int64_t ts_ms,
    pf_reclog_pos *ret_pos)
{
	size_t need = PF_RECLOG_HEADER + len;
	uint8_t *hdr;
	pf_err err;

	if (log->broken)
		return PF_EIO;
	if (len > PF_RECLOG_RECORD_MAX)
		return PF_ETOOBIG;
	if (log->seg_size > 0 && log->seg_size + need > log->seg_max) {
		err = next_segment(log);
		if (err == PF_OK)
			log->stats.rotations++;
		else if (log->broken
		    || log->seg_size + need > PF_RECLOG_FILE_MAX / 2)
			return err;
		/* else on in the current segment; the next append retries */
	}
	if (log->buf_cap - log->buf_len < need) {
		size_t cap = log->buf_cap ? log->buf_cap : 64 * 1024;
		uint8_t *p;

		while (cap - log->buf_len < need)
			cap *= 2;
		p = realloc(log->buf, cap);
		if (p == NULL)
			return PF_ENOMEM;
		log->buf = p;
		log->buf_cap = cap;
	}
	hdr = log->buf + log->buf_len;
	put_u32(hdr, PF_RECLOG_MAGIC);
	put_u32(hdr + 4, (uint32_t)len);
	put_u64(hdr + 8, (uint64_t)ts_ms);
	if (len > 0)
		memcpy(hdr + PF_RECLOG_HEADER, rec, len);
	put_u32(hdr + 16, record_crc(hdr, rec, len));
	log->buf_len += need;
	if (ret_pos != NULL) {
		ret_pos->seq = log->seq;
		ret_pos->off = log->seg_size;
	}
	log->seg_size += need;
	log->unsynced = 1;
	log->stats.appends++;
	if (log->buf_len >= PF_RECLOG_BUFFER_FLUSH)
		return flush_buf(log);
	return PF_OK;
}

pf_err
pf_reclog_rotate(pf_reclog *log)
{
	if (log->broken)
		return PF_EIO;
	if (log->seg_size == 0)
		return PF_OK;
	return next_segment(log);
}

uint64_t
pf_reclog_current_seq(const pf_reclog *log)
{
	return log->seq;
}

pf_reclog_pos
pf_reclog_end(const pf_reclog *log)
{
	pf_reclog_pos pos = { log->seq, log->seg_size };

	return pos;
}

void
pf_reclog_get_stats(const pf_reclog *log, pf_reclog_stats *ret)
{
	*ret = log->stats;
}

pf_err
pf_reclog_remove(pf_reclog *log, uint64_t seq)
{
	char path[PATH_MAX_LEN];
	pf_err err;

	if (seq == log->seq)
		return PF_EINVAL;
	err = pf_reclog_segment_path(
	    log->dir, log->prefix, seq, path, sizeof(path));
	if (err != PF_OK)
		return err;
	if (unlink(path) != 0)
		return errno == ENOENT ? PF_ENOTFOUND : PF_EIO;
	if (fsync(log->dirfd) != 0)
		return PF_EIO;
	return PF_OK;
}

void
pf_reclog_close(pf_reclog *log)
{
	if (log == NULL)
		return;
	if (log->fd >= 0) {
		pf_err err = log->broken ? PF_OK : pf_reclog_sync(log);

		(void)err; /* best effort: the caller synced what mattered */
		close(log->fd);
	}
	if (log->lockfd >= 0)
		close(log->lockfd); /* releases the flock */
	if (log->dirfd >= 0)
		close(log->dirfd);
	free(log->buf);
	free(log);
}

/* ---- reader ---- */

/* Length of the payload of a valid record at off, or -1. */
static int64_t
valid_at(const uint8_t *base, uint64_t size, uint64_t off)
{
	const uint8_t *h = base + off;
	uint32_t len;

	if (size - off < PF_RECLOG_HEADER)
		return -1;
	if (get_u32(h) != PF_RECLOG_MAGIC)
		return -1;
	len = get_u32(h + 4);
	if (len > PF_RECLOG_RECORD_MAX || size - off - PF_RECLOG_HEADER < len)
		return -1;
	if (record_crc(h, h + PF_RECLOG_HEADER, len) != get_u32(h + 16))
		return -1;
	return len;
}

/* Whether any valid record starts after off. */
static int
valid_after(const uint8_t *base, uint64_t size, uint64_t off)
{
	uint8_t magic[4];

	put_u32(magic, PF_RECLOG_MAGIC);
	for (uint64_t k = off + 1; k + PF_RECLOG_HEADER <= size; k++) {
		const uint8_t *p = memchr(base + k, magic[0],
		    (size_t)(size - PF_RECLOG_HEADER + 1 - k));

		if (p == NULL)
			return 0;
		k = (uint64_t)(p - base);
		if (memcmp(p, magic, 4) == 0 && valid_at(base, size, k) >= 0)
			return 1;
	}
	return 0;
}

pf_err
pf_reclog_read_file(const char *path, uint64_t seq, uint64_t from,
    pf_reclog_record_cb cb, void *arg, pf_reclog_scan *ret_scan)
{
	pf_reclog_scan scan = { 0, from, 0, 0 };
	const uint8_t *base = NULL;
	struct stat st;
	uint64_t off = from, size;
	pf_err err = PF_OK;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? PF_ENOTFOUND : PF_EIO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return PF_EIO;
	}
	size = (uint64_t)st.st_size;
	if (size > PF_RECLOG_FILE_MAX) {
		close(fd);
		return PF_ETOOBIG;
	}
	scan.file_size = size;
	if (from > size) {
		close(fd);
		return PF_EINVAL;
	}
	if (size > 0) {
		void *m
		    = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);

		if (m == MAP_FAILED) {
			close(fd);
			return PF_EIO;
		}
		base = m;
	}
	close(fd);
	while (off < size) {
		int64_t len = valid_at(base, size, off);
		pf_reclog_pos pos = { seq, off };

		if (len < 0) {
			if (valid_after(base, size, off)) {
				scan.bad_offset = off;
				err = PF_EPROTO;
			}
			break;
		}
		err = cb(arg, &pos, (int64_t)get_u64(base + off + 8),
		    base + off + PF_RECLOG_HEADER, (size_t)len);
		if (err != PF_OK)
			break;
		off += PF_RECLOG_HEADER + (uint64_t)len;
		scan.records++;
		scan.valid_end = off;
	}
	if (base != NULL)
		munmap((void *)(uintptr_t)base, (size_t)size);
	if (ret_scan != NULL && (err == PF_OK || err == PF_EPROTO))
		*ret_scan = scan;
	return err;
}

pf_err
pf_reclog_truncate(const char *path, uint64_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	pf_err err = PF_OK;

	if (fd < 0)
		return errno == ENOENT ? PF_ENOTFOUND : PF_EIO;
	if (ftruncate(fd, (off_t)len) != 0 || fsync(fd) != 0)
		err = PF_EIO;
	close(fd);
	return err;
}
