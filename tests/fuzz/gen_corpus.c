/*
 * gen_corpus.c -- writes the seed corpus for the msg codec into DIR.
 *
 *   gen_msg_corpus tests/fuzz/corpus/msg
 *
 * File name prefixes state what the replay test expects:
 *   valid-  decodes, and encode(decode(x)) == x byte for byte
 *   ok-     decodes (not canonical: extra fields, wide integers)
 *   bad-    is rejected
 *   fz-     anything (inputs libFuzzer found that reach new code; add
 *           more with fuzz_msg -merge=1 NEW_DIR tests/fuzz/corpus/msg ...)
 * The output is committed; rerun after changing msg.h and commit again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/limits.h"
#include "common/msg.h"
#include "msg_samples.h"

static const char *dir;
static int failed;

static void
put(const char *name, const void *data, size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len) {
		fprintf(stderr, "gen: cannot write %s\n", path);
		failed = 1;
	}
	if (f != NULL)
		fclose(f);
}

static void
put_sb(const char *name, msgpack_sbuffer *sb)
{
	put(name, sb->data, sb->size);
	msgpack_sbuffer_destroy(sb);
}

static void
start(msgpack_sbuffer *sb, msgpack_packer *pk, uint32_t n, int kind)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(pk, n);
	msgpack_pack_int(pk, PF_MSG_VERSION);
	msgpack_pack_int(pk, kind);
}

static void
valid_samples(void)
{
	for (size_t k = 0; k < SAMPLE_NKINDS; k++) {
		for (int v = 0; v < SAMPLE_VARIANTS; v++) {
			char name[128];
			pf_msg m;
			pf_buf b;

			sample_msg(sample_kinds[k], v, &m);
			pf_buf_init(&b);
			if (pf_msg_encode(&m, &b) != PF_OK) {
				fprintf(stderr, "gen: encode failed\n");
				failed = 1;
				continue;
			}
			snprintf(name, sizeof(name), "valid-%s-%d",
			    pf_msg_kind_name(sample_kinds[k]), v);
			put(name, b.data, b.len);
			if (v == 0) {
				/* the same with one byte more, and version 2 */
				b.data[b.len] = 0xc0;
				snprintf(name, sizeof(name), "bad-trailing-%s",
				    pf_msg_kind_name(sample_kinds[k]));
				put(name, b.data, b.len + 1);
				b.data[1] = 0x02;
				snprintf(name, sizeof(name), "bad-version2-%s",
				    pf_msg_kind_name(sample_kinds[k]));
				put(name, b.data, b.len);
			}
			pf_buf_fini(&b);
		}
	}
}

static void
nasty(void)
{
	static const uint8_t huge_array[]
	    = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01 };
	static const uint8_t huge_bin[]
	    = { 0x93, 0x01, 0x03, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00 };
	static const uint8_t huge_str[]
	    = { 0x93, 0x01, 0x03, 0xdb, 0x7f, 0xff, 0xff, 0xff };
	static const uint8_t huge_map[]
	    = { 0x93, 0x01, 0x03, 0xdf, 0x10, 0x00, 0x00, 0x00, 0x01 };
	static const uint8_t huge_ext[]
	    = { 0x93, 0x01, 0x03, 0xc9, 0xff, 0xff, 0xff, 0xf0, 0x01 };
	static const uint8_t c1[] = { 0x93, 0x01, 0x03, 0xc1 };
	static const uint8_t top_map[] = { 0x82, 0x01, 0x03, 0x02, 0x04 };
	static const uint8_t unknown_kind[] = { 0x93, 0x01, 0x09, 0xc0 };
	static const uint8_t only_header[] = { 0x92, 0x01, 0x05 };
	uint8_t deep[3 + PF_MSG_MAX_DEPTH + 1];
	msgpack_sbuffer sb;
	msgpack_packer pk;

	put("bad-empty", "", 0);
	put("bad-huge-array32", huge_array, sizeof(huge_array));
	put("bad-huge-bin32", huge_bin, sizeof(huge_bin));
	put("bad-huge-str32", huge_str, sizeof(huge_str));
	put("bad-huge-map32", huge_map, sizeof(huge_map));
	put("bad-huge-ext32", huge_ext, sizeof(huge_ext));
	put("bad-c1", c1, sizeof(c1));
	put("bad-top-map", top_map, sizeof(top_map));
	put("bad-unknown-kind", unknown_kind, sizeof(unknown_kind));
	put("bad-only-header", only_header, sizeof(only_header));
	deep[0] = 0x94;
	deep[1] = 0x01;
	deep[2] = 0x05;
	memset(deep + 3, 0x91, PF_MSG_MAX_DEPTH);
	deep[sizeof(deep) - 1] = 0xc0;
	put("bad-deep", deep, sizeof(deep));

	start(&sb, &pk, 4, PF_MSG_GRANT_RELEASE);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 2);
	put_sb("bad-short-array", &sb);

	start(&sb, &pk, 3, PF_MSG_RELAY_CANCEL);
	msgpack_pack_bin(&pk, 15);
	msgpack_pack_bin_body(&pk, sample_id_a, 15);
	put_sb("bad-id-15-bytes", &sb);

	start(&sb, &pk, 6, PF_MSG_GRANT_REQUEST);
	msgpack_pack_int(&pk, -1);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 2);
	msgpack_pack_int(&pk, 3);
	put_sb("bad-negative-uint64", &sb);

	start(&sb, &pk, 12, PF_MSG_RELAY_REQUEST);
	msgpack_pack_bin(&pk, 16);
	msgpack_pack_bin_body(&pk, sample_id_a, 16);
	msgpack_pack_str(&pk, 0);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_str(&pk, 0);
	msgpack_pack_str(&pk, 0);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_bin(&pk, 0);
	msgpack_pack_array(&pk, PF_RELAY_MAX_CANDIDATES + 1);
	for (unsigned i = 0; i < PF_RELAY_MAX_CANDIDATES + 1; i++) {
		msgpack_pack_array(&pk, 10);
		msgpack_pack_int(&pk, 1);
		msgpack_pack_int(&pk, 1);
		for (int j = 0; j < 4; j++)
			msgpack_pack_str(&pk, 0);
		for (int j = 0; j < 4; j++)
			msgpack_pack_int(&pk, 0);
	}
	put_sb("bad-17-candidates", &sb);

	/* accepted, not canonical */
	start(&sb, &pk, 8, PF_MSG_GRANT_RELEASE);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 2);
	msgpack_pack_int(&pk, 3);
	msgpack_pack_str(&pk, 3);
	msgpack_pack_str_body(&pk, "new", 3);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_nil(&pk);
	msgpack_pack_array(&pk, 0);
	msgpack_pack_double(&pk, 1.5);
	put_sb("ok-extra-fields", &sb);

	/* grant.reply of an older accountant: no epoch (decodes as 0) */
	start(&sb, &pk, 8, PF_MSG_GRANT_REPLY);
	msgpack_pack_uint64(&pk, 7);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 2);
	msgpack_pack_int(&pk, 300);
	msgpack_pack_int64(&pk, 1764115200000);
	msgpack_pack_int(&pk, 0);
	put_sb("ok-grant-reply-no-epoch", &sb);

	{
		/* grant.release [1, 12, int64 1, int8 -2, uint16 3] */
		static const uint8_t wide[] = { 0x95, 0x01, 0x0c, 0xd3, 0, 0, 0,
			0, 0, 0, 0, 1, 0xd0, 0xfe, 0xcd, 0x00, 0x03 };
		put("ok-wide-integers", wide, sizeof(wide));
	}
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	valid_samples();
	nasty();
	return failed;
}
