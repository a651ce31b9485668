/* The control channel (runtime/api/control.h) served in this process, spoken to
 * over its socket as `selfprobe attach` would:
 *   - the session's counts cover the attached interval only, in the three
 *     forms (json, text, tsv), and a second session does not see the
 *     first's counts;
 *   - all or nothing: a spec with a bad item attaches nothing and answers
 *     ERR with the item's error;
 *   - "file" hands over the counters file (a read-only descriptor, SCM_RIGHTS):
 *     the session's record in it, found by its link, counts the hits live;
 *     ERR when nothing is attached;
 *   - bad requests (unknown command, a malformed or oversized header, a
 *     client that hangs up mid-request) get ERR or a closed connection,
 *     and the server goes on serving. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "selfprobe.h"
#include "shm.h"

#define NOINLINE __attribute__((noinline, used, visibility("default")))

static volatile unsigned sink;

NOINLINE int ctl_hot(int x)
{
	sink += x;
	return x + 1;
}

static void calls(int n)
{
	for (int i = 0; i < n; i++)
		ctl_hot(i);
}

static int connect_self(void)
{
	cr_assert_eq(selfprobe_control_start(), 0);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, SP_CONTROL_PREFIX "%d", (int)getpid());
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)), 0);
	return fd;
}

/* The answer's header's first byte, with the descriptor it carries (or -1). */
static int first_byte_fd(int fd, char *c)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = c, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	cr_assert_eq(recvmsg(fd, &m, MSG_CMSG_CLOEXEC), 1);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	int got = -1;
	if (cm && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&got, CMSG_DATA(cm), sizeof(got));
	return got;
}

/* Send RAW, read one answer: 1 OK, 0 ERR, -1 closed.  *BODY malloc'ed;
 * *PASSED (when not NULL) the descriptor sent with it, or -1. */
static int raw_fd(int fd, const char *req, size_t len, char **body, int *passed)
{
	*body = NULL;
	if (write(fd, req, len) != (ssize_t)len)
		return -1;
	char head[64];
	size_t k = 0;
	if (passed)   /* the first byte ('O' or 'E') carries it */
		*passed = first_byte_fd(fd, &head[k++]);
	while (k + 1 < sizeof(head)) {
		if (read(fd, &head[k], 1) != 1)
			return -1;
		if (head[k] == '\n')
			break;
		k++;
	}
	head[k] = 0;
	char st[8];
	size_t n;
	if (sscanf(head, "%7s %zu", st, &n) != 2)
		return -1;
	char *b = calloc(1, n + 1);
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, b + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	*body = b;
	return strcmp(st, "OK") == 0;
}

static int raw(int fd, const char *req, size_t len, char **body)
{
	return raw_fd(fd, req, len, body, NULL);
}

static int req(int fd, const char *cmd, const char *arg, char **body)
{
	char buf[4096];
	int n = snprintf(buf, sizeof(buf), "%s %zu\n%s", cmd, strlen(arg), arg);
	return raw(fd, buf, (size_t)n, body);
}

Test(control, the_session_counts_its_interval_only)
{
	int fd = connect_self();
	char *b;
	calls(5);   /* before: in no session */
	cr_assert_eq(req(fd, "attach", "uprobe:ctl_hot", &b), 1, "%s", b);
	free(b);
	cr_assert_eq(req(fd, "attach", "uprobe:ctl_hot", &b), 0);
	cr_assert(strstr(b, "already attached"), "%s", b);
	free(b);
	calls(300);
	cr_assert_eq(req(fd, "snapshot", "text", &b), 1);
	cr_assert(strstr(b, "@count[uprobe:ctl_hot]: 300\n"), "%s", b);
	free(b);
	cr_assert_eq(req(fd, "snapshot", "tsv", &b), 1);
	/* the process line, then hits missed returns lost 0 0 - kind spec … */
	char *row = strchr(b, '\n');
	cr_assert(row && !strncmp(row + 1, "300\t0\t0\t0\t0\t0\t-\tuprobe\tuprobe:ctl_hot\t", 36), "%s", b);
	free(b);
	calls(20);
	cr_assert_eq(req(fd, "detach", "json", &b), 1);
	cr_assert(strstr(b, "\"hits\": 320"), "%s", b);
	free(b);
	calls(7);   /* between sessions */
	cr_assert_eq(req(fd, "detach", "", &b), 0);
	cr_assert(strstr(b, "not attached"), "%s", b);
	free(b);
	/* the same probe again: the first session's 320 are not in it */
	cr_assert_eq(req(fd, "attach", "uprobe:ctl_hot", &b), 1);
	free(b);
	calls(11);
	cr_assert_eq(req(fd, "detach", "text", &b), 1);
	cr_assert(strstr(b, "@count[uprobe:ctl_hot]: 11\n"), "%s", b);
	free(b);
	cr_assert_eq(req(fd, "end", "", &b), 1);
	free(b);
	close(fd);
}

Test(control, a_bad_item_attaches_nothing)
{
	int fd = connect_self();
	char *b;
	cr_assert_eq(req(fd, "attach", "uprobe:ctl_hot;uprobe:no_such_function_ctl", &b), 0);
	cr_assert(strstr(b, "no_such_function_ctl"), "%s", b);
	free(b);
	calls(3);
	cr_assert_eq(req(fd, "snapshot", "json", &b), 0, "nothing attached: %s", b);
	free(b);
	cr_assert_eq(req(fd, "attach", "", &b), 0);
	free(b);
	cr_assert_eq(req(fd, "attach", "uprobe:", &b), 0);
	free(b);
	close(fd);
}

Test(control, bad_requests_are_refused_and_the_server_goes_on)
{
	int fd = connect_self();
	char *b;
	cr_assert_eq(req(fd, "frobnicate", "", &b), 0);
	cr_assert(strstr(b, "unknown command"), "%s", b);
	free(b);
	close(fd);
	const char *bad[] = { "attach\n", "attach x\n", "attach 99999999999\n", "nospace-and-a-very-long-command-name 0\n",
			      "attach 10\nshort" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		fd = connect_self();
		int rc = raw(fd, bad[i], strlen(bad[i]), &b);
		if (i < 4)
			cr_assert_eq(rc, -1, "request %zu: the connection is closed", i);
		free(b);
		close(fd);   /* the last one hangs up mid-payload */
	}
	fd = connect_self();
	cr_assert_eq(req(fd, "ping", "", &b), 1);
	cr_assert(strstr(b, "\"attached\": false"), "%s", b);
	free(b);
	close(fd);
}

/* Record REC's hits in the file FD's section SEC (stripes.h layout). */
static uint64_t file_hits(int fd, uint32_t sec, uint32_t rec, uint64_t *link)
{
	struct sp_shm_header *h = mmap(NULL, sizeof(*h), PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(h, MAP_FAILED);
	cr_assert_eq(memcmp(h->magic, SP_SHM_MAGIC, 8), 0);
	const struct sp_shm_section *s = mmap(NULL, SP_SHM_SECTION_STRIDE, PROT_READ, MAP_SHARED, fd,
					      (off_t)sp_shm_section_off(h, sec));
	cr_assert_neq(s, MAP_FAILED);
	cr_assert_eq(s->pid, getpid());
	cr_assert_lt(rec, s->n_records);
	const struct sp_shm_record *r = mmap(NULL, s->n_records * sizeof(*r), PROT_READ, MAP_SHARED, fd,
					     (off_t)s->records_off);
	const char *stripes = mmap(NULL, s->stripe_bytes * s->n_stripes, PROT_READ, MAP_SHARED, fd,
				   (off_t)s->stripes_off);
	cr_assert(r != MAP_FAILED && stripes != MAP_FAILED);
	cr_assert_str_eq(r[rec].spec, "uprobe:ctl_hot");
	*link = r[rec].link;
	uint64_t hits = 0;
	for (uint32_t k = 0; k < s->n_stripes; k++)
		hits += ((const struct sp_count *)(stripes + k * s->stripe_bytes))[r[rec].id].v[SP_HITS];
	return hits;
}

Test(control, file_hands_over_the_counters)
{
	int fd = connect_self();
	char *b;
	cr_assert_eq(req(fd, "file", "", &b), 0);
	cr_assert(strstr(b, "not attached"), "%s", b);
	free(b);
	cr_assert_eq(req(fd, "attach", "uprobe:ctl_hot", &b), 1, "%s", b);
	free(b);
	calls(40);
	int file;
	cr_assert_eq(raw_fd(fd, "file 0\n", 7, &b, &file), 1, "%s", b);
	cr_assert_geq(file, 0, "a descriptor with the answer");
	cr_assert_eq(fcntl(file, F_GETFL) & O_ACCMODE, O_RDONLY, "read-only for the client");
	unsigned sec, rec;
	unsigned long long link, h0;
	cr_assert_eq(sscanf(strstr(b, "\"section\""), "\"section\": %u, \"link\": %llu", &sec, &link), 2, "%s", b);
	cr_assert_eq(sscanf(strstr(b, "\"base\""), "\"base\": [[%u, %llu", &rec, &h0), 2, "%s", b);
	cr_assert_eq(h0, 0, "a new probe had no counts before: %s", b);
	free(b);
	uint64_t rlink;
	cr_assert_eq(file_hits(file, sec, rec, &rlink), 40);
	cr_assert_eq(rlink, link, "the session's record carries its link");
	calls(60);   /* live: read again from the file, no request */
	cr_assert_eq(file_hits(file, sec, rec, &rlink), 100);
	cr_assert_eq(req(fd, "detach", "", &b), 1);
	free(b);
	close(file);
	close(fd);
}
