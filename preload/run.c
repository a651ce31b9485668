/* run — `selfprobe run`: the program under probes, the report collected by
 * the launcher itself.
 *
 * The counters live in a shared file (runtime/shm.h): a memfd this process
 * creates and every probed process inherits (SELFPROBE_SHM_FD), each of
 * them — the program, its fork children, what they exec — in a section of
 * its own, its counter stripes, latency histograms, errors, stack table and
 * timeline buffers mapped from the file.  So the launcher has all of it
 * even when a process is killed by a signal, crashes or leaves by a path no
 * exit handler sees (preload/section.c reads a section).  A process that
 * exits normally also writes its full report into a private directory
 * (SELFPROBE_REPORT_DIR); the launcher prints that one when it exists and
 * the section's otherwise, one section a process.  A timeline (-o
 * X.trace.json) or folded stacks (-o X.folded) are every process's, merged
 * by the launcher into one file.
 *
 * The launcher ignores SIGINT and SIGQUIT while the program runs: Ctrl-C in
 * the terminal reaches the program (the whole foreground group), which
 * stops, and the launcher then prints the report, as bpftrace does.  Its
 * exit status is the program's (128 + the signal when it was killed).
 */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "report.h"
#include "section.h"
#include "shm.h"
#include "spec.h"
#include "tstate.h"

struct run_opts {
	char *spec;
	const char *out;         /* NULL: stderr */
	const char *mode;
	double interval;         /* seconds, 0: none */
	char **cmd;
};

static char *append(char *acc, const char *item)
{
	size_t a = acc ? strlen(acc) : 0, b = strlen(item);
	char *n = realloc(acc, a + b + 2);
	if (!n) {
		perror("selfprobe");
		exit(127);
	}
	if (a)
		n[a++] = ';';
	memcpy(n + a, item, b + 1);
	return n;
}

static const char *library_path(void)
{
	static char path[PATH_MAX + 32];
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return "libselfprobe.so";
	self[n] = 0;
	char *slash = strrchr(self, '/');
	*slash = 0;
	snprintf(path, sizeof(path), "%s/../lib/libselfprobe.so", self);
	char *real = realpath(path, NULL);
	if (real) {
		snprintf(path, sizeof(path), "%s", real);
		free(real);
	}
	return path;
}

/* 0, 2 (usage: message printed), or 1 for --help. */
static int parse(int argc, char **argv, struct run_opts *o, void (*usage)(FILE *))
{
	int i;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if ((strcmp(a, "-e") == 0 || strcmp(a, "-f") == 0 || strcmp(a, "-o") == 0 ||
		     strcmp(a, "--mode") == 0 || strcmp(a, "--interval") == 0) && i + 1 >= argc) {
			fprintf(stderr, "selfprobe: %s needs a value\n", a);
			return 2;
		}
		if (strcmp(a, "-e") == 0)
			o->spec = append(o->spec, argv[++i]);
		else if (strcmp(a, "-f") == 0) {
			char buf[PATH_MAX + 2];
			snprintf(buf, sizeof(buf), "@%s", argv[++i]);
			o->spec = append(o->spec, buf);
		} else if (strcmp(a, "-o") == 0)
			o->out = argv[++i];
		else if (strcmp(a, "--mode") == 0) {
			o->mode = argv[++i];
			if (strcmp(o->mode, "auto") && strcmp(o->mode, "int3") && strcmp(o->mode, "jmp")) {
				fprintf(stderr, "selfprobe: --mode takes auto, int3 or jmp, not '%s'\n", o->mode);
				return 2;
			}
		} else if (strcmp(a, "--interval") == 0) {
			char *end;
			o->interval = strtod(argv[++i], &end);
			if (*end || !(o->interval > 0)) {
				fprintf(stderr, "selfprobe: --interval takes a number of seconds > 0, not '%s'\n",
					argv[i]);
				return 2;
			}
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 1;
		} else if (a[0] == '-') {
			fprintf(stderr, "selfprobe: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		} else
			break;
	}
	if (i >= argc) {
		fprintf(stderr, "selfprobe: no command to run\n");
		usage(stderr);
		return 2;
	}
	if (!o->spec) {
		fprintf(stderr, "selfprobe: no probes (-e SPEC or -f FILE)\n");
		return 2;
	}
	o->cmd = argv + i;
	return 0;
}

/* ---- the shared file ---- */

static struct sp_shm_header *create_shm(int *fd_out)
{
	int fd = memfd_create("selfprobe-counters", 0);   /* inherited: no CLOEXEC */
	if (fd < 0)
		return NULL;
	if (ftruncate(fd, (off_t)SP_SHM_SIZE) != 0) {
		close(fd);
		return NULL;
	}
	struct sp_shm_header *h = mmap(NULL, sizeof(*h), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	memcpy(h->magic, SP_SHM_MAGIC, 8);
	atomic_store(&h->next_free, (sizeof(*h) + 4095) & ~(uint64_t)4095);
	*fd_out = fd;
	return h;
}

static FILE *open_out(const char *out, int main_pid)
{
	if (!out)
		return fdopen(dup(2), "w");
	char path[PATH_MAX];
	size_t k = 0;
	for (const char *c = out; *c && k + 16 < sizeof(path); c++) {
		if (c[0] == '%' && c[1] == 'p') {
			k += (size_t)snprintf(path + k, sizeof(path) - k, "%d", main_pid);
			c++;
		} else
			path[k++] = *c;
	}
	path[k] = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "selfprobe: cannot write the report to '%s': %s\n", path, strerror(errno));
		return NULL;
	}
	return fdopen(fd, "w");
}

/* ---- outputs merged from every process's section ---- */

typedef void (*section_fn)(FILE *f, const struct sp_shm_section *s, const struct sp_section *v, void *ctx);

static void each_section(int fd, const struct sp_shm_header *h, FILE *f, section_fn fn, void *ctx)
{
	uint32_t n = atomic_load(&((struct sp_shm_header *)h)->n_sections);
	for (uint32_t i = 0; i < n && i < SP_SHM_SECTIONS; i++) {
		const struct sp_shm_section *s = &h->sections[i];
		struct sp_section v;
		if (atomic_load(&((struct sp_shm_section *)s)->pid) && sp_section_open(fd, s, &v) == 0) {
			fn(f, s, &v, ctx);
			sp_section_close(&v);
		}
	}
}

static void timeline_of(FILE *f, const struct sp_shm_section *s, const struct sp_section *v, void *ctx)
{
	(void)f;
	sp_tl_json_process(ctx, s->pid, s->command);
	sp_section_timeline(v, ctx);
}

static void folded_of(FILE *f, const struct sp_shm_section *s, const struct sp_section *v, void *ctx)
{
	(void)s, (void)ctx;
	sp_section_folded(f, v);
}

static int write_side_output(const char *out, int main_pid, int fd, const struct sp_shm_header *h)
{
	FILE *f = open_out(out, main_pid);
	if (!f)
		return -1;
	struct sp_tl_writer w;
	bool timeline = sp_report_output(out) == SP_OUT_TIMELINE;
	if (timeline) {
		sp_tl_json_begin(&w, f);
		each_section(fd, h, f, timeline_of, &w);
	} else
		each_section(fd, h, f, folded_of, NULL);
	int rc = timeline ? sp_tl_json_end(&w) : 0;
	if (fclose(f) != 0 || rc != 0) {
		fprintf(stderr, "selfprobe: cannot write '%s': %s\n", out, strerror(errno));
		return -1;
	}
	if (timeline)
		fprintf(stderr, "selfprobe: timeline: %" PRIu64 " events from %" PRIu64 " threads, %" PRIu64
				" dropped%s, in %s\n", w.events, w.threads, w.dropped,
			w.dropped ? " (the per-thread buffers were full: UPROBE_TRACE_EVENTS)" : "", out);
	return 0;
}

/* What the section of a process that wrote no report of its own holds. */
static void section_report(FILE *f, int fd, const struct sp_shm_section *s, bool json)
{
	struct sp_section v;
	int rc = sp_section_open(fd, s, &v);
	if (rc == 0) {
		sp_section_report(f, &v, json);
		sp_section_close(&v);
	} else if (json)
		fputs("\"probes\": [], \"errors\": []", f);
	else
		fprintf(f, "(its counters cannot be read: %s)\n", strerror(-rc));
}

/* The full report a process wrote at its normal exit, copied to F. */
static bool copy_report(const char *dir, int pid, const char *ext, FILE *f)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%d.%s", dir, pid, ext);
	FILE *in = fopen(path, "re");
	if (!in)
		return false;
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, f);
	fclose(in);
	return true;
}

static void remove_reports(const char *dir, const struct sp_shm_header *h)
{
	uint32_t n = atomic_load(&((struct sp_shm_header *)h)->n_sections);
	for (uint32_t i = 0; i < n && i < SP_SHM_SECTIONS; i++) {
		char path[PATH_MAX];
		int pid = atomic_load(&((struct sp_shm_header *)h)->sections[i].pid);
		snprintf(path, sizeof(path), "%s/%d.json", dir, pid);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%d.txt", dir, pid);
		unlink(path);
	}
	rmdir(dir);
}

static const char *ending(const struct sp_shm_section *s, int main_pid, int status)
{
	static char buf[64];
	if (atomic_load(&((struct sp_shm_section *)s)->state) == SP_SHM_EXITED)
		return "exited";
	if (atomic_load(&((struct sp_shm_section *)s)->state) == SP_SHM_EXECED)
		return "replaced by execve";
	if (main_pid == 0)
		return "running";            /* an --interval report */
	if (s->pid == main_pid && WIFSIGNALED(status)) {
		snprintf(buf, sizeof(buf), "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
		return buf;
	}
	return "ended without writing its report (killed, crashed or still running)";
}

/* The final report: one section per process; the program alone is printed
 * exactly as the preload would have printed it. */
static void report(FILE *f, bool json, int fd, const struct sp_shm_header *h, const char *dir,
		   int main_pid, int status)
{
	uint32_t n = atomic_load(&((struct sp_shm_header *)h)->n_sections);
	if (n > SP_SHM_SECTIONS)
		n = SP_SHM_SECTIONS;
	/* a single process: its report as the preload writes it */
	bool wrap = json && n > 1;
	if (wrap)
		fputs("{\"version\": 1, \"processes\": [", f);
	const char *sep = "";
	for (uint32_t i = 0; i < n; i++) {
		const struct sp_shm_section *s = &h->sections[i];
		int pid = atomic_load(&((struct sp_shm_section *)s)->pid);
		if (!pid)
			continue;
		bool full = atomic_load(&((struct sp_shm_section *)s)->state) == SP_SHM_EXITED;
		if (json) {
			if (wrap) {
				fprintf(f, "%s\n{\"pid\": %d, \"parent\": %d, \"command\": ", sep, pid, s->parent);
				sp_json_str(f, s->command);
				fputs(", \"ending\": ", f);
				sp_json_str(f, ending(s, main_pid, status));
				fputs(", \"report\": ", f);
				sep = ",";
			}
			if (!(full && copy_report(dir, pid, "json", f))) {
				fprintf(f, "{\"version\": 1, \"pid\": %d, \"from\": \"shared counters\", \"ending\": ",
					pid);
				sp_json_str(f, ending(s, main_pid, status));
				fputs(",\n ", f);
				section_report(f, fd, s, true);
				fputs("}\n", f);
			}
			if (wrap)
				fputs("}", f);
		} else {
			if (n > 1)
				fprintf(f, "=== pid %d (%s)%s: %s ===\n", pid, s->command,
					s->parent ? " forked" : "", ending(s, main_pid, status));
			if (!(full && copy_report(dir, pid, "txt", f))) {
				if (n == 1)
					fprintf(f, "(pid %d %s: counts from shared memory)\n", pid,
						ending(s, main_pid, status));
				section_report(f, fd, s, false);
			}
		}
	}
	if (wrap)
		fputs("]}\n", f);
	fflush(f);
}

int sp_cli_run(int argc, char **argv, void (*usage)(FILE *))
{
	struct run_opts o = { 0 };
	int rc = parse(argc, argv, &o, usage);
	if (rc)
		return rc == 1 ? 0 : rc;

	int shm_fd = -1;
	struct sp_shm_header *h = create_shm(&shm_fd);
	char dir[] = "/tmp/selfprobe-run-XXXXXX";
	if (!h || !mkdtemp(dir)) {
		fprintf(stderr, "selfprobe: cannot set up the shared counters (%s): "
				"running with the preload's own report\n", strerror(errno));
		h = NULL;
	}
	setenv("UPROBE_SPEC", o.spec, 1);
	if (o.mode)
		setenv("UPROBE_MODE", o.mode, 1);
	const char *lib = library_path();
	const char *old = getenv("LD_PRELOAD");
	char *both = NULL;
	if (old && *old && asprintf(&both, "%s:%s", lib, old) >= 0)
		setenv("LD_PRELOAD", both, 1);
	else
		setenv("LD_PRELOAD", lib, 1);
	if (h) {
		char v[16];
		snprintf(v, sizeof(v), "%d", shm_fd);
		setenv("SELFPROBE_SHM_FD", v, 1);
		setenv("SELFPROBE_REPORT_DIR", dir, 1);
		/* the report is ours to write; side outputs are named to the
		 * processes: folded stacks, which only a process has, and the
		 * timeline, which they then record in the shared file */
		if (sp_report_side_output(o.out))
			setenv("UPROBE_OUTPUT", o.out, 1);
		else
			unsetenv("UPROBE_OUTPUT");
	} else if (o.out)
		setenv("UPROBE_OUTPUT", o.out, 1);

	/* Ctrl-C and Ctrl-\ are for the program: we wait and report */
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	pid_t pid = fork();
	if (pid < 0) {
		perror("selfprobe: fork");
		return 126;
	}
	if (pid == 0) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGQUIT, &old_quit, NULL);
		execvp(o.cmd[0], o.cmd);
		fprintf(stderr, "selfprobe: cannot run '%s': %s\n", o.cmd[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	int status = 0;
	struct timespec last;
	clock_gettime(CLOCK_MONOTONIC, &last);
	for (;;) {
		pid_t w = waitpid(pid, &status, o.interval > 0 ? WNOHANG : 0);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			perror("selfprobe: waitpid");
			break;
		}
		if (o.interval > 0) {
			struct timespec now, nap = { 0, 20 * 1000 * 1000 };
			nanosleep(&nap, NULL);
			clock_gettime(CLOCK_MONOTONIC, &now);
			double dt = (double)(now.tv_sec - last.tv_sec) + (now.tv_nsec - last.tv_nsec) * 1e-9;
			if (h && dt >= o.interval) {
				last = now;
				time_t t = time(NULL);
				char stamp[32];
				strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime(&t));
				fprintf(stderr, "--- %s ---\n", stamp);
				FILE *err = fdopen(dup(2), "w");
				if (err) {
					report(err, false, shm_fd, h, "/nonexistent", 0, 0);
					fclose(err);
				}
			}
		}
	}
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
	if (h) {
		/* beside a side output, the report goes to stderr */
		const char *report_out = sp_report_side_output(o.out) ? NULL : o.out;
		FILE *f = open_out(report_out, pid);
		if (f) {
			report(f, sp_report_output(report_out) == SP_OUT_JSON, shm_fd, h, dir, pid, status);
			fclose(f);
		}
		if (sp_report_side_output(o.out))
			write_side_output(o.out, pid, shm_fd, h);
		remove_reports(dir, h);
	}
	free(both);
	free(o.spec);
	return code;
}
