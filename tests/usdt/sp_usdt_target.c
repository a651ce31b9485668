/* sp_usdt_target — USDT sites of every argument form, with known values.
 *
 *   sp_usdt_target [LOOPS] [--dlopen]
 *
 * Fires each sptest probe (probes.d/sptest.d) LOOPS times (default 1) and
 * prints, for the first round, one line per firing with the values a tracer
 * must read, as selfprobe_usdt_arg() returns them (int64, sign- or
 * zero-extended by the note's size):
 *
 *   expect sptest:args3 -7 65535 -100000
 *
 * then the counts: "count sptest:args3 LOOPS", and "count sptest:guarded K"
 * where K is how many rounds found the guarded probe's semaphore set.
 * --dlopen loads libsp_usdt_lib.so (next to this program) after start and
 * fires its probe sptest_lib:fire LOOPS times ("expect sptest_lib:fire ...").
 *
 * The operands vary on purpose (check with `readelf -n`): constants ($N),
 * arguments in registers of every width, volatile locals on the stack
 * (N(%rsp)), globals (sym(%rip)), struct fields through a pointer (N(%rdi)),
 * array elements through an index register ((%rax,%rdx,8)), and the
 * 'inlined' probe from three inlined copies of one function (three notes,
 * one name).  Functions are noipa so their arguments arrive in registers.
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sptest_probes.h"

/* noipa: no constant propagation into the callee, so arguments stay in registers. */
#define NOINLINE __attribute__((noinline, noipa))

static int print_round = 1;      /* print "expect" lines in the first round only */

static void expect(const char *probe, int n, const int64_t *v)
{
	if (!print_round)
		return;
	printf("expect %s", probe);
	for (int i = 0; i < n; i++)
		printf(" %" PRId64, v[i]);
	printf("\n");
}

#define EXPECT(probe, ...)                                                   \
	do {                                                                 \
		const int64_t v_[] = { __VA_ARGS__ };                        \
		expect(probe, (int)(sizeof(v_) / sizeof(v_[0])), v_);        \
	} while (0)

/* Globals: at -O2 the compiler passes them as sym(%rip) memory operands. */
int8_t g_i8 = -100;
uint8_t g_u8 = 250;
int16_t g_i16 = -30000;
uint16_t g_u16 = 60000;
int32_t g_i32 = -2000000000;
uint32_t g_u32 = 4000000000u;
int64_t g_i64 = -5000000000000LL;
uint64_t g_u64 = 0xfedcba9876543210ull;
int64_t g_arr[8] = { 10, -20, 30, -40, 50, -60, 70, -80 };
int32_t g_arr32[8] = { -1, 2, -3, 4, -5, 6, -7, 8 };

struct rec {
	int8_t a;
	uint8_t b;
	int16_t c;
	uint16_t d;
	int32_t e;
	uint32_t f;
	int64_t g;
	uint64_t h;
	void *p;
};

static struct rec g_rec = { -1, 255, -2, 65535, -3, 4294967295u, -4, 18446744073709551615ull,
			    (void *)0x1234 };

/* Constants: $N operands. */
NOINLINE static void fire_constants(void)
{
	SPTEST_ARGS0();
	EXPECT("sptest:args0");
	SPTEST_ARGS1((int32_t)-42);
	EXPECT("sptest:args1", -42);
	SPTEST_ARGS2((int8_t)-5, (uint8_t)200);
	EXPECT("sptest:args2", -5, 200);
	SPTEST_ARGS3((int16_t)-7, (uint16_t)65535, (int32_t)-100000);
	EXPECT("sptest:args3", -7, 65535, -100000);
}

/* Registers of every width: the arguments arrive in %dil, %si, %edx, %rcx … */
NOINLINE static void fire_regs(int8_t a, int16_t b, int32_t c, int64_t d, uint8_t e)
{
	SPTEST_ARGS5(a, b, c, d, e);
	EXPECT("sptest:args5", a, b, c, d, e);
}

NOINLINE static void fire_regs2(uint16_t a, uint32_t b, uint64_t c, int8_t d, int16_t e, int32_t f)
{
	SPTEST_ARGS6(a, b, c, d, e, f);
	EXPECT("sptest:args6", a, b, c, d, e, f);
}

/* Stack: volatile locals are passed as N(%rsp) memory operands. */
NOINLINE static void fire_stack(void)
{
	volatile uint32_t a = 3000000000u;
	volatile int64_t b = -123456789012LL;
	volatile uint64_t c = 0x8000000000000001ull;
	volatile uintptr_t p = 0xdeadbeef;

	SPTEST_ARGS4(a, b, c, (void *)p);
	EXPECT("sptest:args4", 3000000000LL, -123456789012LL, (int64_t)0x8000000000000001ull,
	       0xdeadbeef);
}

/* Globals (sym(%rip)) and arrays through an index register. */
NOINLINE static void fire_globals(int i, int j)
{
	SPTEST_ARGS8(g_u8, g_i8, g_u16, g_i16, g_u32, g_i32, g_u64, g_i64);
	EXPECT("sptest:args8", 250, -100, 60000, -30000, 4000000000LL, -2000000000,
	       (int64_t)0xfedcba9876543210ull, -5000000000000LL);
	SPTEST_ARGS7(g_arr[i], g_arr[j], g_arr[i + 1], g_arr[7], g_arr32[i], g_arr32[j],
		     (int64_t)i * -3);
	EXPECT("sptest:args7", g_arr[i], g_arr[j], g_arr[i + 1], g_arr[7], g_arr32[i], g_arr32[j],
	       (int64_t)i * -3);
}

/* Struct fields through a pointer: N(%rdi). */
NOINLINE static void fire_struct(const struct rec *r)
{
	SPTEST_ARGS11(r->a, r->b, r->c, r->d, r->e, r->f, r->g, r->h, r->p, (int32_t)-1, (int64_t)1);
	EXPECT("sptest:args11", -1, 255, -2, 65535, -3, 4294967295LL, -4, -1, 0x1234, -1, 1);
	SPTEST_ARGS12(r->a, r->b, r->c, r->d, r->e, r->f, r->g, r->h, r->p, r[0].e, r->g,
		      (uint8_t)7);
	EXPECT("sptest:args12", -1, 255, -2, 65535, -3, 4294967295LL, -4, -1, 0x1234, -3, -4, 7);
}

/* Many arguments: more than the free registers, a mix of forms. */
NOINLINE static void fire_many(int32_t a, int32_t b, int64_t c, uint64_t d)
{
	SPTEST_ARGS9(a, b, a + b, a - b, a * 3, -a, b * 2, INT32_MIN, INT32_MAX);
	EXPECT("sptest:args9", a, b, a + b, a - b, a * 3, -a, b * 2, INT32_MIN, INT32_MAX);
	SPTEST_ARGS10(c, d, c + 1, d + 1, INT64_MIN, UINT64_MAX, INT64_MAX, 0, -c, d >> 1);
	EXPECT("sptest:args10", c, (int64_t)d, c + 1, (int64_t)(d + 1), INT64_MIN, -1, INT64_MAX,
	       0, -c, (int64_t)(d >> 1));
}

/* Behind the semaphore: fires only while a tracer has it set. */
NOINLINE static int fire_guarded(int32_t v)
{
	if (SPTEST_GUARDED_ENABLED()) {
		SPTEST_GUARDED(v);
		return 1;
	}
	return 0;
}

/* One probe, three inlined copies: three notes named sptest:inlined. */
static inline __attribute__((always_inline)) void inlined(int32_t a, int64_t b)
{
	SPTEST_INLINED(a, b);
}

NOINLINE static void fire_inlined(int32_t a, int64_t b)
{
	inlined(a, b);
	EXPECT("sptest:inlined", a, b);
	inlined(-a, b * 2);
	EXPECT("sptest:inlined", -a, b * 2);
	inlined(7, -7);
	EXPECT("sptest:inlined", 7, -7);
}

static int fire_lib(const char *self_dir, long loops)
{
	char path[PATH_MAX];
	void (*fire)(int32_t, int64_t);
	void *h;

	if ((size_t)snprintf(path, sizeof(path), "%s/libsp_usdt_lib.so", self_dir) >= sizeof(path))
		return -1;
	h = dlopen(path, RTLD_NOW);
	if (!h) {
		fprintf(stderr, "sp_usdt_target: %s\n", dlerror());
		return -1;
	}
	*(void **)&fire = dlsym(h, "sp_usdt_lib_fire");
	if (!fire) {
		fprintf(stderr, "sp_usdt_target: %s\n", dlerror());
		return -1;
	}
	for (long r = 0; r < loops; r++)
		fire(-77, 1LL << 40);
	printf("expect sptest_lib:fire -77 %lld\n", 1LL << 40);
	printf("count sptest_lib:fire %ld\n", loops);
	return 0;
}

int main(int argc, char **argv)
{
	long loops = 1, guarded = 0;
	int use_lib = 0;
	char self[PATH_MAX];
	ssize_t len;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dlopen") == 0)
			use_lib = 1;
		else
			loops = strtol(argv[i], NULL, 0);
	}
	for (long r = 0; r < loops; r++) {
		print_round = r == 0;
		fire_constants();
		fire_regs(-128, -32768, INT32_MIN, INT64_MIN + 1, 255);
		fire_regs2(65535, 4294967295u, 0x123456789abcdef0ull, 127, 32767, INT32_MAX);
		fire_stack();
		fire_globals(2, 5);
		fire_struct(&g_rec);
		fire_many(-1000, 77, -9000000000LL, 0xf000000000000000ull);
		fire_inlined(1234, -99);
		guarded += fire_guarded(31337);
		if (print_round)
			fflush(stdout);
	}
	printf("expect sptest:guarded 31337\n");
	static const char *const names[] = { "args0", "args1", "args2", "args3", "args4", "args5",
		"args6", "args7", "args8", "args9", "args10", "args11", "args12" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		printf("count sptest:%s %ld\n", names[i], loops);
	printf("count sptest:inlined %ld\n", loops * 3);
	printf("count sptest:guarded %ld\n", guarded);
	if (use_lib) {
		len = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (len <= 0)
			return 1;
		self[len] = '\0';
		*strrchr(self, '/') = '\0';
		if (fire_lib(self, loops) < 0)
			return 1;
	}
	return 0;
}
