/* log — the runtime's one voice: leveled messages on stderr, prefixed
 * "selfprobe: ", printed only when the user asked (sp_log_asked: UPROBE_LOG
 * or selfprobe_set_log_level).  Diagnostics go into the report (probe
 * errors, reasons); stderr is the program's.  Not for the signal path
 * (uses stdio). */
#ifndef SP_LOG_H
#define SP_LOG_H

enum sp_log_level { SP_LOG_ERROR, SP_LOG_WARN, SP_LOG_INFO, SP_LOG_DEBUG };

#include <stdarg.h>
#include <stdbool.h>

extern int sp_log_level;
extern bool sp_log_asked;   /* messages were asked for: else sp_log prints nothing */

void sp_log(enum sp_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Printed whatever the level: for what must be said when no report can
 * carry it (the report itself cannot be written). */
void sp_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An error for the report's errors, from a module below the registry
 * (WHO names the source, as a spec item would).  The registry installs
 * the sink once (engine/setup.c); without one (the fuzz targets, the unit tests
 * of pure modules) the message is a debug line only. */
typedef void (*sp_error_sink_fn)(const char *who, const char *message);
void sp_log_set_error_sink(sp_error_sink_fn sink);
void sp_report_error(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* FMT with AP formatted (511 bytes at most) and handed to TO with WHO:
 * sp_report_error's formatting, for a caller naming its sink itself
 * (engine/errors.c: sp_probe_error records whether or not one is installed). */
void sp_error_vsend(sp_error_sink_fn to, const char *who, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Parse "error"/"warn"/"info"/"debug".  0 or -EINVAL. */
int sp_log_parse_level(const char *s, enum sp_log_level *out);

#define sp_err(...)   sp_log(SP_LOG_ERROR, __VA_ARGS__)
#define sp_warn(...)  sp_log(SP_LOG_WARN, __VA_ARGS__)
#define sp_info(...)  sp_log(SP_LOG_INFO, __VA_ARGS__)
#define sp_debug(...) sp_log(SP_LOG_DEBUG, __VA_ARGS__)

#endif
