/* sp_stacks — a known call graph for the stack tests (e2e_stack.py):
 *
 *   main -> st_a -> st_b -> st_leaf                        ST_AB calls
 *   main -> st_c -> st_leaf                                ST_C calls
 *   main -> st_via_lib -> stlib_outer -> stlib_inner       ST_LIB calls
 *        -> st_leaf              (stlib_*: libsp_stacks_lib.so)
 *   main -> st_sort -> qsort (libc, its own frames) -> st_cmp
 *
 * Built at -O0 without inlining, so every one of these is a real frame.
 * Prints "ab N", "c N", "lib N" and "cmp N": how many times it took each
 * path (the calls of st_a, st_c, st_via_lib and st_cmp).  With an argument P, and
 * when the preload is there (selfprobe_write_report found with dlsym),
 * also writes the report as P.json and P.txt before it returns, so that a
 * test can set one run's text and JSON reports against its folded stacks.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define ST_AB  3
#define ST_C   5
#define ST_LIB 2

int stlib_outer(int (*cb)(int), int x);

#define NOINLINE __attribute__((noinline, used))

static volatile int sink;
static int ab_calls, c_calls, lib_calls, cmp_calls;

NOINLINE int st_leaf(int x)
{
	sink += x;
	return x + 1;
}

NOINLINE int st_b(int x)
{
	return st_leaf(x) + 1;
}

NOINLINE int st_a(int x)
{
	ab_calls++;
	return st_b(x) + 1;
}

NOINLINE int st_c(int x)
{
	c_calls++;
	return st_leaf(x) + 1;
}

NOINLINE int st_via_lib(int x)
{
	lib_calls++;
	return stlib_outer(st_leaf, x) + 1;
}

NOINLINE int st_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	cmp_calls++;
	return (x > y) - (x < y);
}

NOINLINE int st_sort(void)
{
	int v[8] = { 5, 3, 8, 1, 7, 2, 6, 4 };
	qsort(v, 8, sizeof(v[0]), st_cmp);
	return v[0];
}

static void write_reports(const char *prefix)
{
	int (*write_report)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT,
									     "selfprobe_write_report");
	if (!write_report)
		return;
	char path[4096];
	snprintf(path, sizeof(path), "%s.json", prefix);
	write_report(path);
	snprintf(path, sizeof(path), "%s.txt", prefix);
	write_report(path);
}

int main(int argc, char **argv)
{
	for (int i = 0; i < ST_AB; i++)
		st_a(i);
	for (int i = 0; i < ST_C; i++)
		st_c(i);
	for (int i = 0; i < ST_LIB; i++)
		st_via_lib(i);
	st_sort();
	printf("ab %d\nc %d\nlib %d\ncmp %d\n", ab_calls, c_calls, lib_calls, cmp_calls);
	fflush(stdout);
	if (argc > 1)
		write_reports(argv[1]);
	return 0;
}
