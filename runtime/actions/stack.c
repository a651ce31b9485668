/* stack — see stack.h. */
#define UNW_LOCAL_ONLY
#include "symcache.h"
#include "demangle.h"
#include "golang_stack.h"
#include "heap.h"
#include "sort.h"
#include "stack.h"
#include "json.h"
#include "dispatch.h"
#include "elfsym.h"
#include "log.h"
#include "maps.h"
#include "rawsys.h"
#include "probe.h"
#include "shm.h"
#include "tstate.h"
#include "uret.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <libunwind.h>
#include <limits.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>

static struct sp_stack_area *area;      /* the table and its slots taken */
static _Atomic uint64_t dropped;         /* stacks not recorded: no room, or a fork */

/* libunwind takes locks of its own (its caches, its one-time init) and
 * glibc's dl_iterate_phdr's: a fork while another thread walks would give
 * the child a lock held for ever, and its first walk would hang with every
 * signal blocked.  So a fork waits for the walks under way and none
 * starts until it is done. */
static _Atomic int walkers;
static _Atomic bool forking;
static __thread int my_walks __attribute__((tls_model("initial-exec")));   /* this thread's, under way */

int sp_stack_prepare(void)
{
	if (area)
		return 0;
	/* under the launcher, in its shared file: it reports the stacks of a
	 * process that was killed, with the objects noted for symbolising */
	uint64_t off = 0;
	int fd = sp_shm_stacks(&off);
	void *p = sp_shm_map_stripes(fd, off, sizeof(*area), NULL);
	if (p == MAP_FAILED)
		return -errno;
	area = p;
	sp_stack_note_objects();
	return 0;
}

void sp_stack_note_objects(void)
{
	if (!area || !sp_shm_active())
		return;
	struct sp_object *objs;
	size_t n;
	if (sp_maps_snapshot(&objs, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < objs[i].n_text; k++)
			sp_shm_note_object(objs[i].path, objs[i].bias, objs[i].text[k].start, objs[i].text[k].end);
	sp_maps_free(objs, n);
}

void sp_stack_atfork_child(void)
{
	/* the parent's stacks are the parent's: an empty table, the child's
	 * own under the launcher */
	uint64_t off = 0;
	int fd = sp_shm_stacks(&off);
	if (area && sp_shm_map_stripes(fd, off, sizeof(*area), area) != MAP_FAILED)
		sp_stack_note_objects();
	atomic_store(&dropped, 0);
	atomic_store(&walkers, my_walks);   /* only this thread is left */
	atomic_store(&forking, false);
}

void sp_stack_atfork_prepare(void)
{
	atomic_store(&forking, true);
	/* not our own: a fork from a signal handler inside this thread's walk */
	while (atomic_load(&walkers) > my_walks)
		sp_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
}

void sp_stack_atfork_parent(void)
{
	atomic_store(&forking, false);
}

static bool walk_begin(void)
{
	if (atomic_load(&forking))
		return false;
	atomic_fetch_add(&walkers, 1);
	my_walks++;
	if (!atomic_load(&forking))
		return true;
	my_walks--;
	atomic_fetch_sub(&walkers, 1);
	return false;
}

static void walk_end(void)
{
	my_walks--;
	atomic_fetch_sub(&walkers, 1);
}

int sp_stack_walk(struct selfprobe_ctx *ctx, uintptr_t *ips, int max)
{
	if (max <= 0)
		return 0;
	if (!walk_begin())
		return -EAGAIN;   /* a fork is under way */
	/* A context made of the probe's registers, on both paths: rip is the
	 * site itself (the int3 path's ucontext has rip past the int3) and any
	 * handler's changes are seen. */
	ucontext_t uc;
	unw_context_t *uctx;
	{
		memset(&uc, 0, sizeof(uc));
		greg_t *g = uc.uc_mcontext.gregs;
		const struct selfprobe_regs *r = ctx->regs;
		g[REG_R8] = (greg_t)r->r8, g[REG_R9] = (greg_t)r->r9, g[REG_R10] = (greg_t)r->r10;
		g[REG_R11] = (greg_t)r->r11, g[REG_R12] = (greg_t)r->r12, g[REG_R13] = (greg_t)r->r13;
		g[REG_R14] = (greg_t)r->r14, g[REG_R15] = (greg_t)r->r15, g[REG_RDI] = (greg_t)r->rdi;
		g[REG_RSI] = (greg_t)r->rsi, g[REG_RBP] = (greg_t)r->rbp, g[REG_RBX] = (greg_t)r->rbx;
		g[REG_RDX] = (greg_t)r->rdx, g[REG_RAX] = (greg_t)r->rax, g[REG_RCX] = (greg_t)r->rcx;
		g[REG_RSP] = (greg_t)r->rsp, g[REG_RIP] = (greg_t)r->rip, g[REG_EFL] = (greg_t)r->eflags;
		uctx = (unw_context_t *)&uc;
	}
	/* at a return, the frame is the caller's: start there */
	size_t swapped = sp_uret_unswap();
	unw_cursor_t cur;
	int n = 0;
	/* libunwind's libc calls (dl_iterate_phdr, memcmp …) are the
	 * runtime's, for the =stack action and selfprobe_backtrace alike */
	sp_tls.runtime++;
	/* init_local2, not init_local: the latter is interposed (unwind_hooks)
	 * and would park every return probe of the thread */
	if (unw_init_local2(&cur, uctx, UNW_INIT_SIGNAL_FRAME) == 0) {
		do {
			unw_word_t ip;
			if (unw_get_reg(&cur, UNW_REG_IP, &ip) != 0 || ip == 0)
				break;
			ips[n++] = (uintptr_t)ip;
		} while (n < max && unw_step(&cur) > 0);
	}
	sp_tls.runtime--;
	sp_uret_reswap(swapped);
	walk_end();
	return n;
}

static uint64_t hash_stack(const struct sp_probe *p, const uintptr_t *ips, int n)
{
	uint64_t h = 1469598103934665603ull ^ (uintptr_t)p;
	for (int i = 0; i < n; i++) {
		h ^= ips[i];
		h *= 1099511628211ull;
	}
	return h ? h : 1;
}

int sp_stack_handler(struct selfprobe_ctx *ctx, void *data)
{
	(void)data;
	uintptr_t ips[SP_STACK_DEPTH];
	int n = sp_stack_walk(ctx, ips, SP_STACK_DEPTH);
	if (n == -EAGAIN)
		atomic_fetch_add(&dropped, 1);
	if (n <= 0 || !area)
		return 0;
	const struct sp_probe *p = ctx->probe;
	uint64_t h = hash_stack(p, ips, n);
	for (uint32_t i = (uint32_t)h & (SP_STACKS_MAX - 1), tries = 0; tries < 64;
	     i = (i + 1) & (SP_STACKS_MAX - 1), tries++) {
		struct sp_stack_entry *e = &area->table[i];
		uint64_t cur = atomic_load(&e->hash);
		if (cur == 0) {
			uint64_t zero = 0;
			if (atomic_compare_exchange_strong(&e->hash, &zero, h)) {
				e->probe = p;
				e->record = p->shm_record;
				e->depth = n;
				for (int k = 0; k < n; k++)
					e->ips[k] = ips[k];
				atomic_store(&e->ready, 1);
				__atomic_fetch_add(&e->count, 1, __ATOMIC_RELAXED);
				/* each slot is taken once: n_taken stays within the table */
				atomic_store(&area->taken[atomic_fetch_add(&area->n_taken, 1)], i + 1);
				return 0;
			}
			cur = zero;
		}
		if (cur == h) {
			while (!atomic_load(&e->ready))
				;   /* another thread is writing the same new stack */
			if (e->probe == p && e->depth == n && memcmp(e->ips, ips, (size_t)n * sizeof(*ips)) == 0) {
				__atomic_fetch_add(&e->count, 1, __ATOMIC_RELAXED);
				return 0;
			}
		}
	}
	atomic_fetch_add(&dropped, 1);
	return 0;
}

/* A C++ name (demangle.h) demangled into TMP (LEN bytes) and returned, any
 * other name returned as it is.  The demangler's work space is on the
 * stack, sized by the name (up to ~160 bytes a character): more than a
 * 64 KiB thread stack has room for when a block's print() names frames in
 * a handler.  So it runs on a stack of ours (sp_go_call_on_stack), one
 * kept for names up to DM_STACK's, taken by one caller at a time; a
 * second one at the same moment (another thread, a signal handler's hit
 * nested in ours) or a longer name gets a stack of its own for the call. */
#define DM_STACK (256 * 1024)
struct dm_call {
	const char *name;
	char *out;
	size_t len;
	bool ok;
};
static __thread struct dm_call *dm_arg __attribute__((tls_model("initial-exec")));
static char *dm_stack;
static atomic_bool dm_busy;

static void dm_run(void)
{
	/* read at entry: a nested call in between puts back what it changed */
	struct dm_call *c = dm_arg;
	c->ok = sp_demangle(c->name, c->out, c->len);
}

static const char *demangled(const char *name, char *tmp, size_t len)
{
	if (strncmp(name, "_Z", 2) != 0)
		return name;
	size_t need = sp_demangle_stack_need(name);
	bool shared = need <= DM_STACK && !atomic_exchange(&dm_busy, true);
	if (shared && !dm_stack)
		dm_stack = sp_malloc(DM_STACK);
	char *stack = shared ? dm_stack : sp_malloc(need);
	struct dm_call c = { .name = name, .out = tmp, .len = len };
	if (stack) {
		struct dm_call *prev = dm_arg;
		dm_arg = &c;
		sp_go_call_on_stack(dm_run, stack + (shared ? DM_STACK : need));
		dm_arg = prev;
	}
	if (shared)
		atomic_store(&dm_busy, false);
	else
		sp_free(stack);
	return c.ok ? tmp : name;
}

/* NAME+OFF into BUF, a C++ name demangled; OFF in hex (a stack's frames)
 * or decimal (bpftrace's ustack). */
static void put_frame(char *buf, size_t len, const char *name, unsigned long off, bool hex)
{
	char dm[256];
	snprintf(buf, len, hex ? "%s+%#lx" : "%s+%lu", demangled(name, dm, sizeof(dm)), off);
}

/* ELF files read for symbolisation, at report time only. */
struct sym_file {
	char *path;
	struct sp_elf *elf;
	struct sym_file *next;
};
static struct sym_file *sym_files;

static const struct sp_elf *elf_for(const char *path)
{
	for (struct sym_file *f = sym_files; f; f = f->next)
		if (strcmp(f->path, path) == 0)
			return f->elf;
	struct sym_file *f = sp_calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	char err[128];
	char real[PATH_MAX];   /* not realpath(path, NULL): its copy is malloc'ed */
	bool resolved = realpath(path, real) != NULL;
	if (sp_elf_open_cached(resolved ? real : path, &f->elf, err, sizeof(err)) != 0)
		f->elf = NULL;
	f->path = sp_strdup(path);
	f->next = sym_files;
	sym_files = f;
	return f->elf;
}

/* The symbol of the .symtab (or its debug file) of PATH loaded at *BIAS
 * that covers Q, or NULL; *BIAS becomes 0 for a non-PIE executable (its
 * symbols are absolute). */
static const struct sp_sym *elf_sym_at(const char *path, uintptr_t *bias, uintptr_t q)
{
	const struct sp_elf *e = elf_for(path);
	if (e && e->e_type == ET_EXEC)
		*bias = 0;
	return e && q >= *bias ? sp_elf_containing(e, q - *bias) : NULL;
}

/* The .symtab (or its debug file) of PATH loaded at BIAS knows Q? */
static bool elf_symbol(const char *path, uintptr_t bias, uintptr_t ip, uintptr_t q, char *buf, size_t len)
{
	const struct sp_sym *sym = elf_sym_at(path, &bias, q);
	if (!sym)
		return false;
	put_frame(buf, len, sym->name, (unsigned long)(ip - bias - sym->value), true);
	return true;
}

static void object_offset(const char *path, uintptr_t base, uintptr_t ip, char *buf, size_t len)
{
	const char *name = strrchr(path, '/');
	snprintf(buf, len, "%s+%#lx", name ? name + 1 : path, (unsigned long)(ip - base));
}

/* "func+0x12" or "lib.so+0x1234" for IP (a return address: look up ip-1,
 * except the first frame, the site itself).  In this process: dladdr,
 * then the ELF symbols; for another (V's objects): the ELF symbols. */
static void symbolize(const struct sp_stack_view *v, uintptr_t ip, int first, char *buf, size_t len)
{
	uintptr_t q = first ? ip : ip - 1;
	if (v->other_process) {
		for (size_t i = v->n_objs; i-- > 0;) {   /* the latest mapping there */
			const struct sp_shm_object *o = &v->objs[i];
			if (q < o->start || q >= o->end)
				continue;
			if (!elf_symbol(o->path, o->bias, ip, q, buf, len))
				object_offset(o->path, o->bias, ip, buf, len);
			return;
		}
		snprintf(buf, len, "%#lx", (unsigned long)ip);
		return;
	}
	Dl_info info;
	if (dladdr((void *)q, &info) && info.dli_sname && info.dli_saddr) {
		put_frame(buf, len, info.dli_sname, (unsigned long)(ip - (uintptr_t)info.dli_saddr), true);
		return;
	}
	if (info.dli_fname && info.dli_fbase) {
		/* not exported: the ELF .symtab (or its debug file) may know */
		if (!elf_symbol(info.dli_fname, (uintptr_t)info.dli_fbase, ip, q, buf, len))
			object_offset(info.dli_fname, (uintptr_t)info.dli_fbase, ip, buf, len);
		return;
	}
	snprintf(buf, len, "%#lx", (unsigned long)ip);
}

/* "sym+offset" (decimal) for IP in the object at PATH loaded at BIAS, from
 * its ELF symbols; false when none covers it. */
static bool name_from_elf(const char *path, uintptr_t bias, uintptr_t ip, char *buf, size_t len)
{
	const struct sp_sym *sym = elf_sym_at(path, &bias, ip);
	if (!sym)
		return false;
	put_frame(buf, len, sym->name, (unsigned long)(ip - bias - sym->value), false);
	return true;
}

void sp_stack_view_symbolize_bt(const struct sp_stack_view *v, uintptr_t ip, char *buf, size_t len)
{
	for (size_t i = v->n_objs; i-- > 0;) {   /* the latest mapping there */
		const struct sp_shm_object *o = &v->objs[i];
		if (ip < o->start || ip >= o->end)
			continue;
		if (name_from_elf(o->path, o->bias, ip, buf, len))
			return;
		break;
	}
	snprintf(buf, len, "%#lx", (unsigned long)ip);
}

void sp_stack_symbolize_bt(uintptr_t ip, char *buf, size_t len)
{
	/* bcc's way, as bpftrace 0.17 prints user stacks: the address itself
	 * looked up (a return address too), a decimal offset, the bare address
	 * in hex when no symbol covers it */
	Dl_info info = { 0 };
	if (dladdr((void *)ip, &info) && info.dli_sname && info.dli_saddr) {
		put_frame(buf, len, info.dli_sname, (unsigned long)(ip - (uintptr_t)info.dli_saddr), false);
		return;
	}
	if (info.dli_fname && info.dli_fbase && name_from_elf(info.dli_fname, (uintptr_t)info.dli_fbase, ip, buf, len))
		return;
	snprintf(buf, len, "%#lx", (unsigned long)ip);
}

static int by_count(const void *a, const void *b)
{
	const struct sp_stack_entry *x = *(const struct sp_stack_entry *const *)a;
	const struct sp_stack_entry *y = *(const struct sp_stack_entry *const *)b;
	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

static bool is_of(const struct sp_stack_view *v, const struct sp_stack_entry *e, const void *probe, int record)
{
	return atomic_load(&((struct sp_stack_entry *)e)->ready) &&
	       (v->other_process ? e->record == record : e->probe == probe);
}

static uint32_t n_taken(const struct sp_stack_view *v)
{
	if (!v->area)
		return 0;
	uint32_t n = atomic_load(&((struct sp_stack_area *)v->area)->n_taken);
	return n < SP_STACKS_MAX ? n : SP_STACKS_MAX;
}

/* The entry of the K-th slot taken, or NULL while it is being written. */
static const struct sp_stack_entry *taken(const struct sp_stack_view *v, uint32_t k)
{
	uint32_t slot = atomic_load(&((struct sp_stack_area *)v->area)->taken[k]);
	const struct sp_stack_entry *e = slot && slot <= SP_STACKS_MAX ? &v->area->table[slot - 1] : NULL;
	return e && atomic_load(&((struct sp_stack_entry *)e)->ready) ? e : NULL;
}

/* The stacks of one probe, most counted first: malloc'ed, *N of them. */
static const struct sp_stack_entry **stacks_of(const struct sp_stack_view *v, const void *probe, int record,
						size_t *n)
{
	*n = 0;
	uint32_t all = n_taken(v);
	const struct sp_stack_entry **out = v->area ? sp_malloc((all + 1) * sizeof(*out)) : NULL;
	for (uint32_t k = 0; out && k < all; k++) {
		const struct sp_stack_entry *e = taken(v, k);
		if (e && is_of(v, e, probe, record))
			out[(*n)++] = e;
	}
	if (out)
		sp_qsort(out, *n, sizeof(*out), by_count);
	return out;
}

void sp_stack_view_text(FILE *f, const struct sp_stack_view *v, const void *probe, int record,
			const char *label, int top)
{
	size_t n;
	const struct sp_stack_entry **s = stacks_of(v, probe, record, &n);
	for (size_t i = 0; i < n && (int)i < top; i++) {
		fprintf(f, "@stacks[%s,\n", label);
		for (int k = 0; k < s[i]->depth; k++) {
			char sym[256];
			symbolize(v, s[i]->ips[k], k == 0, sym, sizeof(sym));
			fprintf(f, "    %s\n", sym);
		}
		fprintf(f, "]: %lu\n", (unsigned long)s[i]->count);
	}
	if (n > (size_t)top)
		fprintf(f, "@stacks[%s]: %zu more distinct stacks (see the folded output)\n", label, n - top);
	sp_free(s);
}

void sp_stack_view_json(FILE *f, const struct sp_stack_view *v, const void *probe, int record, int top)
{
	fputs(", \"stacks\": [", f);
	size_t n;
	const struct sp_stack_entry **s = stacks_of(v, probe, record, &n);
	for (size_t i = 0; i < n && (int)i < top; i++) {
		fprintf(f, "%s{\"count\": %lu, \"frames\": [", i ? ", " : "", (unsigned long)s[i]->count);
		for (int k = 0; k < s[i]->depth; k++) {
			char sym[256];
			symbolize(v, s[i]->ips[k], k == 0, sym, sizeof(sym));
			if (k)
				fputs(", ", f);
			sp_json_str(f, sym);
		}
		fputs("]}", f);
	}
	fputc(']', f);
	sp_free(s);
}

void sp_stack_view_folded(FILE *f, const struct sp_stack_view *v,
			  const char *(*label)(const struct sp_stack_entry *e, void *ctx), void *ctx)
{
	for (uint32_t k = 0, all = n_taken(v); k < all; k++) {
		const struct sp_stack_entry *e = taken(v, k);
		const char *name = e ? label(e, ctx) : NULL;
		if (!name)
			continue;
		/* root first: the outermost caller, down to the probe's label */
		for (int k = e->depth - 1; k >= 0; k--) {
			char sym[256];
			symbolize(v, e->ips[k], k == 0, sym, sizeof(sym));
			for (char *c = sym; *c; c++)
				if (*c == ';' || *c == ' ')
					*c = '_';
			fprintf(f, "%s;", sym);
		}
		fprintf(f, "%s %lu\n", name, (unsigned long)e->count);
	}
}

/* ---- this process's own ---- */

static const char *probe_label(const struct sp_stack_entry *e, void *ctx)
{
	(void)ctx;
	return e->probe->label;
}

void sp_stack_report_text(FILE *f, const struct sp_probe *p, int top)
{
	struct sp_stack_view v = { .area = area };
	sp_stack_view_text(f, &v, p, -1, p->label, top);
}

void sp_stack_report_json(FILE *f, const struct sp_probe *p, int top)
{
	struct sp_stack_view v = { .area = area };
	sp_stack_view_json(f, &v, p, -1, top);
}

void sp_stack_report_folded(FILE *f)
{
	struct sp_stack_view v = { .area = area };
	sp_stack_view_folded(f, &v, probe_label, NULL);
	uint64_t d = atomic_load(&dropped);
	if (d)   /* the folded format has no place for it */
		sp_say("%lu stacks not recorded: no room in the stack table, or taken while the process forked",
		       (unsigned long)d);
}
