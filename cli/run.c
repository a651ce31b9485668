/* run — `selfprobe run`: the program under probes, the report collected by
 * the launcher itself.
 *
 * The counters live in a shared file (runtime/hot/shm.h): a memfd this process
 * creates, close-on-exec, and every probed process reopens for as long as
 * it maps a part of it (SELFPROBE_SHM names /proc/OUR-PID/fd/N), so that no
 * program sees a descriptor of ours; one that changed user before its exec
 * may not open that name and asks our socket instead (shmserve.h).  Each of them — the program, its fork
 * children, what they exec — has a section of its own, its counter stripes,
 * latency histograms, errors, stack table and timeline buffers mapped from
 * the file.  So the launcher has all of it even when a process is killed by
 * a signal, crashes or leaves by a path no exit handler sees
 * (preload/section.c reads a section).  A process that exits normally also
 * stores its full report in the file; the launcher prints that one when it
 * exists and the section's otherwise, one section a process.  Nothing is
 * ever written to disk but the output asked for, so a launcher killed with
 * SIGKILL leaves nothing behind (but, killed while writing it, the output's
 * temporary file: outfile.h).  A timeline (-o X.trace.json) or folded
 * stacks (-o X.folded) are every process's, merged by the launcher into one
 * file.
 *
 * The launcher's own word on the run goes into the report too: probes that
 * attached in no process, processes that found no room in the file, a
 * program that could not be probed at all (statically linked).  A report
 * that cannot be written is said on stderr, and the text report follows
 * there.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bt.h"
#include "btparts.h"
#include "json.h"
#include "loadable.h"
#include "metrics.h"
#include "optval.h"
#include "outfile.h"
#include "report.h"
#include "section.h"
#include "shm.h"
#include "shmserve.h"
#include "spec.h"
#include "specargs.h"
#include "tstate.h"

struct run_opts {
	char *spec;
	const char *out;         /* NULL: stderr */
	const char *mode;
	double interval;         /* seconds, 0: none */
	bool control;            /* --control: UPROBE_CONTROL=1 (attach/top PID later) */
	const char *metrics;     /* --metrics HOST:PORT, or NULL */
	const char *bt_format;   /* --bt-format text|json, or NULL */
	char **cmd;
};

const char *sp_cli_library_path(void)
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
	struct sp_specargs spec = { 0 };
	int i, rc = 0;
	for (i = 0; i < argc && !rc; i++) {
		const char *a = argv[i], *v = NULL;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if ((strcmp(a, "-e") == 0 || strcmp(a, "-f") == 0 || strcmp(a, "-o") == 0 ||
		     strcmp(a, "--mode") == 0 || strcmp(a, "--interval") == 0 ||
		     strcmp(a, "--metrics") == 0 || strcmp(a, "--bt-format") == 0) &&
		    !(v = sp_opt_value(argc, argv, &i)))
			rc = 2;
		else if (strcmp(a, "-e") == 0)
			rc = sp_specargs_spec(&spec, v);
		else if (strcmp(a, "-f") == 0)
			rc = sp_specargs_file(&spec, v);
		else if (strcmp(a, "-o") == 0)
			o->out = v;
		else if (strcmp(a, "--mode") == 0) {
			o->mode = v;
			if (strcmp(o->mode, "auto") && strcmp(o->mode, "int3") && strcmp(o->mode, "jmp")) {
				fprintf(stderr, "selfprobe: --mode takes auto, int3 or jmp, not '%s'\n", o->mode);
				rc = 2;
			}
		} else if (strcmp(a, "--interval") == 0) {
			rc = sp_opt_seconds(a, v, &o->interval);
		} else if (strcmp(a, "--metrics") == 0) {
			char why[256];
			o->metrics = v;
			if (sp_metrics_check(v, why, sizeof(why)) != 0) {
				fprintf(stderr, "selfprobe: %s\n", why);
				rc = 2;
			}
		} else if (strcmp(a, "--bt-format") == 0) {
			o->bt_format = v;
			if (strcmp(o->bt_format, "text") && strcmp(o->bt_format, "json")) {
				fprintf(stderr, "selfprobe: --bt-format takes text or json, not '%s'\n", o->bt_format);
				rc = 2;
			}
		} else if (strcmp(a, "--control") == 0) {
			o->control = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			rc = 1;
		} else if (a[0] == '-') {
			fprintf(stderr, "selfprobe: unknown option '%s'\n", a);
			usage(stderr);
			rc = 2;
		} else
			break;
	}
	o->spec = spec.text;   /* the caller's to free */
	if (rc)
		return rc;
	if (i >= argc) {
		fprintf(stderr, "selfprobe: no command to run\n");
		usage(stderr);
		return 2;
	}
	if (!o->spec && !o->control) {
		fprintf(stderr, "selfprobe: no probes (-e SPEC or -f FILE, or --control)\n");
		return 2;
	}
	o->cmd = argv + i;
	return 0;
}

/* ---- the shared file ---- */

struct shared {
	int fd;
	struct sp_shm_header *h;
	char *sections;                    /* every section's descriptor */
};

static const struct sp_shm_section *section(const struct shared *sh, uint32_t i)
{
	return (const struct sp_shm_section *)(sh->sections + (size_t)i * SP_SHM_SECTION_STRIDE);
}

static uint32_t n_sections(const struct shared *sh)
{
	uint32_t n = atomic_load(&sh->h->n_sections);
	return n < SP_SHM_SECTIONS ? n : SP_SHM_SECTIONS;
}

static int32_t pid_of(const struct sp_shm_section *s)
{
	return atomic_load(&((struct sp_shm_section *)s)->pid);
}

static int32_t state_of(const struct sp_shm_section *s)
{
	return atomic_load(&((struct sp_shm_section *)s)->state);
}

static int create_shm(struct shared *sh)
{
	/* close-on-exec: processes reopen it by name, none inherits it */
	int fd = memfd_create("selfprobe-counters", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t table = (size_t)SP_SHM_SECTIONS * SP_SHM_SECTION_STRIDE;
	uint64_t sections_off = (sizeof(*sh->h) + 4095) & ~(uint64_t)4095;
	void *h = MAP_FAILED, *secs = MAP_FAILED;
	if (ftruncate(fd, (off_t)SP_SHM_SIZE) == 0)
		h = mmap(NULL, sizeof(*sh->h), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h != MAP_FAILED)
		secs = mmap(NULL, table, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, (off_t)sections_off);
	if (secs == MAP_FAILED) {
		int e = errno;
		if (h != MAP_FAILED)
			munmap(h, sizeof(*sh->h));
		close(fd);
		return -e;
	}
	sh->fd = fd;
	sh->h = h;
	sh->sections = secs;
	sh->h->sections_off = sections_off;
	atomic_store(&sh->h->next_free, sections_off + table);
	memcpy(sh->h->magic, SP_SHM_MAGIC, 8);   /* last: a reader checks it */
	return 0;
}

/* An output of the launcher: a copy of stderr, or a named file (%p: the
 * program's pid) written whole and renamed over the target, so that no
 * reader sees it half-written (outfile.h). */
struct out {
	FILE *f;
	bool named;
	struct sp_outfile file;
	char path[PATH_MAX];
};

static FILE *open_out(struct out *o, const char *out, int main_pid)
{
	o->named = out != NULL;
	if (!out)
		return o->f = fdopen(dup(2), "w");
	size_t k = 0;
	for (const char *c = out; *c && k + 16 < sizeof(o->path); c++) {
		if (c[0] == '%' && c[1] == 'p') {
			k += (size_t)snprintf(o->path + k, sizeof(o->path) - k, "%d", main_pid);
			c++;
		} else
			o->path[k++] = *c;
	}
	o->path[k] = 0;
	if (!(o->f = sp_outfile_open(&o->file, o->path, 0)))
		fprintf(stderr, "selfprobe: cannot write the report to '%s': %s\n", o->path, strerror(errno));
	return o->f;
}

/* Close O, written whole unless RC (the writer's own error, -errno): false
 * (and said, WHAT naming the output) on any error. */
static bool close_out(struct out *o, int rc, const char *what)
{
	if (o->named)
		rc = sp_outfile_close(&o->file, o->f, rc);
	else {
		if (ferror(o->f) && !rc)
			rc = errno ? -errno : -EIO;
		if (fclose(o->f) != 0 && !rc)
			rc = -errno;
	}
	if (rc)
		fprintf(stderr, "selfprobe: cannot write %s'%s': %s\n", what, o->named ? o->path : "stderr",
			strerror(-rc));
	return !rc;
}

/* ---- outputs merged from every process's section ---- */

typedef void (*section_fn)(FILE *f, const struct sp_shm_section *s, const struct sp_section *v, void *ctx);

static void each_section(const struct shared *sh, FILE *f, section_fn fn, void *ctx)
{
	for (uint32_t i = 0; i < n_sections(sh); i++) {
		const struct sp_shm_section *s = section(sh, i);
		struct sp_section v;
		if (pid_of(s) && sp_section_open(sh->fd, s, &v) == 0) {
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

static int write_side_output(const char *out, int main_pid, const struct shared *sh)
{
	struct out o;
	FILE *f = open_out(&o, out, main_pid);
	if (!f)
		return -1;
	struct sp_tl_writer w;
	bool timeline = sp_report_output(out) == SP_OUT_TIMELINE;
	if (timeline) {
		sp_tl_json_begin(&w, f);
		each_section(sh, f, timeline_of, &w);
	} else
		each_section(sh, f, folded_of, NULL);
	if (!close_out(&o, timeline ? sp_tl_json_end(&w) : 0, ""))
		return -1;
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

/* --metrics: every process's counts, live from the shared file, in the
 * control channel's "tsv" form (metrics.c turns it into OpenMetrics). */
static char *metrics_tsv(void *ctx)
{
	const struct shared *sh = ctx;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	for (uint32_t i = 0, n = n_sections(sh); i < n; i++) {
		const struct sp_shm_section *s = section(sh, i);
		int pid = pid_of(s);
		struct sp_section v;
		if (!pid || sp_section_open(sh->fd, s, &v) != 0)
			continue;
		fprintf(f, "%d\t0\t", pid);
		for (const char *c = s->command; *c && c < s->command + sizeof(s->command); c++)
			fputc(*c == '\t' || *c == '\n' ? ' ' : *c, f);
		fputc('\n', f);
		sp_section_tsv(f, &v);
		sp_section_close(&v);
	}
	fclose(f);
	return buf;
}

/* The full report a process stored at its normal exit, copied to F. */
static bool copy_report(int fd, const struct sp_shm_section *s, int which, FILE *f)
{
	uint64_t len = s->report_len[which];
	if (!len)
		return false;
	const void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)s->report_off[which]);
	if (p == MAP_FAILED)
		return false;
	fwrite(p, 1, len, f);
	munmap((void *)p, len);
	return true;
}

static const char *ending(const struct sp_shm_section *s, int main_pid, int status)
{
	static char buf[64];
	if (state_of(s) == SP_SHM_EXITED)
		return "exited";
	if (state_of(s) == SP_SHM_EXECED)
		return "replaced by execve";
	if (main_pid == 0)
		return "running";            /* an --interval report */
	if (s->pid == main_pid && WIFSIGNALED(status)) {
		snprintf(buf, sizeof(buf), "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
		return buf;
	}
	return "ended without writing its report (killed, crashed or still running)";
}

/* ---- the launcher's own errors ---- */

struct notes {
	size_t n;
	struct note { char *spec, *message; } *e;
};

static void note(struct notes *ns, const char *spec, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(struct notes *ns, const char *spec, const char *fmt, ...)
{
	struct note *e = realloc(ns->e, (ns->n + 1) * sizeof(*e));
	if (!e)
		return;
	ns->e = e;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&e[ns->n].message, fmt, ap) >= 0 && (e[ns->n].spec = strdup(spec)))
		ns->n++;
	va_end(ap);
}

static void notes_free(struct notes *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		free(ns->e[i].spec);
		free(ns->e[i].message);
	}
	free(ns->e);
}

/* Did ITEM attach in some process, or have a process's error?  (Then the
 * report says it already.) */
static bool mentioned(const struct shared *sh, const char *item)
{
	bool found = false;
	for (uint32_t i = 0; i < n_sections(sh) && !found; i++) {
		struct sp_section v;
		if (!pid_of(section(sh, i)) || sp_section_open(sh->fd, section(sh, i), &v) != 0)
			continue;
		for (uint32_t k = 0; k < v.n_records && !found; k++)
			found = strncmp(v.records[k].spec, item, sizeof(v.records[k].spec) - 1) == 0;
		for (uint32_t k = 0; k < v.n_errors && !found; k++)
			found = strncmp(v.errors[k].spec, item, sizeof(v.errors[k].spec) - 1) == 0;
		sp_section_close(&v);
	}
	return found;
}

/* What the launcher says of the whole run, after it: said once here, not
 * by each process (a library one process never loads is no error there). */
static void run_notes(struct notes *ns, const struct shared *sh, const char *spec)
{
	uint32_t refused = atomic_load(&sh->h->n_refused);
	if (refused)
		note(ns, "", "%u process%s found no room in the launcher's shared file (%u processes at most, "
		     "about 1 GiB of sparse address range each): %s not in this report", refused,
		     refused == 1 ? "" : "es", SP_SHM_SECTIONS, refused == 1 ? "its counts are" : "their counts are");
	if (n_sections(sh) == 0) {
		if (!ns->n)   /* a static executable was named already */
			note(ns, "", "no process loaded libselfprobe.so: the program ran unprobed (statically "
			     "linked, LD_PRELOAD removed from its environment, or secure execution)");
		return;
	}
	struct sp_spec parsed = { 0 };
	if (sp_spec_load(spec, &parsed) == 0)
		for (size_t i = 0; i < parsed.n_items; i++) {
			const struct sp_spec_item *it = &parsed.items[i];
			if (mentioned(sh, it->text))
				continue;
			if (it->object)
				note(ns, it->text, "attached in no process: '%s' was never loaded", it->object);
			else
				note(ns, it->text, "attached in no process");
		}
	sp_spec_free(&parsed);
}

static void notes_report(FILE *f, bool json, const struct notes *ns)
{
	if (json)
		fputs(",\n \"errors\": [", f);
	for (size_t i = 0; i < ns->n; i++) {
		if (json) {
			fprintf(f, "%s\n  {\"spec\": ", i ? "," : "");
			sp_json_str(f, ns->e[i].spec);
			fputs(", \"message\": ", f);
			sp_json_str(f, ns->e[i].message);
			fputc('}', f);
		} else
			fprintf(f, "@error[%s]: %s\n", ns->e[i].spec, ns->e[i].message);
	}
	if (json)
		fputs("]", f);
}

/* The final report: one section per process; the program alone, with
 * nothing for the launcher to add, is printed exactly as the preload would
 * have printed it; else {"version", "processes", "errors"}. */
static void report(FILE *f, bool json, const struct shared *sh, const struct notes *ns, int main_pid, int status)
{
	uint32_t n = n_sections(sh);
	bool wrap = json && (n != 1 || ns->n);
	if (wrap)
		fputs("{\"version\": 1, \"processes\": [", f);
	const char *sep = "";
	for (uint32_t i = 0; i < n; i++) {
		const struct sp_shm_section *s = section(sh, i);
		int pid = pid_of(s);
		if (!pid)
			continue;
		bool full = state_of(s) == SP_SHM_EXITED;
		if (json) {
			if (wrap) {
				fprintf(f, "%s\n{\"pid\": %d, \"parent\": %d, \"command\": ", sep, pid, s->parent);
				sp_json_str(f, s->command);
				fputs(", \"ending\": ", f);
				sp_json_str(f, ending(s, main_pid, status));
				fputs(", \"report\": ", f);
				sep = ",";
			}
			if (!(full && copy_report(sh->fd, s, SP_SHM_REPORT_JSON, f))) {
				fprintf(f, "{\"version\": 1, \"pid\": %d, \"from\": \"shared counters\", \"ending\": ",
					pid);
				sp_json_str(f, ending(s, main_pid, status));
				fputs(",\n ", f);
				section_report(f, sh->fd, s, true);
				fputs("}\n", f);
			}
			if (wrap)
				fputs("}", f);
		} else {
			if (n > 1)
				fprintf(f, "=== pid %d (%s)%s: %s ===\n", pid, s->command,
					s->parent ? " forked" : "", ending(s, main_pid, status));
			if (!(full && copy_report(sh->fd, s, SP_SHM_REPORT_TEXT, f))) {
				if (n == 1)
					fprintf(f, "(pid %d %s: counts from shared memory)\n", pid,
						ending(s, main_pid, status));
				section_report(f, sh->fd, s, false);
			}
		}
	}
	if (wrap) {
		fputs("]", f);
		notes_report(f, true, ns);
		fputs("}\n", f);
	} else if (!json) {
		if (n > 1 && ns->n)
			fputs("=== selfprobe run ===\n", f);
		notes_report(f, false, ns);
	}
	fflush(f);
}

/* A bpftrace program's maps of each process that could not print them
 * itself (killed, crashed: no report stored), on our stdout as the process
 * would have printed them on its own: the program compiled here again
 * gives every map's shape, in the order the process gave its tables a
 * place in its section, and the threads' parts noted there are merged in
 * (btparts.h), as the process merges them.  Stack frames are named with the ELF symbols of the
 * objects the process noted there. */
static const struct sp_stack_view *killed_view;

static void killed_symbol(uintptr_t ip, char *buf, size_t len)
{
	sp_stack_view_symbolize_bt(killed_view, ip, buf, len);
}

static void killed_maps(const struct shared *sh, const char *spec, const char *format)
{
	if (!spec || !strchr(spec, '{'))
		return;
	uint32_t n = n_sections(sh);
	for (uint32_t i = 0; i < n; i++) {
		const struct sp_shm_section *s = section(sh, i);
		if (!pid_of(s) || state_of(s) == SP_SHM_EXITED || state_of(s) == SP_SHM_EXECED ||
		    !sp_btparts_ran(sh->fd, s))
			continue;
		struct sp_spec sp = { 0 };
		bt_dwarf_register();   /* args.NAME compiles as in the process */
		if (sp_spec_load(spec, &sp) != 0 || !sp.n_items || !sp.items[0].program) {
			sp_spec_free(&sp);
			continue;
		}
		struct bt_program *p = sp.items[0].program->prog;
		uint32_t k = 0;
		bool ok = true;
		for (struct bt_map *m = p->maps; m && ok; m = m->next, k++) {
			size_t bytes = m->cap * m->slot_size;
			void *t = MAP_FAILED;
			if (k < atomic_load(&s->bt_maps) && s->bt_map_bytes[k] >= bytes)
				t = mmap(m->slots, bytes, PROT_READ, MAP_SHARED | MAP_FIXED, sh->fd, (off_t)s->bt_map_off[k]);
			ok = t != MAP_FAILED;
		}
		/* the threads' parts, merged with the tables when printed */
		struct sp_btparts parts = { 0 };
		ok = ok && sp_btparts_map(sh->fd, s, p, &parts) == 0;
		struct sp_section v;
		bool named = ok && sp_section_open(sh->fd, s, &v) == 0;
		if (named) {   /* frames named with the objects the process noted */
			killed_view = &v.stacks;
			bt_set_symbolizer(killed_symbol);
		}
		if (ok) {
			struct bt_buf b = { 0 };
			if (format && strcmp(format, "json") == 0)
				bt_print_all_json(&b, p);
			else
				bt_print_all(&b, p);
			fflush(stdout);
			bt_write(1, b.p, b.n);
			free(b.p);
		}
		if (named) {
			bt_set_symbolizer(NULL);
			sp_section_close(&v);
		}
		sp_btparts_unmap(p, &parts);
		sp_spec_free(&sp);
	}
}

/* The report, to OUT (NULL: stderr); when OUT cannot be written, said on
 * stderr and the text report follows there. */
static void final_report(const char *out, const struct shared *sh, const struct notes *ns, int pid, int status)
{
	struct out o;
	if (open_out(&o, out, pid)) {
		report(o.f, sp_report_output(out) == SP_OUT_JSON, sh, ns, pid, status);
		if (close_out(&o, 0, "the report to ") || !out)
			return;
	}
	if (!out)
		return;
	fprintf(stderr, "selfprobe: the text report follows on stderr\n");
	if (open_out(&o, NULL, pid)) {
		report(o.f, false, sh, ns, pid, status);
		close_out(&o, 0, "the report to ");
	}
}

int sp_cli_run(int argc, char **argv, void (*usage)(FILE *))
{
	struct run_opts o = { 0 };
	int rc = parse(argc, argv, &o, usage);
	if (rc) {
		free(o.spec);
		return rc == 1 ? 0 : rc;
	}

	struct notes ns = { 0 };
	char why[PATH_MAX + 200];
	if (sp_preload_unreachable(o.cmd[0], why, sizeof(why))) {
		fprintf(stderr, "selfprobe: %s\n", why);   /* no process will report: said now */
		note(&ns, "", "%s", why);
	}
	struct shared shm = { .fd = -1 }, *sh = &shm;
	if ((rc = create_shm(sh)) != 0) {
		fprintf(stderr, "selfprobe: cannot set up the shared counters (%s): "
				"running with the preload's own report\n", strerror(-rc));
		sh = NULL;
	} else {
		/* for processes of the run that changed user: without it they
		 * report by themselves, as the preload would */
		(void)sp_shmserve_start(sh->fd);
	}
	if (o.spec)
		setenv("UPROBE_SPEC", o.spec, 1);
	if (o.bt_format)   /* a bpftrace program's output: bpftrace's -f */
		setenv("UPROBE_BT_FORMAT", o.bt_format, 1);
	if (o.control)
		setenv("UPROBE_CONTROL", "1", 1);
	if (o.mode)
		setenv("UPROBE_MODE", o.mode, 1);
	const char *lib = sp_cli_library_path();
	const char *old = getenv("LD_PRELOAD");
	char *both = NULL;
	if (old && *old && asprintf(&both, "%s:%s", lib, old) >= 0)
		setenv("LD_PRELOAD", both, 1);
	else
		setenv("LD_PRELOAD", lib, 1);
	if (sh) {
		char v[64];   /* reopened by name: no descriptor is inherited */
		snprintf(v, sizeof(v), "/proc/%d/fd/%d", (int)getpid(), sh->fd);
		setenv(SP_SHM_ENV, v, 1);
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
	if (o.metrics) {
		char why[256];
		if (!sh)
			fprintf(stderr, "selfprobe: --metrics: no shared counters to serve\n");
		else if (sp_metrics_start(o.metrics, metrics_tsv, sh, why, sizeof(why)) != 0)
			fprintf(stderr, "selfprobe: %s (the program runs on, without metrics)\n", why);
		else
			fprintf(stderr, "selfprobe: metrics on http://%s/metrics\n", o.metrics);
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
			if (sh && dt >= o.interval) {
				last = now;
				time_t t = time(NULL);
				char stamp[32];
				strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime(&t));
				fprintf(stderr, "--- %s ---\n", stamp);
				FILE *err = fdopen(dup(2), "w");
				if (err) {
					struct notes none = { 0 };
					report(err, false, sh, &none, 0, 0);
					fclose(err);
				}
			}
		}
	}
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
	sp_metrics_stop();
	if (sh) {
		run_notes(&ns, sh, o.spec);
		killed_maps(sh, o.spec, o.bt_format);
		/* beside a side output, the report goes to stderr */
		final_report(sp_report_side_output(o.out) ? NULL : o.out, sh, &ns, pid, status);
		if (sp_report_side_output(o.out))
			write_side_output(o.out, pid, sh);
	}
	notes_free(&ns);
	free(both);
	free(o.spec);
	return code;
}
