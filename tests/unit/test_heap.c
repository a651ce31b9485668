/* Tests for runtime/core/heap.c, sort.c and procread.c: the runtime's own
 * memory never comes from malloc (the program's heap is untouched: mallinfo2
 * the same before and after), each block is usable to its size and aligned,
 * realloc keeps the contents, calloc zeroes recycled memory, libc's blocks
 * are handed back to libc, threads and a fork child (the lock held by
 * another thread at fork) are safe; the sort is stable and sorts; /proc is
 * read without stdio. */
#include <criterion/criterion.h>

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heap.h"
#include "procread.h"
#include "sort.h"

static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 255, 256, 257, 1000, 4096, 65536, 65537, 1 << 20 };
#define N_SIZES (sizeof(sizes) / sizeof(sizes[0]))

Test(heap, private_in_what_links_interpose)
{
	/* the unit tests link runtime/interpose/ (ownheap.c): our heap,
	 * except under ASan, where heap.c forwards to malloc on purpose */
#if !defined(__SANITIZE_ADDRESS__)
	cr_assert(sp_heap_private());
#endif
}

Test(heap, never_the_programs_heap)
{
	if (!sp_heap_private())
		cr_skip_test("ASan build: the runtime's memory is malloc's, for ASan to check");
	struct mallinfo2 before = mallinfo2();
	void *v[N_SIZES * 8];
	for (int round = 0; round < 8; round++)
		for (size_t i = 0; i < N_SIZES; i++)
			v[round * N_SIZES + i] = sp_malloc(sizes[i]);
	char *s = sp_strdup("strdup"), *a = sp_asprintf("%d %s", 42, "x");
	for (size_t i = 0; i < N_SIZES * 8; i++)
		v[i] = sp_realloc(v[i], sizes[i % N_SIZES] * 2 + 1);
	struct mallinfo2 during = mallinfo2();
	for (size_t i = 0; i < N_SIZES * 8; i++)
		sp_free(v[i]);
	sp_free(s);
	sp_free(a);
	cr_assert_eq(during.uordblks, before.uordblks, "in use on malloc's heap: %zu, before %zu",
		     during.uordblks, before.uordblks);
	cr_assert_eq(during.arena, before.arena);
	cr_assert_eq(during.hblks, before.hblks);
}

Test(heap, blocks_usable_aligned_and_kept)
{
	void *v[N_SIZES];
	for (size_t i = 0; i < N_SIZES; i++) {
		v[i] = sp_malloc(sizes[i]);
		cr_assert_not_null(v[i]);
		cr_assert_eq((uintptr_t)v[i] & 15, 0, "malloc(%zu) not 16-byte aligned", sizes[i]);
		memset(v[i], (int)i + 1, sizes[i]);
	}
	for (size_t i = 0; i < N_SIZES; i++) {
		for (size_t k = 0; k < sizes[i]; k++)
			cr_assert_eq(((unsigned char *)v[i])[k], i + 1, "block %zu overwritten", i);
		size_t grown = sizes[i] * 3 + 40;
		unsigned char *p = sp_realloc(v[i], grown);
		cr_assert_not_null(p);
		for (size_t k = 0; k < sizes[i]; k++)
			cr_assert_eq(p[k], i + 1, "realloc(%zu -> %zu) lost byte %zu", sizes[i], grown, k);
		memset(p, 0xee, grown);
		cr_assert(!sp_heap_private() || sp_heap_owns(p));
		sp_free(p);
	}
	/* recycled memory comes back zeroed from calloc */
	for (size_t i = 0; i < N_SIZES; i++) {
		unsigned char *z = sp_calloc(1, sizes[i]);
		cr_assert_not_null(z);
		for (size_t k = 0; k < sizes[i]; k++)
			cr_assert_eq(z[k], 0, "calloc(%zu): byte %zu not zero", sizes[i], k);
		sp_free(z);
	}
	volatile size_t huge = SIZE_MAX / 2;   /* volatile: the compiler sees the overflow too */
	cr_assert_null(sp_calloc(huge, 4), "an overflowing calloc fails");
	char *d = sp_strndup("abcdef", 3);
	cr_assert_str_eq(d, "abc");
	sp_free(d);
	char *big = sp_asprintf("%0600d|%s", 7, "end");
	cr_assert_eq(strlen(big), 604);
	cr_assert_str_eq(big + 600, "|end");
	sp_free(big);
}

Test(heap, libc_blocks_go_back_to_libc)
{
	/* a buffer a libc API allocated (getline, open_memstream) */
	char *p = malloc(100);
	cr_assert_not_null(p);
	strcpy(p, "kept");
	cr_assert(!sp_heap_owns(p));
	p = sp_realloc(p, 5000);
	cr_assert_str_eq(p, "kept");
	cr_assert(!sp_heap_owns(p));
	sp_free(p);   /* glibc aborts on a pointer it does not own: it owns this one */
	sp_free(NULL);
}

static void *churn(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	void *slots[64] = { 0 };
	for (int i = 0; i < 20000; i++) {
		int k = (int)(rand_r(&seed) % 64);
		if (slots[k]) {
			cr_assert_eq(*(unsigned *)slots[k], (unsigned)k * 7919u, "a block changed under us");
			sp_free(slots[k]);
			slots[k] = NULL;
		} else {
			slots[k] = sp_malloc(sizeof(unsigned) + rand_r(&seed) % 3000);
			*(unsigned *)slots[k] = (unsigned)k * 7919u;
		}
	}
	for (int k = 0; k < 64; k++)
		sp_free(slots[k]);
	return NULL;
}

Test(heap, threads)
{
	pthread_t t[4];
	for (uintptr_t i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, churn, (void *)(i + 1)), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
}

static _Atomic int stop;

static void *hammer(void *arg)
{
	(void)arg;
	while (!stop)
		sp_free(sp_malloc(24));
	return NULL;
}

Test(heap, fork_child_never_inherits_the_lock)
{
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, hammer, NULL), 0);
	for (int i = 0; i < 200; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			void *p = sp_malloc(24);   /* deadlocks if the lock came in held */
			sp_free(p);
			_exit(p ? 0 : 1);
		}
		int st;
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	stop = 1;
	pthread_join(t, NULL);
}

struct rec {
	int key, seq;
};

static int by_key(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	return (x->key > y->key) - (x->key < y->key);
}

Test(sort, sorts_stably_without_malloc)
{
	size_t ns[] = { 0, 1, 2, 3, 10, 100, 5000 };   /* 5000 × 8 bytes: past glibc's 1 KiB alloca */
	for (size_t t = 0; t < sizeof(ns) / sizeof(ns[0]); t++) {
		size_t n = ns[t];
		struct rec *v = sp_malloc((n + 1) * sizeof(*v));
		unsigned seed = 7;
		for (size_t i = 0; i < n; i++)
			v[i] = (struct rec){ (int)(rand_r(&seed) % 50), (int)i };
		struct mallinfo2 before = mallinfo2();
		sp_qsort(v, n, sizeof(*v), by_key);
		struct mallinfo2 after = mallinfo2();
		if (sp_heap_private())
			cr_assert_eq(after.uordblks, before.uordblks, "the sort used malloc");
		for (size_t i = 1; i < n; i++) {
			cr_assert_leq(v[i - 1].key, v[i].key, "n=%zu: out of order at %zu", n, i);
			if (v[i - 1].key == v[i].key)
				cr_assert_lt(v[i - 1].seq, v[i].seq, "n=%zu: not stable at %zu", n, i);
		}
		sp_free(v);
	}
}

Test(procread, lines_and_names)
{
	struct sp_lines r;
	cr_assert_eq(sp_lines_open(&r, "/proc/self/maps"), 0);
	char line[16];
	int n = 0;
	bool cut = false;
	while (sp_lines_next(&r, line, sizeof(line))) {
		cr_assert_lt(strlen(line), sizeof(line));
		cr_assert_null(strchr(line, '\n'));
		cut |= strlen(line) == sizeof(line) - 1;
		n++;
	}
	sp_lines_close(&r);
	cr_assert_gt(n, 5);
	cr_assert(cut, "long lines are cut to the buffer");
	cr_assert_lt(sp_lines_open(&r, "/nonexistent"), 0);
	struct sp_dir d;
	cr_assert_eq(sp_dir_open(&d, "/proc/self/task"), 0);
	bool me = false;
	char tid[16];
	snprintf(tid, sizeof(tid), "%d", (int)gettid());
	for (const char *name; (name = sp_dir_next(&d));)
		me |= strcmp(name, tid) == 0;
	sp_dir_close(&d);
	cr_assert(me, "the task list names this thread");
}
