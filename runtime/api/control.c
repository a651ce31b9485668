/* control — the control channel's server (control.h). */
#include "control.h"
#include "procread.h"
#include "heap.h"
#include "selfprobe.h"

#include "fdid.h"
#include "json.h"
#include "latency.h"
#include "loadwatch.h"
#include "probe.h"
#include "registry.h"
#include "resolve.h"
#include "shm.h"
#include "sigtake.h"
#include "stopworld.h"
#include "report.h"
#include "spec.h"
#include "trap.h"
#include "tstate.h"

#include <dirent.h>
#include <dlfcn.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUEST (1u << 20)   /* a spec of a megabyte is plenty */

/* The session's probes are tied to this link (a link is only an identity
 * for its probes: the registry compares the pointer and never looks inside). */
static char session_identity;
#define SESSION_LINK ((struct selfprobe_link *)(void *)&session_identity)

/* Only the server thread touches the session. */
static struct {
	bool active;
	struct timespec since;
	const struct sp_error *errors_before;   /* the last error before it began */
	uint32_t file_errors_before;            /* the errors in the counters file then */
	/* each probe's counts from before the session (a dormant probe
	 * revived keeps its earlier counts in final[]): subtracted */
	struct base { const struct sp_probe *p; uint64_t c[SP_N_COUNTERS]; } *base;
	size_t n_base, cap_base;
} session;

/* A descriptor of the server's and the file it named when made: the
 * program may close any descriptor (a daemon's closefrom) or dup2 over it,
 * its number then another file's, perhaps a socket of the program's own.
 * The server uses, and closes, only a number that still names its file
 * (fdid.h). */
static struct sp_fdid lsn = SP_FDID_NONE;   /* the listening socket */
static atomic_bool started;

/* session.base's entry for P, found through an open-addressing index of
 * the probes' addresses (a session of 10,000 probes looked each up by a
 * linear scan, at its start and at every report: most of an attach's and a
 * detach's time).  Slots hold an entry's index + 1; 0 is empty. */
static struct {
	uint32_t *slot;
	size_t cap;   /* a power of two, > 2 * session.n_base; 0: none yet */
} ix;

static size_t ix_home(const struct sp_probe *p)
{
	return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull) & (ix.cap - 1);
}

static struct base *ix_find(const struct sp_probe *p)
{
	for (size_t h = ix.cap ? ix_home(p) : 0; ix.cap && ix.slot[h]; h = (h + 1) & (ix.cap - 1))
		if (session.base[ix.slot[h] - 1].p == p)
			return &session.base[ix.slot[h] - 1];
	return NULL;
}

static void ix_put(size_t i)
{
	size_t h = ix_home(session.base[i].p);
	while (ix.slot[h])
		h = (h + 1) & (ix.cap - 1);
	ix.slot[h] = (uint32_t)i + 1;
}

/* Room for one more entry: false when out of memory. */
static bool ix_room(void)
{
	if (2 * (session.n_base + 1) < ix.cap)
		return true;
	size_t cap = ix.cap ? 2 * ix.cap : 256;
	uint32_t *slot = sp_calloc(cap, sizeof(*slot));
	if (!slot)
		return false;
	sp_free(ix.slot);
	ix.slot = slot;
	ix.cap = cap;
	for (size_t i = 0; i < session.n_base; i++)
		ix_put(i);
	return true;
}

/* A new session: no entries. */
static void base_reset(void)
{
	session.n_base = 0;
	if (ix.cap)
		memset(ix.slot, 0, ix.cap * sizeof(*ix.slot));
}

static const struct base *base_of(const struct sp_probe *p)
{
	struct base *found = ix_find(p);
	if (found)
		return found;
	/* first seen now (attached later, a library loaded during the
	 * session): what it had before is its frozen final[] */
	if (!ix_room())
		return NULL;
	if (session.n_base == session.cap_base) {
		size_t cap = session.cap_base ? 2 * session.cap_base : 64;
		struct base *nb = sp_realloc(session.base, cap * sizeof(*nb));
		if (!nb)
			return NULL;
		session.base = nb;
		session.cap_base = cap;
	}
	struct base *b = &session.base[session.n_base];
	b->p = p;
	memcpy(b->c, p->final, sizeof(b->c));
	ix_put(session.n_base++);
	return b;
}

static bool in_base(const struct sp_probe *p)
{
	return ix_find(p) != NULL;
}

/* A probe of this session: attached by it (an earlier session's probes,
 * detached, keep the same link), or attached at its start and since
 * detached by an unload. */
static bool in_session(const struct sp_probe *p)
{
	return p->link == SESSION_LINK && !p->internal && (p->attached || in_base(p));
}

static void comm(char *buf, size_t n)
{
	buf[0] = 0;
	struct sp_lines f;   /* not stdio: its FILE would be on the program's heap */
	if (sp_lines_open(&f, "/proc/self/comm") == 0) {
		sp_lines_next(&f, buf, n);
		sp_lines_close(&f);
	}
}

static void errors_json(FILE *f, const struct sp_error *from)
{
	const char *sep = "";
	fputs("\"errors\": [", f);
	for (const struct sp_error *e = from; e; e = e->next) {
		fputs(sep, f);
		sp_report_error_json(f, e->spec, e->message);
		sep = ", ";
	}
	fputc(']', f);
}

static const struct sp_error *last_error(void)
{
	const struct sp_error *e = sp_error_first();
	while (e && e->next)
		e = e->next;
	return e;
}

enum fmt { FMT_JSON, FMT_TEXT, FMT_TSV };

static enum fmt parse_fmt(const char *arg)
{
	return !strcmp(arg, "text") ? FMT_TEXT : !strcmp(arg, "tsv") ? FMT_TSV : FMT_JSON;
}

static void session_text(FILE *f, const struct sp_probe *p, const uint64_t *c)
{
	sp_report_counts_text(f, p->label, p->kind, c);
	if (p->lat_slot >= 0 && p->attached) {
		struct sp_lat l;
		sp_latency_read((uint32_t)p->lat_slot, &l);
		sp_report_histogram_text(f, p->label, &l);
	}
}

void sp_control_tsv_row(FILE *f, const uint64_t *c, const struct sp_lat *l, const char *kind, const char *spec,
			const char *object, const char *symbol, const char *label)
{
	fprintf(f, "%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64, c[SP_HITS], c[SP_MISSED],
		c[SP_RETURNS], c[SP_LOST]);
	if (l) {
		fprintf(f, "\t%" PRIu64 "\t%" PRIu64 "\t", l->count, l->sum_ns);
		for (int k = 0; k < SP_LAT_BUCKETS; k++)
			fprintf(f, "%s%" PRIu64, k ? "," : "", l->bucket[k]);
	} else
		fputs("\t0\t0\t-", f);
	/* the strings have no tab nor newline worth keeping: replaced */
	const char *strs[] = { kind, spec, object, symbol, label };
	for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++) {
		fputc('\t', f);
		for (const char *q = strs[i] ? strs[i] : ""; *q; q++)
			fputc(*q == '\t' || *q == '\n' ? ' ' : *q, f);
	}
	fputc('\n', f);
}

static void session_tsv(FILE *f, const struct sp_probe *p, const uint64_t *c)
{
	struct sp_lat l;
	bool lat = p->lat_slot >= 0 && p->attached;
	if (lat)
		sp_latency_read((uint32_t)p->lat_slot, &l);
	sp_control_tsv_row(f, c, lat ? &l : NULL, sp_kind_name(p->kind), p->spec, p->object, p->symbol, p->label);
}

/* The session report (control.h), in FMT. */
static void session_report(FILE *f, enum fmt fmt)
{
	char name[64];
	comm(name, sizeof(name));
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double secs = (double)(now.tv_sec - session.since.tv_sec) +
		      (double)(now.tv_nsec - session.since.tv_nsec) / 1e9;
	if (fmt == FMT_JSON) {
		fprintf(f, "{\"version\": 1, \"pid\": %d, \"comm\": ", (int)getpid());
		sp_json_str(f, name);
		fprintf(f, ", \"seconds\": %.6f, \"probes\": [", secs);
	} else if (fmt == FMT_TEXT)
		fprintf(f, "Attached to %d (%s) for %.3f s:\n", (int)getpid(), name, secs);
	else
		fprintf(f, "%d\t%.6f\t%s\n", (int)getpid(), secs, name);
	const char *sep = "";
	sp_probe_lock();
	for (const struct sp_probe *p = sp_probe_first(); p; p = p->next) {
		if (!in_session(p))
			continue;
		const struct base *b = base_of(p);
		uint64_t c[SP_N_COUNTERS];
		sp_probe_counts(p, c);
		for (int k = 0; k < SP_N_COUNTERS; k++)
			c[k] -= b && c[k] >= b->c[k] ? b->c[k] : 0;
		if (fmt != FMT_JSON) {
			(fmt == FMT_TEXT ? session_text : session_tsv)(f, p, c);
			continue;
		}
		fprintf(f, "%s\n  {\"spec\": ", sep);
		sp_json_str(f, p->spec);
		fputs(", \"label\": ", f);
		sp_json_str(f, p->label);
		fprintf(f, ", \"kind\": \"%s\", \"object\": ", sp_kind_name(p->kind));
		sp_json_str(f, p->object);
		fputs(", \"symbol\": ", f);
		sp_json_str(f, p->symbol);
		fprintf(f, ", \"address\": \"%#" PRIxPTR "\", \"action\": \"%s\", \"hits\": %" PRIu64
			", \"missed\": %" PRIu64 ", \"returns\": %" PRIu64 ", \"lost\": %" PRIu64,
			p->site ? p->site->addr : 0, sp_action_name(p->action), c[SP_HITS], c[SP_MISSED],
			c[SP_RETURNS], c[SP_LOST]);
		/* the live histogram is this attachment's alone (earlier ones
		 * are in final_lat) */
		if (p->lat_slot >= 0 && p->attached) {
			struct sp_lat l;
			sp_latency_read((uint32_t)p->lat_slot, &l);
			sp_report_latency_json(f, &l);
		}
		fprintf(f, ", \"attached\": %s}", p->attached ? "true" : "false");
		sep = ",";
	}
	sp_probe_unlock();
	/* the errors met during the session (a library loaded meanwhile
	 * whose item failed …) */
	const struct sp_error *errs = session.errors_before ? session.errors_before->next : sp_error_first();
	if (fmt == FMT_JSON) {
		fputs("],\n ", f);
		errors_json(f, errs);
		fputs("}\n", f);
	} else if (fmt == FMT_TEXT)
		for (const struct sp_error *e = errs; e; e = e->next)
			fprintf(f, "@error[%s]: %s\n", e->spec, e->message);
}

static int count_session(void)
{
	int n = 0;
	for (const struct sp_probe *p = sp_probe_first(); p; p = p->next)
		n += in_session(p) && p->attached;
	return n;
}

/* Is our pthread_sigmask the one the program calls (the runtime was
 * preloaded), keeping SIGTRAP deliverable in every thread? */
static bool sigmask_interposed(void)
{
	Dl_info theirs, ours;
	void *f = dlsym(RTLD_DEFAULT, "pthread_sigmask");
	return f && dladdr(f, &theirs) && dladdr((void *)sigmask_interposed, &ours) &&
	       theirs.dli_fbase == ours.dli_fbase;
}

/* A thread of the process that blocks SIGTRAP, or 0.  At an int3 the
 * kernel forces SIGTRAP on such a thread with the default action: the
 * process is killed.  A preloaded runtime keeps SIGTRAP out of every mask;
 * one loaded late cannot, for masks set before it came. */
static pid_t trap_blocked_thread(void)
{
	/* not opendir nor stdio: their buffers would be on the program's heap */
	struct sp_dir d;
	bool listed = sp_dir_open(&d, "/proc/self/task") == 0;
	pid_t found = 0;
	const char *name;
	while (listed && !found && (name = sp_dir_next(&d))) {
		if (name[0] == '.')
			continue;
		char path[300], line[128];
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", name);
		struct sp_lines f;
		if (sp_lines_open(&f, path) != 0)
			continue;
		while (sp_lines_next(&f, line, sizeof(line)))
			if (!strncmp(line, "SigBlk:", 7)) {
				unsigned long long m = strtoull(line + 7, NULL, 16);
				if (m & (1ull << (SIGTRAP - 1)))
					found = (pid_t)atoi(name);
				break;
			}
		sp_lines_close(&f);
	}
	if (listed)
		sp_dir_close(&d);
	return found;
}

/* The attach answer's "pending": items whose object is not loaded (never
 * yet, or unloaded while they attached), which attach when it is. */
struct pending {
	FILE *f;
	const char *sep;
};

static void pending_one(const struct sp_spec_item *item, void *ctx)
{
	struct pending *pc = ctx;
	fputs(pc->sep, pc->f);
	sp_json_str(pc->f, item->text);
	pc->sep = ", ";
}

/* attach: all or nothing.  *OUT the answer. */
static bool do_attach(const char *spec, FILE *out)
{
	if (session.active) {
		fprintf(out, "already attached (%d probes): 'selfprobe detach %d' first", count_session(),
			(int)getpid());
		return false;
	}
	bool late = !sigmask_interposed();
	pid_t blocker = late ? trap_blocked_thread() : 0;
	if (blocker) {
		fprintf(out, "thread %d of process %d blocks SIGTRAP: a probe hit there would kill the process "
			"(the runtime was loaded late and cannot unblock it); nothing attached. Start the program "
			"with 'selfprobe run --control' instead", (int)blocker, (int)getpid());
		return false;
	}
	/* loaded late: libc's signal entry points lead into the runtime for
	 * the session, as the preload's interposition does (sigtake.h) */
	char why[512];
	if (late && sp_sigtake_on(why, sizeof(why)) != 0) {
		fprintf(out, "%s; nothing attached", why);
		return false;
	}
	const struct sp_error *before = last_error();
	struct sp_spec s = { 0 };
	if (sp_spec_load(spec, &s) != 0) {
		fputs("out of memory", out);
		return false;
	}
	bool failed = s.n_items == 0 && s.n_errors == 0;
	for (size_t i = 0; i < s.n_errors; i++) {
		sp_probe_error(s.errors[i].item, "%s", s.errors[i].message);
		failed = true;
	}
	for (size_t i = 0; !failed && i < s.n_items; i++)
		if (sp_probe_attach_item(&s.items[i], NULL, NULL, SESSION_LINK) < 0)
			failed = true;
	sp_spec_free(&s);
	if (failed) {
		sp_probe_detach(SESSION_LINK);   /* the items that did attach */
		sp_loadwatch_unhook_idle();
		sp_probe_disarm_idle();
		if (late)
			sp_sigtake_off();
		const struct sp_error *first = before ? before->next : sp_error_first();
		if (!first) {
			fputs("the spec names no probe", out);
			return false;
		}
		/* ERR answers are text: each error as the report words it */
		for (const struct sp_error *e = first; e; e = e->next)
			fprintf(out, "%s%s: %s", e == first ? "" : "\n", e->spec, e->message);
		return false;
	}
	session.active = true;
	session.errors_before = last_error();
	session.file_errors_before = sp_shm_errors_count();
	base_reset();
	clock_gettime(CLOCK_MONOTONIC, &session.since);
	for (const struct sp_probe *p = sp_probe_first(); p; p = p->next)
		if (p->link == SESSION_LINK && !p->internal && p->attached)
			base_of(p);
	fprintf(out, "{\"attached\": %d, \"pending\": [", count_session());
	struct pending pc = { out, "" };
	sp_probe_lock();
	sp_loadwatch_each_unattached(pending_one, &pc);
	sp_probe_unlock();
	fputs("]}", out);
	return true;
}

static bool do_detach(FILE *out, enum fmt fmt)
{
	if (!session.active) {
		fprintf(out, "not attached: no probes of 'selfprobe attach' in process %d", (int)getpid());
		return false;
	}
	session_report(out, fmt);   /* the counts up to the detach */
	sp_probe_detach(SESSION_LINK);
	sp_loadwatch_unhook_idle();
	sp_probe_disarm_idle();
	sp_sigtake_off();   /* libc's entry points back to the file's bytes (a no-op when preloaded) */
	session.active = false;
	return true;
}

static bool do_ping(FILE *out)
{
	char name[64];
	comm(name, sizeof(name));
	fprintf(out, "{\"pid\": %d, \"comm\": ", (int)getpid());
	sp_json_str(out, name);
	fprintf(out, ", \"attached\": %s, \"probes\": %d}", session.active ? "true" : "false",
		session.active ? count_session() : 0);
	return true;
}

/* file: the counters file for the client to read the session's counts
 * from, live (control.h).  *FD the descriptor to pass with the answer. */
static bool do_file(FILE *out, int *fd)
{
	if (!session.active) {
		fprintf(out, "not attached: no probes of 'selfprobe attach' in process %d", (int)getpid());
		return false;
	}
	uint32_t section;
	int f = sp_shm_handout(&section);
	if (f < 0) {
		fprintf(out, "no counters file: %s", f == -EBADF ? "the program closed its descriptor" : strerror(-f));
		return false;
	}
	/* each probe of the session, with the counts its record held at
	 * the session's start (those of earlier attachments: not the
	 * session's).  A probe without a record (the file's are all used):
	 * the client counts over the channel instead */
	sp_probe_lock();
	for (const struct sp_probe *p = sp_probe_first(); p; p = p->next)
		if (in_session(p) && p->shm_record < 0) {
			sp_probe_unlock();
			close(f);
			fprintf(out, "no counters file: a probe of the session has no record in it (%u at most)",
				SP_SHM_RECORDS);
			return false;
		}
	fprintf(out, "{\"section\": %u, \"link\": %" PRIu64 ", \"since\": %lld.%09ld, \"errors_from\": %u, "
		"\"base\": [", section, (uint64_t)(uintptr_t)SESSION_LINK, (long long)session.since.tv_sec,
		session.since.tv_nsec, session.file_errors_before);
	const char *sep = "";
	for (const struct sp_probe *p = sp_probe_first(); p; p = p->next) {
		if (!in_session(p))
			continue;
		const struct base *b = base_of(p);
		fprintf(out, "%s[%d", sep, p->shm_record);
		for (int k = 0; k < SP_N_COUNTERS; k++)
			fprintf(out, ", %" PRIu64, b ? b->c[k] : 0);
		fputc(']', out);
		sep = ", ";
	}
	sp_probe_unlock();
	fputs("]}", out);
	*fd = f;
	return true;
}

/* Close O's descriptor if it is still ours (else the program closed ours
 * and the number is its file now). */
static void own_close(struct sp_fdid *o)
{
	if (sp_fdid_still_ours(o))
		close(o->fd);
	o->fd = -1;
}

static bool read_full(int fd, void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return false;
		}
		got += (size_t)r;
	}
	return true;
}

static bool write_full(int fd, const void *buf, size_t n)
{
	for (size_t put = 0; put < n;) {
		ssize_t w = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return false;
		}
		put += (size_t)w;
	}
	return true;
}

/* The answer's header, with descriptor PASS (SCM_RIGHTS) on it. */
static bool send_fd(int fd, const char *head, size_t n, int pass)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c = { 0 };
	struct iovec iov = { .iov_base = (void *)head, .iov_len = n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof(c.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pass, sizeof(int));
	ssize_t w;
	do
		w = sendmsg(fd, &m, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	/* the rest of a short send goes without the descriptor (it went with the first byte) */
	return w > 0 && write_full(fd, head + w, n - (size_t)w);
}

/* "COMMAND LEN\n": at most 64 bytes, read a byte at a time (the payload
 * follows in the same stream). */
static bool read_header(int fd, char *cmd, size_t cmdlen, size_t *len)
{
	char line[64];
	size_t n = 0;
	for (;;) {
		if (n + 1 >= sizeof(line) || !read_full(fd, &line[n], 1))
			return false;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	char *sp = strchr(line, ' ');
	if (!sp || (size_t)(sp - line) >= cmdlen)
		return false;
	memcpy(cmd, line, (size_t)(sp - line));
	cmd[sp - line] = 0;
	char *end;
	unsigned long long v = strtoull(sp + 1, &end, 10);
	if (*end || v > MAX_REQUEST)
		return false;
	*len = (size_t)v;
	return true;
}

/* One connection: requests until "end" or EOF, or until its descriptor is
 * no longer ours (the program closed it: what it reads and writes at that
 * number is its own). */
static void serve(const struct sp_fdid *c)
{
	int fd = c->fd;
	for (;;) {
		char cmd[16];
		size_t len;
		if (!sp_fdid_still_ours(c) || !read_header(fd, cmd, sizeof(cmd), &len))
			return;
		char *arg = sp_malloc(len + 1);
		if (!arg || !read_full(fd, arg, len)) {
			sp_free(arg);
			return;
		}
		arg[len] = 0;
		if (!strcmp(cmd, "end")) {
			sp_free(arg);
			write_full(fd, "OK 0\n", 5);
			return;
		}
		char *body = NULL;
		size_t blen = 0;
		FILE *out = open_memstream(&body, &blen);
		bool ok = false;
		int pass = -1;   /* a descriptor sent with the answer */
		struct sp_fdid passed = SP_FDID_NONE;
		if (!out) {
			sp_free(arg);
			return;
		}
		if (!strcmp(cmd, "ping"))
			ok = do_ping(out);
		else if (!strcmp(cmd, "attach"))
			ok = do_attach(arg, out);
		else if (!strcmp(cmd, "snapshot")) {
			ok = session.active;
			if (ok)
				session_report(out, parse_fmt(arg));
			else
				fprintf(out, "not attached: no probes of 'selfprobe attach' in process %d",
					(int)getpid());
		} else if (!strcmp(cmd, "detach"))
			ok = do_detach(out, parse_fmt(arg));
		else if (!strcmp(cmd, "file"))
			ok = do_file(out, &pass);
		else
			fprintf(out, "unknown command '%s'", cmd);
		fclose(out);
		sp_free(arg);
		if (pass >= 0 && !sp_fdid_remember(&passed, pass))
			pass = -1;
		char head[40];
		int hn = snprintf(head, sizeof(head), "%s %zu\n", ok ? "OK" : "ERR", blen);
		bool sent = sp_fdid_still_ours(c) && (pass < 0 || sp_fdid_still_ours(&passed)) &&
			    (pass >= 0 ? send_fd(fd, head, (size_t)hn, pass) : write_full(fd, head, (size_t)hn)) &&
			    write_full(fd, body, blen);
		own_close(&passed);
		sp_free(body);
		if (!sent)
			return;
	}
}

static bool peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t n = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &n) != 0)
		return false;
	return cr.uid == 0 || cr.uid == geteuid();
}

/* The channel's name, @SP_CONTROL_PREFIX<pid>: its length in *LEN. */
static struct sockaddr_un channel_name(socklen_t *len)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, SP_CONTROL_PREFIX "%d", (int)getpid());
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	return a;
}

/* A listening socket under the channel's name, in lsn: 0 or -errno. */
static int listen_make(void)
{
	socklen_t alen;
	struct sockaddr_un a = channel_name(&alen);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, alen) != 0 || listen(fd, 8) != 0 || !sp_fdid_remember(&lsn, fd)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		lsn.fd = -1;
		return -e;
	}
	return 0;
}

/* The program closed the listening socket (or put a file of its own at its
 * number): a new one under the same name.  The name is free once the old
 * socket is destroyed; it may live a moment longer (a descriptor the
 * program dup'd from it, a fork child closing its own): retried for a
 * second.  False: no channel any more (said in the report). */
static bool relisten(void)
{
	lsn.fd = -1;   /* the number is the program's now: never closed by us */
	int rc = -EADDRINUSE;
	for (int i = 0; i < 100 && rc == -EADDRINUSE; i++) {
		rc = listen_make();
		if (rc == -EADDRINUSE)
			nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	if (rc < 0) {
		socklen_t alen;
		struct sockaddr_un a = channel_name(&alen);
		sp_probe_error("control", "the program closed the control socket and it cannot be made again "
			       "as @%s: %s", a.sun_path + 1, strerror(-rc));
	}
	return rc == 0;
}

/* Was connection FD made to the channel's name (and not to a socket of the
 * program's that took the listening socket's number between our check and
 * accept)? */
static bool to_channel(int fd)
{
	socklen_t alen, got = sizeof(struct sockaddr_un);
	struct sockaddr_un a = channel_name(&alen), b;
	return getsockname(fd, (struct sockaddr *)&b, &got) == 0 && got == alen && !memcmp(&a, &b, alen);
}

static void *server(void *unused)
{
	(void)unused;
	sp_tls.runtime++;   /* for good: nothing this thread runs is the program's */
	for (;;) {
		/* the number is still our socket: never accept on a file of the
		 * program's (its own listening socket would lose connections) */
		if (!sp_fdid_still_ours(&lsn) && !relisten())
			return NULL;
		struct sp_fdid c;
		int fd = accept4(lsn.fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM || !sp_fdid_still_ours(&lsn))
				continue;   /* (not ours any more: made again) */
			return NULL;
		}
		if (!sp_fdid_remember(&c, fd) || !to_channel(fd)) {
			close(fd);   /* the program's connection, taken in that window: lost either way */
			continue;
		}
		/* a client that stops talking must not hold the channel */
		struct timeval tv = { .tv_sec = 10 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (peer_allowed(fd))
			serve(&c);
		own_close(&c);
	}
}

static void atfork_child(void)
{
	/* the child has no server thread: connections by name must not queue
	 * on a socket nobody accepts from */
	own_close(&lsn);
}

__attribute__((visibility("default"))) int selfprobe_control_start(void)
{
	return sp_control_start();
}

int sp_control_start(void)
{
	if (atomic_exchange(&started, true))
		return lsn.fd >= 0 ? 0 : -EALREADY;
	sp_tls.runtime++;
	/* the counters in a file the channel hands to its clients (shm.h) */
	sp_shm_want_own();
	int rc = listen_make();
	if (rc < 0) {
		socklen_t alen;
		struct sockaddr_un a = channel_name(&alen);
		sp_probe_error("control", "cannot serve the control socket @%s: %s", a.sun_path + 1, strerror(-rc));
		goto out;
	}
	/* the thread takes no signal of the program's (SIGTRAP stays
	 * deliverable: sigwrap keeps it so for its own int3s) */
	sigset_t all, old;
	sigfillset(&all);
	/* but the runtime's own: its int3s (a probed libc function it calls),
	 * its handler faults, the stop-check */
	int own[] = { SIGTRAP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, sp_stopworld_signal() };
	for (size_t i = 0; i < sizeof(own) / sizeof(*own); i++)
		sigdelset(&all, own[i]);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&t, &attr, server, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		rc = -e;
		sp_probe_error("control", "cannot start the control thread: %s", strerror(e));
		own_close(&lsn);
		goto out;
	}
	pthread_setname_np(t, "selfprobe-ctl");
	pthread_atfork(NULL, NULL, atfork_child);
out:
	sp_tls.runtime--;
	return rc;
}
