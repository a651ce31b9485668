/* outfile — a named output written whole, then renamed over its target
 * (outfile.h). */
#include "outfile.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PLAIN_FLAGS (O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC)

int sp_fd_copy_above(int fd, int min)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, min);
	if (copy < 0)
		copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return copy >= 0 ? copy : -errno;
}

/* FD moved to MIN or above (sp_fd_copy_above), the original closed; FD
 * itself when no copy can be made or none is asked for. */
static int raise_fd(int fd, int min)
{
	if (fd < 0 || min <= 0 || fd >= min)
		return fd;
	int copy = sp_fd_copy_above(fd, min);
	if (copy < 0)
		return fd;
	close(fd);
	return copy;
}

/* A new temporary file beside the target, o->tmp its name: the pid, the
 * thread and a counter make it unique between the processes and threads
 * that may write one target at once (O_EXCL: another's never reused; a
 * name taken, by a process of another pid namespace sharing the
 * directory, is passed over).  Hidden, so that a reader's glob of the
 * reports (r.*.json) never takes it.  -1 and errno, o->tmp "", if none. */
static int make_tmp(struct sp_outfile *o, mode_t mode)
{
	static _Atomic unsigned counter;
	const char *slash = strrchr(o->path, '/');
	int dir = slash ? (int)(slash - o->path + 1) : 0;
	const char *base = slash ? slash + 1 : o->path;
	if (strlen(base) > NAME_MAX - 48)   /* room for the suffix */
		base = "selfprobe";
	int fd = -1;
	errno = EEXIST;
	for (int tries = 0; fd < 0 && errno == EEXIST && tries < 8; tries++) {
		size_t n = (size_t)snprintf(o->tmp, sizeof(o->tmp), "%.*s.%s.%d.%d.%u.tmp", dir, o->path, base,
					    (int)getpid(), (int)gettid(), atomic_fetch_add(&counter, 1));
		if (n >= sizeof(o->tmp)) {
			errno = ENAMETOOLONG;
			break;
		}
		fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	}
	if (fd < 0)
		o->tmp[0] = 0;
	return fd;
}

/* The existing target's permission bits and group on TMP, the new file
 * (its owner is ours: the caller checked the target is ours too).  Set-id
 * bits are dropped: they belonged to the old contents. */
static int keep_attrs(int tmp, const struct stat *target)
{
	struct stat st;
	if (fstat(tmp, &st) != 0)
		return -1;
	if (st.st_gid != target->st_gid && fchown(tmp, (uid_t)-1, target->st_gid) != 0)
		return -1;
	return fchmod(tmp, target->st_mode & 0777);
}

static void drop_tmp(struct sp_outfile *o)
{
	if (o->tmp[0])
		unlink(o->tmp);
	o->tmp[0] = 0;
}

/* Where the contents go, given the target as open() found it (ST; absent
 * if !FOUND): a temporary file, else the target in place, o->in_place
 * saying why.  -1 and errno if neither. */
static int choose(struct sp_outfile *o, bool found, const struct stat *st)
{
	int fd = -1;
	if (!found)
		o->in_place = (fd = make_tmp(o, 0644)) < 0 ? "no temporary file can be made beside it" : NULL;
	else if (!S_ISREG(st->st_mode))
		o->in_place = "not a regular file";
	else if (st->st_uid != geteuid())
		o->in_place = "another user's file";
	else if (st->st_nlink > 1)
		o->in_place = "it has other names (hard links)";
	else if ((fd = make_tmp(o, 0600)) < 0)
		o->in_place = "no temporary file can be made beside it";
	else if (keep_attrs(fd, st) != 0) {
		o->in_place = "its group or mode cannot be given to a new file";
		close(fd);
		drop_tmp(o);
		fd = -1;
	}
	/* in place: the very open of before, with every check the kernel
	 * makes on it (fs.protected_regular and protected_fifos refuse a file
	 * of another user in a sticky directory to O_CREAT), and its error */
	return o->in_place ? open(o->path, PLAIN_FLAGS, 0644) : fd;
}

FILE *sp_outfile_open(struct sp_outfile *o, const char *path, int min_fd)
{
	o->path = path;
	o->tmp[0] = 0;
	o->in_place = NULL;
	/* The target as a plain open would find it, not truncated: refused
	 * as before (no permission, immutable, a symlink: ELOOP), and a FIFO
	 * waits here for its reader, as before.  Held only until the
	 * contents' own descriptor is open: a FIFO's reader, which sees the
	 * end of the file when no writer is left, never sees it early. */
	struct stat st = { 0 };
	int target = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (target < 0 && errno != ENOENT)
		return NULL;
	int fd = target < 0 || fstat(target, &st) == 0 ? choose(o, target >= 0, &st) : -1;
	int e = errno;
	if (target >= 0)
		close(target);
	FILE *f = fd >= 0 ? fdopen(fd = raise_fd(fd, min_fd), "w") : NULL;
	if (f) {
		if (o->in_place)
			sp_debug("%s: written in place: %s", path, o->in_place);
		return f;
	}
	if (fd >= 0) {
		e = errno;
		close(fd);
	}
	drop_tmp(o);
	errno = e;
	return NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* The rename failed: the temporary file's contents copied into the target
 * in place, opened as before.  0 or -errno. */
static int copy_in_place(struct sp_outfile *o)
{
	int src = open(o->tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int dst = src >= 0 ? open(o->path, PLAIN_FLAGS, 0644) : -1;
	int rc = dst < 0 ? -errno : 0;
	char buf[4096];
	for (ssize_t n; rc == 0 && (n = read(src, buf, sizeof(buf))) != 0;)
		rc = n < 0 ? (errno == EINTR ? 0 : -errno) : write_all(dst, buf, (size_t)n);
	if (src >= 0)
		close(src);
	if (dst >= 0 && close(dst) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

int sp_outfile_close(struct sp_outfile *o, FILE *f, int rc)
{
	if (ferror(f) && rc == 0)
		rc = errno ? -errno : -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (o->tmp[0] && rc == 0) {
		/* rename(2) replaces the name, whatever it is now: a symlink
		 * put there since the open is replaced, never followed */
		if (rename(o->tmp, o->path) == 0)
			o->tmp[0] = 0;
		else {
			o->in_place = "the rename failed";
			sp_debug("%s: cannot rename %s over it (%s): written in place", o->path, o->tmp,
				 strerror(errno));
			rc = copy_in_place(o);
		}
	}
	drop_tmp(o);   /* on every error: never left behind */
	return rc;
}
