/* procread — /proc without stdio's or opendir's allocations; see procread.h. */
#include "procread.h"
#include "rawsys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>

static int raw_open(const char *path, int flags)
{
	return (int)sp_syscall6(SYS_openat, AT_FDCWD, (long)path, flags | O_CLOEXEC, 0, 0, 0);
}

static void raw_close(int fd)
{
	sp_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
}

int sp_lines_open(struct sp_lines *r, const char *path)
{
	r->len = r->pos = 0;
	r->fd = raw_open(path, O_RDONLY);
	return r->fd < 0 ? r->fd : 0;
}

/* The next byte, or -1 at the end (or on an error). */
static int next_byte(struct sp_lines *r)
{
	if (r->pos == r->len) {
		long n;
		do
			n = sp_syscall6(SYS_read, r->fd, (long)r->buf, sizeof(r->buf), 0, 0, 0);
		while (n == -EINTR);
		if (n <= 0)
			return -1;
		r->len = (size_t)n;
		r->pos = 0;
	}
	return (unsigned char)r->buf[r->pos++];
}

bool sp_lines_next(struct sp_lines *r, char *line, size_t n)
{
	size_t k = 0;
	int c = next_byte(r);
	if (c < 0)
		return false;
	for (; c >= 0 && c != '\n'; c = next_byte(r))
		if (k + 1 < n)
			line[k++] = (char)c;
	if (n)
		line[k] = 0;
	return true;
}

void sp_lines_close(struct sp_lines *r)
{
	if (r->fd >= 0)
		raw_close(r->fd);
	r->fd = -1;
}

/* getdents64's record (not in glibc 2.36's headers under this name) */
struct dent64 {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

int sp_dir_open(struct sp_dir *d, const char *path)
{
	d->len = d->pos = 0;
	d->fd = raw_open(path, O_RDONLY | O_DIRECTORY);
	return d->fd < 0 ? d->fd : 0;
}

const char *sp_dir_next(struct sp_dir *d)
{
	if (d->pos >= d->len) {
		d->len = sp_syscall6(SYS_getdents64, d->fd, (long)d->buf, sizeof(d->buf), 0, 0, 0);
		d->pos = 0;
		if (d->len <= 0)
			return NULL;
	}
	struct dent64 *e = (struct dent64 *)(d->buf + d->pos);
	d->pos += e->reclen;
	return e->name;
}

void sp_dir_close(struct sp_dir *d)
{
	if (d->fd >= 0)
		raw_close(d->fd);
	d->fd = -1;
}
