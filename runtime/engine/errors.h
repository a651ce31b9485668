/* errors — what went wrong while attaching, for the log and the report:
 * an item's message, kept in order (errors.c).  Also log.h's error sink,
 * set by the registry's set-up (setup.c): the lower modules' messages are
 * the report's too. */
#ifndef SP_ERRORS_H
#define SP_ERRORS_H

#include "probe.h"

/* Record an error (log + report). */
void sp_probe_error(const char *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same, MSG formatted already: log.h's sink. */
void sp_probe_record_error(const char *spec, const char *msg);

/* Walk the errors (for the report).  The list only grows. */
struct sp_error *sp_error_first(void);

/* Copy the errors so far into the launcher's file (once it is attached). */
void sp_probe_publish_errors(void);

#endif
