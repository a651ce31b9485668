/* soak_lib.c — libsoakdl.so: the library bench-soak loads and unloads over
 * and over while probes on it wait in the registry (see soak.c). */

__attribute__((noinline, visibility("default"))) int soak_dl_a(int x)
{
	__asm__ volatile("");
	return x * 5 + 2;
}

__attribute__((noinline, visibility("default"))) int soak_dl_b(int x)
{
	__asm__ volatile("");
	return x * 7 + 3;
}
