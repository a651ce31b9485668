/* log — leveled messages on stderr, only when the user asked for them
 * (UPROBE_LOG, selfprobe_set_log_level): the program's stderr is the
 * program's, and diagnostics belong in the report.  sp_say() is for what
 * must reach someone when no report can be written.  One write per message so lines from
 * several threads do not interleave mid-line; a raw system call, not the
 * application's stderr FILE (whose state — buffered bytes, flags that make
 * its fclose flush — is the application's) nor libc's write (which would
 * count as the application's call). */
#include "log.h"
#include "rawsys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

int sp_log_level = SP_LOG_ERROR;
bool sp_log_asked;

static long raw_write(int fd, const void *buf, size_t len)
{
	return sp_syscall6(SYS_write, fd, (long)buf, (long)len, 0, 0, 0);
}

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static void emit(enum sp_log_level lvl, const char *fmt, va_list ap)
{
	int saved = errno;
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	char msg[1100];
	int n = snprintf(msg, sizeof(msg), "selfprobe: %s%s%s\n", lvl == SP_LOG_ERROR ? "" : level_names[lvl],
			 lvl == SP_LOG_ERROR ? "" : ": ", line);
	if (n > (int)sizeof(msg) - 1)
		n = (int)sizeof(msg) - 1;
	for (int off = 0; n > 0 && off < n;) {
		long rc = raw_write(2, msg + off, (size_t)(n - off));
		if (rc == -EINTR)
			continue;
		if (rc <= 0)
			break;
		off += (int)rc;
	}
	errno = saved;
}

void sp_log(enum sp_log_level lvl, const char *fmt, ...)
{
	if (!sp_log_asked || (int)lvl > sp_log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit(lvl, fmt, ap);
	va_end(ap);
}

void sp_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(SP_LOG_ERROR, fmt, ap);
	va_end(ap);
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

static sp_error_sink_fn error_sink;

void sp_log_set_error_sink(sp_error_sink_fn sink)
{
	error_sink = sink;
}

void sp_error_vsend(sp_error_sink_fn to, const char *who, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	to(who, msg);
}

/* No sink installed: a debug line only. */
static void debug_sink(const char *who, const char *msg)
{
	sp_debug("%s: %s", who, msg);
}

void sp_report_error(const char *who, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sp_error_vsend(error_sink ? error_sink : debug_sink, who, fmt, ap);
	va_end(ap);
}
