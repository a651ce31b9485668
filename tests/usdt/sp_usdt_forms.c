/* sp_usdt_forms — USDT site forms and float arguments (e2e_usdt_forms.py).
 *
 *   sp_usdt_forms N
 *
 * Calls, N times each: uf_nop5(i) and uf_pair(i) (sites in libbpf usdt.h's
 * forms, sp_usdt_forms.S), uf_gpr(i + 0.5, i * 0.25f) (float arguments in
 * general registers, sys/sdt.h's default: "8f@%rdx 4f@%eax") and
 * uf_xmm(i + 0.5, i * 0.25f) (in vector registers: sp_usdt_forms_xmm.c),
 * checking every result; prints "wrong K" and "calls N". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

int64_t uf_nop5(int64_t a);
int64_t uf_pair(int64_t a);
double uf_xmm(double d, float f);

__attribute__((noinline, visibility("default"))) double uf_gpr(double d, float f)
{
	STAP_PROBE2(forms, gpr, d, f);
	return d + f;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000, wrong = 0;
	for (long i = 0; i < n; i++) {
		volatile double d = (double)i + 0.5;
		volatile float f = (float)i * 0.25f;
		wrong += uf_nop5(i) != i + 1;
		wrong += uf_pair(i) != i + 2;
		wrong += uf_gpr(d, f) != d + f;
		wrong += uf_xmm(d, f) != d + f;
	}
	printf("wrong %ld\ncalls %ld\n", wrong, n);
	return 0;
}
