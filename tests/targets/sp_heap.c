/* sp_heap — the program's own heap, printed so that a probed run can be
 * compared with an unprobed one byte for byte (e2e_heap.py): mallinfo2()'s
 * fields and where each block of a fixed sequence of malloc, realloc and
 * free lands, as an offset from the first block (the heap's base moves with
 * ASLR; its layout does not).  sp_heap [LIB]: LIB is dlopened half way, so
 * that probes waiting for it attach in the middle of the sequence. */
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uintptr_t base;

/* A block malloc mmapped on its own lies wherever the kernel put it, among
 * the runtime's own mappings: not part of the heap's layout. */
static void at(const char *what, const void *p)
{
	ptrdiff_t off = (ptrdiff_t)((uintptr_t)p - base);
	if (off > (ptrdiff_t)1 << 30 || off < -((ptrdiff_t)1 << 30))
		printf("%s mmapped\n", what);
	else
		printf("%s %+td\n", what, off);
}

static void info(const char *when)
{
	struct mallinfo2 m = mallinfo2();
	printf("%s: arena %zu ordblks %zu smblks %zu hblks %zu hblkhd %zu fsmblks %zu uordblks %zu "
	       "fordblks %zu keepcost %zu\n", when, m.arena, m.ordblks, m.smblks, m.hblks, m.hblkhd,
	       m.fsmblks, m.uordblks, m.fordblks, m.keepcost);
}

static void round_of(const char *name)
{
	static const size_t sizes[] = {1, 24, 40, 100, 200, 700, 1500, 5000, 40000, 200000};
	void *v[sizeof(sizes) / sizeof(sizes[0])];
	char label[64];
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		v[i] = malloc(sizes[i]);
		memset(v[i], (int)i, sizes[i]);
		snprintf(label, sizeof(label), "%s malloc(%zu)", name, sizes[i]);
		at(label, v[i]);
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i += 2)
		free(v[i]);
	for (size_t i = 1; i < sizeof(sizes) / sizeof(sizes[0]); i += 2) {
		v[i] = realloc(v[i], sizes[i] * 3 + 8);
		snprintf(label, sizeof(label), "%s realloc(%zu)", name, sizes[i] * 3 + 8);
		at(label, v[i]);
	}
	char *s = strdup(name);
	at("strdup", s);
	free(s);
	for (size_t i = 1; i < sizeof(sizes) / sizeof(sizes[0]); i += 2)
		free(v[i]);
	info(name);
}

int main(int argc, char **argv)
{
	void *first = malloc(16);
	base = (uintptr_t)first;
	info("start");
	round_of("one");
	if (argc > 1) {
		void *h = dlopen(argv[1], RTLD_NOW);
		if (!h) {
			fprintf(stderr, "sp_heap: %s\n", dlerror());
			return 1;
		}
		round_of("loaded");
		dlclose(h);
	}
	round_of("two");
	free(first);
	info("end");
	return 0;
}
