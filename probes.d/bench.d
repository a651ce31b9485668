/* bench.d — the USDT provider of bench-trigger (usdt-nop).
 *
 * Compiled with Debian's dtrace wrapper (systemtap-sdt-dev):
 *   dtrace -h -s bench.d -o bench_probes.h   (BENCH_NOP() and its semaphore)
 *   dtrace -G -s bench.d -o bench_probes.o   (defines bench_nop_semaphore)
 * The site is sys/sdt.h's 1-byte nop; the note carries the semaphore's
 * address.  The 5-byte nop site (usdt-nop5) is written by hand in
 * bench/targets.S, since sdt.h cannot emit one from C.
 */
provider bench {
	probe nop();
};
