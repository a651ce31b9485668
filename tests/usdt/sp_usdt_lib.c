/* libsp_usdt_lib.so — a shared library with its own USDT probe, for tests
 * that load it with dlopen after start (sp_usdt_target --dlopen).
 *
 * sptest_lib:fire is a plain sys/sdt.h probe without a semaphore (its note's
 * semaphore address is 0), the other case next to sptest's guarded ones.
 */
#include <stdint.h>
#include <sys/sdt.h>

__attribute__((visibility("default"), noinline)) void sp_usdt_lib_fire(int32_t a, int64_t b)
{
	STAP_PROBE2(sptest_lib, fire, a, b);
}
