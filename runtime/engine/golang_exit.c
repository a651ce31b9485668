/* golang_exit — see golang_exit.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "golang_exit.h"
#include "heap.h"
#include "golang_stack.h"
#include "golang.h"
#include "elfsym.h"
#include "maps.h"
#include "probe.h"
#include "rawsys.h"
#include "registry.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ------------------------------------------------------------ exit report */

#define EXIT_STACK_SIZE (1u << 20)
static void (*exit_report)(void);
static void *exit_stack_top;
static atomic_flag exit_taken = ATOMIC_FLAG_INIT;

/* On the private stack: a trap while the report runs there (a libc
 * function it calls, probed on the int3 path; a fault the guard takes)
 * would be delivered on the thread's signal stack again, over the frame of
 * the SIGTRAP we are still in.  Off that stack, the signal stack can be
 * switched off for the report: its traps nest on the private stack. */
static void report_off_sigstack(void)
{
	stack_t off = { .ss_flags = SS_DISABLE }, old;
	bool disabled = sp_syscall6(SYS_sigaltstack, (long)&off, (long)&old, 0, 0, 0, 0) == 0 &&
			!(old.ss_flags & SS_DISABLE);
	exit_report();
	if (disabled)
		sp_syscall6(SYS_sigaltstack, (long)&old, 0, 0, 0, 0, 0);
}

/* runtime.exit(code): the first thread to get here writes the report on
 * the private stack (the goroutine's, or the g0 stack, may have less than
 * a kilobyte left); any other thread exiting at once goes on to its
 * exit_group, which ends the process as it would have. */
static int on_go_exit(struct selfprobe_ctx *ctx, void *data)
{
	(void)ctx;
	(void)data;
	if (atomic_flag_test_and_set(&exit_taken))
		return 0;
	/* Asynchronous signals wait (Go's SIGURG preemption, SIGPROF): on the
	 * int3 path this runs in our SIGTRAP handler on Go's signal stack, and
	 * a signal taken on the private stack would be put on that signal
	 * stack again, over the frame we return through.  The faults stay
	 * open for the guard. */
	uint64_t all = ~((1ull << (SIGSEGV - 1)) | (1ull << (SIGBUS - 1)) | (1ull << (SIGFPE - 1)) |
			 (1ull << (SIGILL - 1)) | (1ull << (SIGTRAP - 1))), old;
	sp_syscall6(SYS_rt_sigprocmask, SIG_BLOCK, (long)&all, (long)&old, sizeof(all), 0, 0);
	sp_go_call_on_stack(report_off_sigstack, exit_stack_top);
	sp_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&old, 0, sizeof(old), 0, 0);
	return 0;
}

static int go_exit_hook(const char *path, uintptr_t bias, void (*report)(void));

int sp_go_exit_hook_install(void (*report)(void))
{
	struct sp_object *objs;
	size_t n_objs;
	if (sp_maps_snapshot(&objs, &n_objs) != 0)
		return -ENOMEM;
	const char *path = NULL;
	uintptr_t bias = 0;
	for (size_t i = 0; i < n_objs && !path; i++)
		if (objs[i].is_main) {
			path = objs[i].path;
			bias = objs[i].bias;
		}
	/* without runtime/cgo nothing is probed (sp_go_refusal) */
	int rc = path && sp_go_cgo_object(path) ? go_exit_hook(path, bias, report) : 1;
	sp_maps_free(objs, n_objs);
	return rc;
}

static int go_exit_hook(const char *path, uintptr_t bias, void (*report)(void))
{
	struct sp_elf *e;
	char err[256];
	int rc = sp_elf_open(path, &e, err, sizeof(err));
	if (rc)
		return rc;
	const struct sp_sym **syms = NULL;
	long n = sp_elf_match(e, "runtime.exit.abi0", &syms);
	if (n <= 0)
		n = sp_elf_match(e, "runtime.exit", &syms);
	uint64_t value = n > 0 ? syms[0]->value : 0;
	sp_free(syms);
	sp_elf_close(e);
	if (!value)
		return -ENOENT;
	if (!exit_stack_top) {
		void *s = mmap(NULL, EXIT_STACK_SIZE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
		if (s == MAP_FAILED)
			return -ENOMEM;
		exit_stack_top = (char *)s + EXIT_STACK_SIZE;
	}
	exit_report = report;
	return sp_probe_attach_internal("selfprobe:go-exit", bias + value, true, on_go_exit, NULL);
}

