/* optval — option values, checked whole (optval.h).  strtol and strtod
 * alone take "12abc" as 12 and "abc" as 0, and strtod takes "nan" and
 * "inf": each value here must be all number, in its range. */
#include "optval.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

const char *sp_opt_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "selfprobe: %s needs a value\n", argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

int sp_opt_seconds(const char *opt, const char *value, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(value, &end);
	if (end == value || *end || errno || !isfinite(v) || !(v > 0)) {
		fprintf(stderr, "selfprobe: %s takes a number of seconds > 0, not '%s'\n", opt, value);
		return 2;
	}
	*out = v;
	return 0;
}

int sp_opt_parse_long(const char *value, long min, long max, long *out)
{
	char *end;
	if (*value < '0' || *value > '9')   /* no sign, no blank: strtol takes both */
		return -1;
	errno = 0;
	long v = strtol(value, &end, 10);
	if (*end || errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int sp_opt_long(const char *opt, const char *value, long min, long max, long *out)
{
	if (sp_opt_parse_long(value, min, max, out) == 0)
		return 0;
	if (max == LONG_MAX)
		fprintf(stderr, "selfprobe: %s takes a whole number >= %ld, not '%s'\n", opt, min, value);
	else
		fprintf(stderr, "selfprobe: %s takes a whole number from %ld to %ld, not '%s'\n", opt, min, max,
			value);
	return 2;
}

int sp_opt_pid(const char *value, pid_t *pid)
{
	long v;
	if (sp_opt_parse_long(value, 1, 0x3fffffff, &v) != 0)   /* PID_MAX_LIMIT is 2^22 */
		return -1;
	*pid = (pid_t)v;
	return 0;
}
