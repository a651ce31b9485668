/* Tests for coexist: the bytes that fault at once (run here: each one,
 * executed, must fault where it stands), and the trampoline placement
 * (every entry next/prev return is acceptable, the nearest one, and each
 * offset byte the kernel can make a thread run faults). */
#include <criterion/criterion.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "coexist.h"
#include "jmpplan.h"

static sigjmp_buf back;
static volatile uintptr_t fault_pc;
static volatile int fault_sig;

static void on_fault(int sig, siginfo_t *si, void *ucv)
{
	(void)si;
	ucontext_t *uc = ucv;
	fault_sig = sig;
	fault_pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	siglongjmp(back, 1);
}

/* Run BYTES (then int3s) at a fresh page: where did it stop, and how. */
static int run_bytes(const uint8_t *bytes, size_t n, uintptr_t *at, uintptr_t *page)
{
	uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	memset(p, 0xcc, 4096);
	memcpy(p, bytes, n);
	cr_assert_eq(mprotect(p, 4096, PROT_READ | PROT_EXEC), 0);
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO | SA_NODEFER }, old[4];
	int sigs[4] = { SIGSEGV, SIGILL, SIGTRAP, SIGBUS };
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &sa, &old[i]);
	fault_sig = 0;
	if (sigsetjmp(back, 1) == 0)
		((void (*)(void))p)();
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &old[i], NULL);
	*at = fault_pc;
	*page = (uintptr_t)p;
	munmap(p, 4096);
	return fault_sig;
}

Test(coexist, each_trap_byte_faults_where_it_stands)
{
	int n = 0;
	for (int b = 0; b < 256; b++) {
		if (!sp_coexist_traps((uint8_t)b))
			continue;
		n++;
		/* alone, and after a REX and an operand-size prefix (a torn
		 * first instruction): the fault is at the first byte */
		const uint8_t tries[3][3] = { { (uint8_t)b, 0x90, 0x90 }, { 0x48, (uint8_t)b, 0x90 },
					      { 0x66, (uint8_t)b, 0x90 } };
		for (int t = 0; t < 3; t++) {
			if (b == 0xcc && t > 0)
				continue;   /* a prefixed int3 runs: never placed after one */
			uintptr_t at, page;
			int sig = run_bytes(tries[t], 3, &at, &page);
			uintptr_t want = page + (b == 0xcc ? 1 : 0);   /* int3: just after it */
			cr_assert(sig != 0, "byte %#x (try %d) did not fault", b, t);
			cr_assert_eq(at, want, "byte %#x (try %d): fault at +%lu, want +%lu", b, t,
				     (unsigned long)(at - page), (unsigned long)(want - page));
		}
	}
	cr_assert_geq(n, 16);
}

static bool acceptable(uintptr_t site, unsigned len, uintptr_t e)
{
	int64_t r = (int64_t)(e - (site + SP_JMP_LEN));
	if (r > INT32_MAX || r < INT32_MIN)
		return false;
	uint8_t rel[4];
	int32_t r32 = (int32_t)r;
	memcpy(rel, &r32, 4);
	if (rel[0] == 0xcc || !sp_coexist_traps(rel[0]))
		return false;
	return len < 2 || len > 4 || sp_coexist_traps(rel[len - 1]);
}

Test(coexist, placement_is_acceptable_and_nearest)
{
	const uintptr_t sites[] = { 0x7f0000001000, 0x7f12345678ab, 0x5555555551c3 };
	for (size_t s = 0; s < sizeof(sites) / sizeof(sites[0]); s++)
		for (unsigned len = 1; len <= 6; len++) {
			struct sp_coexist_fit f = { .site = sites[s], .len = len };
			for (int k = 0; k < 200; k++) {
				uintptr_t x = sites[s] + (uintptr_t)((k - 100) * 1234567L);
				uintptr_t up = sp_coexist_next_entry(x, &f), down = sp_coexist_prev_entry(x, &f);
				cr_assert(up >= x && acceptable(sites[s], len, up), "next: len %u x %#lx -> %#lx", len,
					  (unsigned long)x, (unsigned long)up);
				cr_assert(down <= x && acceptable(sites[s], len, down), "prev: len %u", len);
				/* nothing acceptable strictly between (checked near x) */
				for (uintptr_t y = x; y < up && y < x + 300; y++)
					cr_assert(!acceptable(sites[s], len, y), "len %u: %#lx skipped", len,
						  (unsigned long)y);
				for (uintptr_t y = x; y > down && y > x - 300; y--)
					cr_assert(!acceptable(sites[s], len, y), "len %u: %#lx skipped", len,
						  (unsigned long)y);
			}
		}
}
