/* fastcount — see fastcount.h for the sequence and why it is exact. */
#include "fastcount.h"
#include "rawsys.h"

#include <linux/membarrier.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* glibc 2.35+: where this thread's struct rseq lies from the thread
 * pointer, and how much of it the kernel knows (0: none registered). */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

#define RSEQ_CPU_ID_OFF 4           /* struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs */
#define RSEQ_CS_OFF 8

struct sp_fastcount sp_fastcount;

static bool fence_ready(void)
{
	return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0;
}

void sp_fastcount_init(const void *tls_fast, const void *tls_runtime, const void *own_neg_lo,
		       const void *own_neg_hi)
{
	if (sp_fastcount.on)
		return;
	/* SELFPROBE_FASTCOUNT=0: every site takes the C path (tests of both) */
	const char *env = secure_getenv("SELFPROBE_FASTCOUNT");
	if (env && strcmp(env, "0") == 0)
		return;
	if (!&__rseq_size || !&__rseq_offset || __rseq_size < RSEQ_CS_OFF + 8 || !fence_ready())
		return;
	intptr_t tp = (intptr_t)sp_thread_pointer();
	sp_fastcount.tls_fast = (int32_t)((intptr_t)tls_fast - tp);
	sp_fastcount.tls_runtime = (int32_t)((intptr_t)tls_runtime - tp);
	sp_fastcount.tls_rseq_cs = (int32_t)(__rseq_offset + RSEQ_CS_OFF);
	sp_fastcount.tls_own_neg_lo = (int32_t)((intptr_t)own_neg_lo - tp);
	sp_fastcount.tls_own_neg_hi = (int32_t)((intptr_t)own_neg_hi - tp);
	sp_fastcount.on = true;
}

bool sp_fastcount_thread_ok(void)
{
	if (!sp_fastcount.on)
		return false;
	/* a thread whose registration failed would not be restarted: the C
	 * path for it (a task on another thread's TLS never gets this far:
	 * its hits are off that thread's stack, foreign.h) */
	int32_t cpu = *(volatile int32_t *)(sp_thread_pointer() + __rseq_offset + RSEQ_CPU_ID_OFF);
	return cpu >= 0;
}

void sp_fastcount_fence(void)
{
	if (sp_fastcount.on)
		syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0);
}

bool sp_fastcount_atfork_child(void)
{
	if (sp_fastcount.on && !fence_ready()) {
		sp_fastcount.on = false;   /* no fence here: this (only) thread counts in C */
		return true;
	}
	return false;
}
