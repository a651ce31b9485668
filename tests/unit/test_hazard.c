/* The names that get no return probe (hazard.h: sp_hazard_return): the
 * spellings a symbol table gives them (glibc's __GI_ aliases, @VERSION,
 * +offset), gcc's .cold parts (and only those), and the int3 table's
 * lookup still matching the same spellings. */
#include <criterion/criterion.h>

#include <string.h>

#include "hazard.h"

Test(hazard, return_refused_by_name)
{
	static const char *const refused[] = {
		"setjmp", "_setjmp", "__sigsetjmp", "__GI___sigsetjmp", "__sigsetjmp@GLIBC_2.2.5",
		"vfork", "__vfork", "getcontext", "swapcontext", "execve", "__execvpe",
		"_Unwind_RaiseException", "_Unwind_Resume@@GCC_3.0", "_Unwind_Backtrace", "backtrace",
		"pthread_exit", "__pthread_unwind", "unw_backtrace", "_start", "__start_context",
		"dlopen", "dlopen@@GLIBC_2.34", "dlmopen", "dlsym", "dlsym@GLIBC_2.2.5", "___dlsym",
		"dlvsym", "dl_iterate_phdr", "__libc_dlopen_mode", "mcount", "_mcount", "__fentry__",
		"_dl_runtime_resolve_xsavec", "_dl_runtime_resolve_fxsave", "_dl_runtime_profile_avx",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		cr_expect(sp_hazard_return(refused[i]) != NULL, "%s should be refused", refused[i]);
	cr_expect(strstr(sp_hazard_return("vfork"), "returns twice") != NULL);
	cr_expect(strstr(sp_hazard_return("_Unwind_RaiseException"), "walks the stack") != NULL);
	cr_expect(strstr(sp_hazard_return("dlsym"), "to know its caller") != NULL);
}

Test(hazard, return_allowed)
{
	static const char *const allowed[] = {
		"malloc", "fork", "_Fork", "setjmpx", "xsetjmp", "longjmp", "posix_spawn",
		"_Unwind_Find_FDE", "_Unwind_GetIP", "__cxa_throw", "start", "_start_x",
		"coldstart", "foo.colder", "foo.cold_path", "foo.cold.x", "foo.part.0", "dladdr", "dlclose",
		"dlerror", "dlinfo", "dlopenx", "_dl_fixup", "_dl_runtime_resolvex", NULL,
	};
	for (size_t i = 0; allowed[i]; i++)
		cr_expect(sp_hazard_return(allowed[i]) == NULL, "%s should be allowed", allowed[i]);
	cr_expect(sp_hazard_return(NULL) == NULL);
}

Test(hazard, cold_parts)
{
	static const char *const cold[] = {
		"mid.cold", "_Z3midv.cold", "foo.cold.3", "foo.isra.0.cold", "foo.cold+0x4", "foo.cold@V1",
	};
	for (size_t i = 0; i < sizeof(cold) / sizeof(cold[0]); i++) {
		const char *why = sp_hazard_return(cold[i]);
		cr_expect(why && strstr(why, "cold part"), "%s: %s", cold[i], why ? why : "(allowed)");
	}
}

Test(hazard, int3_table_spellings)
{
	const char *libc = "/lib/x86_64-linux-gnu/libc.so.6";
	cr_expect(sp_hazard_int3(libc, "__clone", 0) != NULL);
	cr_expect(sp_hazard_int3(libc, "__GI___clone", 0) != NULL);
	cr_expect(sp_hazard_int3(libc, "sigprocmask@@GLIBC_2.2.5", 0) != NULL);
	cr_expect(sp_hazard_int3(libc, "malloc", 0) == NULL);
	cr_expect(sp_hazard_int3("/usr/lib/libfoo.so", "__clone", 0) == NULL);   /* libc's only */
	/* every name of the same code: posix_spawn's parent calls clone3 with
	 * every signal blocked, whatever name the probe gave it */
	cr_expect(sp_hazard_int3(libc, "clone", 0) != NULL);
	cr_expect(sp_hazard_int3(libc, "clone3", 0) != NULL);
	cr_expect(sp_hazard_int3(libc, "__pthread_sigmask_2", 0) != NULL);
	/* posix_spawn's: the int3 path only, the jmp allowed */
	cr_expect(sp_hazard_int3(libc, "munmap", 0) == NULL);
	cr_expect(sp_hazard_int3(libc, "execve", 0) == NULL);
	cr_expect(sp_hazard_int3_path(libc, "munmap") != NULL);
	cr_expect(sp_hazard_int3_path(libc, "__GI___munmap") != NULL);
	cr_expect(sp_hazard_int3_path(libc, "waitpid@@GLIBC_2.2.5") != NULL);
	cr_expect(strstr(sp_hazard_int3_path(libc, "execve"), "posix_spawn child") != NULL);
	cr_expect(sp_hazard_int3_path(libc, "malloc") == NULL);
	cr_expect(sp_hazard_int3_path("/usr/lib/libfoo.so", "munmap") == NULL);
}

/* posix_spawnp's child searches PATH after its handlers were reset: what
 * __execvpe_common calls, by every name a probe gives it (the IFUNC's and
 * each implementation a CPU may be given), on the int3 path only */
Test(hazard, spawnp_child_path_search)
{
	const char *libc = "/lib/x86_64-linux-gnu/libc.so.6";
	static const char *const refused[] = {
		"getenv", "__GI_getenv", "__libc_alloca_cutoff", "strchr", "index", "strlen@@GLIBC_2.2.5",
		"strncmp", "strnlen", "__strnlen", "strchrnul", "__strchrnul", "mempcpy", "__mempcpy",
		"__strchrnul_avx2", "__strchrnul_evex", "__strchrnul_sse2", "__strchrnul_avx2_rtm",
		"__strchr_sse2_no_bsf", "__strchr_evex", "__strlen_evex512", "__strlen_avx2+0x4",
		"__strncmp_sse42", "__strnlen_avx2", "__mempcpy_avx_unaligned_erms", "__mempcpy_ssse3",
		"__mempcpy_erms", "__mempcpy_avx512_no_vzeroupper", "__mempcpy_sse2_unaligned",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		const char *why = sp_hazard_int3_path(libc, refused[i]);
		cr_expect(why && strstr(why, "posix_spawn child"), "%s: %s", refused[i], why ? why : "(allowed)");
		cr_expect(sp_hazard_int3(libc, refused[i], 0) == NULL, "%s refused on the jmp path", refused[i]);
	}
	/* same prefixes, other functions; and the hot ones the search never calls */
	static const char *const allowed[] = {
		"__mempcpy_chk", "__mempcpy_chk_avx_unaligned_erms", "__mempcpy_small@GLIBC_2.2.5",
		"__mempcpy_ifunc", "__strnlen_ifunc", "__strchrnul_ifunc", "__strlen_", "__strlen",
		"__strlenx_avx2", "memcpy", "__memcpy_avx_unaligned_erms", "memmove",
		"__memmove_avx_unaligned_erms", "strcmp", "__strcmp_avx2", "__strrchr_avx2", "secure_getenv",
		"__wcslen_avx2", "__wcsnlen_sse4_1", NULL,
	};
	for (size_t i = 0; allowed[i]; i++)
		cr_expect(sp_hazard_int3_path(libc, allowed[i]) == NULL, "%s should be allowed", allowed[i]);
	cr_expect(sp_hazard_int3_path("/usr/lib/libfoo.so", "strlen") == NULL);
	cr_expect(sp_hazard_int3_path("/usr/lib/libfoo.so", "__strlen_avx2") == NULL);
}
