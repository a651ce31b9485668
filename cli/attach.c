/* attach — `selfprobe attach`, `detach`, `top` (attach.h). */
#include "attach.h"

#include "ctlclient.h"
#include "inject.h"
#include "latency.h"
#include "livecounts.h"
#include "metrics.h"
#include "optval.h"
#include "outfile.h"
#include "run.h"
#include "specargs.h"
#include "tsvrow.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART: sleeps end */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* sp_ctl_connect, again for up to 2 s while PID has no channel listening
 * (-2): its server is starting, or making its socket anew. */
static int connect_soon(pid_t pid, char *why, size_t n)
{
	int fd = sp_ctl_connect(pid, why, n);
	for (int i = 0; fd == -2 && i < 200; i++) {
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
		fd = sp_ctl_connect(pid, why, n);
	}
	return fd;
}

/* The control channel of PID: its own (a preloaded program with control, or
 * a runtime loaded earlier), else the runtime loaded into it now.  The
 * descriptor, or -1 (the reason said).  INJECT false: never load. */
static int open_channel(pid_t pid, bool inject)
{
	char why[512];
	if (sp_target_check(pid, why, sizeof(why)) != 0) {
		fprintf(stderr, "selfprobe: %s\n", why);
		return -1;
	}
	int fd = sp_ctl_connect(pid, why, sizeof(why));
	if (fd >= 0 || fd == -1) {
		if (fd < 0)
			fprintf(stderr, "selfprobe: %s\n", why);
		return fd;
	}
	if (!inject) {
		fprintf(stderr, "selfprobe: %s: nothing is attached to it\n", why);
		return -1;
	}
	if (sp_target_has_runtime(pid)) {
		/* a runtime with a channel whose socket the program closed
		 * makes it anew (control.c's relisten): wait for it */
		fd = connect_soon(pid, why, sizeof(why));
		if (fd >= 0 || fd == -1) {
			if (fd < 0)
				fprintf(stderr, "selfprobe: %s\n", why);
			return fd;
		}
		fprintf(stderr, "selfprobe: process %d runs libselfprobe.so without the control channel: "
			"start it with UPROBE_CONTROL=1 or 'selfprobe run --control'\n", (int)pid);
		return -1;
	}
	if (sp_inject(pid, sp_cli_library_path(), why, sizeof(why)) != 0) {
		fprintf(stderr, "selfprobe: %s\n", why);
		return -1;
	}
	fd = connect_soon(pid, why, sizeof(why));   /* the server thread is starting */
	if (fd < 0)
		fprintf(stderr, "selfprobe: the runtime was loaded into process %d but: %s\n", (int)pid, why);
	return fd;
}

/* The control connection, shared with the metrics server's thread. */
static struct {
	int fd;
	pthread_mutex_t lock;
	bool gone;            /* the connection failed: the process ended? */
} chan = { -1, PTHREAD_MUTEX_INITIALIZER, false };

/* 1 OK, 0 ERR, -1 connection lost. */
static int request(const char *cmd, const char *arg, char **body)
{
	*body = NULL;   /* also when the connection is known lost: the caller frees it */
	pthread_mutex_lock(&chan.lock);
	int rc = chan.gone ? -1 : sp_ctl_request(chan.fd, cmd, arg, body);
	if (rc < 0)
		chan.gone = true;
	pthread_mutex_unlock(&chan.lock);
	return rc;
}

/* The session's counts, read live from the target's counters file (the
 * channel's "file"), or NULL: then snapshots over the channel. */
static struct sp_livecounts *live;

/* The target, to know at once when it ends: a pidfd (-1: kill(pid, 0)). */
static struct {
	pid_t pid;
	int pidfd;
} target = { 0, -1 };

static void watch_target(pid_t pid)
{
	target.pid = pid;
	target.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
}

static bool target_ended(void)
{
	if (target.pidfd >= 0) {
		struct pollfd p = { .fd = target.pidfd, .events = POLLIN };
		return poll(&p, 1, 0) > 0;
	}
	return kill(target.pid, 0) != 0 && errno == ESRCH;
}

/* Sleep S seconds, or less: a signal, or the target's end (true). */
static bool wait_target(double s)
{
	struct pollfd p = { .fd = target.pidfd, .events = POLLIN };
	int r = poll(&p, target.pidfd >= 0 ? 1 : 0, (int)(s * 1000) + 1);   /* never 0 ms: no spinning */
	return r > 0 || target_ended();
}

static void read_comm(pid_t pid, char *buf, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "re");
	buf[0] = 0;
	if (f) {
		if (fgets(buf, (int)n, f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
	}
}

/* The session's counters file, from the channel (attached already). */
static void open_live(pid_t pid)
{
	char *body = NULL;
	int fd = -1;
	pthread_mutex_lock(&chan.lock);
	int rc = chan.gone ? -1 : sp_ctl_request_fd(chan.fd, "file", NULL, &body, &fd);
	pthread_mutex_unlock(&chan.lock);
	char why[512] = "";
	if (rc == 1 && fd >= 0) {
		char comm[64];
		read_comm(pid, comm, sizeof(comm));
		live = sp_livecounts_open(fd, body, pid, comm, why, sizeof(why));
	} else
		snprintf(why, sizeof(why), "%s", rc < 0 ? "the connection failed" : body ? body : "no descriptor passed");
	if (!live)   /* an older runtime, or no file: snapshots, as before */
		fprintf(stderr, "selfprobe: %s: counts are read over the control channel instead (a process that "
			"ends while attached leaves those of the last second)\n", why);
	free(body);
}

static char *fetch_tsv(void *unused)
{
	(void)unused;
	if (live)
		return sp_livecounts_tsv(live);
	char *body;
	if (request("snapshot", "tsv", &body) == 1)
		return body;
	free(body);
	return NULL;
}

/* Still attached (not detached by another client)?  Over the channel. */
static bool still_attached(void)
{
	char *body;
	int rc = request("ping", NULL, &body);
	bool yes = rc == 1 && body && strstr(body, "\"attached\": true");
	free(body);
	return yes;
}

static bool json_path(const char *out)
{
	size_t n = out ? strlen(out) : 0;
	return n > 5 && !strcmp(out + n - 5, ".json");
}

/* TEXT to OUT (NULL: stdout), a file written whole and renamed over the
 * target (outfile.h).  0, or 1 (said). */
static int write_out(const char *out, const char *text)
{
	if (!out) {
		fputs(text, stdout);
		fflush(stdout);
		return 0;
	}
	struct sp_outfile o;
	FILE *f = sp_outfile_open(&o, out, 0);
	int rc = f ? sp_outfile_close(&o, f, fputs(text, f) < 0 ? -EIO : 0) : -errno;
	if (rc)
		fprintf(stderr, "selfprobe: cannot write %s: %s\n", out, strerror(-rc));
	return rc ? 1 : 0;
}

struct opts {
	pid_t pid;
	char *spec;
	const char *out, *metrics;
	double duration;      /* < 0: until Ctrl-C */
	bool no_wait;
	long iterations;      /* top: screens; 0 (no --iterations): until q */
};

/* PID, the positional argument of attach, detach and top: 0, or 2 (said). */
static int take_pid(const char *a, bool *have_pid, pid_t *pid, void (*usage)(FILE *))
{
	if (!*have_pid && a[0] != '-' && sp_opt_pid(a, pid) == 0) {
		*have_pid = true;
		return 0;
	}
	if (!*have_pid && a[0] != '-')
		fprintf(stderr, "selfprobe: '%s' is not a PID (a process id: a number > 0)\n", a);
	else
		fprintf(stderr, "selfprobe: %s '%s'\n", a[0] == '-' ? "unknown option" : "unexpected argument", a);
	usage(stderr);
	return 2;
}

/* The options shared by attach and top.  0, or 2 (usage error said). */
static int parse(int argc, char **argv, struct opts *o, bool top, void (*usage)(FILE *))
{
	memset(o, 0, sizeof(*o));
	o->duration = -1;
	bool have_pid = false;
	struct sp_specargs spec = { 0 };
	int rc = 0;
	for (int i = 0; i < argc && !rc; i++) {
		const char *a = argv[i], *v = NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if ((!strcmp(a, "-e") || !strcmp(a, "-f") || !strcmp(a, "--metrics") ||
			    (top ? !strcmp(a, "--iterations") : !strcmp(a, "-o") || !strcmp(a, "--duration"))) &&
			   !(v = sp_opt_value(argc, argv, &i))) {
			rc = 2;
		} else if (!strcmp(a, "-e")) {
			rc = sp_specargs_spec(&spec, v);
		} else if (!strcmp(a, "-f")) {
			rc = sp_specargs_file(&spec, v);
		} else if (!strcmp(a, "-o") && !top) {
			o->out = v;
		} else if (!strcmp(a, "--metrics")) {
			char why[256];
			o->metrics = v;
			if (sp_metrics_check(v, why, sizeof(why)) != 0) {
				fprintf(stderr, "selfprobe: %s\n", why);
				rc = 2;
			}
		} else if (!strcmp(a, "--duration") && !top) {
			rc = sp_opt_seconds(a, v, &o->duration);
		} else if (!strcmp(a, "--iterations") && top) {
			rc = sp_opt_long(a, v, 1, LONG_MAX, &o->iterations);
		} else if (!strcmp(a, "--no-wait") && !top) {
			o->no_wait = true;
		} else
			rc = take_pid(a, &have_pid, &o->pid, usage);
	}
	if (rc) {
		sp_specargs_free(&spec);
		return rc;
	}
	o->spec = spec.text;   /* the caller's to free */
	if (!have_pid || (!top && !o->spec)) {
		fprintf(stderr, "selfprobe: %s\n", !have_pid ? "which process? (a PID)" : "no probe: -e SPEC or -f FILE");
		usage(stderr);
		return 2;
	}
	if (o->no_wait && (o->duration > 0 || o->metrics)) {
		fprintf(stderr, "selfprobe: --no-wait returns at once: no --duration nor --metrics with it\n");
		return 2;
	}
	return 0;
}

/* The items of the answer's "pending" list (JSON strings), one line each:
 * their object is not loaded (or was unloaded while they attached). */
static void say_pending(const char *body)
{
	const char *q = strstr(body, "\"pending\": [");
	if (!q)
		return;
	q += strlen("\"pending\": [");
	while (*q == '"') {
		fputs("selfprobe: ", stderr);
		for (q++; *q && *q != '"'; q++) {
			if (*q == '\\' && q[1])
				q++;
			fputc(*q, stderr);
		}
		fputs(": its object is not loaded (or was unloaded while attaching); it attaches when the "
		      "program loads it\n", stderr);
		if (*q)
			q++;
		while (*q == ',' || *q == ' ')
			q++;
	}
}

/* Attach O's spec on the open channel.  0, or 1 (the errors said). */
static int do_attach(const struct opts *o)
{
	char *body;
	int rc = request("attach", o->spec, &body);
	if (rc != 1) {
		fprintf(stderr, "selfprobe: attach %d: %s\n", (int)o->pid,
			rc < 0 ? "the connection to the process failed" : body);
		free(body);
		return 1;
	}
	int n = 0;
	if (sscanf(body, "{\"attached\": %d", &n) == 1)
		fprintf(stderr, "selfprobe: attached to %d: %d probe%s\n", (int)o->pid, n, n == 1 ? "" : "s");
	else
		fprintf(stderr, "selfprobe: attached to %d: %s\n", (int)o->pid, body);
	say_pending(body);
	free(body);
	return 0;
}

static int start_metrics(const struct opts *o)
{
	char why[256];
	if (o->metrics && sp_metrics_start(o->metrics, fetch_tsv, NULL, why, sizeof(why)) != 0) {
		fprintf(stderr, "selfprobe: %s\n", why);
		return 1;
	}
	if (o->metrics)
		fprintf(stderr, "selfprobe: metrics on http://%s/metrics\n", o->metrics);
	return 0;
}

/* When the session ended, in its seconds (the target's end, or now). */
static double ended_at;

/* Detach and write the report to OUT.  The status. */
static int finish(pid_t pid, const char *out, char *last)
{
	if (live && !ended_at)
		ended_at = sp_livecounts_seconds(live);
	char *body;
	const char *fmt = json_path(out) ? "json" : "text";
	int rc = request("detach", fmt, &body);
	sp_metrics_stop();
	if (rc == 1) {
		int w = write_out(out, body);
		free(body);
		free(last);
		return w;
	}
	if (rc == 0)
		fprintf(stderr, "selfprobe: %d: %s (detached by another 'selfprobe detach'?)\n", (int)pid, body);
	else if (live) {
		/* its counters file holds every count it made */
		free(last);
		last = sp_livecounts_report(live, json_path(out), ended_at);
		if (target_ended())
			fprintf(stderr, "selfprobe: process %d ended while attached: the report holds its counts as "
				"they were at its end\n", (int)pid);
		else
			fprintf(stderr, "selfprobe: the connection to process %d was lost: the report holds its counts "
				"until now, read from its counters file; its probes may still be attached ('selfprobe "
				"detach %d')\n", (int)pid, (int)pid);
	} else
		fprintf(stderr, "selfprobe: the connection to process %d was lost (it ended?): the counts "
			"below are those of the last snapshot, up to a second before\n", (int)pid);
	if (last)
		write_out(out, last);
	free(body);
	free(last);
	return 1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int sp_cli_attach(int argc, char **argv, void (*usage)(FILE *))
{
	struct opts o;
	int rc = parse(argc, argv, &o, false, usage);
	if (rc)
		return rc;
	catch_signals();
	chan.fd = open_channel(o.pid, true);
	if (chan.fd < 0 || do_attach(&o) != 0)
		return 1;
	if (o.no_wait)
		return 0;
	watch_target(o.pid);
	open_live(o.pid);
	if (start_metrics(&o) != 0) {
		free(o.spec);
		return finish(o.pid, NULL, NULL) ? 1 : 1;
	}
	/* the counts are in the target's file, read when wanted; without it,
	 * a snapshot a second, kept in case the process ends meanwhile */
	const char *fmt = json_path(o.out) ? "json" : "text";
	char *last = NULL;
	double end = o.duration > 0 ? now_s() + o.duration : 0;
	while (!stop) {
		double left = end ? end - now_s() : 1.0;
		if (left <= 0)
			break;
		if (wait_target(left < 1.0 ? left : 1.0)) {
			if (live)
				ended_at = sp_livecounts_seconds(live);
			break;   /* the process ended */
		}
		if (stop)
			break;
		if (live) {
			if (end && now_s() >= end)
				break;   /* the duration is over: detached below */
			if (!still_attached())
				break;   /* detached by another client (or it ended) */
			continue;
		}
		char *body;
		int r = request("snapshot", fmt, &body);
		if (r == 1) {
			free(last);
			last = body;
		} else {
			free(body);
			break;   /* detached by another client, or the process ended */
		}
	}
	free(o.spec);
	return finish(o.pid, o.out, last);
}

int sp_cli_detach(int argc, char **argv, void (*usage)(FILE *))
{
	pid_t pid = 0;
	const char *out = NULL;
	bool have_pid = false;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "-o")) {
			if (!(out = sp_opt_value(argc, argv, &i)))
				return 2;
		} else if (take_pid(argv[i], &have_pid, &pid, usage) != 0)
			return 2;
	}
	if (!have_pid) {
		fprintf(stderr, "selfprobe: which process? (a PID)\n");
		usage(stderr);
		return 2;
	}
	chan.fd = open_channel(pid, false);
	if (chan.fd < 0)
		return 1;
	char *body;
	int rc = request("detach", json_path(out) ? "json" : "text", &body);
	if (rc != 1) {
		fprintf(stderr, "selfprobe: detach %d: %s\n", (int)pid,
			rc < 0 ? "the connection to the process failed" : body);
		free(body);
		return 1;
	}
	rc = write_out(out, body);
	free(body);
	return rc;
}

/* ---- top ---- */

struct top_row {
	char label[256];
	unsigned long long hits, missed, lost, lat_count;
	unsigned long long bucket[SP_LAT_BUCKETS];
	bool has_lat;
};

static size_t parse_top(char *tsv, struct top_row *rows, size_t max, char *head, size_t headn)
{
	char *line = tsv, *nl = strchr(line, '\n');
	if (!nl)
		return 0;
	*nl = 0;
	snprintf(head, headn, "%s", line);
	size_t n = 0;
	for (line = nl + 1; *line && n < max; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		struct sp_tsv_row t;
		if (sp_tsv_row_parse(line, &t) == 0) {
			struct top_row *r = &rows[n++];
			memset(r, 0, sizeof(*r));
			r->hits = t.hits;
			r->missed = t.missed;
			r->lost = t.lost;
			r->lat_count = t.lat_count;
			r->has_lat = strcmp(t.buckets, "-") != 0;
			sp_tsv_row_buckets(&t, r->bucket, SP_LAT_BUCKETS);
			snprintf(r->label, sizeof(r->label), "%s", t.label);
		}
		if (!nl)
			break;
	}
	return n;
}

/* The upper bound (ns) of the bucket holding quantile Q. */
static unsigned long long quantile(const struct top_row *r, double q)
{
	if (!r->lat_count)
		return 0;
	unsigned long long want = (unsigned long long)(q * (double)r->lat_count + 0.5), cum = 0;
	if (!want)
		want = 1;
	for (int b = 0; b < SP_LAT_BUCKETS; b++) {
		cum += r->bucket[b];
		if (cum >= want)
			return b ? 1ull << (b < 63 ? b : 63) : 0;
	}
	return 0;
}

static void human_ns(char *buf, size_t n, unsigned long long ns)
{
	if (ns < 1000)
		snprintf(buf, n, "%lluns", ns);
	else if (ns < 1000000)
		snprintf(buf, n, "%.1fus", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, n, "%.1fms", (double)ns / 1e6);
	else
		snprintf(buf, n, "%.1fs", (double)ns / 1e9);
}

#define TOP_MAX 4096

int sp_cli_top(int argc, char **argv, void (*usage)(FILE *))
{
	struct opts o;
	int rc = parse(argc, argv, &o, true, usage);
	if (rc)
		return rc;
	catch_signals();
	chan.fd = open_channel(o.pid, o.spec != NULL);
	if (chan.fd < 0)
		return 1;
	if (o.spec && do_attach(&o) != 0)
		return 1;
	watch_target(o.pid);
	open_live(o.pid);
	if (start_metrics(&o) != 0)
		return finish(o.pid, "/dev/null", NULL) ? 1 : 1;
	bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	struct termios saved;
	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		struct termios raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	} else
		tty = false;
	static struct top_row cur[TOP_MAX], prev[TOP_MAX];
	size_t n_prev = 0;
	long screens = 0;
	int status = 0;
	int in = STDIN_FILENO;   /* -1 once it is at its end: poll only waits then */
	while (!stop) {
		struct pollfd p = { .fd = in, .events = POLLIN };
		int pr = poll(&p, 1, 1000);
		if (pr > 0 && (p.revents & (POLLIN | POLLHUP))) {
			char c;
			ssize_t r = read(STDIN_FILENO, &c, 1);
			if (r == 1 && (c == 'q' || c == 'Q'))
				break;
			if (r <= 0)
				in = -1;
			continue;   /* the second is not over: not a new screen yet */
		}
		if (stop)
			break;
		char *tsv;
		bool ended = false;
		if (live) {
			/* the counts from the file; the channel only says whether the
			 * session is still there (a process that ended: its last screen) */
			ended = target_ended();
			if (!ended && !still_attached()) {
				fprintf(stderr, "selfprobe: process %d: detached by another client\n", (int)o.pid);
				status = 1;
				break;
			}
			tsv = sp_livecounts_tsv(live);
			if (!tsv) {
				fprintf(stderr, "selfprobe: process %d: its counters file cannot be read\n", (int)o.pid);
				status = 1;
				break;
			}
		} else if (request("snapshot", "tsv", &tsv) != 1) {
			fprintf(stderr, "selfprobe: process %d: %s\n", (int)o.pid,
				tsv ? tsv : "the connection failed (it ended?)");
			free(tsv);
			status = 1;
			break;
		}
		char head[256];
		size_t n = parse_top(tsv, cur, TOP_MAX, head, sizeof(head));
		free(tsv);
		if (tty)
			fputs("\033[H\033[2J", stdout);
		char *t1 = strchr(head, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		printf("selfprobe top: process %d (%s), attached %.0f s; q or Ctrl-C detaches\n", (int)o.pid,
		       t2 ? t2 + 1 : "?", t1 ? strtod(t1 + 1, NULL) : 0.0);
		printf("%12s %14s %8s %8s %8s %8s  %s\n", "HITS/S", "TOTAL", "MISSED", "P50", "P90", "P99", "PROBE");
		for (size_t i = 0; i < n; i++) {
			unsigned long long before = 0;
			for (size_t j = 0; j < n_prev; j++)
				if (!strcmp(prev[j].label, cur[i].label)) {
					before = prev[j].hits;
					break;
				}
			char q[3][16] = { "-", "-", "-" };
			if (cur[i].has_lat && cur[i].lat_count) {   /* no sample yet: "-", not 0ns */
				human_ns(q[0], sizeof(q[0]), quantile(&cur[i], 0.5));
				human_ns(q[1], sizeof(q[1]), quantile(&cur[i], 0.9));
				human_ns(q[2], sizeof(q[2]), quantile(&cur[i], 0.99));
			}
			printf("%12llu %14llu %8llu %8s %8s %8s  %s\n", cur[i].hits >= before ? cur[i].hits - before : 0,
			       cur[i].hits, cur[i].missed, q[0], q[1], q[2], cur[i].label);
		}
		fflush(stdout);
		memcpy(prev, cur, n * sizeof(*cur));
		n_prev = n;
		if (ended) {
			fprintf(stderr, "selfprobe: process %d ended: the counts above are those at its end\n",
				(int)o.pid);
			status = 1;
			break;
		}
		if (o.iterations && ++screens >= o.iterations)
			break;
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	/* q / Ctrl-C detaches (the report goes nowhere: top showed it) */
	if (status == 0) {
		char *body;
		if (request("detach", "text", &body) != 1)
			fprintf(stderr, "selfprobe: detach %d: %s\n", (int)o.pid, body ? body : "connection failed");
		else
			fprintf(stderr, "selfprobe: detached from %d\n", (int)o.pid);
		free(body);
	}
	sp_metrics_stop();
	free(o.spec);
	return status;
}
