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

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* S as a JSON string, escaped, valid UTF-8; NULL as null. */
void sp_json_str(FILE *f, const char *s);

/* Output gathered in memory and written to F a buffer at a time: a
 * report of 3600 probes made ~10 printf-family calls per probe (~4 % of
 * a python process under libc:*).  What the sp_outbuf_* writers put
 * reaches F only at sp_outbuf_flush (or when the buffer fills): flush
 * before writing to F directly. */
struct sp_outbuf {
	FILE *f;
	char *b;        /* the caller's memory, CAP bytes */
	size_t cap, n;
};
void sp_outbuf_put(struct sp_outbuf *b, const char *p, size_t n);
void sp_outbuf_str(struct sp_outbuf *b, const char *s);
void sp_outbuf_u64(struct sp_outbuf *b, uint64_t v);      /* as "%" PRIu64 */
void sp_outbuf_hex(struct sp_outbuf *b, uint64_t v);      /* as "%#" PRIx64 */
void sp_outbuf_flush(struct sp_outbuf *b);
/* sp_json_str, into B. */
void sp_json_str_buf(struct sp_outbuf *b, const char *s);

/* The length (1-4) of the valid UTF-8 sequence S starts with (RFC 3629:
 * no overlong form, no surrogate, nothing past U+10FFFF), or 0.  S is
 * NUL-terminated; nothing past the NUL is read. */
int sp_utf8_len(const unsigned char *s);

#endif
