/* shmserve — see shmserve.h. */
#include "shmserve.h"
#include "shm.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int listen_fd = -1, file_fd = -1;

/* PID's parent, from /proc/PID/stat ("pid (comm) S ppid …", comm may hold
 * any byte: parsed after its last ')'), or -1. */
static int parent_of(int pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *close = strrchr(buf, ')');
	int ppid;
	return close && sscanf(close + 1, " %*c %d", &ppid) == 1 ? ppid : -1;
}

/* Does PID descend from this launcher?  A process reparented away from us
 * (its parent exited: to init or a subreaper) no longer does, and is
 * refused: it then reports by itself. */
static int ours(int pid)
{
	int me = getpid();
	for (int depth = 0; pid > 1 && depth < 256; depth++) {
		pid = parent_of(pid);
		if (pid == me)
			return 1;
	}
	return 0;
}

static void hand_over(int conn)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || !ours(cr.pid))
		return;
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char room[CMSG_SPACE(sizeof(int))];
	} c;
	memset(&c, 0, sizeof(c));
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.room,
			    .msg_controllen = sizeof(c.room) };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &file_fd, sizeof(int));
	(void)sendmsg(conn, &m, MSG_NOSIGNAL);
}

static void *serve(void *unused)
{
	(void)unused;
	for (;;) {
		int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				continue;
			return NULL;
		}
		hand_over(conn);
		close(conn);
	}
}

int sp_shmserve_start(int memfd)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, SP_SHM_SOCK_FMT, (int)getpid());
	socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	if (bind(fd, (struct sockaddr *)&a, alen) != 0 || listen(fd, 64) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	listen_fd = fd;
	file_fd = memfd;
	/* the thread takes none of the launcher's signals */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&t, &attr, serve, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		close(fd);
		listen_fd = -1;
		return -e;
	}
	return 0;
}
