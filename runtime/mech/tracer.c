/* tracer — see tracer.h. */
#include "tracer.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pid_t sp_tracer_from_status(const char *status)
{
	const char *p = status ? strstr(status, "\nTracerPid:") : NULL;
	return p ? (pid_t)strtol(p + strlen("\nTracerPid:"), NULL, 10) : 0;
}

/* The first line of a small /proc file into BUF; "" when unreadable. */
static void read_proc(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got = fd >= 0 ? read(fd, buf, n - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[got > 0 ? got : 0] = 0;
}

const char *sp_tracer_refusal(char *buf, size_t n)
{
	char status[4096];
	read_proc("/proc/self/status", status, sizeof(status));
	pid_t tracer = sp_tracer_from_status(status);
	if (tracer <= 0)
		return NULL;
	char path[64], comm[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)tracer);
	read_proc(path, comm, sizeof(comm));
	comm[strcspn(comm, "\n")] = 0;
	snprintf(buf, n,
		 "the process is traced by PID %d (%s): our traps would stop it in its tracer "
		 "(a debugger, strace); not probed while it is traced",
		 (int)tracer, *comm ? comm : "?");
	return buf;
}
