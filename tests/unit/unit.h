/* unit — helpers shared by the Criterion unit tests. */
#ifndef SP_UNIT_H
#define SP_UNIT_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "selfprobe.h"

/* The JSON report as it is now, whole, through the public API: malloc'ed. */
static inline char *unit_report_json(void)
{
	char path[] = "/tmp/sp_unit_report_XXXXXX.json";
	int fd = mkstemps(path, 5);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(selfprobe_write_report(path), 0);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	for (size_t r; (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
		n += r;
		if (n + 1 == cap) {
			buf = realloc(buf, cap *= 2);
			cr_assert_not_null(buf);
		}
	}
	buf[n] = 0;
	fclose(f);
	unlink(path);
	return buf;
}

/* FROM copied to TO. */
static inline void unit_copy_file(const char *from, const char *to)
{
	FILE *f = fopen(from, "rb"), *t = fopen(to, "wb");
	cr_assert(f && t, "%s -> %s", from, to);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		cr_assert_eq(fwrite(buf, 1, n, t), n);
	fclose(f);
	cr_assert_eq(fclose(t), 0);
}

/* DIR and the files in it (no subdirectories) removed. */
static inline void unit_rmdir_flat(const char *dir)
{
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));) {
		char p[512];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (e->d_name[0] != '.')
			unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* The protection of the mapping holding ADDR as /proc/self/maps says it
 * ("r-xp"), into PERM[5]; "none" when no mapping holds it. */
static inline void unit_perms_of(uintptr_t addr, char perm[5])
{
	strcpy(perm, "none");
	FILE *f = fopen("/proc/self/maps", "re");
	cr_assert_not_null(f);
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char p[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && addr >= lo && addr < hi) {
			memcpy(perm, p, 5);
			break;
		}
	}
	fclose(f);
}

#endif
