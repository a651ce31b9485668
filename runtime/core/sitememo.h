/* sitememo — each probe site's final decision, kept on disk per object
 * (decide.h sp_decide_replay / sp_decide_remember).
 *
 * With the index and the whole-function decodes cached (btindex.h,
 * scanmemo.h), attaching `uprobe:libc:*` still decided each of libc's
 * ~3600 sites again in every process: a copy of the whole function around
 * each site read out of the process (process_vm_readv pinning its pages:
 * most of the attach), the first instruction and the window decoded three
 * times, the index searched for each rule.  The decision is a function of
 * the object's code (named by the key the index is stored under: build ID,
 * layout, symbol starts, this runtime's build) and of the site's function
 * extent; what the process knows live (other probes' windows, a hazard, a
 * hop's padding) is checked live every time and is never stored.
 *
 * A record holds, ELF-relative: the site, its function (start, size, the
 * limit a window must not reach, the readable text after it), the path
 * (jmp5 or int3), the int3 path's reason, the facts a hop needs (which rule
 * blocked the jmp, which window bytes are targets, the first instruction's
 * length), the window's shape (its instructions' count and length) and the
 * bytes the decision was made on: the window and the 5 bytes the jmp
 * overwrites.  Never trusted blindly: a record is replayed only when those
 * bytes are what the process has now and its instructions decode to the
 * stored lengths (decide.c); anything else is decided afresh and the record
 * replaced.
 *
 * Stored like the scan memo (objcache.h: a temporary file renamed, the last
 * writer wins, a lost record is only decided again).  A table that does not
 * validate (lengths, order, a field out of range, an unterminated reason)
 * is refused with its reason and rebuilt. */
#ifndef SP_SITEMEMO_H
#define SP_SITEMEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objcache.h"

#define SP_SITEMEMO_BYTES 24    /* a window is at most 4 + 15 bytes */

/* A record's path and block, as decide.h numbers them (decide.c checks
 * that they agree: this module does not include it, decide uses us). */
enum { SP_SITEMEMO_INT3 = 1, SP_SITEMEMO_JMP5 = 2 };
enum { SP_SITEMEMO_BLOCK_NONE = 0, SP_SITEMEMO_BLOCK_MAX = 3 };

struct sp_sitememo;

/* What a decision was made for: runtime addresses (0: unknown). */
struct sp_sitememo_key {
	uintptr_t site, func, limit;
	size_t size, avail;
	bool landing_pads;
};

/* The decision. */
struct sp_sitememo_rec {
	uint8_t path;            /* SP_SITEMEMO_INT3 or SP_SITEMEMO_JMP5 */
	uint8_t block;           /* enum sp_block (decide.h) */
	uint8_t window_targets;
	uint8_t first_len;       /* the site's instruction */
	uint8_t n_insns, wlen;   /* jmp5: the window (0 for int3) */
	bool flow_ends;
	uint8_t n_bytes;         /* [site, site + n_bytes) as decided on */
	uint8_t bytes[SP_SITEMEMO_BYTES];
	const char *reason;      /* int3: why not the jmp (in the memo's storage) */
};

/* A memo for the object whose index is keyed OBJKEY, at BIAS. */
struct sp_sitememo *sp_sitememo_new(const struct sp_objcache_key *objkey, uintptr_t bias);
void sp_sitememo_free(struct sp_sitememo *m);

/* Is there a stored table to replay from (read at the first call)? */
bool sp_sitememo_active(struct sp_sitememo *m);

/* The record for K: true with *R (its reason valid until the next flush). */
bool sp_sitememo_get(struct sp_sitememo *m, const struct sp_sitememo_key *k, struct sp_sitememo_rec *r);
/* Remember R for K (replaces a stored record at the next flush); a record
 * out of range is not remembered. */
void sp_sitememo_put(struct sp_sitememo *m, const struct sp_sitememo_key *k, const struct sp_sitememo_rec *r);
/* A stored record for K did not match the process's code (counted). */
void sp_sitememo_stale(struct sp_sitememo *m);

/* Write the table back if this process added records. */
void sp_sitememo_flush(struct sp_sitememo *m);

/* NULL when DATA/LEN is a table this module would use, else why not (the
 * reader's whole check: for tests and the fuzzer). */
const char *sp_sitememo_validate(const void *data, size_t len);

/* Counters for tests: records read from disk, replayed (hits), found stale,
 * added. */
struct sp_sitememo_stats {
	size_t loaded, hits, stale, added;
};
void sp_sitememo_stats(const struct sp_sitememo *m, struct sp_sitememo_stats *st);

#endif
