/* sp_hop_dl LIB N — load LIB (libsp_hop_lib.so or its stripped copy) with
 * dlopen and call its hopl_loop N times from each of 2 threads, checking
 * every result (e2e_hop_stripped.py).  Prints "calls C wrong W" and
 * "patch hop" when the entry holds a jmp rel8 (eb) while probed.  Exit 0
 * when every result was right. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t (*fn)(uint64_t);
static unsigned long n_calls;
static unsigned long wrong[2];

static void *hammer(void *arg)
{
	int t = (int)(intptr_t)arg;
	for (unsigned long i = 0; i < n_calls; i++) {
		uint64_t a = 1 + (i + (unsigned)t) % 8;
		if (fn(a) != 3 * a)
			wrong[t]++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: sp_hop_dl LIB N\n");
		return 2;
	}
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h || !(fn = (uint64_t (*)(uint64_t))dlsym(h, "hopl_loop"))) {
		fprintf(stderr, "sp_hop_dl: %s\n", dlerror());
		return 1;
	}
	n_calls = strtoul(argv[2], NULL, 10);
	pthread_t th[2];
	for (int t = 0; t < 2; t++)
		pthread_create(&th[t], NULL, hammer, (void *)(intptr_t)t);
	for (int t = 0; t < 2; t++)
		pthread_join(th[t], NULL);
	printf("calls %lu wrong %lu\n", 2 * n_calls, wrong[0] + wrong[1]);
	printf("patch %s\n", *(const volatile uint8_t *)(uintptr_t)fn == 0xeb ? "hop" : "other");
	return wrong[0] + wrong[1] ? 1 : 0;
}
