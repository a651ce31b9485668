/* taskstack — see taskstack.h. */
#include "taskstack.h"
#include "procread.h"
#include "rawsys.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

static long self_pid(void)
{
	return sp_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
}

/* "NR a1 … a6 SP PC" while in a system call, "running" otherwise. */
int sp_task_blocked(pid_t tid, uintptr_t *sp, uintptr_t *pc)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	struct sp_lines f;
	int rc = sp_lines_open(&f, path);
	if (rc)
		return rc;
	bool read = sp_lines_next(&f, buf, sizeof(buf));
	sp_lines_close(&f);
	if (!read)
		return -EIO;
	if (strncmp(buf, "running", 7) == 0 || buf[0] == '-')
		return -EAGAIN;
	char *last = strrchr(buf, ' ');
	if (!last || last == buf)
		return -EIO;
	*last = 0;
	char *before = strrchr(buf, ' ');
	if (!before)
		return -EIO;
	*pc = (uintptr_t)strtoull(last + 1, NULL, 0);
	*sp = (uintptr_t)strtoull(before + 1, NULL, 0);
	return 0;
}

/* One line of /proc/self/maps: "lo-hi perms off dev ino [name]". */
static bool line_matches(const char *line, bool main, uintptr_t addr, uintptr_t *lo, uintptr_t *hi)
{
	char *end;
	uintptr_t a = (uintptr_t)strtoull(line, &end, 16);
	if (*end != '-')
		return false;
	uintptr_t b = (uintptr_t)strtoull(end + 1, NULL, 16);
	bool hit = main ? strstr(line, " [stack]") != NULL : addr >= a && addr < b;
	if (hit)
		*lo = a, *hi = b;
	return hit;
}

/* linux/fs.h's PROCMAP_QUERY (Linux 6.11): the mapping that covers an
 * address, asked of a /proc/PID/maps descriptor, without reading the
 * whole file (tens of microseconds in a process with many mappings: a
 * thread's first look-up of its stack). */
struct procmap_query {
	uint64_t size, query_flags, query_addr;
	uint64_t vma_start, vma_end, vma_flags, vma_page_size, vma_offset, inode;
	uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
	uint64_t vma_name_addr, build_id_addr;
};
#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)

/* The mapping that covers ADDR, named NAME if NAME is given: 1 found, 0
 * not, -1 when the kernel cannot be asked (before 6.11: read the file). */
static int query(uintptr_t addr, const char *name, uintptr_t *lo, uintptr_t *hi)
{
	int fd = (int)sp_syscall6(SYS_openat, AT_FDCWD, (long)"/proc/self/maps", O_RDONLY | O_CLOEXEC, 0, 0, 0);
	if (fd < 0)
		return -1;
	char got[16] = "";
	struct procmap_query q = { .size = sizeof(q), .query_addr = addr };
	if (name) {
		q.vma_name_addr = (uintptr_t)got;
		q.vma_name_size = sizeof(got);
	}
	long rc = sp_syscall6(SYS_ioctl, fd, (long)PROCMAP_QUERY, (long)&q, 0, 0, 0);
	sp_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
	if (rc == -ENOENT || rc == -ENAMETOOLONG)
		return 0;
	if (rc != 0)
		return -1;
	if (name && strcmp(got, name) != 0)
		return 0;
	*lo = q.vma_start;
	*hi = q.vma_end;
	return 1;
}

/* The same from the whole file.  Its own frame: the 4.5 KiB of buffers
 * are not taken from a stack the kernel's answer suffices for (a
 * thread's first hits look their stack up: foreign.h). */
static __attribute__((noinline)) bool read_maps(bool main, uintptr_t tls_addr, uintptr_t *lo, uintptr_t *hi)
{
	struct sp_lines f;
	if (sp_lines_open(&f, "/proc/self/maps") != 0)
		return false;
	/* a line cut short is a long path's, never [stack]: its range comes first */
	char line[512];
	bool found = false;
	while (!found && sp_lines_next(&f, line, sizeof(line)))
		found = line_matches(line, main, tls_addr, lo, hi);
	sp_lines_close(&f);
	return found;
}

extern void *__libc_stack_end;   /* glibc: near the top of the main thread's stack */

bool sp_task_stack(pid_t tid, uintptr_t tls_addr, uintptr_t *lo, uintptr_t *hi)
{
	bool main = tid == (pid_t)self_pid();
	if (!main && !tls_addr)
		return false;
	int asked = query(main ? (uintptr_t)__libc_stack_end : tls_addr, main ? "[stack]" : NULL, lo, hi);
	if (asked >= 0)
		return asked == 1;
	return read_maps(main, tls_addr, lo, hi);
}

bool sp_task_gone_in(pid_t pid, pid_t tid)
{
	if (tid <= 0)
		return false;
	return sp_syscall6(SYS_tgkill, pid, tid, 0, 0, 0, 0) == -ESRCH;
}

bool sp_task_gone(pid_t tid)
{
	return sp_task_gone_in((pid_t)self_pid(), tid);
}
