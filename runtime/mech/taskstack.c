/* taskstack — see taskstack.h. */
#include "taskstack.h"
#include "procread.h"
#include "rawsys.h"

#include <errno.h>
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

bool sp_task_stack(pid_t tid, uintptr_t tls_addr, uintptr_t *lo, uintptr_t *hi)
{
	bool main = tid == (pid_t)self_pid();
	if (!main && !tls_addr)
		return false;
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
