/* stopworld: sorting and finding stop windows (sp_arm_batch uses them
 * between a batch's int3 and its jmp, where libc's qsort would trap). */
#include <criterion/criterion.h>

#include "stopworld.h"

static int by_site(const void *a, const void *b)
{
	const struct sp_stop_window *x = a, *y = b;
	return x->site < y->site ? -1 : x->site > y->site;
}

Test(stopworld, sort_and_find)
{
	enum { N = 1000 };
	static struct sp_stop_window w[N];
	for (int i = 0; i < N; i++)   /* distinct sites, shuffled, each tagged */
		w[i] = (struct sp_stop_window){ .site = 0x1000 + 16 * (uintptr_t)((i * 617) % N), .len = 5,
						.busy = (int)((0x1000 + 16 * (uintptr_t)((i * 617) % N)) % 7) };
	sp_stopworld_sort(w, N, by_site);
	for (int i = 1; i < N; i++)
		cr_assert_lt(w[i - 1].site, w[i].site, "unsorted at %d", i);
	for (int i = 0; i < N; i++) {
		uintptr_t site = 0x1000 + 16 * (uintptr_t)i;
		struct sp_stop_window *f = sp_stopworld_find(w, N, site);
		cr_assert_not_null(f);
		cr_assert_eq(f->site, site);
		cr_assert_eq(f->busy, (int)(site % 7), "the window moved without its fields");
		cr_assert_null(sp_stopworld_find(w, N, site + 1));
	}
	cr_assert_null(sp_stopworld_find(w, N, 0xfff));
	cr_assert_null(sp_stopworld_find(w, N, 0x1000 + 16 * N));
	cr_assert_null(sp_stopworld_find(w, 0, 0x1000));
	sp_stopworld_sort(w, 0, by_site);
	sp_stopworld_sort(w, 1, by_site);
}
