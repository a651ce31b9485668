/* json — see json.h. */
#include "json.h"

#include <stdbool.h>

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

void sp_json_str(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *c = (const unsigned char *)s; *c;) {
		/* a run written as it is: one fwrite, not a call per byte (a
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
			fwrite(run, 1, (size_t)(c - run), f);
		if (!*c)
			break;
		if (*c >= 0x80)   /* a byte of no valid sequence: U+FFFD, the replacement character */
			fputs("\\ufffd", f);
		else if (*c == '"')
			fputs("\\\"", f);
		else if (*c == '\\')
			fputs("\\\\", f);
		else if (*c == '\n')
			fputs("\\n", f);
		else if (*c == '\r')
			fputs("\\r", f);
		else if (*c == '\t')
			fputs("\\t", f);
		else
			fprintf(f, "\\u%04x", *c);
		c++;
	}
	fputc('"', f);
}
