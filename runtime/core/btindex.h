/* btindex — what can transfer control where, in one object: the facts the
 * jmp path's safety rule needs (decide.h), built once per object.
 *
 * A window must not receive control in its bytes 1..len-1 from ANY code,
 * not just its own function: hand-written assembly jumps into the middle of
 * other functions (glibc's __mempcpy_* enter __memmove_* after its first
 * instruction; a foo.cold part jumps back into foo), and an indirect jump
 * anywhere can reach any address whose value the program holds.  So once
 * per object we sweep its executable segments linearly, restarting at every
 * known symbol and every .eh_frame extent's start (so data between
 * functions cannot desynchronise the sweep for long, stripped or not), and
 * keep three sorted sets:
 *
 *   - direct targets: rel8/rel32 jmp, jcc, call, loop and jrcxz targets;
 *   - taken addresses (inside the text): RIP-relative lea targets in the
 *     code (a mov through a RIP-relative operand reads what is there; an
 *     address loaded from the GOT is a relocation's), absolute immediates in non-PIE code, R_X86_64_RELATIVE /
 *     IRELATIVE addends and R_X86_64_64 / GLOB_DAT / JUMP_SLOT targets
 *     defined here (and DT_RELR words), pointer-sized values in the data of
 *     non-PIE objects (conservatively: any that falls in the text), and the
 *     entries of every jump table found;
 *   - jump tables: each indirect jmp of the forms gcc, clang and Go emit
 *       lea T(%rip),%rB; movslq d(%rB,%rI,4),%rX; add %rB,%rX; jmp *%rX
 *       jmp *T(,%rI,8)                          (non-PIE absolute tables)
 *       lea T(%rip),%rB; jmp *(%rB,%rI,8)       (Go's absolute tables)
 *     with its bound (cmp $N,%eI; ja/jae, or and $M,%eI), and every entry
 *     read from the file.  A table whose bound or extent cannot be
 *     established is kept as unknown: every window of its function is
 *     unsafe.  Relative tables no pattern recognised are still covered: the
 *     32-bit words around every RIP-relative lea of read-only data are read
 *     as table entries while they land in the text (a superset).
 *
 * Relocations and data are read from the file with libelf, code from the
 * caller's pristine bytes: a live process and the CLI get the same index.
 */
#ifndef SP_BTINDEX_H
#define SP_BTINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elfsym.h"
#include "maps.h"
#include "objcache.h"

struct sp_btindex;
struct sp_scanmemo;
struct sp_sitememo;

/* An object's code, and where its relocations and data are read from. */
struct sp_objcode {
	const struct sp_elf *elf;    /* symbols, PT_LOAD segments, e_type */
	const char *path;            /* the file (relocations, data, tables) */
	uintptr_t bias;              /* runtime address = ELF vaddr + bias */
	int n_text;
	struct {
		uintptr_t start, end;    /* runtime addresses */
		const uint8_t *bytes;    /* pristine code of [start, end) */
	} text[SP_MAX_TEXT_RANGES];
};

/* Build the index of OC.  NULL on allocation failure (callers then refuse
 * the jmp path).  A file whose relocations cannot be read gives an index
 * that answers every taken-address question with "unknown". */
struct sp_btindex *sp_btindex_build(const struct sp_objcode *oc);
void sp_btindex_free(struct sp_btindex *idx);

/* The key OC's index is stored under: the object's build ID, layout,
 * every symbol start and extent start, this runtime's build (for tests). */
void sp_btindex_key(const struct sp_objcode *oc, const uint8_t *build_id, size_t id_len,
		    struct sp_objcache_key *key);

/* sp_btindex_build through the on-disk cache (objcache.h): loaded when an
 * entry for this code exists (*LOADED), else built and stored.  BUILD_ID
 * (ID_LEN bytes) is the GNU build ID of the file OC's relocations and data
 * are read from; NULL: no cache.  Loaded or built, the index is the same
 * (sp_btindex_same). */
struct sp_btindex *sp_btindex_build_cached(const struct sp_objcode *oc, const uint8_t *build_id,
					   size_t id_len, bool *loaded);

/* Do A and B hold the same index, field by field (the bias, every
 * address, phrases by their text)?  false with the first difference in
 * WHAT. */
bool sp_btindex_same(const struct sp_btindex *a, const struct sp_btindex *b, char *what, size_t len);

/* The live index of OBJ (built on first use from a pristine copy of its
 * text, cached by path and bias; registry lock held). */
const struct sp_btindex *sp_btindex_get(const struct sp_object *obj, const struct sp_elf *elf);

/* Is any direct branch target in (lo, hi) — strictly inside? */
bool sp_btindex_any_inside(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi);

/* The lowest address strictly inside (lo, hi) an indirect transfer may
 * reach (a jump-table entry or a taken address), with what makes it one
 * (*HOW: a static phrase, "jump-table entry", "RIP-relative lea", ...).
 * false when there is none.  An index whose taken set is unknown answers
 * true with *ADDR = 0. */
bool sp_btindex_taken_inside(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi,
			     uintptr_t *addr, const char **how);

/* An indirect jmp in [lo, hi) (a function's extent) whose jump table's
 * bound or extent is unknown: its address and why (static).  false: none. */
bool sp_btindex_unknown_jump(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi,
			     uintptr_t *jmp, const char **why);

/* Counts, for tests and `list`: jump tables proven, unknown; taken addresses. */
struct sp_btindex_stats {
	size_t direct, taken, tables, table_entries, unknown_tables;
	size_t tables_elsewhere;     /* relative tables read by the word scan */
};
/* The memo of the jmp plans' function decodes for this object's code
 * (scanmemo.h), or NULL (no cache key: built without a build ID). */
struct sp_scanmemo *sp_btindex_memo(const struct sp_btindex *idx);
/* The memo of the sites' decisions for this object's code (sitememo.h),
 * keyed and stored alike, or NULL. */
struct sp_sitememo *sp_btindex_sitememo(const struct sp_btindex *idx);
/* Write back what the live indexes' memos learnt (registry lock held). */
void sp_btindex_flush_memos(void);
void sp_btindex_stats(const struct sp_btindex *idx, struct sp_btindex_stats *st);

#endif
