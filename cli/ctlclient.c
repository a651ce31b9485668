/* ctlclient — connect to and talk with the runtime's control channel. */
#include "ctlclient.h"
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sp_ctl_connect(pid_t pid, char *why, size_t n)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, n, "socket: %s", strerror(errno));
		return -1;
	}
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int len = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, SP_CONTROL_PREFIX "%d", (int)pid);
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
	if (connect(fd, (struct sockaddr *)&a, alen) != 0) {
		int e = errno;
		close(fd);
		snprintf(why, n, "process %d has no control channel (%s)", (int)pid, strerror(e));
		return e == ECONNREFUSED || e == ENOENT ? -2 : -1;
	}
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.pid != pid) {
		close(fd);
		snprintf(why, n, "the control socket of process %d is served by process %d, not by it: "
			 "refused", (int)pid, (int)cr.pid);
		return -1;
	}
	struct timeval tv = { .tv_sec = 30 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static int write_full(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_full(int fd, char *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One byte, and a descriptor passed with it (SCM_RIGHTS) into *PASSED. */
static int read_first(int fd, char *p, int *passed)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct iovec iov = { .iov_base = p, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf) };
	ssize_t r;
	do
		r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	for (struct cmsghdr *cm = r > 0 ? CMSG_FIRSTHDR(&m) : NULL; cm; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int))) {
			int got;
			memcpy(&got, CMSG_DATA(cm), sizeof(got));
			if (passed && *passed < 0)
				*passed = got;
			else
				close(got);   /* not asked for */
		}
	return r == 1 ? 0 : -1;
}

int sp_ctl_request(int fd, const char *cmd, const char *arg, char **body)
{
	return sp_ctl_request_fd(fd, cmd, arg, body, NULL);
}

int sp_ctl_request_fd(int fd, const char *cmd, const char *arg, char **body, int *passed)
{
	*body = NULL;
	if (passed)
		*passed = -1;
	size_t alen = arg ? strlen(arg) : 0;
	char head[64];
	int hn = snprintf(head, sizeof(head), "%s %zu\n", cmd, alen);
	if (write_full(fd, head, (size_t)hn) || write_full(fd, arg ? arg : "", alen))
		return -1;
	size_t k = 0;
	for (;;) {   /* "OK LEN\n" / "ERR LEN\n" */
		if (k + 1 >= sizeof(head) || (k ? read_full(fd, &head[k], 1) : read_first(fd, &head[k], passed)))
			goto lost;
		if (head[k] == '\n')
			break;
		k++;
	}
	head[k] = 0;
	size_t len;
	char status[8];
	if (sscanf(head, "%7s %zu", status, &len) != 2 || len > (1u << 30))
		goto lost;
	char *b = malloc(len + 1);
	if (!b || read_full(fd, b, len)) {
		free(b);
		goto lost;
	}
	b[len] = 0;
	*body = b;
	return strcmp(status, "OK") == 0 ? 1 : 0;
lost:
	if (passed && *passed >= 0) {
		close(*passed);
		*passed = -1;
	}
	return -1;
}
