/* json — see json.h. */
#include "json.h"

#include <stdbool.h>
#include <string.h>

int sp_utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	int n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	if (!n)
		return 0;   /* a continuation byte, an overlong lead (c0, c1), or past U+10FFFF */
	/* The second byte's range rules out the overlong forms (e0, f0), the
	 * surrogates (ed) and what lies past U+10FFFF (f4).  A NUL is never in
	 * range, so nothing past the string's end is read. */
	unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
	unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* Needs an escape in a JSON string (or is not plain ASCII). */
static bool special(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

/* S escaped, through PUT (a run at a time). */
static void json_str(void (*put)(void *, const char *, size_t), void *ctx, const char *s)
{
	if (!s) {
		put(ctx, "null", 4);
		return;
	}
	put(ctx, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c;) {
		/* a run written as it is: one write, not a call per byte (a
		 * 10,000-probe report writes a few hundred kilobytes) */
		const unsigned char *run = c;
		for (;;) {
			if (!special(*c)) {
				c++;
				continue;
			}
			int n = *c >= 0x80 ? sp_utf8_len(c) : 0;
			if (n < 2)
				break;
			c += n;   /* a whole valid sequence, as it is */
		}
		if (c > run)
			put(ctx, (const char *)run, (size_t)(c - run));
		if (!*c)
			break;
		if (*c >= 0x80)   /* a byte of no valid sequence: U+FFFD, the replacement character */
			put(ctx, "\\ufffd", 6);
		else if (*c == '"')
			put(ctx, "\\\"", 2);
		else if (*c == '\\')
			put(ctx, "\\\\", 2);
		else if (*c == '\n')
			put(ctx, "\\n", 2);
		else if (*c == '\r')
			put(ctx, "\\r", 2);
		else if (*c == '\t')
			put(ctx, "\\t", 2);
		else {
			static const char hex[] = "0123456789abcdef";
			char u[6] = { '\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15] };
			put(ctx, u, 6);
		}
		c++;
	}
	put(ctx, "\"", 1);
}

static void put_file(void *f, const char *p, size_t n)
{
	fwrite(p, 1, n, f);
}

void sp_json_str(FILE *f, const char *s)
{
	json_str(put_file, f, s);
}

static void put_buf(void *b, const char *p, size_t n)
{
	sp_outbuf_put(b, p, n);
}

void sp_json_str_buf(struct sp_outbuf *b, const char *s)
{
	json_str(put_buf, b, s);
}

void sp_outbuf_flush(struct sp_outbuf *b)
{
	if (b->n)
		fwrite(b->b, 1, b->n, b->f);
	b->n = 0;
}

void sp_outbuf_put(struct sp_outbuf *b, const char *p, size_t n)
{
	if (b->n + n > b->cap) {
		sp_outbuf_flush(b);
		if (n > b->cap) {
			fwrite(p, 1, n, b->f);
			return;
		}
	}
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

void sp_outbuf_str(struct sp_outbuf *b, const char *s)
{
	sp_outbuf_put(b, s, strlen(s));
}

void sp_outbuf_u64(struct sp_outbuf *b, uint64_t v)
{
	char t[20];
	int i = sizeof(t);
	do
		t[--i] = (char)('0' + v % 10);
	while (v /= 10);
	sp_outbuf_put(b, t + i, sizeof(t) - (size_t)i);
}

void sp_outbuf_hex(struct sp_outbuf *b, uint64_t v)
{
	if (!v) {   /* printf's "%#x" of 0 */
		sp_outbuf_put(b, "0", 1);
		return;
	}
	char t[18];
	int i = sizeof(t);
	for (; v; v >>= 4)
		t[--i] = "0123456789abcdef"[v & 15];
	t[--i] = 'x';
	t[--i] = '0';
	sp_outbuf_put(b, t + i, sizeof(t) - (size_t)i);
}
