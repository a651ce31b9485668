/* sp_dl_lib — the library sp_dl_target loads with dlopen after start
 * (never linked at build time), for the tests of objects loaded later
 * (e2e_load.py).  Built twice from this file:
 *   libsp_dl_dep.so   with SP_DL_DEP: dl_dep_func, a dependency of
 *   libsp_dl_lib.so   dl_func, which calls dl_dep_func once a call, so that
 *                     the dependency arrives with the dlopen and leaves
 *                     with the dlclose. */
#define EXPORT __attribute__((visibility("default"), noinline))

#ifdef SP_DL_DEP
EXPORT int dl_dep_func(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 7 + 3;
}
#else
int dl_dep_func(int x);

EXPORT int dl_func(int x)
{
	__asm__ volatile("" ::: "memory");
	return dl_dep_func(x) % 1000 + 1;
}
#endif
