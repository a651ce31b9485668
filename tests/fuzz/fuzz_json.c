/* fuzz_json — sp_json_str, the one JSON string writer, on arbitrary bytes.
 *
 * The input up to its first NUL is written as a JSON string.  Properties:
 *   - the output is a quoted JSON string of printable ASCII and valid
 *     UTF-8 (strictly decoded here: no overlong form, no surrogate, nothing
 *     past U+10FFFF) with no raw control byte;
 *   - decoding its escapes gives the input's code points, each byte of no
 *     valid UTF-8 sequence as U+FFFD (the documented replacement), decoded
 *     by an independent strict decoder.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_json: " __VA_ARGS__); \
	fputc('\n', stderr); abort(); } } while (0)

/* One strictly valid UTF-8 sequence at S (N bytes left): its code point
 * and length, or length 0. */
static int decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	int len = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (!len || (size_t)len > n)
		return 0;
	uint32_t v = s[0] & (0x7f >> len);
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

static int hexval(unsigned char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1);
	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = 0;
	size_t n = strlen(in);

	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f) {
		free(in);
		return 0;
	}
	sp_json_str(f, in);
	fclose(f);
	const unsigned char *o = (const unsigned char *)out;
	CHECK(len >= 2 && o[0] == '"' && o[len - 1] == '"', "not a quoted string: %s", out);

	/* the input's code points, bad bytes as U+FFFD */
	uint32_t *want = malloc((n + 1) * sizeof(*want));
	size_t n_want = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int l = decode((const unsigned char *)in + i, n - i, &cp);
		want[n_want++] = l ? cp : 0xfffd;
		i += l ? (size_t)l : 1;
	}

	/* the output's, through its escapes */
	size_t k = 0;
	for (size_t i = 1; i < len - 1;) {
		uint32_t cp;
		CHECK(o[i] >= 0x20, "raw control byte %#x at %zu", o[i], i);
		if (o[i] == '"')
			CHECK(0, "unescaped quote at %zu: %s", i, out);
		if (o[i] == '\\') {
			CHECK(i + 1 < len - 1, "escape at the end");
			unsigned char e = o[i + 1];
			if (e == 'u') {
				CHECK(i + 5 < len - 1, "short \\u escape");
				int v = 0;
				for (int h = 0; h < 4; h++) {
					int x = hexval(o[i + 2 + h]);
					CHECK(x >= 0, "bad hex in \\u escape");
					v = v << 4 | x;
				}
				CHECK(v < 0xd800 || v > 0xdfff, "a surrogate escape");
				cp = (uint32_t)v;
				i += 6;
			} else {
				const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
				const char *p = strchr(from, e);
				CHECK(e && p, "bad escape \\%c", e);
				cp = (unsigned char)to[p - from];
				i += 2;
			}
		} else {
			int l = decode(o + i, len - 1 - i, &cp);
			CHECK(l > 0, "invalid UTF-8 in the output at %zu", i);
			i += (size_t)l;
		}
		CHECK(k < n_want && cp == want[k], "code point %zu is %#x, want %#x", k, cp, k < n_want ? want[k] : 0);
		k++;
	}
	CHECK(k == n_want, "%zu code points out, %zu in", k, n_want);
	free(want);
	free(out);
	free(in);
	return 0;
}
