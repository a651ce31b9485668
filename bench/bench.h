/* bench.h — shared pieces of the benches: the probed targets, locating a site
 * in its file (for the kernel's perf uprobe PMU, which wants a path and a file
 * offset), opening kernel uprobes, and sample statistics. */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* targets.S */
void uprobe_target_nop(void);
void uprobe_target_push(void);
void uprobe_target_ret(void);
void uprobe_target_nop5(void);
void usdt_target_nop5(void);
/* usdt.c */
void usdt_target_nop(void);

/* The loaded object holding ADDR: its path (the main program's real path for
 * the executable) and ADDR's file offset, from the PT_LOAD program headers.
 * 0 or -errno. */
int bench_addr_to_file(const void *addr, char *path, size_t pathlen, uint64_t *off);

/* A USDT note of the file PATH: the site's and the semaphore's file offsets
 * (semaphore 0 when it has none).  0 or -errno (-ENOENT: no such note). */
struct bench_usdt {
	uint64_t pc_off;
	uint64_t sema_off;
};
int bench_usdt_find(const char *path, const char *provider, const char *name,
		    struct bench_usdt *out);

/* A counting kernel uprobe (RETPROBE: uretprobe) through perf_event_open's
 * uprobe PMU on PATH at file offset OFF, for this process and, with INHERIT,
 * the threads it creates afterwards.  REF_CTR_OFF: the USDT semaphore's file
 * offset or 0.  Returns the fd or -errno. */
int bench_kuprobe_open(const char *path, uint64_t off, bool retprobe,
		       uint64_t ref_ctr_off, bool inherit);
/* The counter of a kernel uprobe (children included), or -1 on error. */
int64_t bench_kuprobe_read(int fd);

/* A kernel multi-uprobe: one BPF uprobe_multi link (an empty program) over
 * the N file offsets OFFS of PATH, for this process only, as bpftrace
 * attaches a glob: one call, and one grace period at detach for all N.
 * Returns the link fd (close it to detach; *PROG_FD too) or -errno. */
int bench_kmulti_attach(const char *path, const uint64_t *offs, unsigned n, int *prog_fd);

/* Statistics over N samples (N >= 1); sorts V. */
struct bench_stats {
	double mean, stddev, median, min, max;
};
void bench_stats(double *v, int n, struct bench_stats *out);

double bench_now(void);               /* CLOCK_MONOTONIC seconds */
void bench_sleep(double seconds);
long bench_rss_bytes(void);           /* resident set from /proc/self/statm, or -1 */

#endif
