/* shstk — see shstk.h. */
#include "shstk.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* <asm/prctl.h> of Linux 6.6 (Debian 12's headers are older) */
#define ARCH_SHSTK_STATUS 0x5005
#define ARCH_SHSTK_SHSTK (1ul << 0)

bool sp_shstk_from_prctl(long rc, unsigned long features, bool *known)
{
	*known = rc == 0;
	return rc == 0 && (features & ARCH_SHSTK_SHSTK);
}

bool sp_shstk_from_status(const char *status)
{
	static const char key[] = "x86_Thread_features:";
	if (!status)
		return false;
	for (const char *line = status; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (strncmp(line, key, sizeof(key) - 1) != 0)
			continue;
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		/* the features as words: "shstk", "wrss" */
		for (const char *p = line + sizeof(key) - 1; p < line + len; p++)
			if (strncmp(p, "shstk", 5) == 0 && (p[-1] == ' ' || p[-1] == '\t' || p[-1] == ':') &&
			    (p + 5 == line + len || p[5] == ' ' || p[5] == '\t'))
				return true;
		return false;
	}
	return false;
}

bool sp_shstk_enabled(void)
{
	static int cached = -1;
	if (cached >= 0)
		return cached;
	unsigned long features = 0;
	long rc = syscall(SYS_arch_prctl, ARCH_SHSTK_STATUS, &features);
	bool known, on = sp_shstk_from_prctl(rc == 0 ? 0 : -errno, features, &known);
	if (!known) {
		char buf[4096];
		int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = 0;
		on = sp_shstk_from_status(n > 0 ? buf : NULL);
	}
	cached = on;
	return on;
}

const char *sp_shstk_return_refusal(bool enabled)
{
	return enabled ? "the process runs with a hardware shadow stack (CET): a swapped return address "
			 "would fault at the function's RET (return probes on every RET instead: not "
			 "implemented)"
		       : NULL;
}
