/* btindex — see btindex.h. */
#include "btindex.h"
#include "heap.h"
#include "sort.h"
#include "insn.h"
#include "jtable.h"
#include "log.h"
#include "objcache.h"
#include "scanmemo.h"
#include "sitememo.h"
#include "prefault.h"
#include "objdata.h"
#include "site.h"

#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A sorted set of addresses, each with what put it there. */
struct addrset {
	uintptr_t *a;
	const char **how;            /* NULL for the direct targets */
	size_t n, cap;
};

struct unknown_jump {
	uintptr_t jmp;
	const char *why;
};

/* Everything below but path and next is the index: sp_btindex_same
 * compares it and the cache (encode, decode) keeps it, field by field. */
struct sp_btindex {
	char *path;                  /* the live cache's key (NULL: built by a caller) */
	uintptr_t bias;
	struct addrset direct;
	struct addrset taken;
	bool taken_unknown;          /* relocations could not be read */
	const char *taken_why;
	struct unknown_jump *unknown;
	size_t n_unknown, cap_unknown;
	size_t tables, table_entries, tables_elsewhere;
	struct sp_scanmemo *memo;    /* the plans' decodes (scanmemo.h); NULL: no key */
	struct sp_sitememo *sites;   /* the sites' decisions (sitememo.h); NULL: no key */
	/* a stored index checked but not decoded yet (the mapped entry):
	 * decoded at its first query (ensure).  A process whose sites'
	 * decisions are all replayed (sitememo.h) never asks one: decoding
	 * libc's 37k addresses into fresh pages was ~10 % of an exec'ed
	 * child with one probe */
	const uint8_t *pending;
	size_t pending_len;
	bool broken;                 /* out of memory decoding it: every window refused */
	struct sp_btindex *next;
};

static struct sp_btindex *cache;   /* registry lock held by callers */

static int set_push(struct addrset *s, uintptr_t t, const char *how)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		uintptr_t *n = sp_realloc(s->a, cap * sizeof(*n));
		if (!n)
			return -1;
		s->a = n;
		const char **h = sp_realloc(s->how, cap * sizeof(*h));
		if (!h)
			return -1;
		s->how = h;
		s->cap = cap;
	}
	s->how[s->n] = how;
	s->a[s->n++] = t;
	return 0;
}

static struct addrset *sort_set;
static int cmp_idx(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	uintptr_t x = sort_set->a[i], y = sort_set->a[j];
	/* at one address the first phrase pushed wins (tables before scans) */
	return x < y ? -1 : x > y ? 1 : i < j ? -1 : i > j;
}

/* Sort and dedupe, keeping the first phrase of each address. */
static int set_finish(struct addrset *s)
{
	if (s->n == 0)
		return 0;
	size_t *ix = sp_malloc(s->n * sizeof(*ix));
	uintptr_t *a = sp_malloc(s->n * sizeof(*a));
	const char **h = sp_malloc(s->n * sizeof(*h));
	if (!ix || !a || !h) {
		sp_free(ix);
		sp_free(a);
		sp_free(h);
		return -1;
	}
	for (size_t i = 0; i < s->n; i++)
		ix[i] = i;
	sort_set = s;
	sp_qsort(ix, s->n, sizeof(*ix), cmp_idx);   /* registry lock / single CLI thread */
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++) {
		uintptr_t v = s->a[ix[i]];
		if (k && a[k - 1] == v)
			continue;
		a[k] = v;
		h[k++] = s->how[ix[i]];
	}
	sp_free(ix);
	sp_free(s->a);
	sp_free(s->how);
	s->a = a;
	s->how = h;
	s->n = k;
	return 0;
}

/* Index of the first element > LO. */
static size_t first_above(const struct addrset *s, uintptr_t lo)
{
	size_t a = 0, b = s->n;
	while (a < b) {
		size_t m = (a + b) / 2;
		if (s->a[m] <= lo)
			a = m + 1;
		else
			b = m;
	}
	return a;
}

/* What the build keeps between its passes. */
struct build {
	struct sp_btindex *x;
	const struct sp_objcode *oc;
	struct sp_objdata *data;     /* NULL: the file could not be read */
	bool non_pie;
	uintptr_t *data_refs;        /* RIP-relative operands into data (ELF addresses) */
	size_t n_refs, cap_refs;
	struct ijmp {
		int n;                   /* instructions, the jmp last */
		uintptr_t addr[24];
	} *jumps;
	size_t n_jumps, cap_jumps;
	uint8_t *insn_start[SP_MAX_TEXT_RANGES];   /* bit per text byte: the sweep
						    * decoded an instruction there */
};

static const char TAKEN_RIP[] = "RIP-relative lea target";
static const char TAKEN_IMM[] = "absolute address in non-PIE code";
static const char TAKEN_TABLE[] = "jump-table entry";
static const char TAKEN_WORD[] = "pointer-sized value in data (non-PIE)";
static const char TAKEN_REL[] = "table-relative offset in read-only data";
static const char WHY_ELSEWHERE[] = "a jump table addressed from before the jump, in an object "
				    "without separate read-only data";
static const char WHY_UNREADABLE[] = "a jump table that cannot be read";
static const char WHY_ENTRY[] = "a jump-table entry that is not an instruction of the text";
static const char WHY_EXTENT[] = "a jump table whose bound and extent cannot be established";
static const char WHY_RELOCS[] = "the file's relocations could not be read";
static const char WHY_OOM[] = "out of memory";

static bool in_text(const struct sp_objcode *oc, uintptr_t a, const uint8_t **code, size_t *avail)
{
	for (int r = 0; r < oc->n_text; r++)
		if (a >= oc->text[r].start && a < oc->text[r].end) {
			if (code) {
				*code = oc->text[r].bytes + (a - oc->text[r].start);
				*avail = oc->text[r].end - a;
			}
			return true;
		}
	return false;
}

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 256;
	void *p = sp_realloc(*v, c * size);
	if (!p)
		return -1;
	*v = p;
	*cap = c;
	return 0;
}

/* Did the sweep decode an instruction at A? */
static bool insn_start(const struct build *b, uintptr_t a)
{
	for (int r = 0; r < b->oc->n_text; r++)
		if (a >= b->oc->text[r].start && a < b->oc->text[r].end) {
			uintptr_t off = a - b->oc->text[r].start;
			return b->insn_start[r][off >> 3] & (1u << (off & 7));
		}
	return false;
}

static int take(struct build *b, uintptr_t a, const char *how)
{
	return in_text(b->oc, a, NULL, NULL) ? set_push(&b->x->taken, a, how) : 0;
}

/* Sweep one text range, restarting at each symbol start in STARTS (runtime
 * addresses, sorted) so a byte of data cannot shift the decode past the
 * next function.  Each indirect jmp keeps the straight line before it. */
static int sweep(struct build *b, int r, const uintptr_t *starts, size_t n_starts)
{
	const struct sp_objcode *oc = b->oc;
	uintptr_t lo = oc->text[r].start, hi = oc->text[r].end;
	const uint8_t *code = oc->text[r].bytes;
	struct ijmp line = { 0 };
	size_t s = 0;
	uintptr_t pc = lo;
	while (pc < hi) {
		while (s < n_starts && starts[s] <= pc) {
			s++;
			line.n = 0;          /* a new function */
		}
		uintptr_t stop = s < n_starts && starts[s] < hi ? starts[s] : hi;
		size_t avail = hi - pc < SP_INSN_MAX_LEN ? hi - pc : SP_INSN_MAX_LEN;
		struct sp_insn_scan in;
		if (sp_insn_scan(code + (pc - lo), avail, pc, &in) < 0 || in.len == 0) {
			pc++;    /* undecodable byte (padding, data): step over it */
			line.n = 0;
			continue;
		}
		if (line.n == 24) {
			memmove(line.addr, line.addr + 1, 23 * sizeof(line.addr[0]));
			line.n--;
		}
		line.addr[line.n++] = pc;
		b->insn_start[r][(pc - lo) >> 3] |= (uint8_t)(1u << ((pc - lo) & 7));
		if (in.branch && set_push(&b->x->direct, (uintptr_t)in.target, NULL) != 0)
			return -1;
		if (in.riprel) {
			/* only a lea puts the address in a register; a load or
			 * a store through it reads or writes what is there (a
			 * GOT entry's address is its relocation's business) */
			if (in.lea && take(b, (uintptr_t)in.rip_target, TAKEN_RIP) != 0)
				return -1;
			uint64_t v = in.rip_target - oc->bias;
			if (b->data && sp_objdata_is_data(b->data, v)) {
				if (grow((void **)&b->data_refs, &b->cap_refs, b->n_refs, sizeof(uintptr_t)) != 0)
					return -1;
				b->data_refs[b->n_refs++] = v;
			}
		}
		for (int i = 0; b->non_pie && i < in.n_imm; i++)
			if (take(b, (uintptr_t)in.imm[i] + oc->bias, TAKEN_IMM) != 0)
				return -1;
		if (in.ind_jmp) {
			if (grow((void **)&b->jumps, &b->cap_jumps, b->n_jumps, sizeof(*b->jumps)) != 0)
				return -1;
			b->jumps[b->n_jumps++] = line;
		}
		if (in.branch || in.ind_jmp)
			line.n = 0;          /* the straight line ends at a branch */
		pc += in.len;
		if (pc > stop && stop < hi)
			pc = stop;   /* decoded across a symbol start: resynchronise there */
	}
	return 0;
}

static int add_unknown(struct sp_btindex *x, uintptr_t jmp, const char *why)
{
	if (grow((void **)&x->unknown, &x->cap_unknown, x->n_unknown, sizeof(*x->unknown)) != 0)
		return -1;
	x->unknown[x->n_unknown++] = (struct unknown_jump){ .jmp = jmp, .why = why };
	return 0;
}

/* Entry I of table JT (read from the file), as a runtime target.  false
 * when it cannot be read or does not land on an instruction of the text
 * (where every real entry lands). */
static bool entry(const struct build *b, const struct sp_jtable *jt, long i, uintptr_t *t)
{
	const uintptr_t bias = b->oc->bias;
	size_t w = sp_jtable_entry_size(jt);
	uint64_t e = 0;   /* little-endian: a 4-byte entry fills its low half */
	if (!w || !sp_objdata_read(b->data, jt->table - bias + w * (uintptr_t)i, w, &e))
		return false;
	*t = sp_jtable_entry_target(jt, e, bias);
	return insn_start(b, *t);
}

#define MAX_ENTRIES 65536

/* Each indirect jmp: a jump table's entries join the taken set; a table
 * that cannot be established is unknown; anything else (a tail call, a
 * method table, a computed goto) is covered by the taken set as it is. */
static int tables(struct build *b)
{
	struct sp_btindex *x = b->x;
	for (size_t k = 0; k < b->n_jumps; k++) {
		const struct ijmp *j = &b->jumps[k];
		struct sp_jt_insn ins[24];
		for (int i = 0; i < j->n; i++) {
			ins[i].addr = j->addr[i];
			in_text(b->oc, j->addr[i], &ins[i].code, &ins[i].avail);
			if (ins[i].avail > SP_INSN_MAX_LEN)
				ins[i].avail = SP_INSN_MAX_LEN;
		}
		uintptr_t at = j->addr[j->n - 1];
		struct sp_jtable jt;
		sp_jtable_find(ins, j->n, &jt);
		if (jt.kind == SP_JT_NONE)
			continue;
		if (jt.kind == SP_JT_REL32_ELSEWHERE && b->data && sp_objdata_separate_rodata(b->data)) {
			x->tables_elsewhere++;   /* relative_words reads it */
			continue;
		}
		if (jt.kind == SP_JT_REL32_ELSEWHERE) {
			/* tables may sit in the code's own segment, where the
			 * word scan does not look */
			if (add_unknown(x, at, WHY_ELSEWHERE) != 0)
				return -1;
			continue;
		}
		if (jt.kind == SP_JT_UNKNOWN || !b->data) {
			if (add_unknown(x, at, jt.why ? jt.why : WHY_UNREADABLE) != 0)
				return -1;
			continue;
		}
		/* the bound holds only if nothing enters after the check */
		if (jt.count && sp_btindex_any_inside(x, jt.bound_from, at + 1))
			jt.count = 0;
		long n = 0;
		uintptr_t t;
		if (jt.count) {
			while (n < jt.count && entry(b, &jt, n, &t))
				n++;
			if (n < jt.count) {
				if (add_unknown(x, at, WHY_ENTRY) != 0)
					return -1;
				continue;
			}
		} else {
			/* no bound: every entry of a real table lands in the text,
			 * so the run of such words from the table's start holds it */
			while (n < MAX_ENTRIES && entry(b, &jt, n, &t))
				n++;
			if (n == 0 || n == MAX_ENTRIES) {
				if (add_unknown(x, at, WHY_EXTENT) != 0)
					return -1;
				continue;
			}
		}
		for (long i = 0; i < n; i++) {
			entry(b, &jt, i, &t);
			if (set_push(&x->taken, t, TAKEN_TABLE) != 0)
				return -1;
		}
		x->tables++;
		x->table_entries += (size_t)n;
	}
	return 0;
}

static void take_reloc(void *ctx, uint64_t vaddr, const char *how)
{
	struct build *b = ctx;
	if (take(b, (uintptr_t)vaddr + b->oc->bias, how) != 0)
		b->x->taken_unknown = true;
}

static void take_word(void *ctx, uint64_t vaddr, uint64_t value)
{
	(void)vaddr;
	take_reloc(ctx, value, TAKEN_WORD);
}

static int cmp_uptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* The entries of tables addressed from outside the straight line, and the
 * safety net for tables no pattern recognised: the 32-bit words on either
 * side of every RIP-relative reference into data, read as offsets from it,
 * while they land on an instruction of the text (a real table's entries
 * all do; junk stops the run at once). */
static int relative_words(struct build *b)
{
	if (b->n_refs)   /* qsort's array may not be NULL, even empty */
		sp_qsort(b->data_refs, b->n_refs, sizeof(*b->data_refs), cmp_uptr);
	const uintptr_t bias = b->oc->bias;
	for (size_t i = 0; i < b->n_refs; i++) {
		if (i && b->data_refs[i] == b->data_refs[i - 1])
			continue;
		uint64_t v = b->data_refs[i];
		for (int dir = 1; dir >= -1; dir -= 2) {
			for (long k = dir > 0 ? 0 : -1; k < MAX_ENTRIES && k > -MAX_ENTRIES; k += dir) {
				int32_t e;
				if (!sp_objdata_read(b->data, v + 4 * (uint64_t)k, 4, &e))
					break;
				uintptr_t t = (uintptr_t)(v + bias) + (uintptr_t)(intptr_t)e;
				if (!insn_start(b, t))
					break;
				if (set_push(&b->x->taken, t, TAKEN_REL) != 0)
					return -1;
			}
		}
	}
	return 0;
}

void sp_btindex_free(struct sp_btindex *x)
{
	if (!x)
		return;
	sp_free(x->path);
	sp_free(x->direct.a);
	sp_free(x->direct.how);
	sp_free(x->taken.a);
	sp_free(x->taken.how);
	sp_free(x->unknown);
	sp_scanmemo_free(x->memo);
	sp_sitememo_free(x->sites);
	sp_objcache_release((void *)x->pending, x->pending_len);
	sp_free(x);
}

static int cmp_unknown(const void *a, const void *b)
{
	const struct unknown_jump *x = a, *y = b;
	return x->jmp < y->jmp ? -1 : x->jmp > y->jmp;
}

struct sp_btindex *sp_btindex_build(const struct sp_objcode *oc)
{
	const struct sp_elf *elf = oc->elf;
	struct build b = { .oc = oc, .non_pie = elf->e_type == 2 /* ET_EXEC */ };
	struct sp_btindex *x = b.x = sp_calloc(1, sizeof(*x));
	uintptr_t *starts = sp_calloc(elf->n_syms + elf->n_ext + 1, sizeof(*starts));
	if (!x || !starts)
		goto fail;
	x->bias = oc->bias;
	b.data = oc->path ? sp_objdata_open(oc->path, elf) : NULL;
	/* the symbols' starts and the .eh_frame extents' (a stripped file's
	 * local functions), merged: both sorted */
	size_t n_starts = 0;
	for (size_t i = 0, j = 0; i < elf->n_syms || j < elf->n_ext;) {
		if (j == elf->n_ext || (i < elf->n_syms && elf->syms[i].value <= elf->ext[j].lo))
			starts[n_starts++] = oc->bias + elf->syms[i++].value;
		else
			starts[n_starts++] = oc->bias + elf->ext[j++].lo;
	}
	for (int r = 0; r < oc->n_text; r++)
		if (!(b.insn_start[r] = sp_calloc(1, (oc->text[r].end - oc->text[r].start) / 8 + 1)) ||
		    sweep(&b, r, starts, n_starts) != 0)
			goto fail;
	if (set_finish(&x->direct) != 0 || tables(&b) != 0)
		goto fail;
	if (!b.data || sp_objdata_relocs(b.data, take_reloc, &b) != 0) {
		x->taken_unknown = true;
		x->taken_why = WHY_RELOCS;
	} else if (x->taken_unknown) {
		x->taken_why = WHY_OOM;
	}
	if (b.data && b.non_pie)
		sp_objdata_words(b.data, take_word, &b);
	if (b.data && relative_words(&b) != 0)
		goto fail;
	if (set_finish(&x->taken) != 0)
		goto fail;
	if (x->n_unknown)   /* qsort's array may not be NULL, even empty */
		sp_qsort(x->unknown, x->n_unknown, sizeof(*x->unknown), cmp_unknown);
	goto done;
fail:
	sp_btindex_free(x);
	x = NULL;
done:   /* the builder's scratch, whichever way it ends */
	sp_free(starts);
	sp_free(b.data_refs);
	sp_free(b.jumps);
	for (int r = 0; r < SP_MAX_TEXT_RANGES; r++)
		sp_free(b.insn_start[r]);
	sp_objdata_close(b.data);
	return x;
}

/* ---- the on-disk cache (objcache.h) ----
 *
 * The index is a function of the code, its layout and symbol starts (all
 * relative to the bias), and of the file's relocations and data: all named
 * by the object's GNU build ID (a hash of the whole linked file).  An
 * object without one is not cached (its bytes could be hashed, but its
 * relocations and data are read from the file too).  Addresses are kept
 * relative to the bias; the static phrases (how, why) as their index in
 * PHRASES, never as pointers. */
#define CACHE_KIND "btindex"
#define CACHE_FORMAT 4u          /* 1: owncalls' direct targets only; 2: the
				  * sweep restarted at symbols only (3: and at
				  * .eh_frame extents); 3: Go's jump tables not
				  * read (jtable.h) */
#define NO_PHRASE 0xffu

/* Every phrase an index can hold.  Those of objdata.c and jtable.c are
 * matched by their text: an index holding a phrase missing here is not
 * stored (test_objcache checks libc's round trip). */
static const char *const PHRASES[] = {
	TAKEN_RIP, TAKEN_IMM, TAKEN_TABLE, TAKEN_WORD, TAKEN_REL,
	WHY_ELSEWHERE, WHY_UNREADABLE, WHY_ENTRY, WHY_EXTENT, WHY_RELOCS, WHY_OOM,
	"relocated pointer (DT_RELR)",                            /* objdata.c */
	"relocated pointer (R_X86_64_RELATIVE)",
	"IFUNC resolver (R_X86_64_IRELATIVE)",
	"relocated pointer (R_X86_64_64)",
	"a jump table whose address is not found before the jump", /* jtable.c */
};
#define N_PHRASES (sizeof(PHRASES) / sizeof(PHRASES[0]))

/* The payload: this header, then u64 direct[n_direct], taken[n_taken],
 * unknown_jmp[n_unknown] (relative to the bias), then u8
 * taken_how[n_taken], unknown_why[n_unknown] (indices into PHRASES). */
struct blob {
	uint64_t format, n_direct, n_taken, n_unknown;
	uint64_t tables, table_entries, tables_elsewhere;
	uint64_t taken_unknown, taken_why;
};

/* PHRASES' index of P (a few distinct pointers: remembered), or -1. */
static int phrase_of(const char *p, const char **seen, uint8_t *seen_ix, size_t *n_seen)
{
	if (!p)
		return NO_PHRASE;
	for (size_t i = 0; i < *n_seen; i++)
		if (seen[i] == p)
			return seen_ix[i];
	for (size_t i = 0; i < N_PHRASES; i++)
		if (strcmp(PHRASES[i], p) == 0) {
			if (*n_seen < 32) {
				seen[*n_seen] = p;
				seen_ix[(*n_seen)++] = (uint8_t)i;
			}
			return (int)i;
		}
	return -1;
}

static void *encode(const struct sp_btindex *x, size_t *len)
{
	const size_t nd = x->direct.n, nt = x->taken.n, nu = x->n_unknown;
	*len = sizeof(struct blob) + 8 * (nd + nt + nu) + nt + nu;
	uint8_t *p = sp_malloc(*len);
	if (!p)
		return NULL;
	const char *seen[32];
	uint8_t seen_ix[32];
	size_t n_seen = 0;
	int why = phrase_of(x->taken_why, seen, seen_ix, &n_seen);
	struct blob h = { CACHE_FORMAT, nd, nt, nu, x->tables, x->table_entries, x->tables_elsewhere,
			  x->taken_unknown, (uint64_t)why };
	memcpy(p, &h, sizeof(h));
	uint64_t *w = (uint64_t *)(p + sizeof(h));
	for (size_t i = 0; i < nd; i++)
		*w++ = x->direct.a[i] - x->bias;
	for (size_t i = 0; i < nt; i++)
		*w++ = x->taken.a[i] - x->bias;
	for (size_t i = 0; i < nu; i++)
		*w++ = x->unknown[i].jmp - x->bias;
	uint8_t *b = (uint8_t *)w;
	int bad = why < 0;
	for (size_t i = 0; i < nt && !bad; i++)
		bad = (*b++ = (uint8_t)phrase_of(x->taken.how[i], seen, seen_ix, &n_seen)) == 0xff;
	for (size_t i = 0; i < nu && !bad; i++)
		bad = (*b++ = (uint8_t)phrase_of(x->unknown[i].why, seen, seen_ix, &n_seen)) == 0xff;
	if (bad) {
		sp_debug("btindex: a phrase the cache does not know: not stored");
		sp_free(p);
		return NULL;
	}
	return p;
}

static const char *phrase_at(uint8_t i, bool *ok)
{
	*ok &= i < N_PHRASES;
	return i < N_PHRASES ? PHRASES[i] : NULL;
}

/* The index P holds, at BIAS; NULL unless it is whole and as built
 * (sorted, unique, every phrase known). */
static struct sp_btindex *decode(const uint8_t *p, size_t len, uintptr_t bias)
{
	struct blob h;
	if (len < sizeof(h))
		return NULL;
	memcpy(&h, p, sizeof(h));
	const uint64_t max = len / 8;   /* bounds every count before the products */
	if (h.format != CACHE_FORMAT || h.n_direct > max || h.n_taken > max || h.n_unknown > max ||
	    len != sizeof(h) + 8 * (h.n_direct + h.n_taken + h.n_unknown) + h.n_taken + h.n_unknown ||
	    h.taken_unknown > 1 || (h.taken_why != NO_PHRASE && h.taken_why >= N_PHRASES) ||
	    (h.taken_unknown && h.taken_why == NO_PHRASE))
		return NULL;
	struct sp_btindex *x = sp_calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->bias = bias;
	x->tables = h.tables;
	x->table_entries = h.table_entries;
	x->tables_elsewhere = h.tables_elsewhere;
	x->taken_unknown = h.taken_unknown;
	x->taken_why = h.taken_why == NO_PHRASE ? NULL : PHRASES[h.taken_why];
	x->direct.n = x->direct.cap = h.n_direct;
	x->taken.n = x->taken.cap = h.n_taken;
	x->n_unknown = x->cap_unknown = h.n_unknown;
	x->direct.a = sp_malloc(h.n_direct * sizeof(uintptr_t) + 1);
	x->taken.a = sp_malloc(h.n_taken * sizeof(uintptr_t) + 1);
	x->taken.how = sp_malloc(h.n_taken * sizeof(char *) + 1);
	x->unknown = sp_malloc(h.n_unknown * sizeof(*x->unknown) + 1);
	bool ok = x->direct.a && x->taken.a && x->taken.how && x->unknown;
	if (ok) {
		sp_prefault(x->direct.a, h.n_direct * sizeof(uintptr_t));
		sp_prefault(x->taken.a, h.n_taken * sizeof(uintptr_t));
		sp_prefault(x->taken.how, h.n_taken * sizeof(char *));
	}
	const uint8_t *w = p + sizeof(h), *b = w + 8 * (h.n_direct + h.n_taken + h.n_unknown);
	uint64_t v;
	for (size_t i = 0; ok && i < h.n_direct; i++, w += 8) {
		memcpy(&v, w, 8);
		x->direct.a[i] = (uintptr_t)v + bias;
		ok = i == 0 || x->direct.a[i - 1] < x->direct.a[i];
	}
	for (size_t i = 0; ok && i < h.n_taken; i++, w += 8) {
		memcpy(&v, w, 8);
		x->taken.a[i] = (uintptr_t)v + bias;
		x->taken.how[i] = phrase_at(*b++, &ok);
		ok = ok && (i == 0 || x->taken.a[i - 1] < x->taken.a[i]);
	}
	for (size_t i = 0; ok && i < h.n_unknown; i++, w += 8) {
		memcpy(&v, w, 8);
		x->unknown[i].jmp = (uintptr_t)v + bias;
		x->unknown[i].why = phrase_at(*b++, &ok);
		ok = ok && (i == 0 || x->unknown[i - 1].jmp <= x->unknown[i].jmp);
	}
	if (!ok) {
		sp_btindex_free(x);
		return NULL;
	}
	return x;
}

/* What decode would accept, checked in place (no allocation, nothing
 * written): the header, the order of every set, every phrase. */
static bool blob_ok(const uint8_t *p, size_t len)
{
	struct blob h;
	if (len < sizeof(h))
		return false;
	memcpy(&h, p, sizeof(h));
	const uint64_t max = len / 8;
	if (h.format != CACHE_FORMAT || h.n_direct > max || h.n_taken > max || h.n_unknown > max ||
	    len != sizeof(h) + 8 * (h.n_direct + h.n_taken + h.n_unknown) + h.n_taken + h.n_unknown ||
	    h.taken_unknown > 1 || (h.taken_why != NO_PHRASE && h.taken_why >= N_PHRASES) ||
	    (h.taken_unknown && h.taken_why == NO_PHRASE))
		return false;
	const uint8_t *w = p + sizeof(h), *b = w + 8 * (h.n_direct + h.n_taken + h.n_unknown);
	uint64_t v, prev = 0;
	for (size_t i = 0; i < h.n_direct; i++, w += 8, prev = v) {
		memcpy(&v, w, 8);
		if (i && prev >= v)
			return false;
	}
	for (size_t i = 0; i < h.n_taken; i++, w += 8, prev = v) {
		memcpy(&v, w, 8);
		if ((i && prev >= v) || *b++ >= N_PHRASES)
			return false;
	}
	for (size_t i = 0; i < h.n_unknown; i++, w += 8, prev = v) {
		memcpy(&v, w, 8);
		if ((i && prev > v) || *b++ >= N_PHRASES)
			return false;
	}
	return true;
}

/* The stored index X was loaded with, decoded now (its first query). */
static void ensure(const struct sp_btindex *cx)
{
	if (!cx->pending)
		return;
	struct sp_btindex *x = (struct sp_btindex *)cx;   /* lazily filled: the caller's lock */
	struct sp_btindex *y = decode(x->pending, x->pending_len, x->bias);
	if (y) {
		x->direct = y->direct;
		x->taken = y->taken;
		x->taken_unknown = y->taken_unknown;
		x->taken_why = y->taken_why;
		x->unknown = y->unknown;
		x->n_unknown = y->n_unknown;
		x->cap_unknown = y->cap_unknown;
		x->tables = y->tables;
		x->table_entries = y->table_entries;
		x->tables_elsewhere = y->tables_elsewhere;
		sp_free(y);
	} else {
		/* checked at load: only memory can fail here.  An index that
		 * knows nothing would let every window through: none is */
		x->broken = true;
	}
	sp_objcache_release((void *)x->pending, x->pending_len);
	x->pending = NULL;
}

void sp_btindex_key(const struct sp_objcode *oc, const uint8_t *build_id, size_t id_len,
		    struct sp_objcache_key *key)
{
	struct sp_objcache_hasher hs;
	sp_objcache_begin(&hs, CACHE_KIND);
	/* a non-PIE object's absolute values (immediates, data words) do not
	 * move with the bias: its index is relative to nothing (its bias is 0
	 * when loaded; a caller may choose another) */
	uint64_t head[4] = { CACHE_FORMAT, oc->elf->e_type, (uint64_t)oc->n_text,
			     oc->elf->e_type == ET_EXEC ? oc->bias : 0 };
	sp_objcache_feed(&hs, head, sizeof(head));
	sp_objcache_feed(&hs, build_id, id_len);
	for (int r = 0; r < oc->n_text; r++) {
		uint64_t range[2] = { oc->text[r].start - oc->bias, oc->text[r].end - oc->bias };
		sp_objcache_feed(&hs, range, sizeof(range));
	}
	/* the starts fed a block at a time: fed one by one, each was three
	 * rounds of the hash (its length, the word, the tail), ~3 % of an
	 * exec'ed child with one probe over libc's 12k symbols */
	uint64_t block[256];
	size_t k = 0;
	for (size_t i = 0; i < oc->elf->n_syms; i++) {
		block[k++] = oc->elf->syms[i].value;
		if (k == 256 || i + 1 == oc->elf->n_syms) {
			sp_objcache_feed(&hs, block, k * sizeof(block[0]));
			k = 0;
		}
	}
	/* the sweep restarts at the extents too (a debug file's symbols may
	 * come and go; the extents are the file's own, but fed all the same) */
	uint64_t n_ext = oc->elf->n_ext;
	sp_objcache_feed(&hs, &n_ext, sizeof(n_ext));
	for (size_t i = 0; i < oc->elf->n_ext; i++) {
		block[k++] = oc->elf->ext[i].lo;
		if (k == 256 || i + 1 == oc->elf->n_ext) {
			sp_objcache_feed(&hs, block, k * sizeof(block[0]));
			k = 0;
		}
	}
	sp_objcache_done(&hs, key);
}

/* The stored index for OC's code, or NULL.  Needs OC's ranges, not its
 * bytes (the key names the code by build ID). */
static struct sp_btindex *load_cached(const struct sp_objcode *oc, const struct sp_objcache_key *key)
{
	size_t len;
	uint8_t *p = sp_objcache_load(CACHE_KIND, key, &len);
	if (!p)
		return NULL;
	struct sp_btindex *x = NULL;
	if (!blob_ok(p, len))
		sp_objcache_reject(CACHE_KIND, key, "the payload does not decode as an index");
	else if ((x = sp_calloc(1, sizeof(*x)))) {
		x->bias = oc->bias;
		x->pending = p;   /* decoded at the first query (ensure) */
		x->pending_len = len;
		p = NULL;
	}
	sp_objcache_release(p, len);
	if (x) {
		x->memo = sp_scanmemo_new(key, oc->bias);
		x->sites = sp_sitememo_new(key, oc->bias);
	}
	return x;
}

/* Build OC's index and store it under KEY. */
static struct sp_btindex *build_and_store(const struct sp_objcode *oc, const struct sp_objcache_key *key)
{
	struct sp_btindex *x = sp_btindex_build(oc);
	if (x) {
		x->memo = sp_scanmemo_new(key, oc->bias);
		x->sites = sp_sitememo_new(key, oc->bias);
	}
	/* an index the file could not be read for is not the object's:
	 * built again next time rather than kept */
	size_t len;
	uint8_t *p;
	if (x && !x->taken_unknown && (p = encode(x, &len))) {
		sp_objcache_store(CACHE_KIND, key, p, len);
		sp_free(p);
	}
	return x;
}

struct sp_btindex *sp_btindex_build_cached(const struct sp_objcode *oc, const uint8_t *build_id,
					   size_t id_len, bool *loaded)
{
	*loaded = false;
	if (!build_id || !id_len || !sp_objcache_enabled())
		return sp_btindex_build(oc);
	struct sp_objcache_key key;
	sp_btindex_key(oc, build_id, id_len, &key);
	struct sp_btindex *x = load_cached(oc, &key);
	if (x) {
		*loaded = true;
		return x;
	}
	return build_and_store(oc, &key);
}

static bool same_set(const struct addrset *a, const struct addrset *b, const char *name, char *what,
		     size_t len)
{
	if (a->n != b->n) {
		snprintf(what, len, "%s: %zu addresses / %zu", name, a->n, b->n);
		return false;
	}
	for (size_t i = 0; i < a->n; i++) {
		const char *ha = a->how ? a->how[i] : NULL, *hb = b->how ? b->how[i] : NULL;
		if (a->a[i] != b->a[i] || (ha || hb) != (ha && hb) || (ha && strcmp(ha, hb))) {
			snprintf(what, len, "%s[%zu]: %#lx (%s) / %#lx (%s)", name, i, (unsigned long)a->a[i],
				 ha ? ha : "-", (unsigned long)b->a[i], hb ? hb : "-");
			return false;
		}
	}
	return true;
}

static bool same_phrase(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

bool sp_btindex_same(const struct sp_btindex *a, const struct sp_btindex *b, char *what, size_t len)
{
	ensure(a);
	ensure(b);
	if (a->bias != b->bias) {
		snprintf(what, len, "bias: %#lx / %#lx", (unsigned long)a->bias, (unsigned long)b->bias);
		return false;
	}
	if (!same_set(&a->direct, &b->direct, "direct", what, len) ||
	    !same_set(&a->taken, &b->taken, "taken", what, len))
		return false;
	if (a->taken_unknown != b->taken_unknown || !same_phrase(a->taken_why, b->taken_why)) {
		snprintf(what, len, "taken_unknown: %d (%s) / %d (%s)", a->taken_unknown,
			 a->taken_why ? a->taken_why : "-", b->taken_unknown, b->taken_why ? b->taken_why : "-");
		return false;
	}
	if (a->n_unknown != b->n_unknown) {
		snprintf(what, len, "unknown: %zu jumps / %zu", a->n_unknown, b->n_unknown);
		return false;
	}
	for (size_t i = 0; i < a->n_unknown; i++)
		if (a->unknown[i].jmp != b->unknown[i].jmp || !same_phrase(a->unknown[i].why, b->unknown[i].why)) {
			snprintf(what, len, "unknown[%zu]: %#lx (%s) / %#lx (%s)", i,
				 (unsigned long)a->unknown[i].jmp, a->unknown[i].why,
				 (unsigned long)b->unknown[i].jmp, b->unknown[i].why);
			return false;
		}
	if (a->tables != b->tables || a->table_entries != b->table_entries ||
	    a->tables_elsewhere != b->tables_elsewhere) {
		snprintf(what, len, "tables/entries/elsewhere: %zu/%zu/%zu / %zu/%zu/%zu", a->tables,
			 a->table_entries, a->tables_elsewhere, b->tables, b->table_entries, b->tables_elsewhere);
		return false;
	}
	return true;
}

/* The GNU build ID in the notes of the object mapped at OBJ's bias: what
 * is running, whatever is on disk now. */
struct mapped_id {
	const struct sp_object *obj;
	const uint8_t *id;
	size_t len;
};

static int find_build_id(struct dl_phdr_info *info, size_t size, void *v)
{
	(void)size;
	struct mapped_id *b = v;
	if (info->dlpi_addr != b->obj->bias || !b->obj->n_text)
		return 0;
	bool same = false;   /* the object whose text this is, not another at bias 0 */
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		same |= ph->p_type == PT_LOAD && info->dlpi_addr + ph->p_vaddr == b->obj->text[0].start;
	}
	for (int i = 0; same && i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
			const uint8_t *name = p + sizeof(*n);
			const uint8_t *desc = name + ((n->n_namesz + 3) & ~3u);
			if (desc + n->n_descsz > end)
				break;
			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
			    n->n_descsz >= 8) {
				b->id = desc;
				b->len = n->n_descsz;
				return 1;
			}
			p = desc + ((n->n_descsz + 3) & ~3u);
		}
	}
	return same;
}

const struct sp_btindex *sp_btindex_get(const struct sp_object *obj, const struct sp_elf *elf)
{
	for (struct sp_btindex *c = cache; c; c = c->next)
		if (c->bias == obj->bias && strcmp(c->path, obj->path) == 0)
			return c;
	struct sp_objcode oc = { .elf = elf, .path = obj->path, .bias = obj->bias, .n_text = obj->n_text };
	struct sp_btindex *x = NULL;
	int r = 0;
	for (int i = 0; i < obj->n_text; i++) {
		oc.text[i].start = obj->text[i].start;
		oc.text[i].end = obj->text[i].end;
	}
	/* cached only when the file read for relocations and data is the
	 * one mapped (not replaced on disk since) */
	struct mapped_id id = { obj, NULL, 0 };
	dl_iterate_phdr(find_build_id, &id);
	bool same_file = id.id && id.len == elf->build_id_len && memcmp(id.id, elf->build_id, id.len) == 0;
	/* a stored index needs no copy of the text (libc's is 1.9 MB: a third
	 * of an exec'ed child's attach went to copying it for nothing) */
	bool keyed = same_file && sp_objcache_enabled();
	struct sp_objcache_key key;
	if (keyed) {
		sp_btindex_key(&oc, id.id, id.len, &key);
		x = load_cached(&oc, &key);
	}
	if (x)
		goto keep;
	/* decode a pristine copy: our own patches may already be in the text */
	for (r = 0; r < obj->n_text; r++) {
		size_t len = obj->text[r].end - obj->text[r].start;
		uint8_t *copy = sp_malloc(len);
		if (!copy)
			goto out;
		sp_site_pristine(obj->text[r].start, len, copy);
		oc.text[r].bytes = copy;
	}
	x = keyed ? build_and_store(&oc, &key) : sp_btindex_build(&oc);
keep:
	if (x && !(x->path = sp_strdup(obj->path))) {
		sp_btindex_free(x);
		x = NULL;
	}
	if (x) {
		x->next = cache;
		cache = x;
	}
out:
	for (int i = 0; i < r; i++)
		sp_free((void *)oc.text[i].bytes);
	return x;
}

bool sp_btindex_any_inside(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi)
{
	ensure(idx);
	if (idx->broken)
		return true;
	size_t a = first_above(&idx->direct, lo);
	return a < idx->direct.n && idx->direct.a[a] < hi;
}

bool sp_btindex_taken_inside(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi,
			     uintptr_t *addr, const char **how)
{
	ensure(idx);
	if (idx->broken) {
		*addr = 0;
		*how = WHY_OOM;
		return true;
	}
	if (idx->taken_unknown) {
		*addr = 0;
		*how = idx->taken_why;
		return true;
	}
	size_t a = first_above(&idx->taken, lo);
	if (a < idx->taken.n && idx->taken.a[a] < hi) {
		*addr = idx->taken.a[a];
		*how = idx->taken.how[a];
		return true;
	}
	return false;
}

bool sp_btindex_unknown_jump(const struct sp_btindex *idx, uintptr_t lo, uintptr_t hi,
			     uintptr_t *jmp, const char **why)
{
	ensure(idx);
	size_t a = 0, b = idx->n_unknown;
	while (a < b) {           /* first jmp >= lo */
		size_t m = (a + b) / 2;
		if (idx->unknown[m].jmp < lo)
			a = m + 1;
		else
			b = m;
	}
	if (a < idx->n_unknown && idx->unknown[a].jmp < hi) {
		*jmp = idx->unknown[a].jmp;
		*why = idx->unknown[a].why;
		return true;
	}
	return false;
}

void sp_btindex_stats(const struct sp_btindex *idx, struct sp_btindex_stats *st)
{
	ensure(idx);
	st->direct = idx->direct.n;
	st->taken = idx->taken.n;
	st->tables = idx->tables;
	st->table_entries = idx->table_entries;
	st->unknown_tables = idx->n_unknown;
	st->tables_elsewhere = idx->tables_elsewhere;
}

struct sp_scanmemo *sp_btindex_memo(const struct sp_btindex *idx)
{
	return idx ? idx->memo : NULL;
}

struct sp_sitememo *sp_btindex_sitememo(const struct sp_btindex *idx)
{
	return idx ? idx->sites : NULL;
}

void sp_btindex_flush_memos(void)
{
	for (struct sp_btindex *c = cache; c; c = c->next) {
		sp_scanmemo_flush(c->memo);
		sp_sitememo_flush(c->sites);
	}
}
