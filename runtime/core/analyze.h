/* analyze — what a probe on a file would do, without any process.
 *
 * The launcher's `list` and `check` answer "which path would this site
 * take, and why" for files no process has loaded.  This module reads the
 * file (symbols with elfsym, executable PT_LOAD segments into buffers at
 * their ELF virtual addresses, USDT notes), finds the site's function
 * extent as the registry does (engine/targets.c), and hands the facts to the one decision the
 * runtime makes at attach time (decide.h), with the object's index
 * (btindex.h) built once over the file's bytes.
 *
 * What only a live process knows (the address an IFUNC resolves to, a free
 * page within ±2 GiB, other probes' windows) is reported as not checked.
 * Addresses here are ELF virtual addresses.  Pure: no process patching.
 */
#ifndef SP_ANALYZE_H
#define SP_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "btindex.h"
#include "decide.h"
#include "elfsym.h"
#include "jmpplan.h"
#include "usdt.h"

#define SP_AN_MAX_TEXT 8

struct sp_an_text {
	uint64_t vaddr, size;    /* [vaddr, vaddr + size): an executable PT_LOAD */
	uint8_t *bytes;          /* its contents (zero past p_filesz) */
};

struct sp_an_object {
	char *path;
	struct sp_elf *elf;
	struct sp_an_text text[SP_AN_MAX_TEXT];
	int n_text;
	struct sp_usdt_notes notes;
	struct sp_btindex *idx;  /* the object's index (lazy) */
	bool idx_built;
	/* the bytes the sites analysed so far would patch, as a run attaching
	 * them in the same order would, sorted by lo: the 5 bytes from each
	 * site, and each hop's pad */
	struct sp_an_claim { uint64_t lo, hi, site; bool pad; } *claims;
	size_t n_claims, cap_claims;
	uint64_t claiming;       /* the site being decided: its own claims (an
				  * alias analysed before) are not another's */
};

/* The path a probe at a site would take. */
enum sp_an_mode {
	SP_AN_JMP,               /* the 5-byte jmp into a trampoline */
	SP_AN_INT3,              /* the int3 path (reason: why not the jmp) */
	SP_AN_NONE,              /* cannot be probed at all (reason) */
	SP_AN_RUNTIME,           /* an IFUNC: the site is chosen by its resolver at run time */
};

#define SP_AN_MAX_CHECKS (SP_DECIDE_MAX_CHECKS + 2)

/* Filled in place and not to be copied: reasons may point into V. */
struct sp_an_site {
	uint64_t addr;
	const struct sp_sym *sym;   /* the function holding the site, or NULL */
	uint64_t func, func_size;   /* the extent the planner used (0: unknown) */
	uint64_t limit;             /* first byte the window must not reach */
	enum sp_an_mode mode;
	enum sp_path path;          /* the verdict's path (jmp5 or hop on SP_AN_JMP) */
	const char *reason;         /* NULL on the jmp path */
	const char *resume;         /* the int3 path's resume: "emulated", "run out of line" */
	bool have_window;           /* W holds the planned window (decoded at ADDR) */
	struct sp_window w;
	struct sp_check checks[SP_AN_MAX_CHECKS];   /* the trail `check` prints */
	int n_checks;
	struct sp_verdict v;        /* the decision (its reasons' storage) */
	uint64_t pad;               /* SP_PATH_HOP: the pad */
};

/* Find the file NAME designates: a path (contains '/'), else a library name
 * matched like the spec's objects (exact basename, NAME.so…, NAME-…, unique
 * prefix) among LD_LIBRARY_PATH, the ldconfig cache and the usual library
 * directories, else a program in PATH.  0 and PATH, or -errno with ERR. */
int sp_analyze_resolve(const char *name, char *path, size_t pathlen, char *err, size_t errlen);

/* Open the ELF file at PATH: symbols, executable segments, USDT notes.
 * 0, or -errno with a message in ERR. */
int sp_analyze_open(const char *path, struct sp_an_object **out, char *err, size_t errlen);
void sp_analyze_close(struct sp_an_object *o);

/* The decision for a probe at ADDR.  SYM: the symbol the probe names (its
 * entry, or ADDR = SYM + offset), or NULL for a site found by address (a
 * USDT note: the function holding it is looked up).  Fills OUT; 0 or
 * -ENOMEM. */
int sp_analyze_site(struct sp_an_object *o, const struct sp_sym *sym, uint64_t addr,
		    struct sp_an_site *out);

/* Readable bytes of executable text at VADDR: a pointer into O's buffers and
 * the bytes left in that segment, or NULL. */
const uint8_t *sp_analyze_text(const struct sp_an_object *o, uint64_t vaddr, size_t *avail);

/* A nominal trampoline address for relocating a window at SITE: the page
 * after the segment's end, as near as the runtime would place it. */
uint64_t sp_analyze_tramp_addr(const struct sp_an_object *o, uint64_t site);

const char *sp_an_mode_name(enum sp_an_mode m);

/* What a probe at S would write: "jmp5", "hop" (the jmp path), "int3", or
 * NULL (nothing: not probeable, or an IFUNC decided at run time). */
const char *sp_an_patch_name(const struct sp_an_site *s);

#endif
