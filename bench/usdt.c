/* usdt.c — the usdt-nop site of bench-trigger: a 1-byte nop from sys/sdt.h,
 * declared by the probes.d/bench.d provider (dtrace -h).  Without dtrace
 * (BENCH_NO_DTRACE) the same site comes from STAP_PROBE directly, without a
 * semaphore.  The probe fires unconditionally: the bench measures the site,
 * not the BENCH_NOP_ENABLED() test in front of it. */
#ifdef BENCH_NO_DTRACE
#include <sys/sdt.h>
#define BENCH_NOP() STAP_PROBE(bench, nop)
#else
#include "bench_probes.h"
#endif

#include "bench.h"

__attribute__((noinline)) void usdt_target_nop(void)
{
	BENCH_NOP();
}
