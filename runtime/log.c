/* log — leveled messages on stderr.  One fprintf per message so lines from
 * several threads do not interleave mid-line. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sp_log_level = SP_LOG_ERROR;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void sp_log(enum sp_log_level lvl, const char *fmt, ...)
{
	if ((int)lvl > sp_log_level)
		return;
	int saved = errno;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "selfprobe: %s%s%s\n", lvl == SP_LOG_ERROR ? "" : level_names[lvl],
		lvl == SP_LOG_ERROR ? "" : ": ", line);
	errno = saved;
}

int sp_log_parse_level(const char *s, enum sp_log_level *out)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0) {
			*out = i;
			return 0;
		}
	return -EINVAL;
}
