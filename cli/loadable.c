/* loadable — see loadable.h. */
#include "loadable.h"
#include "golang.h"

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The file execvp runs for CMD (PATH search for a bare name), or NULL. */
static const char *resolve(const char *cmd, char *buf, size_t len)
{
	if (strchr(cmd, '/'))
		return cmd;
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		snprintf(buf, len, "%.*s%s%s", (int)n, p, n ? "/" : "", cmd);
		if (access(buf, X_OK) == 0)
			return buf;
		p += n + (colon != NULL);
	}
	return NULL;
}

int sp_preload_unreachable(const char *cmd, char *why, size_t len)
{
	char buf[PATH_MAX];
	const char *path = resolve(cmd, buf, sizeof(buf));
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0)
		return 0;
	Elf64_Ehdr eh;
	int unreachable = 0;
	/* an executable (or a static-pie, ET_DYN) with no PT_INTERP */
	if (pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
	    eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr) &&
	    (eh.e_type == ET_EXEC || eh.e_type == ET_DYN)) {
		unreachable = 1;
		for (unsigned i = 0; i < eh.e_phnum && unreachable; i++) {
			Elf64_Phdr ph;
			if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != (ssize_t)sizeof(ph) ||
			    ph.p_type == PT_INTERP)
				unreachable = 0;   /* a loader, or unreadable: not ours to judge */
		}
	}
	close(fd);
	if (unreachable)
		snprintf(why, len, "'%s' is statically linked (no dynamic loader, no PT_INTERP): LD_PRELOAD "
			 "cannot load libselfprobe.so into it, so it runs unprobed%s", path,
			 sp_go_object(path) ? " (a Go program built without cgo: with CGO_ENABLED=1 and "
					      "runtime/cgo imported, import _ \"runtime/cgo\" or any import \"C\", "
					      "it is linked dynamically)" : "");
	return unreachable;
}
