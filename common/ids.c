/*
 * ids.c -- randomness, hex and SHA-256.
 */
#include "common/ids.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/sha256.h"

pf_err
pf_random_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t off = 0;

	while (off < n) {
		ssize_t got = getrandom(p + off, n - off, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			break; /* ENOSYS on old kernels: fall back below */
		}
		off += (size_t)got;
	}
	if (off == n)
		return PF_OK;
	/* no getrandom: the same CSPRNG through its device (this was
	 * OpenSSL's RAND_bytes, which cost every process that links only
	 * common/ the 1.5 MB of RSS that loading libcrypto takes) */
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return PF_ECRYPTO;
	while (off < n) {
		ssize_t got = read(fd, p + off, n - off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		off += (size_t)got;
	}
	close(fd);
	return off == n ? PF_OK : PF_ECRYPTO;
}

/* The random part of ids comes from a per-thread pool that one
 * getrandom fills for ID_POOL / 10 ids (one per request otherwise).  A
 * forked child refills before its first id, so it never repeats its
 * parent's. */
#define ID_POOL 240
static _Thread_local uint8_t id_pool[ID_POOL];
static _Thread_local size_t id_pool_off = ID_POOL;
static _Thread_local unsigned id_pool_gen;
static unsigned fork_gen; /* bumped in a forked child */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
on_fork_child(void)
{
	fork_gen++;
}

static void
atfork_init(void)
{
	(void)pthread_atfork(NULL, NULL, on_fork_child);
}

uint32_t
pf_id_hash(const uint8_t id[PF_ID_LEN])
{
	uint64_t a, b, h;

	memcpy(&a, id, sizeof(a));
	memcpy(&b, id + sizeof(a), sizeof(b));
	h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
	return (uint32_t)(h >> 32);
}

pf_err
pf_id_new(uint8_t id[PF_ID_LEN])
{
	uint64_t ms = (uint64_t)pf_clock_ms();
	const size_t n = PF_ID_LEN - 6;

	for (int i = 5; i >= 0; i--) {
		id[i] = (uint8_t)(ms & 0xff);
		ms >>= 8;
	}
	(void)pthread_once(&atfork_once, atfork_init);
	if (id_pool_off + n > ID_POOL || id_pool_gen != fork_gen) {
		pf_err err = pf_random_bytes(id_pool, ID_POOL);
		if (err != PF_OK) {
			id_pool_off = ID_POOL;
			return err;
		}
		id_pool_off = 0;
		id_pool_gen = fork_gen;
	}
	memcpy(id + 6, id_pool + id_pool_off, n);
	/* each byte goes out once */
	memset(id_pool + id_pool_off, 0, n);
	id_pool_off += n;
	return PF_OK;
}

void
pf_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

int
pf_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

pf_err
pf_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t n)
{
	if (in == NULL || inlen / 2 != n || inlen % 2 != 0)
		return PF_EINVAL;
	for (size_t i = 0; i < inlen; i++) {
		if (pf_hex_digit(in[i]) < 0)
			return PF_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		out[i] = (uint8_t)(pf_hex_digit(in[2 * i]) << 4
		    | pf_hex_digit(in[2 * i + 1]));
	}
	return PF_OK;
}

pf_err
pf_sha256_hex(const void *data, size_t len, char out[65])
{
	uint8_t md[PF_SHA256_LEN];

	if (data == NULL && len > 0)
		return PF_EINVAL;
	pf_sha256(data, len, md);
	pf_hex_encode(md, PF_SHA256_LEN, out);
	return PF_OK;
}
