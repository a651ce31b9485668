/* gotheap — the runtime's libraries allocate from its heap; see gotheap.h. */
#include "gotheap.h"
#include "heap.h"
#include "rawsys.h"
#include "sort.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Libraries loaded for the runtime (their sonames). */
static const char *const ours[] = {
	"libelf.so.1", "libunwind.so.8", "libz.so.1", "liblzma.so.5", "libzstd.so.1", "libbz2.so.1.0",
};
#define N_OURS (sizeof(ours) / sizeof(ours[0]))

static int aligned_alloc_own(void **out, size_t align, size_t n)
{
	if (align <= 16) {   /* what sp_malloc guarantees */
		void *p = sp_malloc(n);
		if (!p)
			return 12;   /* ENOMEM */
		*out = p;
		return 0;
	}
	return posix_memalign(out, align, n);   /* libc's: sp_free hands it back */
}

static const struct {
	const char *name;
	void *to;
} routes[] = {
	{ "malloc", (void *)sp_malloc },
	{ "calloc", (void *)sp_calloc },
	{ "realloc", (void *)sp_realloc },
	{ "free", (void *)sp_free },
	{ "posix_memalign", (void *)aligned_alloc_own },
	{ "qsort", (void *)sp_qsort },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static int our_index(const char *path)
{
	const char *b = base_name(path);
	for (size_t i = 0; i < N_OURS; i++)
		if (!strcmp(b, ours[i]))
			return (int)i;
	return -1;
}

/* A dynamic entry's address: the loader relocates them in place on x86-64,
 * a read-only dynamic section keeps them file-relative. */
static uintptr_t dyn_ptr(ElfW(Addr) base, ElfW(Addr) v)
{
	return v < base ? base + v : v;
}

struct dyn {
	const ElfW(Dyn) *d;
	ElfW(Addr) base;
	uintptr_t relro_lo, relro_hi;
};

static bool find_dyn(const struct dl_phdr_info *info, struct dyn *out)
{
	out->d = NULL;
	out->base = info->dlpi_addr;
	out->relro_lo = out->relro_hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_DYNAMIC)
			out->d = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
		else if (ph->p_type == PT_GNU_RELRO) {
			out->relro_lo = info->dlpi_addr + ph->p_vaddr;
			out->relro_hi = out->relro_lo + ph->p_memsz;
		}
	}
	return out->d != NULL;
}

/* Which of ours the program's objects need: bit i for ours[i]. */
struct scan {
	ElfW(Addr) self;   /* the runtime's own object's load address */
	unsigned needed_by_program;
	unsigned loaded;
	int written;
};

static int note_needs(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	struct scan *s = data;
	int me = our_index(info->dlpi_name);
	if (me >= 0) {
		s->loaded |= 1u << me;
		return 0;
	}
	if (info->dlpi_addr == s->self)   /* the runtime itself */
		return 0;
	struct dyn y;
	if (!find_dyn(info, &y))
		return 0;
	const char *strtab = NULL;
	for (const ElfW(Dyn) *d = y.d; d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_STRTAB)
			strtab = (const char *)dyn_ptr(y.base, d->d_un.d_ptr);
	if (!strtab)
		return 0;
	for (const ElfW(Dyn) *d = y.d; d->d_tag != DT_NULL; d++)
		if (d->d_tag == DT_NEEDED) {
			int k = our_index(strtab + d->d_un.d_val);
			if (k >= 0)
				s->needed_by_program |= 1u << k;
		}
	return 0;
}

static void write_slot(uintptr_t slot, void *to, const struct dyn *y)
{
	bool relro = slot >= y->relro_lo && slot < y->relro_hi;
	uintptr_t page = slot & ~(uintptr_t)4095;
	if (relro && sp_syscall6(SYS_mprotect, (long)page, 4096, PROT_READ | PROT_WRITE, 0, 0, 0) != 0)
		return;
	__atomic_store_n((void **)slot, to, __ATOMIC_RELEASE);
	if (relro)
		sp_syscall6(SYS_mprotect, (long)page, 4096, PROT_READ, 0, 0, 0);
}

static void route_table(const struct dyn *y, const ElfW(Rela) *rel, size_t n, const ElfW(Sym) *symtab,
			const char *strtab, int *written)
{
	for (size_t i = 0; i < n; i++) {
		unsigned type = ELF64_R_TYPE(rel[i].r_info);
		if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
			continue;
		const char *name = strtab + symtab[ELF64_R_SYM(rel[i].r_info)].st_name;
		for (size_t r = 0; r < N_ROUTES; r++)
			if (!strcmp(name, routes[r].name)) {
				write_slot(y->base + rel[i].r_offset, routes[r].to, y);
				(*written)++;
			}
	}
}

static int route(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	struct scan *s = data;
	int me = our_index(info->dlpi_name);
	struct dyn y;
	if (me < 0 || (s->needed_by_program & (1u << me)) || !find_dyn(info, &y))
		return 0;
	const ElfW(Sym) *symtab = NULL;
	const char *strtab = NULL;
	const ElfW(Rela) *rela = NULL, *jmprel = NULL;
	size_t relasz = 0, pltsz = 0;
	for (const ElfW(Dyn) *d = y.d; d->d_tag != DT_NULL; d++)
		switch (d->d_tag) {
		case DT_SYMTAB: symtab = (const ElfW(Sym) *)dyn_ptr(y.base, d->d_un.d_ptr); break;
		case DT_STRTAB: strtab = (const char *)dyn_ptr(y.base, d->d_un.d_ptr); break;
		case DT_RELA: rela = (const ElfW(Rela) *)dyn_ptr(y.base, d->d_un.d_ptr); break;
		case DT_RELASZ: relasz = d->d_un.d_val; break;
		case DT_JMPREL: jmprel = (const ElfW(Rela) *)dyn_ptr(y.base, d->d_un.d_ptr); break;
		case DT_PLTRELSZ: pltsz = d->d_un.d_val; break;
		}
	if (!symtab || !strtab)
		return 0;
	if (rela)
		route_table(&y, rela, relasz / sizeof(*rela), symtab, strtab, &s->written);
	if (jmprel)
		route_table(&y, jmprel, pltsz / sizeof(*jmprel), symtab, strtab, &s->written);
	return 0;
}

int sp_gotheap_take(void)
{
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	static atomic_bool done;
	static int written;
	if (atomic_load_explicit(&done, memory_order_acquire))
		return written;
	if (!sp_heap_private())   /* the launcher, or ASan: everything is libc's anyway */
		return 0;
	pthread_mutex_lock(&once);
	if (!atomic_load(&done)) {
		struct scan s = { 0, 0, 0, 0 };
		Dl_info me;
		if (dladdr((void *)sp_gotheap_take, &me))
			s.self = (ElfW(Addr))me.dli_fbase;
		/* who needs what first: the program's own needs win */
		dl_iterate_phdr(note_needs, &s);
		/* a library of ours needed only by others of ours is ours; one
		 * of ours needed by the program stays libc's, and so do those
		 * it pulled in only if the program needs them too */
		dl_iterate_phdr(route, &s);
		written = s.written;
		atomic_store_explicit(&done, true, memory_order_release);
	}
	pthread_mutex_unlock(&once);
	return written;
}
