/* Tests for runtime/core/demangle.c: C++ names as bpftrace 0.17 prints
 * them (__cxa_demangle's text: parameter lists, const, clones), any other
 * name left alone, the output cut to the buffer, no call of malloc & co
 * (the allocating interface of the same demangler is counted, so the
 * counter is seen to work), and the stack it takes within
 * sp_demangle_stack_need on a long name. */
#include <criterion/criterion.h>

#include <libiberty/demangle.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demangle.h"

/* malloc & co counted while COUNTING (this program's definitions come
 * first).  Not under AddressSanitizer, whose allocator owns malloc and
 * free: a block from glibc's malloc freed through its free is an error. */
static atomic_int counting, allocs;
#if defined(__SANITIZE_ADDRESS__)
#define COUNTS_ALLOCATIONS 0
#else
#define COUNTS_ALLOCATIONS 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);

void *malloc(size_t n)
{
	if (atomic_load(&counting))
		atomic_fetch_add(&allocs, 1);
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	if (atomic_load(&counting))
		atomic_fetch_add(&allocs, 1);
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	if (atomic_load(&counting))
		atomic_fetch_add(&allocs, 1);
	return __libc_realloc(p, n);
}
#endif

static void expect_name(const char *mangled, const char *want)
{
	char out[256];
	memset(out, 'x', sizeof(out));
	cr_assert(sp_demangle(mangled, out, sizeof(out)), "%s demangles", mangled);
	cr_expect_str_eq(out, want, "%s", mangled);
}

Test(demangle, cxx_names_as_cxa_demangle_prints_them)
{
	expect_name("_ZN2ns4overEi", "ns::over(int)");
	expect_name("_ZN2ns4overEPKcd", "ns::over(char const*, double)");
	expect_name("_ZN2ns3BoxIiE4leafEl", "ns::Box<int>::leaf(long)");
	expect_name("_ZNK2ns3BoxIcE3getEl.isra.0", "ns::Box<char>::get(long) const [clone .isra.0]");
	expect_name("_ZNSt6vectorIiSaIiEE9push_backERKi", "std::vector<int, std::allocator<int> >::push_back(int const&)");
	expect_name("_ZN9__gnu_cxx13new_allocatorIcED2Ev", "__gnu_cxx::new_allocator<char>::~new_allocator()");
	expect_name("_ZZ4mainE1x", "main::x");
	expect_name("_Z1fv", "f()");
}

Test(demangle, other_names_untouched)
{
	/* "i" and "f" would demangle as types ("int", "float"): only "_Z" names are C++ */
	static const char *const plain[] = { "main", "i", "f", "_start", "__libc_start_main", "bt_leaf", "_Zx", "_Z1", "_Z", "" };
	for (size_t i = 0; i < sizeof(plain) / sizeof(*plain); i++) {
		char out[16] = "unchanged";
		cr_expect(!sp_demangle(plain[i], out, sizeof(out)), "%s is not demangled", plain[i]);
		cr_expect_str_eq(out, "unchanged", "%s: the buffer untouched", plain[i]);
	}
}

Test(demangle, cut_to_the_buffer)
{
	char out[8];
	cr_assert(sp_demangle("_ZN2ns4overEPKcd", out, sizeof(out)));
	cr_expect_str_eq(out, "ns::ove");
	char one[1] = { 'x' };
	cr_assert(sp_demangle("_ZN2ns4overEi", one, 1));
	cr_expect_eq(one[0], '\0');
}

Test(demangle, no_allocation)
{
	if (!COUNTS_ALLOCATIONS)
		cr_skip_test("under AddressSanitizer, which owns malloc: allocations are counted in the plain build");
	char out[256];
	atomic_store(&allocs, 0);
	atomic_store(&counting, 1);
	bool ok = sp_demangle("_ZNSt6vectorIiSaIiEE9push_backERKi", out, sizeof(out));
	atomic_store(&counting, 0);
	cr_assert(ok);
	cr_expect_eq(atomic_load(&allocs), 0, "sp_demangle called malloc & co %d times", atomic_load(&allocs));
	/* the counter counts: the same demangler's allocating interface */
	atomic_store(&counting, 1);
	char *s = cplus_demangle_v3("_ZNSt6vectorIiSaIiEE9push_backERKi", DMGL_PARAMS | DMGL_TYPES);
	atomic_store(&counting, 0);
	cr_assert(s);
	cr_expect_str_eq(s, out);
	cr_expect_gt(atomic_load(&allocs), 0, "cplus_demangle_v3 seen allocating");
	free(s);
}

/* A name of N distinct nested namespaces (no substitution shortens it;
 * past ~200 the demangler's recursion limit refuses it, as c++filt does). */
static char *long_name(int n)
{
	size_t cap = 16 + (size_t)n * 16;
	char *s = malloc(cap);
	size_t o = (size_t)snprintf(s, cap, "_ZN");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "%dn%d", 1 + snprintf(NULL, 0, "%d", i), i);
	snprintf(s + o, cap - o, "Ev");
	return s;
}

/* The stack sp_demangle takes for NAME, measured: the region below this
 * frame painted first, the deepest byte written found after. */
#define PAINT (768 * 1024)
static __attribute__((noinline)) void paint(char *lo, size_t n)
{
	memset(lo, 0xa5, n);
}

static __attribute__((noinline)) size_t stack_taken(const char *name, char *out, size_t len, bool *ok)
{
	char *top = (char *)__builtin_frame_address(0) - 1024, *lo = top - PAINT;
	paint(lo, PAINT);
	*ok = sp_demangle(name, out, len);
	char *p = lo;
	while (p < top && (unsigned char)*p == 0xa5)
		p++;
	return (size_t)(top - p) + 1024;
}

struct on_thread {
	const char *name;
	char out[256];
	bool ok;
	size_t taken;
};

static void *demangle_there(void *arg)
{
	struct on_thread *a = arg;
	a->taken = stack_taken(a->name, a->out, sizeof(a->out), &a->ok);
	return NULL;
}

Test(demangle, stack_within_the_bound)
{
	/* a 1 MiB thread stack: room for the paint and any demangler */
	char *name = long_name(200);
	struct on_thread a = { .name = name };
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	cr_assert(pthread_attr_setstacksize(&attr, 1024 * 1024) == 0);
	pthread_t th;
	cr_assert(pthread_create(&th, &attr, demangle_there, &a) == 0);
	pthread_join(th, NULL);
	cr_expect(a.ok, "%zu-character name demangled", strlen(name));
	cr_expect(strncmp(a.out, "n0::n1::n2::", 12) == 0, "%s", a.out);
	size_t need = sp_demangle_stack_need(name);
	cr_expect(a.taken <= need, "%zu-character name: %zu bytes of stack taken, %zu foreseen", strlen(name),
		  a.taken, need);
	cr_log_info("%zu-character name: %zu bytes of stack taken, %zu foreseen", strlen(name), a.taken, need);
	free(name);
}
