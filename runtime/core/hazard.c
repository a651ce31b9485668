/* hazard — see hazard.h.  The table is glibc's (2.36, Debian 12); names are
 * matched in libc.so.6 only, so an application's own function of the same
 * name is not affected. */
#include "hazard.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct hazard {
	const char *symbol;
	const char *why;
};

static const char BLOCKED_CLONE[] =
	"runs with every signal blocked while glibc creates a thread: an int3 there would kill the process";
static const char BLOCKED_EXIT[] =
	"runs with every signal blocked while a thread exits: an int3 there would kill the process";
static const char BLOCKED_SPAWN[] =
	"runs with every signal blocked in a posix_spawn/system child: an int3 there would kill the process";
static const char BLOCKED_SPAWN_PARENT[] =
	"runs with every signal blocked in posix_spawn's parent (system, popen too), which frees "
	"the child's stack before it restores its mask: an int3 there would kill the process";
static const char SPAWN_CHILD_DFL[] =
	"is called in a posix_spawn child (system, popen too) after its signal handlers were reset "
	"to the default: an int3 there would kill the child before its exec";
static const char SIGRETURN[] =
	"is the signal-return trampoline every handler returns through: an int3 there would recurse";

static const struct hazard libc_hazards[] = {
	/* the sa_restorer glibc installs with every handler (rt_sigreturn) */
	{ "__restore_rt", SIGRETURN },
	/* pthread_create: parent blocks all signals around clone; the child
	 * starts with them blocked until start_thread restores its mask */
	{ "__clone", BLOCKED_CLONE },
	{ "__clone3", BLOCKED_CLONE },
	/* the public names of the same code (a probe names a site by the
	 * name it was given) */
	{ "clone", BLOCKED_CLONE },
	{ "clone3", BLOCKED_CLONE },
	{ "__clone_internal", BLOCKED_CLONE },
	{ "__clone_internal_fallback", BLOCKED_CLONE },
	{ "create_thread", BLOCKED_CLONE },
	{ "start_thread", BLOCKED_CLONE },
	/* what start_thread calls before it restores the mask: the locale
	 * pointers, then the cancellation buffer's setjmp (_setjmp tail-jumps
	 * to __sigsetjmp, which tail-jumps to __sigjmp_save) */
	{ "__ctype_init", BLOCKED_CLONE },
	{ "_setjmp", BLOCKED_CLONE },
	{ "__sigsetjmp", BLOCKED_CLONE },
	{ "__sigjmp_save", BLOCKED_CLONE },
	/* and after it blocks every signal again at the thread's exit: the
	 * unused stack given back, a detached thread's TCB and stack freed */
	{ "__getpagesize", BLOCKED_EXIT },
	{ "getpagesize", BLOCKED_EXIT },
	{ "madvise", BLOCKED_EXIT },
	{ "__madvise", BLOCKED_EXIT },
	{ "__nptl_free_tcb", BLOCKED_EXIT },
	{ "__nptl_deallocate_stack", BLOCKED_EXIT },
	{ "__nptl_free_stacks", BLOCKED_EXIT },
	{ "__nptl_death_event", BLOCKED_EXIT },
	{ "__lll_lock_wait_private", BLOCKED_EXIT },
	{ "__lll_lock_wake_private", BLOCKED_EXIT },
	/* posix_spawn child (__spawni_child): handlers reset, file actions
	 * and attributes applied, all before the mask is restored */
	{ "__spawni_child", BLOCKED_SPAWN },
	{ "__spawnix", BLOCKED_SPAWN },
	{ "__libc_sigaction", BLOCKED_SPAWN },
	{ "__sigprocmask", BLOCKED_SPAWN },
	{ "sigprocmask", BLOCKED_SPAWN },
	{ "__pthread_sigmask", BLOCKED_SPAWN },
	{ "pthread_sigmask", BLOCKED_SPAWN },
	{ "__pthread_sigmask_2", BLOCKED_SPAWN },   /* the same code */
	{ "setsid", BLOCKED_SPAWN },
	{ "__setsid", BLOCKED_SPAWN },
	{ "setpgid", BLOCKED_SPAWN },
	{ "__setpgid", BLOCKED_SPAWN },
	{ "sched_setparam", BLOCKED_SPAWN },
	{ "__sched_setparam", BLOCKED_SPAWN },
	{ "sched_setscheduler", BLOCKED_SPAWN },
	{ "__sched_setscheduler", BLOCKED_SPAWN },
	{ "dup2", BLOCKED_SPAWN },
	{ "__dup2", BLOCKED_SPAWN },
	{ "chdir", BLOCKED_SPAWN },
	{ "__chdir", BLOCKED_SPAWN },
	{ "fchdir", BLOCKED_SPAWN },
	{ "__fchdir", BLOCKED_SPAWN },
	{ "close_range", BLOCKED_SPAWN },
	{ "__close_range", BLOCKED_SPAWN },
	{ "__closefrom_fallback", BLOCKED_SPAWN },
	{ "__close_nocancel", BLOCKED_SPAWN },
	{ "__open64_nocancel", BLOCKED_SPAWN },
	{ "__open_nocancel", BLOCKED_SPAWN },
	{ "_exit", BLOCKED_SPAWN },
	{ "_Exit", BLOCKED_SPAWN },
};

/* Sites only the int3 path must not take: glibc calls them with every
 * signal blocked (or SIGTRAP's handler reset) only in posix_spawn, and they
 * are among the hottest functions elsewhere, so the jmp (whose write holds
 * an int3 for the microseconds of its batch) stays allowed, as for free and
 * munmap at a detached thread's exit (README, known limits). */
static const struct hazard libc_int3_path_hazards[] = {
	/* posix_spawn's parent (__spawnix), between blocking every signal and
	 * restoring its mask: the child's stack unmapped (and, when the exec
	 * failed, the child waited for) */
	{ "munmap", BLOCKED_SPAWN_PARENT },
	{ "__munmap", BLOCKED_SPAWN_PARENT },
	{ "waitpid", BLOCKED_SPAWN_PARENT },
	{ "__waitpid", BLOCKED_SPAWN_PARENT },
	{ "wait4", BLOCKED_SPAWN_PARENT },
	{ "__wait4", BLOCKED_SPAWN_PARENT },
	/* the child with POSIX_SPAWN_RESETIDS (GNU make's), every signal
	 * still blocked */
	{ "getuid", BLOCKED_SPAWN },
	{ "__getuid", BLOCKED_SPAWN },
	{ "getgid", BLOCKED_SPAWN },
	{ "__getgid", BLOCKED_SPAWN },
	/* the child's exec, once __spawni_child has reset every handler */
	{ "execve", SPAWN_CHILD_DFL },
	{ "__execve", SPAWN_CHILD_DFL },
	{ "__execvpex", SPAWN_CHILD_DFL },
	{ "__execvpe_common", SPAWN_CHILD_DFL },
	/* posix_spawnp's: __execvpe_common searching PATH, all it calls
	 * before its execve (getenv's strlen and strncmp; not memcpy, which
	 * only maybe_script_execute calls, and __execvpex never runs a
	 * script).  The string functions are IFUNCs: listed here by the names
	 * a probe gives them, their implementations by libc_ifunc_impls */
	{ "getenv", SPAWN_CHILD_DFL },
	{ "__libc_alloca_cutoff", SPAWN_CHILD_DFL },
	{ "strchr", SPAWN_CHILD_DFL },
	{ "index", SPAWN_CHILD_DFL },   /* strchr's old name, the same IFUNC */
	{ "strlen", SPAWN_CHILD_DFL },
	{ "strncmp", SPAWN_CHILD_DFL },
	{ "strnlen", SPAWN_CHILD_DFL },
	{ "__strnlen", SPAWN_CHILD_DFL },
	{ "strchrnul", SPAWN_CHILD_DFL },
	{ "__strchrnul", SPAWN_CHILD_DFL },
	{ "mempcpy", SPAWN_CHILD_DFL },
	{ "__mempcpy", SPAWN_CHILD_DFL },
};

/* The IFUNCs above whose implementations are refused too, by name: an
 * implementation is "__BASE_" followed by the instruction set it needs
 * (__strchrnul_avx2, __strlen_evex512, __mempcpy_sse2_unaligned_erms, ...:
 * whichever the resolver picks on a CPU), which keeps out the other
 * functions of that prefix (__mempcpy_chk_*, __mempcpy_small, the
 * resolvers __BASE_ifunc). */
static const char *const libc_ifunc_impls[] = {
	"strchr", "strlen", "strncmp", "strnlen", "strchrnul", "mempcpy",
};
static const char *const isa_tags[] = { "sse", "ssse3", "avx", "evex", "erms" };

/* ---- return hazards (any object) ---- */

static const char RET_SETJMP[] =
	"returns twice: the jmp_buf keeps its return address and longjmp returns through it "
	"again, after its return probe is gone; no return probe here (an entry probe is allowed)";
static const char RET_CONTEXT[] =
	"saves its return address in a ucontext that may be resumed later, more than once or on "
	"another thread; no return probe here (an entry probe is allowed)";
static const char RET_VFORK[] =
	"returns twice through one frame: first in the child, which shares the parent's memory, "
	"then in the parent; no return probe here (an entry probe is allowed)";
static const char RET_EXEC[] =
	"returns only when it fails, and in a posix_spawn child runs on a stack that is freed "
	"once it succeeds; no return probe here (an entry probe is allowed)";
static const char RET_UNWIND[] =
	"unwinds or walks the stack from its own frame: a swapped return address there stops "
	"the unwinder (a C++ throw would terminate); no return probe here (an entry probe is allowed)";

static const char RET_CALLER[] =
	"reads its own return address to know its caller, whose object decides the answer "
	"(RTLD_NEXT, the RUNPATH searched, the link namespace): a swapped one names another "
	"object; no return probe here (an entry probe is allowed)";

static const char RET_NOT_CALLED[] =
	"is entered without a call (the process entry point, the end of a makecontext "
	"context, ld.so's lazy-binding resolver, jumped to from the PLT): its stack top is not "
	"a return address (argc, for _start; the link map, for the resolver)";

static const struct hazard return_hazards[] = {
	{ "_start", RET_NOT_CALLED }, { "_dl_start_user", RET_NOT_CALLED },
	{ "__start_context", RET_NOT_CALLED },
	/* PLT0 pushes the link map and jumps: the return address is two slots up */
	{ "_dl_runtime_resolve", RET_NOT_CALLED }, { "_dl_runtime_resolve_fxsave", RET_NOT_CALLED },
	{ "_dl_runtime_resolve_xsave", RET_NOT_CALLED }, { "_dl_runtime_resolve_xsavec", RET_NOT_CALLED },
	{ "_dl_runtime_profile", RET_NOT_CALLED }, { "_dl_runtime_profile_sse", RET_NOT_CALLED },
	{ "_dl_runtime_profile_avx", RET_NOT_CALLED }, { "_dl_runtime_profile_avx512", RET_NOT_CALLED },
	{ "setjmp", RET_SETJMP }, { "_setjmp", RET_SETJMP }, { "__setjmp", RET_SETJMP },
	{ "sigsetjmp", RET_SETJMP }, { "__sigsetjmp", RET_SETJMP },
	{ "__sigsetjmp_cancel", RET_SETJMP },
	{ "getcontext", RET_CONTEXT }, { "__getcontext", RET_CONTEXT },
	{ "swapcontext", RET_CONTEXT }, { "__swapcontext", RET_CONTEXT },
	{ "unw_getcontext", RET_CONTEXT }, { "_Ux86_64_getcontext", RET_CONTEXT },
	{ "vfork", RET_VFORK }, { "__vfork", RET_VFORK }, { "__libc_vfork", RET_VFORK },
	{ "execve", RET_EXEC }, { "__execve", RET_EXEC }, { "fexecve", RET_EXEC },
	{ "execveat", RET_EXEC }, { "execv", RET_EXEC }, { "execvp", RET_EXEC },
	{ "execvpe", RET_EXEC }, { "__execvpe", RET_EXEC }, { "__execvpe_common", RET_EXEC },
	{ "__execvpex", RET_EXEC }, { "execl", RET_EXEC }, { "execle", RET_EXEC },
	{ "execlp", RET_EXEC },
	/* glibc's dl* functions that take their caller from RETURN_ADDRESS (0)
	 * (also libdl's and ld.so's spellings, and libc's private dlopen), and
	 * the profiling counters that record it as the function called */
	{ "dlopen", RET_CALLER }, { "___dlopen", RET_CALLER }, { "__dlopen", RET_CALLER },
	{ "dlmopen", RET_CALLER }, { "___dlmopen", RET_CALLER }, { "__dlmopen", RET_CALLER },
	{ "dlsym", RET_CALLER }, { "___dlsym", RET_CALLER }, { "__dlsym", RET_CALLER },
	{ "dlvsym", RET_CALLER }, { "___dlvsym", RET_CALLER }, { "__dlvsym", RET_CALLER },
	{ "dl_iterate_phdr", RET_CALLER }, { "__dl_iterate_phdr", RET_CALLER },
	{ "__libc_dlopen_mode", RET_CALLER },
	{ "mcount", RET_CALLER }, { "_mcount", RET_CALLER }, { "__fentry__", RET_CALLER },
	{ "_dl_mcount_wrapper", RET_CALLER }, { "_dl_mcount_wrapper_check", RET_CALLER },
	/* libgcc's unwinder (also linked statically into programs) */
	{ "_Unwind_RaiseException", RET_UNWIND }, { "_Unwind_Resume", RET_UNWIND },
	{ "_Unwind_Resume_or_Rethrow", RET_UNWIND }, { "_Unwind_ForcedUnwind", RET_UNWIND },
	{ "_Unwind_Backtrace", RET_UNWIND }, { "_Unwind_RaiseException_Phase2", RET_UNWIND },
	{ "_Unwind_ForcedUnwind_Phase2", RET_UNWIND }, { "uw_init_context_1", RET_UNWIND },
	/* glibc's walks and its thread exit, which unwinds through libgcc by a
	 * private pointer (the preload's hooks do not see those frames) */
	{ "backtrace", RET_UNWIND }, { "__backtrace", RET_UNWIND },
	{ "pthread_exit", RET_UNWIND }, { "__pthread_exit", RET_UNWIND },
	{ "__do_cancel", RET_UNWIND }, { "__pthread_unwind", RET_UNWIND },
	{ "__pthread_unwind_next", RET_UNWIND },
	/* libunwind's walk from its own frame (its local walks start at the
	 * context unw_getcontext saved: that one is listed above) */
	{ "unw_backtrace", RET_UNWIND }, { "_ULx86_64_tdep_trace", RET_UNWIND },
};

/* NAME without "+off" / "@VERSION", and without glibc's "__GI_" alias prefix. */
static size_t bare_name(const char **name)
{
	if (strncmp(*name, "__GI_", 5) == 0)
		*name += 5;
	return strcspn(*name, "+@");
}

static const char *lookup(const struct hazard *t, size_t n, const char *symbol)
{
	size_t len = bare_name(&symbol);
	for (size_t i = 0; i < n; i++)
		if (strlen(t[i].symbol) == len && strncmp(t[i].symbol, symbol, len) == 0)
			return t[i].why;
	return NULL;
}

/* gcc's hot/cold splitting: "foo.cold" (or "foo.cold.N") is the unlikely
 * part of foo, entered by a jump from inside foo with foo's frame: its
 * stack top is not a return address. */
static bool is_cold_part(const char *symbol)
{
	size_t len = strcspn(symbol, "+@");
	for (const char *p = strstr(symbol, ".cold"); p && (size_t)(p - symbol) < len; p = strstr(p + 1, ".cold")) {
		const char *q = p + 5;
		if (q == symbol + len)
			return true;
		if (*q == '.' && q[1] >= '0' && q[1] <= '9') {
			q += 2;
			while (*q >= '0' && *q <= '9')
				q++;
			if (q == symbol + len)
				return true;
		}
	}
	return false;
}

const char *sp_hazard_return(const char *symbol)
{
	if (!symbol)
		return NULL;
	if (is_cold_part(symbol))
		return "is the cold part of a function split by the compiler, entered by a jump, not a call: "
		       "no return address to swap (return probes attach at function entries only)";
	return lookup(return_hazards, sizeof(return_hazards) / sizeof(return_hazards[0]), symbol);
}

static int is_libc(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	return strncmp(base, "libc.so", 7) == 0;
}

/* The restorer glibc passed to the kernel with our own SIGTRAP handler
 * (or any handler): read it back from the kernel.  Once known it is kept:
 * it is glibc's __restore_rt, which does not move, and asking the kernel
 * twice per site was 7000 system calls of attaching libc:*. */
static uintptr_t restorer(void)
{
	static uintptr_t known;
	if (known)
		return known;
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		unsigned long mask;
	} k;
	if (syscall(SYS_rt_sigaction, SIGSEGV, NULL, &k, 8) == 0 && k.restorer)
		return known = (uintptr_t)k.restorer;
	if (syscall(SYS_rt_sigaction, SIGTRAP, NULL, &k, 8) == 0 && k.restorer)
		return known = (uintptr_t)k.restorer;
	return 0;
}

const char *sp_hazard_int3(const char *object_path, const char *symbol, uintptr_t addr)
{
	uintptr_t r = restorer();
	if (r && addr + 16 > r && addr < r + 16)
		return "the site is in the signal-return trampoline (sa_restorer): an int3 there would recurse";
	if (!symbol || !is_libc(object_path))
		return NULL;
	return lookup(libc_hazards, sizeof(libc_hazards) / sizeof(libc_hazards[0]), symbol);
}

/* SYMBOL names an implementation of one of libc_ifunc_impls. */
static bool is_ifunc_impl(const char *symbol)
{
	size_t len = bare_name(&symbol);
	if (len < 2 || strncmp(symbol, "__", 2) != 0)
		return false;
	for (size_t i = 0; i < sizeof(libc_ifunc_impls) / sizeof(libc_ifunc_impls[0]); i++) {
		size_t n = strlen(libc_ifunc_impls[i]);
		if (len <= n + 3 || strncmp(symbol + 2, libc_ifunc_impls[i], n) != 0 || symbol[2 + n] != '_')
			continue;
		const char *tag = symbol + 3 + n;
		for (size_t k = 0; k < sizeof(isa_tags) / sizeof(isa_tags[0]); k++)
			if (strncmp(tag, isa_tags[k], strlen(isa_tags[k])) == 0)
				return true;
	}
	return false;
}

const char *sp_hazard_int3_path(const char *object_path, const char *symbol)
{
	if (!symbol || !is_libc(object_path))
		return NULL;
	if (is_ifunc_impl(symbol))
		return SPAWN_CHILD_DFL;
	return lookup(libc_int3_path_hazards, sizeof(libc_int3_path_hazards) / sizeof(libc_int3_path_hazards[0]),
		      symbol);
}
