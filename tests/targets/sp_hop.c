/* sp_hop — a hop site end to end (e2e_hop.py).
 *
 *   sp_hop api N       attach uprobe:hop_loop through the C API in auto
 *                      mode with a counting handler; check the site holds
 *                      a hop (eb rel8 at the entry, e9 rel32 in the padding
 *                      after hop_prev); 2 threads call hop_loop N times
 *                      each and check every result; the handler must have
 *                      counted exactly 2N; detach; every byte around the
 *                      site and its pad is as before the attach; a call
 *                      after the detach is not counted; then attached
 *                      again and detached while the 2 threads call it
 *                      (every result still right, the bytes restored)
 *   sp_hop preload N   the same calls under LD_PRELOAD (the report counts);
 *                      prints the bytes' state ("patch hop" or not)
 * Prints one line per finding; exit status 0 when everything held.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selfprobe.h"

uint64_t hop_loop(uint64_t a);
uint64_t hop_prev(uint64_t a);   /* 5 bytes, then the padding (not named
				  * here: a taken address there would make it
				  * a possible indirect jump target) */

#define SPAN 160   /* bytes kept on each side of the site: the pad is within 129 */

static _Atomic uint64_t hits;
static _Atomic uint64_t wrong;
static unsigned long n_calls;

static int on_hit(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx;
	(void)data;
	atomic_fetch_add(&hits, 1);
	return 0;
}

static void *hammer(void *arg)
{
	uint64_t seed = (uintptr_t)arg;
	for (unsigned long i = 0; i < n_calls; i++) {
		uint64_t a = 1 + (i + seed) % 8;
		if (hop_loop(a) != 3 * a)
			atomic_fetch_add(&wrong, 1);
	}
	return NULL;
}

/* The address of code, hidden from the compiler's object-size checks. */
static const uint8_t *code_at(const void *fn)
{
	uintptr_t a = (uintptr_t)fn;
	__asm__("" : "+r"(a));
	return (const uint8_t *)a;
}

/* Does the site hold a hop into the padding after hop_prev? */
static int holds_hop(void)
{
	const uint8_t *site = code_at(hop_loop);
	if (site[0] != 0xeb)
		return 0;
	const uint8_t *pad = site + 2 + (int8_t)site[1];
	return pad >= code_at(hop_prev) + 5 && pad + 5 <= site && pad[0] == 0xe9;
}

static pthread_t th[2];

static int start_threads(void)
{
	for (int i = 0; i < 2; i++)
		if (pthread_create(&th[i], NULL, hammer, (void *)(uintptr_t)(i * 3))) {
			fprintf(stderr, "sp_hop: pthread_create failed\n");
			return -1;
		}
	return 0;
}

static void join_threads(void)
{
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
}

static int run_threads(void)
{
	if (start_threads() != 0)
		return -1;
	join_threads();
	return 0;
}

/* Are the SPAN bytes around the site as in BEFORE?  Prints the others. */
static int same_bytes(const uint8_t *before, const uint8_t *lo)
{
	int same = memcmp(before, lo, 2 * SPAN) == 0;
	for (size_t i = 0; !same && i < 2 * SPAN; i++)
		if (before[i] != lo[i])
			printf("byte %+d: %02x, was %02x\n", (int)i - SPAN, lo[i], before[i]);
	return same;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "api") && strcmp(argv[1], "preload"))) {
		fprintf(stderr, "usage: sp_hop api|preload N\n");
		return 2;
	}
	n_calls = strtoul(argv[2], NULL, 0);
	int bad = 0;
	if (hop_prev(1) != 2)
		bad = 1;
	if (!strcmp(argv[1], "preload")) {
		printf("patch %s\n", holds_hop() ? "hop" : "other");
		if (run_threads() != 0)
			return 1;
		printf("calls %lu wrong %lu\n", 2 * n_calls, (unsigned long)atomic_load(&wrong));
		return atomic_load(&wrong) || bad;
	}

	const uint8_t *lo = code_at(hop_loop) - SPAN;
	uint8_t before[2 * SPAN];
	memcpy(before, lo, sizeof(before));
	if (selfprobe_set_mode("auto") != 0) {
		fprintf(stderr, "sp_hop: selfprobe_set_mode failed\n");
		return 1;
	}
	struct selfprobe_link *l = selfprobe_attach("uprobe:hop_loop", on_hit, NULL);
	if (!l) {
		fprintf(stderr, "sp_hop: attach failed\n");
		return 1;
	}
	int hop = holds_hop();
	printf("patch %s\n", hop ? "hop" : "other");
	bad |= !hop;
	if (run_threads() != 0)
		return 1;
	uint64_t h = atomic_load(&hits), w = atomic_load(&wrong);
	printf("hits %lu of %lu, wrong %lu\n", (unsigned long)h, 2 * n_calls, (unsigned long)w);
	bad |= h != 2 * n_calls || w != 0;
	if (selfprobe_detach(l) != 0) {
		fprintf(stderr, "sp_hop: detach failed\n");
		return 1;
	}
	int restored = same_bytes(before, lo);
	printf("restored %s\n", restored ? "yes" : "no");
	bad |= !restored;
	bad |= hop_loop(2) != 6;
	printf("hits after detach %lu\n", (unsigned long)(atomic_load(&hits) - h));
	bad |= atomic_load(&hits) != h;

	/* detach while both threads run through the site */
	if (!(l = selfprobe_attach("uprobe:hop_loop", on_hit, NULL)) || start_threads() != 0) {
		fprintf(stderr, "sp_hop: attach or threads failed\n");
		return 1;
	}
	while (atomic_load(&hits) < h + n_calls / 4)
		sched_yield();
	int rc = selfprobe_detach(l);
	join_threads();
	restored = rc == 0 && same_bytes(before, lo);
	printf("detached under load: wrong %lu, restored %s\n", (unsigned long)atomic_load(&wrong),
	       restored ? "yes" : "no");
	bad |= !restored || atomic_load(&wrong) != 0;
	return bad;
}
