/* targets — the sites a spec item names in one loaded object; see targets.h. */
#include "targets.h"
#include "heap.h"
#include "sort.h"
#include "btindex.h"
#include "errors.h"
#include "golang.h"
#include "insn.h"
#include "site.h"
#include "symcache.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

/* ELF files already read, by path: libc is read once, not once per item. */
struct elf_cache {
	struct sp_elf *elf;
	struct elf_cache *next;
};
static struct elf_cache *elves;

struct sp_elf *sp_targets_elf(const char *path, char *err, size_t errlen)
{
	for (struct elf_cache *c = elves; c; c = c->next)
		if (strcmp(c->elf->path, path) == 0)
			return c->elf;
	struct sp_elf *e;
	if (sp_elf_open_cached(path, &e, err, errlen) != 0)
		return NULL;
	struct elf_cache *c = sp_malloc(sizeof(*c));
	if (!c) {
		sp_elf_close(e);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->elf = e;
	c->next = elves;
	elves = c;
	return e;
}

/* ---- resolving an item to sites ---- */

/* The first byte after VADDR where another function starts (a symbol, or
 * an .eh_frame extent: a stripped file's local functions), or the end of
 * the text holding VADDR: a jmp window must not reach into it. */
static uintptr_t next_symbol(const struct sp_object *obj, const struct sp_elf *elf, uintptr_t func)
{
	uint64_t next = sp_elf_next_start(elf, func - obj->bias);
	uintptr_t limit = next ? obj->bias + next : 0;
	for (int i = 0; i < obj->n_text; i++)
		if (func >= obj->text[i].start && func < obj->text[i].end && (!limit || limit > obj->text[i].end))
			limit = obj->text[i].end;
	return limit;
}

/* uretprobe, usession and the latency action swap the return address. */
bool sp_item_wants_return(const struct sp_spec_item *item)
{
	return item->kind == SP_KIND_URETPROBE || item->kind == SP_KIND_USESSION ||
	       item->action == SP_ACT_LATENCY;
}

/* The address the process actually calls for an IFUNC symbol: run the
 * resolver exactly as the dynamic linker did (x86-64 resolvers take no
 * arguments: glibc's read the cpu features ld.so set up), so the answer is
 * the one it got.  Not dlsym: dlopen/dlsym from our constructor, which runs
 * before libc's (-z initfirst), would initialise libc early and lose the
 * environment. */
static uintptr_t ifunc_target(const struct sp_object *obj, const struct sp_sym *sym)
{
	uintptr_t (*resolver)(void) = (uintptr_t (*)(void))(obj->bias + sym->value);
	return resolver();
}

/* Fill T for SYM (+OFFSET).  0, or -errno with a message in ERR. */
int sp_target_fill(const struct sp_object *obj, const struct sp_elf *elf,
		   const struct sp_sym *sym, uint64_t offset, struct target *t,
		   char *err, size_t errlen)
{
	uintptr_t func = obj->bias + sym->value;
	uint64_t size = sym->size;
	t->implementation = NULL;
	if (sym->is_ifunc) {
		func = ifunc_target(obj, sym);
		if (!func) {
			snprintf(err, errlen, "the IFUNC resolver of %s returned NULL", sym->name);
			return -EINVAL;
		}
		if (!sp_maps_text_avail(obj, func)) {
			uintptr_t vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
			bool in_vdso = vdso && func >= vdso && func < vdso + 0x4000;
			snprintf(err, errlen, "the IFUNC %s resolves outside %s (%#lx%s)", sym->name,
				 sp_maps_base_name(obj->path), (unsigned long)func,
				 in_vdso ? ", in the vDSO, which is not probed" : "");
			return -EINVAL;
		}
		const struct sp_sym *impl = sp_elf_containing(elf, func - obj->bias);
		if (impl && impl->value == func - obj->bias) {
			t->implementation = sp_strdup(impl->name);
			size = impl->size;
		} else {
			/* no symbol (a stripped libc without its debug file) */
			t->implementation = sp_asprintf("%s+%#lx", sp_maps_base_name(obj->path),
						      (unsigned long)(func - obj->bias));
			size = 0;
		}
	}
	/* no symbol size (assembly without .size, a stripped IFUNC
	 * implementation): the .eh_frame extent starting there */
	if (!size)
		size = sp_elf_fde_size(elf, func - obj->bias);
	if (offset) {
		if (size && offset >= size) {
			snprintf(err, errlen, "offset +%#lx is past the end of %s (size %#lx)",
				 (unsigned long)offset, sym->name, (unsigned long)size);
			return -EINVAL;
		}
		if (!size) {
			snprintf(err, errlen, "%s has no known size: cannot check that +%#lx is an instruction boundary",
				 sym->name, (unsigned long)offset);
			return -EINVAL;
		}
		size_t avail = sp_maps_text_avail(obj, func);
		if (avail < size) {
			snprintf(err, errlen, "%s is not inside the object's executable text", sym->name);
			return -EINVAL;
		}
		char why[256];
		uint8_t *code = sp_malloc(size);   /* decoded as it was: ours may be patched in */
		if (!code) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		sp_site_pristine(func, size, code);
		int rc = sp_insn_boundary(code, size, func, offset, why, sizeof(why));
		sp_free(code);
		if (rc != 0) {
			snprintf(err, errlen, "%s+%#lx: %s", sym->name, (unsigned long)offset, why);
			return -EINVAL;
		}
	}
	t->addr = func + offset;
	t->fn = (struct sp_func_extent){ .start = size ? func : 0, .size = size,
					 .limit = next_symbol(obj, elf, func),
					 .bt = sp_btindex_get(obj, elf), .elf = elf,
					 .landing_pads = elf->has_except_table };
	/* a Go function's entry probe goes past its stack check (golang.h) */
	t->addr += sp_go_site(obj->path, func, size, offset, &t->fn);
	/* any function of a Go object: a hop near it makes no carrier in its
	 * Go code once goroutines may be parked there (hop.h) */
	t->fn.go_running = sp_go_running(obj->path, obj->bias);
	t->symbol = offset ? sp_asprintf("%s+%#lx", sym->name, (unsigned long)offset) : sp_strdup(sym->name);
	return 0;
}

static int by_addr(const void *a, const void *b)
{
	const struct target *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* at one address the IFUNC name (strlen) beats its implementation's */
	return (y->implementation != NULL) - (x->implementation != NULL);
}

/* One target per address: a glob can name a site twice (an IFUNC and its
 * implementation, two IFUNCs sharing one implementation). */
static long dedupe_targets(struct target *ts, long n)
{
	if (n < 2)
		return n;
	sp_qsort(ts, (size_t)n, sizeof(*ts), by_addr);
	long k = 1;
	for (long i = 1; i < n; i++) {
		if (ts[i].addr == ts[k - 1].addr) {
			sp_free(ts[i].symbol);
			sp_free(ts[i].implementation);
			continue;
		}
		ts[k++] = ts[i];
	}
	return k;
}

/* Every site ITEM names, into *OUT (malloc'ed).  Count, or -errno with ERR. */
/* USDT notes already read, by path. */
struct note_cache {
	char *path;
	struct sp_usdt_notes notes;
	struct note_cache *next;
};
static struct note_cache *note_files;

static const struct sp_usdt_notes *notes_get(const char *path, char *err, size_t errlen)
{
	for (struct note_cache *c = note_files; c; c = c->next)
		if (strcmp(c->path, path) == 0)
			return &c->notes;
	struct note_cache *c = sp_calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (sp_usdt_read(path, &c->notes, err, errlen) != 0) {
		sp_free(c);
		return NULL;
	}
	c->path = sp_strdup(path);
	c->next = note_files;
	note_files = c;
	return &c->notes;
}

/* The sites of usdt:[object:]provider:name (globs allowed). */
static long resolve_usdt(const struct sp_spec_item *item, const struct sp_object *obj,
			 struct sp_elf *elf, struct target **out, char *err, size_t errlen)
{
	const struct sp_usdt_notes *notes = notes_get(obj->path, err, errlen);
	if (!notes)
		return -EINVAL;
	if (notes->n == 0) {
		snprintf(err, errlen, "%s has no USDT notes (.note.stapsdt)", sp_maps_base_name(obj->path));
		return -ENOENT;
	}
	struct target *ts = sp_calloc(notes->n, sizeof(*ts));
	if (!ts)
		return -ENOMEM;
	long k = 0;
	for (size_t i = 0; i < notes->n; i++) {
		const struct sp_usdt_note *n = &notes->v[i];
		if (fnmatch(item->provider, n->provider, 0) != 0 || fnmatch(item->name, n->name, 0) != 0)
			continue;
		struct target *t = &ts[k++];
		t->addr = obj->bias + n->pc;
		t->symbol = sp_asprintf("%s:%s", n->provider, n->name);
		t->note = n;
		uint64_t fs = 0, fz = 0;   /* a sized symbol, else the .eh_frame extent */
		bool known = sp_elf_func_extent(elf, n->pc, &fs, &fz);
		t->fn = (struct sp_func_extent){ .start = known ? obj->bias + fs : 0,
						 .size = known ? fz : 0,
						 .limit = next_symbol(obj, elf, t->addr),
						 .bt = sp_btindex_get(obj, elf), .elf = elf,
						 .landing_pads = elf->has_except_table };
	}
	if (k == 0) {
		snprintf(err, errlen, "no USDT probe %s:%s in %s", item->provider, item->name,
			 sp_maps_base_name(obj->path));
		sp_free(ts);
		return -ENOENT;
	}
	*out = ts;
	return k;
}

long sp_targets_resolve(const struct sp_spec_item *item, const struct sp_object *obj,
			struct sp_elf *elf, struct target **out, char *err, size_t errlen)
{
	*out = NULL;
	if (item->kind == SP_KIND_USDT)
		return resolve_usdt(item, obj, elf, out, err, errlen);
	if (item->has_address) {
		const struct sp_sym *sym = sp_elf_containing(elf, item->address);
		if (!sym && item->internal) {
			struct target *t = sp_calloc(1, sizeof(*t));
			if (!t)
				return -ENOMEM;
			t->addr = obj->bias + item->address;
			t->symbol = sp_asprintf("%#lx", (unsigned long)item->address);
			t->fn.limit = next_symbol(obj, elf, t->addr);
			uint64_t fs, fz;   /* the .eh_frame extent holding it, if any */
			if (sp_elf_func_extent(elf, item->address, &fs, &fz)) {
				t->fn.start = obj->bias + fs;
				t->fn.size = fz;
			}
			t->fn.bt = sp_btindex_get(obj, elf);
			t->fn.elf = elf;
			t->fn.landing_pads = elf->has_except_table;
			*out = t;
			return 1;
		}
		if (!sym) {
			snprintf(err, errlen, "address %#lx is not inside any function of %s",
				 (unsigned long)item->address, sp_maps_base_name(obj->path));
			return -ENOENT;
		}
		if (sym->is_ifunc) {
			snprintf(err, errlen, "address %#lx is inside the IFUNC resolver %s; name the symbol instead",
				 (unsigned long)item->address, sym->name);
			return -EINVAL;
		}
		struct target *t = sp_calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		if (sp_item_wants_return(item) && item->address != sym->value) {
			sp_free(t);
			snprintf(err, errlen, "return probes attach at a function entry: %#lx is %s+%#lx",
				 (unsigned long)item->address, sym->name,
				 (unsigned long)(item->address - sym->value));
			return -EINVAL;
		}
		int rc = sp_target_fill(obj, elf, sym, item->address - sym->value, t, err, errlen);
		if (rc) {
			sp_free(t);
			return rc;
		}
		*out = t;
		return 1;
	}
	const struct sp_sym **syms;
	long n = sp_elf_match(elf, item->name, &syms);
	if (n < 0) {
		snprintf(err, errlen, "cannot match '%s': %s", item->name, strerror((int)-n));
		return n;
	}
	if (n == 0) {
		if (strpbrk(item->name, "*?["))
			snprintf(err, errlen, "no function matches '%s' in %s", item->name, sp_maps_base_name(obj->path));
		else
			snprintf(err, errlen, "symbol '%s' not found in %s", item->name, sp_maps_base_name(obj->path));
		sp_free(syms);
		return -ENOENT;
	}
	struct target *ts = sp_calloc((size_t)n, sizeof(*ts));
	if (!ts) {
		sp_free(syms);
		return -ENOMEM;
	}
	long k = 0;
	for (long i = 0; i < n; i++) {
		char e2[512];
		if (sp_target_fill(obj, elf, syms[i], item->offset, &ts[k], e2, sizeof(e2)) == 0)
			k++;
		else if (n == 1) {
			snprintf(err, errlen, "%s", e2);
			sp_free(syms);
			sp_free(ts);
			return -EINVAL;
		} else
			sp_probe_error(item->text, "%s", e2);   /* this match only; the others attach */
	}
	sp_free(syms);
	k = dedupe_targets(ts, k);
	*out = ts;
	return k;
}
