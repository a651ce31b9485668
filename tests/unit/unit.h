/* unit — helpers shared by the Criterion unit tests. */
#ifndef SP_UNIT_H
#define SP_UNIT_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
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

#endif
