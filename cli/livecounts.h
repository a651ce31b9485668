/* livecounts — an attached session's counts read from the target's counters
 * file (runtime/hot/shm.h), which the control channel's "file" command hands
 * over (runtime/api/control.h): `attach`, `top` and the metrics read them
 * live, without asking the process, and a process killed while attached
 * leaves them exact, as they were at its death. */
#ifndef SP_CLI_LIVECOUNTS_H
#define SP_CLI_LIVECOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct sp_livecounts;

/* Read the session of process PID (COMM) from FD, the file of the "file"
 * answer BODY (the descriptor is kept, closed by sp_livecounts_close).
 * NULL with the reason in WHY. */
struct sp_livecounts *sp_livecounts_open(int fd, const char *body, pid_t pid, const char *comm, char *why,
					 size_t n);
void sp_livecounts_close(struct sp_livecounts *lc);

/* The session's counts now, in the channel's "tsv" form (control.h), or its
 * report as the channel's "detach" writes it (JSON or text) covering
 * SECONDS; malloc'ed, NULL when the file cannot be read.  Thread-safe (the
 * metrics' thread reads too). */
char *sp_livecounts_tsv(struct sp_livecounts *lc);
char *sp_livecounts_report(struct sp_livecounts *lc, bool json, double seconds);
/* Seconds since the session began (CLOCK_MONOTONIC, as the process's). */
double sp_livecounts_seconds(const struct sp_livecounts *lc);

#endif
