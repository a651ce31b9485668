/* json — the one JSON string writer of the reports, the launcher and the
 * timeline.
 *
 * JSON text must be UTF-8 (RFC 8259), yet what we write comes from outside:
 * specs, paths, symbol names, USDT notes, command lines, thread names, all
 * arbitrary bytes (and a name cut to fit a fixed field may end inside a
 * sequence).  One bad byte and a parser rejects the whole report, so each
 * byte that is not part of a valid UTF-8 sequence is written as U+FFFD,
 * the replacement character, escaped as \ufffd (what Python's
 * errors="replace" and most decoders give for it); valid sequences are
 * copied as they are. */
#ifndef SP_JSON_H
#define SP_JSON_H

#include <stdio.h>

/* S as a JSON string, escaped, valid UTF-8; NULL as null. */
void sp_json_str(FILE *f, const char *s);

/* The length (1-4) of the valid UTF-8 sequence S starts with (RFC 3629:
 * no overlong form, no surrogate, nothing past U+10FFFF), or 0.  S is
 * NUL-terminated; nothing past the NUL is read. */
int sp_utf8_len(const unsigned char *s);

#endif
