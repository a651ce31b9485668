/* hazard — see hazard.h.  The table is glibc's (2.36, Debian 12); names are
 * matched in libc.so.6 only, so an application's own function of the same
 * name is not affected. */
#include "hazard.h"

#include <signal.h>
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
static const char BLOCKED_SPAWN[] =
	"runs with every signal blocked in a posix_spawn/system child: an int3 there would kill the process";
static const char SIGRETURN[] =
	"is the signal-return trampoline every handler returns through: an int3 there would recurse";

static const struct hazard libc_hazards[] = {
	/* the sa_restorer glibc installs with every handler (rt_sigreturn) */
	{ "__restore_rt", SIGRETURN },
	/* pthread_create: parent blocks all signals around clone; the child
	 * starts with them blocked until start_thread restores its mask */
	{ "__clone", BLOCKED_CLONE },
	{ "__clone3", BLOCKED_CLONE },
	{ "__clone_internal", BLOCKED_CLONE },
	{ "__clone_internal_fallback", BLOCKED_CLONE },
	{ "create_thread", BLOCKED_CLONE },
	{ "start_thread", BLOCKED_CLONE },
	{ "__ctype_init", BLOCKED_CLONE },
	/* posix_spawn child (__spawni_child): handlers reset, file actions
	 * and attributes applied, all before the mask is restored */
	{ "__spawni_child", BLOCKED_SPAWN },
	{ "__spawnix", BLOCKED_SPAWN },
	{ "__libc_sigaction", BLOCKED_SPAWN },
	{ "__sigprocmask", BLOCKED_SPAWN },
	{ "sigprocmask", BLOCKED_SPAWN },
	{ "__pthread_sigmask", BLOCKED_SPAWN },
	{ "pthread_sigmask", BLOCKED_SPAWN },
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

static int is_libc(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	return strncmp(base, "libc.so", 7) == 0;
}

/* The restorer glibc passed to the kernel with our own SIGTRAP handler
 * (or any handler): read it back from the kernel. */
static uintptr_t restorer(void)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		unsigned long mask;
	} k;
	if (syscall(SYS_rt_sigaction, SIGSEGV, NULL, &k, 8) == 0 && k.restorer)
		return (uintptr_t)k.restorer;
	if (syscall(SYS_rt_sigaction, SIGTRAP, NULL, &k, 8) == 0 && k.restorer)
		return (uintptr_t)k.restorer;
	return 0;
}

const char *sp_hazard_int3(const char *object_path, const char *symbol, uintptr_t addr)
{
	uintptr_t r = restorer();
	if (r && addr + 16 > r && addr < r + 16)
		return "the site is in the signal-return trampoline (sa_restorer): an int3 there would recurse";
	if (!symbol || !is_libc(object_path))
		return NULL;
	size_t len = strcspn(symbol, "+@");   /* "name+0x4" or "name@VERSION" */
	for (size_t i = 0; i < sizeof(libc_hazards) / sizeof(libc_hazards[0]); i++)
		if (strlen(libc_hazards[i].symbol) == len && strncmp(libc_hazards[i].symbol, symbol, len) == 0)
			return libc_hazards[i].why;
	return NULL;
}
