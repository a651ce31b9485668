/* sp_carrier — a hop through a carrier, end to end (e2e_hop.py carrier).
 *
 *   sp_carrier N
 *
 * Two threads call cr_short, cr_host and cr_next N times each (the carrier
 * lies in cr_host: every call runs through its relocated copy once the hop
 * is armed), checking every result; prints "calls N wrong K" and what
 * cr_short's entry holds ("patch hop" when it starts with eb). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

uint64_t cr_host(uint64_t a);
uint64_t cr_short(uint64_t a);
uint64_t cr_next(uint64_t a);
void cr_spacer_lo(void);
void cr_spacer_hi(void);

static unsigned long n_calls;
static _Atomic unsigned long wrong;

static void *hammer(void *arg)
{
	uint64_t seed = (uintptr_t)arg;
	for (unsigned long i = 0; i < n_calls; i++) {
		uint64_t a = i + seed;
		cr_spacer_lo();
		cr_spacer_hi();
		if (cr_short(a) != (uint32_t)(a + 1) || cr_host(a) != a + 10 || cr_next(a) != 2 * a)
			atomic_fetch_add(&wrong, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	n_calls = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, hammer, (void *)(uintptr_t)(i * 7)) != 0)
			return 2;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	uintptr_t at = (uintptr_t)cr_short;
	__asm__("" : "+r"(at));
	printf("calls %lu wrong %lu\n", 2 * n_calls, (unsigned long)atomic_load(&wrong));
	printf("%s\n", *(volatile uint8_t *)at == 0xeb ? "patch hop" : "patch other");
	return 0;
}
