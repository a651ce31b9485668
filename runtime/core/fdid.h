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

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
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

/* An output of ours the program may take (=trace lines, a bpftrace
 * program's output).  Once seen not ours it stays gone: a number that was
 * the program's file once may be ours again only by chance, and may change
 * again under a write; and a fresh copy of today's stdout or stderr
 * (redirected, perhaps) is not where the output was promised.  What would
 * have gone there is counted in LOST, for the report's errors. */
struct sp_fdout {
	struct sp_fdid id;
	atomic_bool gone;
	_Atomic uint64_t lost;
};

#define SP_FDOUT_NONE { .id = SP_FDID_NONE }

/* O may be written now (its descriptor is still ours); false once it is
 * not, from then on. */
static inline bool sp_fdout_ours(struct sp_fdout *o)
{
	if (atomic_load(&o->gone) || !sp_fdid_still_ours(&o->id)) {
		atomic_store(&o->gone, true);
		return false;
	}
	return true;
}

#endif
