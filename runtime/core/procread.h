/* procread — reading a /proc file line by line and a directory's names
 * without stdio or opendir: fopen mallocs its FILE and buffer, opendir its
 * 32 KiB stream, both on the program's heap.  The state lives in the
 * caller's structure (on its stack); nothing is allocated.  Raw system
 * calls: a probe on libc's open or read never counts the runtime's reads,
 * whichever thread makes them. */
#ifndef SP_PROCREAD_H
#define SP_PROCREAD_H

#include <stdbool.h>
#include <stddef.h>

struct sp_lines {
	int fd;
	size_t len, pos;
	char buf[4096];
};

/* 0, or -errno. */
int sp_lines_open(struct sp_lines *r, const char *path);
/* The next line into LINE (N bytes, NUL-terminated, without its newline; a
 * longer line is cut, its rest skipped).  false at the end. */
bool sp_lines_next(struct sp_lines *r, char *line, size_t n);
void sp_lines_close(struct sp_lines *r);

struct sp_dir {
	int fd;
	long len, pos;
	char buf[4096] __attribute__((aligned(8)));
};

/* 0, or -errno. */
int sp_dir_open(struct sp_dir *d, const char *path);
/* The next entry's name ("." and ".." included), or NULL at the end. */
const char *sp_dir_next(struct sp_dir *d);
void sp_dir_close(struct sp_dir *d);

#endif
