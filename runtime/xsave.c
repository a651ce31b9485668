/* xsave — choose the save instruction and the area size (CPUID leaf 0xD). */
#include "xsave.h"

#include <cpuid.h>

uint64_t sp_xsave_size = 512 + 64;
uint32_t sp_xsave_kind;

void sp_xsave_init(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) {
		sp_xsave_kind = 0;            /* FXSAVE: 512 bytes */
		sp_xsave_size = 512 + 64;
		return;
	}
	/* leaf 0xD, sub-leaf 0: EBX = size for the features enabled in XCR0 */
	__cpuid_count(0xd, 0, a, b, c, d);
	uint64_t size = b;
	unsigned a1, b1, c1, d1;
	__cpuid_count(0xd, 1, a1, b1, c1, d1);
	if (a1 & (1u << 1)) {             /* XSAVEC */
		sp_xsave_kind = 2;
		/* compacted size for XCR0 | IA32_XSS is in EBX of sub-leaf 1;
		 * it is never larger than the standard size, keep the larger */
		if (b1 > size)
			size = b1;
	} else
		sp_xsave_kind = 1;
	if (size < 576)
		size = 576;
	sp_xsave_size = size + 64;
}
