/* sp_dl_target — loads a library after start and unloads it, for the tests
 * of objects that come and go (e2e_load.py).
 *
 *   sp_dl_target LIBPATH N M [K]
 *
 * Calls dl_main_func K times (default 10; a probe site of the program
 * itself), then: dlopen LIBPATH, call its dl_func N times, dlclose (the
 * library and its dependency are unmapped), dlopen it again, call dl_func
 * M times, exit without closing it.  M = -1: no second load (the program
 * exits with the library unloaded).  Prints one line per phase with a
 * checksum of the results, so that a probed run's output can be compared
 * with an unprobed one's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline, used, visibility("default"))) int dl_main_func(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 3 + 1;
}

/* Is an object whose name contains NAME mapped?  (dlclose must really
 * unload, or the test would not test reloading.) */
static int mapped_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	return info->dlpi_name && strstr(info->dlpi_name, data) != NULL;
}

static int is_mapped(const char *name)
{
	return dl_iterate_phdr(mapped_cb, (void *)name);
}

static long run(const char *path, long n, int round)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		exit(2);
	}
	int (*fn)(int) = (int (*)(int))dlsym(h, "dl_func");
	if (!fn) {
		fprintf(stderr, "dlsym dl_func: %s\n", dlerror());
		exit(2);
	}
	long sum = 0;
	for (long i = 0; i < n; i++)
		sum += fn((int)i);
	printf("load %d: dl_func calls %ld sum %ld\n", round, n, sum);
	return (long)(uintptr_t)h;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s LIBPATH N M [K]\n", argv[0]);
		return 2;
	}
	long n = atol(argv[2]), m = atol(argv[3]), k = argc > 4 ? atol(argv[4]) : 10;
	long sum = 0;
	for (long i = 0; i < k; i++)
		sum += dl_main_func((int)i);
	printf("main: dl_main_func calls %ld sum %ld\n", k, sum);
	fflush(stdout);

	void *h = (void *)run(argv[1], n, 1);
	if (dlclose(h) != 0) {
		fprintf(stderr, "dlclose: %s\n", dlerror());
		return 2;
	}
	printf("closed: lib %s, dep %s\n", is_mapped("libsp_dl_lib") ? "mapped" : "unmapped",
	       is_mapped("libsp_dl_dep") ? "mapped" : "unmapped");
	if (m >= 0)
		run(argv[1], m, 2);
	fflush(stdout);
	return 0;
}
