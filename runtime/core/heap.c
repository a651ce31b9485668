/* heap — the runtime's own memory; see heap.h. */
#include "heap.h"
#include "rawsys.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The switch: the preload library links runtime/interpose/ownheap.c, whose
 * strong definition says true; the launcher links only this weak one.  A
 * function, since the compiler may fold a weak constant's own value. */
__attribute__((weak, noinline)) bool sp_heap_wanted(void)
{
	return false;
}

#if defined(__SANITIZE_ADDRESS__)
#define SP_HEAP_LIBC 1   /* ASan checks the runtime's memory only in malloc's */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SP_HEAP_LIBC 1
#endif
#endif

bool sp_heap_private(void)
{
#ifdef SP_HEAP_LIBC
	return false;
#else
	/* 0 not asked yet, 1 libc's, 2 ours: the answer never changes */
	static atomic_int mode;
	int m = atomic_load_explicit(&mode, memory_order_relaxed);
	if (!m) {
		m = sp_heap_wanted() ? 2 : 1;
		atomic_store_explicit(&mode, m, memory_order_relaxed);
	}
	return m == 2;
#endif
}

/* Each block has a 16-byte header (keeping 16-byte alignment): its check
 * word (the block's address mixed with a constant, which a header of libc's
 * malloc cannot hold by chance: sp_free tells ours from libc's by it) and
 * its size class; a large block, at the start of its own mapping, has the
 * mapping's length as its check word. */
struct hdr {
	uintptr_t check;
	uint32_t cls;
	uint32_t magic;
};
#define HDR ((size_t)sizeof(struct hdr))
#define MAGIC 0x5350484bu   /* "SPHK" */
#define CHECK_KEY ((uintptr_t)0x9e3779b97f4a7c15ull)
#define LARGE UINT32_MAX

/* 16-byte steps to 256, then four classes per doubling to 64 KiB; larger
 * blocks get a mapping each (freed at once: the program never sees them). */
#define NCLASS (16 + 4 * 8)
static size_t class_size[NCLASS];
#define MAX_SMALL ((size_t)64 << 10)
#define SLAB ((size_t)256 << 10)

static void *free_list[NCLASS];
static char *bump, *bump_end;
static atomic_int lock;
static atomic_bool ready;

static void take(void)
{
	while (atomic_exchange_explicit(&lock, 1, memory_order_acquire))
		sp_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
}

static void give(void)
{
	atomic_store_explicit(&lock, 0, memory_order_release);
}

/* A fork child has only the forking thread: the lock must not be left held
 * by a thread that is gone.  The prepare handler takes it (registered at the
 * first allocation, before the registry's handlers: so ours runs last at
 * prepare and first in the child, and theirs may allocate). */
static void child(void)
{
	atomic_store(&lock, 0);
}

static void init_locked(void)
{
	size_t i = 0;
	for (size_t s = 16; s <= 256; s += 16)
		class_size[i++] = s;
	for (size_t base = 256; i < NCLASS; base *= 2)
		for (int q = 1; q <= 4 && i < NCLASS; q++)
			class_size[i++] = base + base / 4 * q;
}

static void init(void)
{
	if (atomic_load_explicit(&ready, memory_order_acquire))
		return;
	take();
	if (!atomic_load(&ready)) {
		init_locked();
		atomic_store_explicit(&ready, true, memory_order_release);
		give();
		pthread_atfork(take, give, child);
		return;
	}
	give();
}

static int class_of(size_t n)
{
	if (n <= 256)
		return n ? (int)((n - 1) / 16) : 0;
	int lo = 16, hi = NCLASS - 1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (class_size[mid] >= n)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void *mark(struct hdr *h, uint32_t cls)
{
	h->check = (uintptr_t)(h + 1) ^ CHECK_KEY;
	h->cls = cls;
	h->magic = MAGIC;
	return h + 1;
}

static size_t large_len(size_t n)
{
	return (n + HDR + 4095) & ~(size_t)4095;
}

static void *own_malloc(size_t n)
{
	init();
	if (n > MAX_SMALL) {
		if (n > SIZE_MAX / 2)
			return NULL;
		size_t len = large_len(n);
		void *m = sp_sys_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return NULL;
		struct hdr *h = m;
		h->check = len;   /* a large block's check word: its mapping's length */
		h->cls = LARGE;
		h->magic = MAGIC;
		return (char *)m + HDR;
	}
	int c = class_of(n);
	size_t need = class_size[c] + HDR;
	take();
	void *p = free_list[c];
	if (p) {
		free_list[c] = *(void **)p;
		give();
		return p;
	}
	if ((size_t)(bump_end - bump) < need) {
		char *s = sp_sys_mmap(NULL, SLAB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (s == MAP_FAILED) {
			give();
			return NULL;
		}
		bump = s;   /* the old slab's tail is given up: at most one class's size */
		bump_end = s + SLAB;
	}
	struct hdr *h = (struct hdr *)bump;
	bump += need;
	give();
	return mark(h, (uint32_t)c);
}

static struct hdr *header(const void *p)
{
	return (struct hdr *)p - 1;
}

bool sp_heap_owns(const void *p)
{
	/* libc's heap (and ASan's redzones before its blocks): nothing is ours */
	if (!sp_heap_private() || !p || ((uintptr_t)p & 15))
		return false;
	const struct hdr *h = header(p);
	if (h->magic != MAGIC)
		return false;
	if (h->cls == LARGE)
		return ((uintptr_t)h & 4095) == 0 && h->check && (h->check & 4095) == 0;
	return h->cls < NCLASS && h->check == ((uintptr_t)p ^ CHECK_KEY);
}

static size_t capacity(const void *p)
{
	const struct hdr *h = header(p);
	return h->cls == LARGE ? h->check - HDR : class_size[h->cls];
}

static void own_free(void *p)
{
	struct hdr *h = header(p);
	if (h->cls == LARGE) {
		sp_sys_munmap(h, h->check);
		return;
	}
	take();
	*(void **)p = free_list[h->cls];
	free_list[h->cls] = p;
	give();
}

void *sp_malloc(size_t n)
{
	if (!sp_heap_private())
		return malloc(n);
	return own_malloc(n);
}

void *sp_calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total))
		return NULL;   /* before calloc: ASan would abort on it */
	if (!sp_heap_private())
		return calloc(n, size);
	void *p = own_malloc(total);
	if (p && total <= MAX_SMALL)   /* a large block is a fresh mapping: zero */
		memset(p, 0, total);
	return p;
}

void sp_free(void *p)
{
	if (!p)
		return;
	if (!sp_heap_owns(p)) {
		free(p);   /* libc's: a buffer a libc API allocated */
		return;
	}
	own_free(p);
}

void *sp_realloc(void *p, size_t n)
{
	if (!sp_heap_private() || (p && !sp_heap_owns(p)))
		return realloc(p, n);
	if (!p)
		return own_malloc(n);
	if (!n) {
		own_free(p);
		return NULL;
	}
	size_t cap = capacity(p);
	if (n <= cap)
		return p;
	void *q = own_malloc(n);
	if (q) {
		memcpy(q, p, cap);
		own_free(p);
	}
	return q;
}

static char *copy(const char *s, size_t len)
{
	char *d = sp_malloc(len + 1);
	if (d) {
		memcpy(d, s, len);
		d[len] = 0;
	}
	return d;
}

char *sp_strdup(const char *s)
{
	return copy(s, strlen(s));
}

char *sp_strndup(const char *s, size_t n)
{
	return copy(s, strnlen(s, n));
}

char *sp_vasprintf(const char *fmt, va_list ap)
{
	char small[256];
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	char *s = n < 0 ? NULL : sp_malloc((size_t)n + 1);
	if (s) {
		if ((size_t)n < sizeof(small))
			memcpy(s, small, (size_t)n + 1);
		else
			vsnprintf(s, (size_t)n + 1, fmt, again);
	}
	va_end(again);
	return s;
}

char *sp_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = sp_vasprintf(fmt, ap);
	va_end(ap);
	return s;
}
