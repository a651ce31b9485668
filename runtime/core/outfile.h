/* outfile — a named output (a report, a timeline, folded stacks) that no
 * reader ever sees half-written or empty.  The contents go to a temporary
 * file in the target's directory, renamed over the target once they are
 * whole; the target keeps its old contents (or stays absent) until then,
 * and whatever fails, the temporary file is removed.
 *
 * Written in place (opened, truncated and written as before) where a
 * rename cannot or must not replace the target:
 *   - it is not a regular file (/dev/null, /dev/full, a FIFO, a tty);
 *   - it is another user's file, or its group cannot be given to the new
 *     file, or it has other names (hard links): a new file would change
 *     its owner, its group, or what its other names hold;
 *   - no temporary file can be made beside it (the directory is not
 *     writable, while the file is);
 *   - the rename fails (a sticky directory, a file system that refuses it):
 *     the temporary file's contents are then copied into the target.
 * The new file keeps an existing target's permission bits (without set-id
 * bits; extended attributes and ACLs are not copied); a new target is
 * made 0644 less the umask, as open() would.
 *
 * Which file is written, and every error, are as with the plain
 * open(O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW) of before, which is what
 * writing in place does: the target is first opened for writing without
 * O_TRUNC (nor O_CREAT: nothing empty appears), so that a file we may not
 * write (no permission, immutable, a symlink at the last component: ELOOP)
 * is refused exactly as before, even where its directory would let a
 * rename replace it.  A symlink put at the target after that check is
 * replaced by the rename, never followed: the file it points to is not
 * touched.
 *
 * A process killed while writing leaves the target as it was and its
 * temporary file behind: hidden, ".NAME.PID.TID.N.tmp" beside the target.
 */
#ifndef SP_OUTFILE_H
#define SP_OUTFILE_H

#include <limits.h>
#include <stdio.h>

struct sp_outfile {
	const char *path;      /* the target, the caller's string */
	char tmp[PATH_MAX];    /* the temporary file, "" when written in place */
	const char *in_place;  /* why in place (NULL: replaced by a rename) */
};

/* Open PATH's contents for writing: a stream on the temporary file, or on
 * the target in place.  Its descriptor is close-on-exec and numbered
 * MIN_FD or more where the limit allows (0: any): a program's other
 * threads may close descriptor numbers they once owned while we write.
 * NULL and errno on failure (nothing left behind). */
FILE *sp_outfile_open(struct sp_outfile *o, const char *path, int min_fd);

/* A close-on-exec copy of FD numbered MIN or more where the limit allows
 * (else 3 or more), FD itself left open: -errno when none can be had. */
int sp_fd_copy_above(int fd, int min);

/* Close F, opened by sp_outfile_open, and put its contents at the target.
 * RC: the writer's own error (0: none, else -errno), which, like a write
 * error of F, leaves the target untouched where it was not written in
 * place.  0 or -errno. */
int sp_outfile_close(struct sp_outfile *o, FILE *f, int rc);

#endif
