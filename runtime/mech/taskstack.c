/* taskstack — see taskstack.h. */
#include "taskstack.h"
#include "rawsys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

static long self_pid(void)
{
	return sp_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
}

static int open_task(pid_t tid, const char *name)
{
	char path[64];
	if (tid > 0)
		snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)tid, name);
	else
		snprintf(path, sizeof(path), "/proc/self/%s", name);
	return (int)sp_syscall6(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0, 0, 0);
}

/* "NR a1 … a6 SP PC" while in a system call, "running" otherwise. */
int sp_task_blocked(pid_t tid, uintptr_t *sp, uintptr_t *pc)
{
	char buf[256];
	int fd = open_task(tid, "syscall");
	if (fd < 0)
		return fd;
	long n = sp_syscall6(SYS_read, fd, (long)buf, sizeof(buf) - 1, 0, 0, 0);
	sp_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
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

bool sp_task_stack(pid_t tid, uintptr_t tls_addr, uintptr_t *lo, uintptr_t *hi)
{
	bool main = tid == (pid_t)self_pid();
	if (!main && !tls_addr)
		return false;
	int fd = open_task(0, "maps");
	if (fd < 0)
		return false;
	char buf[8192];
	size_t have = 0;
	bool found = false;
	for (;;) {
		long n = sp_syscall6(SYS_read, fd, (long)(buf + have), (long)(sizeof(buf) - 1 - have), 0, 0, 0);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			if (line_matches(line, main, tls_addr, lo, hi)) {
				found = true;
				goto out;
			}
			line = nl + 1;
		}
		have = strlen(line);   /* an unfinished line: kept for the next read */
		memmove(buf, line, have);
		if (have == sizeof(buf) - 1)
			have = 0;      /* longer than the buffer: a name, never ours */
	}
out:
	sp_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
	return found;
}

bool sp_task_gone(pid_t tid)
{
	if (tid <= 0)
		return false;
	return sp_syscall6(SYS_tgkill, self_pid(), tid, 0, 0, 0, 0) == -ESRCH;
}
