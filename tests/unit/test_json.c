/* Tests for runtime/core/json.c: every string written is valid JSON and valid
 * UTF-8 (issue 16): valid sequences are kept byte for byte, each byte of no
 * valid sequence becomes \ufffd (overlong forms, surrogates, code points
 * past U+10FFFF, stray continuation bytes, truncated sequences), control
 * characters and quotes are escaped.  And on every 1-2 byte string (and 3
 * bytes with each range edge as the third), the output is valid UTF-8. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static char *json_of(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert(f);
	sp_json_str(f, s);
	fclose(f);
	return buf;
}

#define expect_json(in, want)                                                            \
	do {                                                                             \
		char *got_ = json_of(in);                                                \
		cr_expect(strcmp(got_, want) == 0, "%s: got %s, want %s", #in, got_, want); \
		free(got_);                                                              \
	} while (0)

Test(json, escapes)
{
	expect_json(NULL, "null");
	expect_json("", "\"\"");
	expect_json("a\"b\\c\n\r\t\x01\x1f\x7f", "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\x7f\"");
}

Test(json, valid_utf8_kept)
{
	expect_json("\xc3\xa9", "\"\xc3\xa9\"");                      /* é */
	expect_json("\xe2\x88\x91", "\"\xe2\x88\x91\"");              /* ∑ */
	expect_json("\xf0\x9d\x84\x9e", "\"\xf0\x9d\x84\x9e\"");      /* U+1D11E */
	expect_json("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");              /* U+FFFD itself */
	expect_json("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");      /* U+10FFFF, the last */
	expect_json("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");              /* U+D7FF, before the surrogates */
}

Test(json, invalid_bytes_replaced)
{
	expect_json("mal\xfflloc", "\"mal\\ufffdlloc\"");
	expect_json("\x80", "\"\\ufffd\"");                            /* a stray continuation */
	expect_json("\xc3", "\"\\ufffd\"");                            /* truncated at the end */
	expect_json("\xc3x", "\"\\ufffdx\"");                          /* truncated before ASCII */
	expect_json("\xe2\x88", "\"\\ufffd\\ufffd\"");                 /* truncated 3-byte */
	expect_json("\xc0\xaf", "\"\\ufffd\\ufffd\"");                 /* overlong '/' */
	expect_json("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");       /* overlong, 3 bytes */
	expect_json("\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong, 4 bytes */
	expect_json("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");       /* U+D800, a surrogate */
	expect_json("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* U+110000 */
	expect_json("\xf5\xfe\xff", "\"\\ufffd\\ufffd\\ufffd\"");
	expect_json("\xff\xc3\xa9", "\"\\ufffd\xc3\xa9\"");            /* a bad byte, then é */
}

/* Decode one UTF-8 sequence strictly (an independent check): its length, or 0. */
static int strict_len(const unsigned char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	int len = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (!len || (size_t)len > n)
		return 0;
	unsigned cp = s[0] & (0x7f >> len);
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	static const unsigned min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

Test(json, every_short_string)
{
	/* every first and second byte; as the third, each edge of a range */
	static const unsigned thirds[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
					   0xc0, 0xc2, 0xdf, 0xe0, 0xef, 0xf0, 0xf4, 0xf5, 0xff };
	unsigned char in[4];
	for (unsigned a = 1; a < 256; a++)
		for (unsigned b = 0; b < 256; b++)
			for (size_t t = 0; t < (b ? sizeof(thirds) / sizeof(*thirds) : 1); t++) {
				unsigned c = thirds[t];
				in[0] = (unsigned char)a, in[1] = (unsigned char)b, in[2] = (unsigned char)c, in[3] = 0;
				size_t n = strlen((char *)in);
				char *out = json_of((char *)in);
				const unsigned char *o = (const unsigned char *)out;
				size_t m = strlen(out);
				/* the output decodes strictly, and holds no raw control byte */
				for (size_t i = 0; i < m;) {
					int l = strict_len(o + i, m - i);
					cr_assert(l > 0 && o[i] >= 0x20, "%02x %02x %02x: invalid output byte %zu", a, b, c, i);
					i += (size_t)l;
				}
				/* sp_utf8_len agrees with the strict decoder at every offset */
				for (size_t i = 0; i < n; i++) {
					int want = strict_len(in + i, n - i);
					cr_assert(sp_utf8_len(in + i) == want, "%02x %02x %02x at %zu: %d, want %d", a, b,
						  c, i, sp_utf8_len(in + i), want);
				}
				free(out);
			}
}

/* The report's buffered writer: the same text as sp_json_str and printf,
 * across a flush when the buffer fills and for a piece larger than it. */
#include <inttypes.h>

Test(json, outbuf_matches_stdio)
{
	char *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;
	FILE *fa = open_memstream(&a, &la), *fb = open_memstream(&b, &lb);
	cr_assert(fa && fb);
	char mem[256];
	struct sp_outbuf ob = { fb, mem, sizeof(mem), 0 }, *o = &ob;
	static const char *const strs[] = { NULL, "", "plain", "a\"b\\c\n\r\t\x01\x1f\x7f", "caf\xc3\xa9 \xff\xe0\x80",
					    "/usr/lib/x86_64-linux-gnu/libc.so.6" };
	static const uint64_t nums[] = { 0, 1, 9, 10, 0xf, 0x10, 0x7ffff7a44380, UINT64_MAX };
	char *big = malloc(3 * sizeof(mem));
	cr_assert(big);
	memset(big, 'x', 3 * sizeof(mem) - 1);
	big[3 * sizeof(mem) - 1] = 0;
	for (int round = 0; round < 400; round++) {
		for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++) {
			sp_json_str(fa, strs[i]);
			sp_json_str_buf(o, strs[i]);
		}
		for (size_t i = 0; i < sizeof(nums) / sizeof(*nums); i++) {
			fprintf(fa, "%" PRIu64 " %#" PRIx64 ",", nums[i], nums[i]);
			sp_outbuf_u64(o, nums[i]);
			sp_outbuf_str(o, " ");
			sp_outbuf_hex(o, nums[i]);
			sp_outbuf_str(o, ",");
		}
		if (round % 100 == 7) {
			fputs(big, fa);
			sp_outbuf_str(o, big);
		}
	}
	sp_outbuf_flush(o);
	fclose(fa);
	fclose(fb);
	cr_assert_eq(la, lb);
	cr_assert(memcmp(a, b, la) == 0);
	free(a);
	free(b);
	free(big);
}
