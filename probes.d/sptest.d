/* sptest.d — the USDT provider of the test targets (tests/usdt/).
 *
 * Compiled with Debian's dtrace wrapper (systemtap-sdt-dev):
 *   dtrace -h -s sptest.d -o sptest_probes.h  (SPTEST_*() macros, *_ENABLED())
 *   dtrace -G -s sptest.d -o sptest_probes.o  (defines the semaphores)
 * Every probe gets a semaphore in .probes.  The argument sizes and signs in
 * the notes come from the C types of the expressions passed at the site
 * (sys/sdt.h), so the target casts each argument to the type named here.
 */
provider sptest {
	probe args0();
	probe args1(int32_t);
	probe args2(int8_t, uint8_t);
	probe args3(int16_t, uint16_t, int32_t);
	probe args4(uint32_t, int64_t, uint64_t, void *);
	probe args5(int8_t, int16_t, int32_t, int64_t, uint8_t);
	probe args6(uint16_t, uint32_t, uint64_t, int8_t, int16_t, int32_t);
	probe args7(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
	probe args8(uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, uint64_t, int64_t);
	probe args9(int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t);
	probe args10(int64_t, uint64_t, int64_t, uint64_t, int64_t, uint64_t, int64_t, uint64_t, int64_t, uint64_t);
	probe args11(int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t, void *, int32_t, int64_t);
	probe args12(int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t, void *, int32_t, int64_t, uint8_t);
	probe guarded(int32_t);
	probe inlined(int32_t, int64_t);
};
