/* ctlclient — the CLI's side of the runtime's control channel
 * (runtime/api/control.h has the protocol). */
#ifndef SP_CLI_CTLCLIENT_H
#define SP_CLI_CTLCLIENT_H

#include <stddef.h>
#include <sys/types.h>

/* Connect to PID's control socket, checking that PID itself serves it (an
 * abstract name can be bound by anyone).  The descriptor, or -1 with the
 * reason in WHY (-2: no such socket: the process has no control channel). */
int sp_ctl_connect(pid_t pid, char *why, size_t n);

/* Send COMMAND with ARG (NULL: none) and read the answer: 1 OK, 0 ERR,
 * -1 the connection failed.  *BODY malloc'ed, NUL-terminated. */
int sp_ctl_request(int fd, const char *cmd, const char *arg, char **body);
/* The same, and a descriptor the answer passed (SCM_RIGHTS) in *PASSED, or
 * -1 (none, or the connection failed). */
int sp_ctl_request_fd(int fd, const char *cmd, const char *arg, char **body, int *passed);

#endif
