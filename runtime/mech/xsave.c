/* xsave — choose the save instruction, the components and the area size
 * (CPUID leaf 0xD). */
#include "xsave.h"

#include <cpuid.h>

/* AMX (XTILECFG, XTILEDATA: 8 KiB of tiles) is left out of the save: only
 * AMX instructions touch the tiles, which no handler runs (they need the
 * thread's arch_prctl permission), so the program's tiles survive the
 * handler untouched — and a hit on a small thread stack does not cost
 * 11 KiB. */
#define XFEATURE_AMX ((1ull << 17) | (1ull << 18))

uint64_t sp_xsave_size = 512 + 64;
uint32_t sp_xsave_kind;
uint64_t sp_xsave_mask;

static uint64_t xcr0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

void sp_xsave_init(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) {
		sp_xsave_kind = 0;            /* FXSAVE: 512 bytes */
		sp_xsave_size = 512 + 64;
		return;
	}
	sp_xsave_mask = xcr0() & ~XFEATURE_AMX;
	unsigned a1, b1, c1, d1;
	__cpuid_count(0xd, 1, a1, b1, c1, d1);
	sp_xsave_kind = (a1 & (1u << 1)) ? 2 : 1;    /* XSAVEC, or XSAVE */
	/* the legacy area and the header, then each saved component: at its
	 * fixed offset (XSAVE), or packed in order, some 64-byte aligned
	 * (XSAVEC) */
	uint64_t size = 576;
	for (unsigned i = 2; i < 63; i++) {
		if (!(sp_xsave_mask & (1ull << i)))
			continue;
		__cpuid_count(0xd, i, a, b, c, d);   /* a: size, b: offset, c bit 1: aligned */
		if (sp_xsave_kind == 1) {
			if (b + a > size)
				size = b + a;
		} else {
			if (c & 2)
				size = (size + 63) & ~(uint64_t)63;
			size += a;
		}
	}
	sp_xsave_size = size + 64;
}
