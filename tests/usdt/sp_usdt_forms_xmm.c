/* sp_usdt_forms_xmm.c — float arguments the compiler leaves in vector
 * registers: with STAP_SDT_ARG_CONSTRAINT x, the note reads
 * "8f@%xmm0 4f@%xmm1" (sys/sdt.h's default, nor, gives "8f@%rdx 4f@%eax":
 * sp_usdt_forms.c). */
#define STAP_SDT_ARG_CONSTRAINT x
#include <sys/sdt.h>

__attribute__((noinline, visibility("default"))) double uf_xmm(double d, float f)
{
	STAP_PROBE2(forms, xmm, d, f);
	return d + f;
}
