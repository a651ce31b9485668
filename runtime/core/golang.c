/* golang — see golang.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "golang.h"
#include "heap.h"
#include "decide.h"
#include "site.h"
#include "elfsym.h"
#include "insn.h"
#include "jtable.h"
#include "log.h"
#include "maps.h"
#include "memread.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ recognition */

/* Whether the symbol table SCN holds x_cgo_init (runtime/cgo's); the
 * address of runtime.allglen (the count of goroutines ever made) into
 * *ALLGLEN when it holds that. */
static bool has_cgo_init(Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh, uint64_t *allglen)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	size_t n = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;
	bool cgo = false;
	for (size_t i = 0; d && i < n && !(cgo && *allglen); i++) {
		GElf_Sym sym;
		const char *name;
		if (!gelf_getsym(d, (int)i, &sym) || !(name = elf_strptr(elf, sh->sh_link, sym.st_name)))
			continue;
		if (strcmp(name, "x_cgo_init") == 0)
			cgo = true;
		else if (strcmp(name, "runtime.allglen") == 0)
			*allglen = sym.st_value;
	}
	return cgo;
}

/* A section named .go.buildinfo, or a note of owner "Go" with type 4
 * (NT_GO_BUILDID: what `go tool buildid` reads, in .note.go.buildid); and
 * whether runtime/cgo is in it (*CGO), where runtime.allglen is (*ALLGLEN,
 * 0: unknown). */
static bool file_is_go(const char *path, bool *cgo, uint64_t *allglen)
{
	*cgo = false;
	*allglen = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool go = false, syms = false;
	Elf *elf = elf_version(EV_CURRENT) != EV_NONE ? elf_begin(fd, ELF_C_READ_MMAP, NULL) : NULL;
	size_t shstrndx;
	if (elf && elf_kind(elf) == ELF_K_ELF && elf_getshdrstrndx(elf, &shstrndx) == 0) {
		for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
			GElf_Shdr sh;
			if (!gelf_getshdr(scn, &sh))
				continue;
			const char *name = elf_strptr(elf, shstrndx, sh.sh_name);
			if (sh.sh_type == SHT_SYMTAB) {
				syms = true;
				*cgo = has_cgo_init(elf, scn, &sh, allglen) || *cgo;
			}
			if (name && strcmp(name, ".go.buildinfo") == 0)
				go = true;
			if (sh.sh_type != SHT_NOTE)
				continue;
			Elf_Data *d = elf_getdata(scn, NULL);
			GElf_Nhdr nh;
			size_t off = 0, noff, doff;
			while (d && (off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0)
				if (nh.n_type == 4 && nh.n_namesz == 3 &&
				    memcmp((const char *)d->d_buf + noff, "Go", 3) == 0)
					go = true;
		}
	}
	if (elf)
		elf_end(elf);
	close(fd);
	if (!syms)
		*cgo = true;   /* stripped: nothing to probe by name, nothing to refuse */
	return go;
}

struct go_seen {
	char *path;
	bool go, cgo;
	uint64_t allglen;           /* runtime.allglen's address in the file, 0: unknown */
	_Atomic bool running;       /* goroutines were seen: never false again */
	struct go_seen *next;
};
static struct go_seen *_Atomic seen;   /* prepended only: readers need no lock */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct go_seen *facts(const char *path)
{
	static const struct go_seen none = { .path = NULL };
	if (!path || !*path)
		return &none;
	for (struct go_seen *s = atomic_load(&seen); s; s = s->next)
		if (strcmp(s->path, path) == 0)
			return s;
	bool cgo;
	uint64_t allglen;
	bool go = file_is_go(path, &cgo, &allglen);
	struct go_seen *s = sp_malloc(sizeof(*s));
	if (s && (s->path = sp_strdup(path))) {
		s->go = go;
		s->cgo = cgo;
		s->allglen = allglen;
		atomic_init(&s->running, false);
		pthread_mutex_lock(&seen_lock);
		s->next = atomic_load(&seen);
		atomic_store(&seen, s);
		pthread_mutex_unlock(&seen_lock);
		return s;
	}
	sp_free(s);
	static const struct go_seen go_unknown = { .go = true, .cgo = true };   /* out of memory */
	return go ? &go_unknown : &none;
}

bool sp_go_cgo_object(const char *path)
{
	const struct go_seen *f = facts(path);
	return f->go && f->cgo;
}

bool sp_go_object(const char *path)
{
	return facts(path)->go;
}

bool sp_go_running(const char *path, uintptr_t bias)
{
	const struct go_seen *f = facts(path);
	if (!f->go)
		return false;
	if (!f->path || atomic_load(&f->running))
		return true;
	uint64_t n = 1;
	if (f->allglen && sp_mem_read(bias + f->allglen, &n, sizeof(n)) && n == 0)
		return false;
	atomic_store(&((struct go_seen *)f)->running, true);
	return true;
}

/* ------------------------------------------------------------ prologue */

/* jbe rel8 (76 xx) or jbe rel32 (0f 86 xx xx xx xx) at P: its length. */
static size_t jbe_len(const uint8_t *p, size_t left)
{
	if (left >= 2 && p[0] == 0x76)
		return 2;
	if (left >= 6 && p[0] == 0x0f && p[1] == 0x86)
		return 6;
	return 0;
}

size_t sp_go_stack_check_len(const uint8_t *code, size_t size)
{
	static const uint8_t cmp_rsp[] = { 0x49, 0x3b, 0x66, 0x10 };   /* cmp 0x10(%r14),%rsp */
	static const uint8_t cmp_r12[] = { 0x4d, 0x3b, 0x66, 0x10 };   /* cmp 0x10(%r14),%r12 */
	size_t n = 0, j;
	if (size >= 4 && memcmp(code, cmp_rsp, 4) == 0) {
		n = 4;
	} else {
		/* lea -N(%rsp),%r12: disp8 (4c 8d 64 24 xx) or disp32 (4c 8d a4 24 xx*4) */
		if (size >= 5 && memcmp(code, "\x4c\x8d\x64\x24", 4) == 0)
			n = 5;
		else if (size >= 8 && memcmp(code, "\x4c\x8d\xa4\x24", 4) == 0)
			n = 8;
		else
			return 0;
		if (size < n + 4 || memcmp(code + n, cmp_r12, 4) != 0)
			return 0;
		n += 4;
	}
	j = jbe_len(code + n, size - n);
	return j ? n + j : 0;
}

uint64_t sp_go_site(const char *path, uintptr_t func, uint64_t size, uint64_t offset,
		    struct sp_func_extent *fn)
{
	if (!size || !sp_go_object(path))
		return 0;
	fn->go_stack = true;
	uint8_t code[SP_GO_CHECK_MAX];
	size_t n = size < sizeof(code) ? (size_t)size : sizeof(code);
	sp_site_pristine(func, n, code);   /* as it was: a probe of ours may be there */
	size_t len = sp_go_stack_check_len(code, n);
	if (len == 0 || len >= size) {
		/* nosplit: the Go linker lets a chain of such functions run
		 * down to 128 bytes above the stack's end, less than the
		 * trampoline's frame; the int3's frame goes on the signal
		 * stack Go gives every thread */
		fn->go_no_jmp = "Go function without a stack check (nosplit): its goroutine stack may "
				"lack room for the trampoline's frame, the int3 path uses the signal stack";
		return 0;
	}
	if (offset && offset < len)
		fn->go_no_jmp = "inside the Go stack check: the trampoline's frame needs the room it checks";
	return offset ? 0 : len;
}

/* ------------------------------------------------------------ refusals */

/* Runtime functions entered otherwise than by a call to their start, or
 * that switch stacks or run where no goroutine stack is: no probe. */
static const char *const runtime_refused[] = {
	"goexit", "morestack", "morestack_noctxt", "morestackc", "rt0_go", "mstart",
	"sigtramp", "cgoSigtramp", "sigreturn", "sigreturn__sigaction", "mcall",
	"systemstack", "systemstack_switch", "gogo", "asmcgocall", "asmcgocall_no_g",
	"asyncPreempt", "exit", "exitThread", "clone", "settls", "cgocallback", "setg",
	"setg_gcc", "gosave_systemstack_switch", "abort", "rt_sigaction",
};

/* Go's epilogue before a RET: mov D(%rsp),%rbp (disp8 or disp32), then
 * add $N,%rsp (imm8 or imm32); N, or -1. */
static long epilogue_add(const struct sp_insn *mov, const struct sp_insn *add)
{
	bool mov_ok = (mov->len == 5 && memcmp(mov->bytes, "\x48\x8b\x6c\x24", 4) == 0) ||
		      (mov->len == 8 && memcmp(mov->bytes, "\x48\x8b\xac\x24", 4) == 0);
	if (!mov_ok)
		return -1;
	if (add->len == 4 && memcmp(add->bytes, "\x48\x83\xc4", 3) == 0)
		return (int8_t)add->bytes[3];
	if (add->len == 7 && memcmp(add->bytes, "\x48\x81\xc4", 3) == 0) {
		int32_t v;
		memcpy(&v, add->bytes + 3, 4);
		return v;
	}
	return -1;
}

static bool is_target(const uintptr_t *t, size_t n, uintptr_t a)
{
	for (size_t i = 0; i < n; i++)
		if (t[i] == a)
			return true;
	return false;
}

/* A function's code decoded whole: CODE (its pristine bytes), its N
 * instructions IN (by address), its direct branch targets T and the
 * entries of its jump tables, N_T in all (CAP_T allocated). */
struct go_fn {
	const struct sp_func_extent *fn;
	const uint8_t *code;
	const struct sp_insn *in;
	size_t n;
	uintptr_t *t;
	size_t n_t, cap_t;
};

static bool ends_line(enum sp_insn_class c)
{
	return c == SP_INSN_JMP_REL || c == SP_INSN_JMP_IND || c == SP_INSN_RET;
}

/* Does an instruction of F start at A? */
static bool insn_at(const struct go_fn *f, uintptr_t a)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->in[mid].addr < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < f->n && f->in[lo].addr == a;
}

#define JT_LINE 32   /* instructions handed to the table finder, the jmp's included */

/* The jump table of F's indirect jmp IN[J] (jtable.h), from the straight
 * line before it: back to a branch target (which it starts at), or to the
 * instruction after a jmp or a ret, so that every path to the jmp runs the
 * line's instructions from its first one (the table's register, the
 * bound's cmp). */
static void go_table_find(const struct go_fn *f, size_t j, struct sp_jtable *jt)
{
	size_t k = j;
	while (k > 0 && j - k + 1 < JT_LINE && !is_target(f->t, f->n_t, f->in[k].addr) &&
	       !ends_line(f->in[k - 1].cls))
		k--;
	struct sp_jt_insn ins[JT_LINE];
	for (size_t i = k; i <= j; i++) {
		size_t off = f->in[i].addr - f->fn->start;
		ins[i - k] = (struct sp_jt_insn){ .addr = f->in[i].addr, .code = f->code + off,
						  .avail = f->in[i].len };
	}
	sp_jtable_find(ins, (int)(j - k + 1), jt);
}

/* F's indirect jmp IN[J] as a jump table whose bound and every entry are
 * established, read from memory (where the jmp reads them: relocated in a
 * PIE) and instructions of F: its entries appended to F's targets (a
 * table's entry may land on an epilogue, whose rule needs them).  NULL, or
 * why the jmp's targets are not all known. */
static const char *go_table(struct go_fn *f, size_t j)
{
	struct sp_jtable jt;
	go_table_find(f, j, &jt);
	size_t w = sp_jtable_entry_size(&jt);
	if (!w)
		return "an indirect jump in the Go function that is not a jump table read here (its "
		       "table's address loaded in the straight line before it): it may leave the "
		       "function, its returns are not all known";
	if (jt.count <= 0)
		return "an indirect jump in the Go function through a jump table whose bound is not "
		       "established (cmp/ja or and before it): its targets are not all known";
	for (long i = 0; i < jt.count; i++) {
		uint64_t e = 0;   /* little-endian: a 4-byte entry fills its low half */
		if (!sp_mem_read(jt.table + w * (uintptr_t)i, &e, w))
			return "an indirect jump in the Go function through a jump table that cannot be "
			       "read: its targets are not known";
		uintptr_t t = sp_jtable_entry_target(&jt, e, 0);
		if (t < f->fn->start || t >= f->fn->start + f->fn->size || !insn_at(f, t))
			return "an indirect jump in the Go function through a jump table with an entry "
			       "outside the function or inside an instruction: its returns are not all known";
		if (f->n_t == f->cap_t) {
			size_t cap = f->cap_t * 2 + 16;
			uintptr_t *m = sp_realloc(f->t, cap * sizeof(*m));
			if (!m)
				return "out of memory";
			f->t = m;
			f->cap_t = cap;
		}
		f->t[f->n_t++] = t;
	}
	return NULL;
}

/* Every indirect jmp of F as a table (go_table); then each table found
 * again with every entry among the targets: one that lands in another's
 * straight line (after its bound check) changes what was found. */
static const char *go_tables(struct go_fn *f)
{
	size_t direct = f->n_t;
	for (size_t j = 0; j < f->n; j++) {
		const char *why = f->in[j].cls == SP_INSN_JMP_IND ? go_table(f, j) : NULL;
		if (why)
			return why;
	}
	if (f->n_t == direct)
		return NULL;
	for (size_t j = 0; j < f->n; j++) {
		if (f->in[j].cls != SP_INSN_JMP_IND)
			continue;
		struct sp_jtable a, b;
		size_t all = f->n_t;
		f->n_t = direct;
		go_table_find(f, j, &a);
		f->n_t = all;
		go_table_find(f, j, &b);
		if (a.kind != b.kind || a.table != b.table || a.count != b.count)
			return "an indirect jump in the Go function whose jump table's bound check is "
			       "entered by another table's entry: its targets are not all known";
	}
	return NULL;
}

long sp_go_ret_sites(const char *symbol, const struct sp_func_extent *fn, struct sp_go_ret **out,
		     const char **why)
{
	*out = NULL;
	size_t n = symbol ? strcspn(symbol, "+") : 0;
	if (n > 5 && memcmp(symbol + n - 5, ".abi0", 5) == 0) {
		*why = "Go assembly function (ABI0): the goroutine is not in r14 to pair its returns";
		return -1;
	}
	if (!fn->start || !fn->size) {
		*why = "Go function of unknown size: its RETs cannot be found";
		return -1;
	}
	/* every instruction (a function is at most its size in instructions)
	 * and every branch target inside it */
	uint8_t *code = sp_malloc(fn->size);
	struct sp_insn *in = sp_malloc(fn->size * sizeof(*in));
	uintptr_t *targets = sp_malloc(fn->size * sizeof(*targets));
	struct sp_go_ret *rets = NULL;
	size_t n_in = 0, n_t = 0;
	long k = 0;
	*why = NULL;
	if (!code || !in || !targets) {
		*why = "out of memory";
		goto out;
	}
	sp_site_pristine(fn->start, fn->size, code);
	uintptr_t end = fn->start + fn->size;
	for (size_t off = 0; off < fn->size && !*why; off += in[n_in++].len) {
		struct sp_insn *i = &in[n_in];
		if (sp_insn_decode(code + off, fn->size - off, fn->start + off, i) != 0 || !i->len)
			*why = "an instruction of the Go function does not decode: its RETs are not known";
		else if ((i->cls == SP_INSN_JMP_REL || i->cls == SP_INSN_JCC_REL) &&
			 (i->target < fn->start || i->target >= end))
			*why = "a jump leaves the Go function (a tail call): its return would not be seen";
		else if (i->cls == SP_INSN_JMP_REL || i->cls == SP_INSN_JCC_REL || i->cls == SP_INSN_JRCXZ ||
			 i->cls == SP_INSN_LOOP)
			targets[n_t++] = i->target;
		if (*why)
			break;
	}
	/* indirect jumps: jump tables whose entries join the targets */
	struct go_fn f = { fn, code, in, n_in, targets, n_t, fn->size };
	if (!*why)
		*why = go_tables(&f);
	targets = f.t;
	n_t = f.n_t;
	for (size_t j = 0; j < n_in && !*why; j++) {
		if (in[j].cls != SP_INSN_RET)
			continue;
		struct sp_go_ret r = { .site = in[j].addr, .adj = 0, .at_ret = true };
		/* the epilogue's first instruction when nothing jumps past it:
		 * a one-instruction jmp window, where the RET (followed by the
		 * morestack call, a branch target) can only take int3 */
		long add = j >= 2 ? epilogue_add(&in[j - 2], &in[j - 1]) : -1;
		if (add >= 0 && !is_target(targets, n_t, in[j - 1].addr) && !is_target(targets, n_t, in[j].addr))
			r = (struct sp_go_ret){ .site = in[j - 2].addr, .adj = (uint32_t)add, .at_ret = false };
		struct sp_go_ret *m = sp_realloc(rets, (size_t)(k + 1) * sizeof(*rets));
		if (!m)
			*why = "out of memory";
		else
			(rets = m)[k++] = r;
	}
	if (!*why && k == 0)
		*why = "the Go function has no RET (it never returns)";
out:
	sp_free(code);
	sp_free(in);
	sp_free(targets);
	if (*why) {
		sp_free(rets);
		return -1;
	}
	*out = rets;
	return k;
}

const char *sp_go_refusal(const char *path, const char *symbol, bool wants_return,
			  const struct sp_func_extent *fn)
{
	const struct go_seen *f = facts(path);
	if (f->go && !f->cgo)
		return "Go program without runtime/cgo: its threads are not the C library's (no "
		       "thread-local storage for the runtime) and it installs signal handlers with raw "
		       "system calls: not probed (import _ \"runtime/cgo\" and build with CGO_ENABLED=1)";
	if (wants_return) {
		struct sp_go_ret *rets;
		const char *why;
		if (sp_go_ret_sites(symbol, fn, &rets, &why) < 0)
			return why;
		sp_free(rets);
	}
	if (!symbol || strncmp(symbol, "runtime.", 8) != 0)
		return NULL;
	const char *base = symbol + 8;
	size_t n = strcspn(base, "+");
	if (n > 5 && memcmp(base + n - 5, ".abi0", 5) == 0)
		n -= 5;
	for (size_t i = 0; i < sizeof(runtime_refused) / sizeof(runtime_refused[0]); i++)
		if (strlen(runtime_refused[i]) == n && memcmp(runtime_refused[i], base, n) == 0)
			return "Go runtime function entered without a call to its start or switching "
			       "stacks (goexit, morestack, signal trampolines, mcall, systemstack, "
			       "exit ...): not probed";
	return NULL;
}

