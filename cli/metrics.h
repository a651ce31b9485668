/* metrics — the OpenMetrics text exposition of a session's counts on
 * http://ADDR:PORT/metrics (libmicrohttpd's own thread answers). */
#ifndef SP_CLI_METRICS_H
#define SP_CLI_METRICS_H

#include <stdio.h>

/* The session's counts in the control channel's "tsv" form (malloc'ed), or
 * NULL when they cannot be had. */
typedef char *(*sp_metrics_fetch)(void *ctx);

/* Serve on ADDR ("127.0.0.1:PORT"; the host must be a numeric IPv4
 * address: loopback unless the user names another).  0, or -1 with the
 * reason in WHY. */
int sp_metrics_start(const char *addr, sp_metrics_fetch fetch, void *ctx, char *why, size_t n);
void sp_metrics_stop(void);
/* Whether sp_metrics_start would take ADDR (a usage error at once, not
 * after the program started): 0, or -1 with the reason in WHY. */
int sp_metrics_check(const char *addr, char *why, size_t n);

/* The exposition of TSV (the control channel's form) into F. */
void sp_metrics_write(FILE *f, const char *tsv);

#endif
