/* claim_trap — a signal delivered inside a thread's claim of its stripe
 * (tstate.h), at one known instruction: the raw system call the claim
 * makes for the thread's tid (the record's owner).  A seccomp filter of
 * the calling thread only traps gettid whose first argument is 0 (the
 * runtime's raw call passes zeros; the handler's own call passes 1), and
 * the SIGSYS handler answers it with the tid; the first time it comes
 * while the thread has no stripe yet and a claim runs, it calls HIT: a
 * signal handler's hit in the middle of the claim.  SA_NODEFER: the
 * claim that hit makes traps again, and is only answered.  Installed by
 * a raw rt_sigaction: the runtime's wrapper of the program's handlers
 * asks the tid itself (sigframes.h) before it calls one. */
#ifndef SP_CLAIM_TRAP_H
#define SP_CLAIM_TRAP_H

#include <criterion/criterion.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "tstate.h"

static void (*claim_trap_hit)(void);
static __thread int claim_trap_fired;   /* HIT was called in this thread */

/* The kernel's return from the raw handler (glibc's is not exported). */
void claim_trap_restorer(void) __attribute__((visibility("hidden")));
__asm__(".text\n"
	".type claim_trap_restorer, @function\n"
	"claim_trap_restorer:\n"
	"  movq $15, %rax\n  syscall\n"   /* rt_sigreturn */
	".size claim_trap_restorer, .-claim_trap_restorer\n");

/* The kernel's struct sigaction on x86-64. */
struct claim_trap_ksigaction {
	void *handler;
	unsigned long flags;
	void (*restorer)(void);
	uint64_t mask;
};
#define CLAIM_TRAP_SA_RESTORER 0x04000000

static void claim_trap_on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	(void)sig, (void)si;
	ucontext_t *uc = ucv;
	uc->uc_mcontext.gregs[REG_RAX] = syscall(SYS_gettid, 1);
	if (!claim_trap_fired && sp_tls.claiming && sp_tls.slot == 0) {
		claim_trap_fired = 1;
		claim_trap_hit();
	}
}

/* Whether a seccomp filter can be installed here (a sandbox may refuse):
 * tried in a fork child. */
static inline bool claim_trap_available(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct sock_filter f[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
		struct sock_fprog prog = { .len = 1, .filter = f };
		_exit(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
				      syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0
			      ? 0
			      : 1);
	}
	int st = 0;
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* From here on, in the calling thread, a claim's tid is asked in a
 * signal that first calls HIT. */
static inline void claim_trap_arm(void (*hit)(void))
{
	claim_trap_hit = hit;
	struct claim_trap_ksigaction sa = {
		.handler = (void *)claim_trap_on_sigsys,
		.flags = SA_SIGINFO | SA_NODEFER | CLAIM_TRAP_SA_RESTORER,
		.restorer = claim_trap_restorer,
	};
	cr_assert_eq(syscall(SYS_rt_sigaction, SIGSYS, &sa, NULL, sizeof(sa.mask)), 0);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_gettid, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	cr_assert_eq(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog), 0, "no seccomp filter: %m");
}

#endif
