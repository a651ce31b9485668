/* libsp_sigs_lib.so: the shared-library half of sp_sigs (sp_sigs.c). */
#include "sp_sigs.h"

__attribute__((visibility("default"))) unsigned long f_lib_entries, f_lib_returns;

__attribute__((noinline, visibility("default"))) long f_lib(long x)
{
	SP_SIGS_FIRST(x);
	sp_sigs_inc(&f_lib_entries);
	x = x * 5 + 3;
	sp_sigs_inc(&f_lib_returns);
	return x;
}
