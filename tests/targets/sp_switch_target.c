/* sp_switch_target LIB ITERS — dlopens LIB (libsp_switch_*.so) and calls
 * each of its functions ITERS times from each of 2 threads, with results
 * folded into a checksum; prints "name calls" for each function and the
 * checksum (e2e_decide.py compares a probed run with a plain one). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 2

typedef long (*fn_il)(int, long);
typedef long (*fn_loop)(const unsigned char *, int, long);
typedef long (*fn_cg)(const unsigned char *, long);
struct methods {
	long (*step)(long);
	long (*finish)(long);
};
typedef long (*fn_m)(const struct methods *, long);
typedef long (*fn_p)(long (*)(long), long);
typedef long (*fn_t)(long, const struct methods *);

static fn_il sw_dense, sw_offset;
static fn_loop sw_loop;
static fn_cg cg_run;
static fn_m tc_method;
static fn_p tc_ptr;
static fn_t tc_tail;
static long iters;
static unsigned long sums[THREADS];

static long twice(long a) { return a * 2 + 1; }
static long minus(long a) { return a - 3; }

static void *worker(void *arg)
{
	long t = (long)arg;
	static const unsigned char prog[] = { 0, 1, 2, 3, 0, 2, 1, 4 };
	unsigned char ops[16];
	struct methods m = { twice, minus };
	unsigned long s = 0;
	for (long i = 0; i < iters; i++) {
		for (int k = 0; k < 16; k++)
			ops[k] = (unsigned char)(i * 7 + k * 3 + t);
		s = s * 31 + (unsigned long)sw_dense((int)(i % 12), i);
		s = s * 31 + (unsigned long)sw_offset((int)(98 + i % 16), i);
		s = s * 31 + (unsigned long)sw_loop(ops, 16, i);
		s = s * 31 + (unsigned long)cg_run(prog + (i % 4 == 0 ? 4 : 0), i);
		s = s * 31 + (unsigned long)tc_method(&m, i);
		s = s * 31 + (unsigned long)tc_ptr(twice, i);
		s = s * 31 + (unsigned long)tc_tail(i, &m);
	}
	sums[t] = s;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s LIB ITERS\n", argv[0]);
		return 2;
	}
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	iters = atol(argv[2]);
	sw_dense = (fn_il)dlsym(h, "sw_dense");
	sw_offset = (fn_il)dlsym(h, "sw_offset");
	sw_loop = (fn_loop)dlsym(h, "sw_loop");
	cg_run = (fn_cg)dlsym(h, "cg_run");
	tc_method = (fn_m)dlsym(h, "tc_method");
	tc_ptr = (fn_p)dlsym(h, "tc_ptr");
	tc_tail = (fn_t)dlsym(h, "tc_tail");
	if (!sw_dense || !sw_offset || !sw_loop || !cg_run || !tc_method || !tc_ptr || !tc_tail) {
		fprintf(stderr, "missing symbols in %s\n", argv[1]);
		return 1;
	}
	pthread_t th[THREADS];
	for (long t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, worker, (void *)t);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	const char *names[] = { "sw_dense", "sw_offset", "sw_loop", "cg_run", "tc_method", "tc_ptr", "tc_tail" };
	for (int i = 0; i < 7; i++)
		printf("%s %ld\n", names[i], iters * THREADS);
	printf("checksum %lx %lx\n", sums[0], sums[1]);
	return 0;
}
