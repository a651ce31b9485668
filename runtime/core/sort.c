/* sort — merge sort in the runtime's own memory; see sort.h. */
#include "sort.h"
#include "heap.h"

#include <string.h>

struct order {
	int (*cmp)(const void *, const void *, void *);
	void *arg;
	size_t size;
};

static int ask(const struct order *o, const char *a, const char *b)
{
	return o->cmp(a, b, o->arg);
}

/* Sort N elements at A, with TMP (room for N) as scratch. */
static void merge_sort(char *a, size_t n, char *tmp, const struct order *o)
{
	if (n < 2)
		return;
	size_t n1 = n / 2, n2 = n - n1, sz = o->size;
	char *b = a + n1 * sz;
	merge_sort(a, n1, tmp, o);
	merge_sort(b, n2, tmp, o);
	char *out = tmp, *l = a, *r = b, *le = b, *re = a + n * sz;
	while (l < le && r < re) {
		if (ask(o, l, r) <= 0) {   /* ties keep their order: stable */
			memcpy(out, l, sz);
			l += sz;
		} else {
			memcpy(out, r, sz);
			r += sz;
		}
		out += sz;
	}
	memcpy(out, l, (size_t)(le - l));   /* what is left of the right half is in place */
	memcpy(a, tmp, (size_t)(out - tmp) + (size_t)(le - l));
}

static void swap(char *a, char *b, size_t sz)
{
	while (sz--) {
		char t = *a;
		*a++ = *b;
		*b++ = t;
	}
}

static void sift(char *a, size_t root, size_t n, const struct order *o)
{
	size_t sz = o->size;
	for (size_t child; (child = 2 * root + 1) < n; root = child) {
		if (child + 1 < n && ask(o, a + child * sz, a + (child + 1) * sz) < 0)
			child++;
		if (ask(o, a + root * sz, a + child * sz) >= 0)
			return;
		swap(a + root * sz, a + child * sz, sz);
	}
}

static void heap_sort(char *a, size_t n, const struct order *o)
{
	for (size_t i = n / 2; i-- > 0;)
		sift(a, i, n, o);
	for (size_t end = n; end-- > 1;) {
		swap(a, a + end * o->size, o->size);
		sift(a, 0, end, o);
	}
}

void sp_qsort_r(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *, void *), void *arg)
{
	if (n < 2 || !size)
		return;
	struct order o = { cmp, arg, size };
	char small[1024];
	char *tmp = n * size <= sizeof(small) ? small : sp_malloc(n * size);
	if (!tmp) {
		heap_sort(base, n, &o);
		return;
	}
	merge_sort(base, n, tmp, &o);
	if (tmp != small)
		sp_free(tmp);
}

static int plain(const void *a, const void *b, void *cmp)
{
	return ((int (*)(const void *, const void *))cmp)(a, b);
}

void sp_qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	sp_qsort_r(base, n, size, plain, (void *)cmp);
}
