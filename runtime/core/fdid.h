/* fdid — is a descriptor we keep still the file we opened?  A program may
 * close every descriptor (a daemon's closefrom) and open its own files at
 * those numbers; the runtime then must not read, write or close that
 * number.  The file's identity (st_dev, st_ino) is remembered when it is
 * opened and compared before each use.  Header-only with a raw fstat: it
 * runs in a trap or a trampoline (hot/ compiles it -mgeneral-regs-only)
 * and under the patch lock (mech/patch.c), where libc's fstat could be a
 * probed call.  A number closed and reopened on the same file reads as
 * ours: it is the same file. */
#ifndef SP_FDID_H
#define SP_FDID_H

#include "rawsys.h"

#include <stdbool.h>
#include <sys/stat.h>

struct sp_fdid {
	int fd;   /* -1: none */
	unsigned long dev, ino;
};

#define SP_FDID_NONE { .fd = -1 }

/* Take FD as ID's descriptor.  false (ID holds no descriptor: fd -1) if FD
 * is negative or cannot be stat'ed. */
static inline bool sp_fdid_remember(struct sp_fdid *id, int fd)
{
	struct stat st;
	id->fd = -1;
	if (fd < 0 || sp_syscall6(SYS_fstat, fd, (long)&st, 0, 0, 0, 0) != 0)
		return false;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->fd = fd;
	return true;
}

/* ID's descriptor is open and still the file it was when remembered. */
static inline bool sp_fdid_still_ours(const struct sp_fdid *id)
{
	struct stat st;
	return id->fd >= 0 && sp_syscall6(SYS_fstat, id->fd, (long)&st, 0, 0, 0, 0) == 0 &&
	       st.st_dev == id->dev && st.st_ino == id->ino;
}

#endif
