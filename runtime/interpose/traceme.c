/* traceme — ptrace(PTRACE_TRACEME), interposed: a process that asks to be
 * traced (a debugger's or strace's child, between its fork and its exec)
 * gets every probe removed first, because each int3 of ours would then
 * stop it in its tracer (tracer.h).  After the exec the preload attaches
 * nothing while it is traced.  Linked into libselfprobe.so only. */
#include "registry.h"
#include "tstate.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#define INTERPOSE __attribute__((visibility("default")))

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

INTERPOSE long ptrace(enum __ptrace_request req, ...)
{
	va_list ap;
	va_start(ap, req);
	pid_t pid = va_arg(ap, pid_t);
	void *addr = va_arg(ap, void *);
	void *data = va_arg(ap, void *);
	va_end(ap);
	if (req == PTRACE_TRACEME) {
		sp_tls.runtime++;   /* our own calls are not the program's */
		sp_probe_disarm_all("the process asked to be traced (PTRACE_TRACEME)");
		sp_tls.runtime--;
	}
	static ptrace_fn real;
	if (!real)
		real = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	return real((int)req, pid, addr, data);
}
