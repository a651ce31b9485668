/* api — the public entry points of include/selfprobe.h: errors converted
 * once, here, at the edge (NULL + errno, or a negative errno value). */
#include "selfprobe.h"
#include "heap.h"
#include "bt_run.h"
#include "dispatch.h"
#include "exithook.h"
#include "gotheap.h"
#include "fdid.h"
#include "golang_ret.h"
#include "golang_exit.h"
#include "log.h"
#include "outfile.h"
#include "plugin.h"
#include "probe.h"
#include "patch.h"
#include "registry.h"
#include "resolve.h"
#include "report.h"
#include "spec.h"
#include "shm.h"
#include "stack.h"
#include "timeline.h"
#include "trap.h"
#include "trace.h"
#include "tstate.h"
#include "uret.h"

/* Runtime work in this thread: probes it hits are not the application's. */
/* gotheap first: libelf must allocate from our heap from its first call */
#define RUNTIME_BEGIN() (sp_gotheap_take(), sp_tls.runtime++)
#define RUNTIME_END() (sp_tls.runtime--)

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

/* A link is only an identity for its probes.  Links are never freed (16
 * bytes each): a second selfprobe_detach of one returns -ENOENT instead of
 * touching freed memory.  The list keeps them reachable. */
struct selfprobe_link {
	struct selfprobe_link *next;
};
static struct selfprobe_link *_Atomic links;

static void keep_link(struct selfprobe_link *l)
{
	l->next = atomic_load(&links);
	while (!atomic_compare_exchange_weak(&links, &l->next, l))
		;
}

static struct selfprobe_link *attach(const char *probe, selfprobe_handler_fn fn, void *data)
{
	if (!probe) {
		errno = EINVAL;
		return NULL;
	}
	struct sp_spec_item item;
	char *err = NULL;
	if (sp_spec_parse_probe(probe, &item, &err) != 0) {
		sp_probe_error(probe, "%s", err ? err : "cannot parse");
		sp_free(err);
		errno = EINVAL;
		return NULL;
	}
	struct selfprobe_link *l = sp_calloc(1, sizeof(*l));
	if (!l) {
		sp_spec_item_free(&item);
		errno = ENOMEM;
		return NULL;
	}
	long rc = sp_probe_attach_item(&item, fn, data, l);
	sp_spec_item_free(&item);
	if (rc < 0) {
		sp_free(l);
		errno = (int)-rc;
		return NULL;
	}
	keep_link(l);
	return l;
}

static int detach(struct selfprobe_link *l)
{
	if (!l)
		return -EINVAL;
	return sp_probe_detach(l);
}

API int selfprobe_backtrace(struct selfprobe_ctx *ctx, uintptr_t *ips, int max)
{
	if (!ctx || !ips)
		return -EINVAL;
	return sp_stack_walk(ctx, ips, max);
}

API int selfprobe_set_mode(const char *mode)
{
	if (!mode || strcmp(mode, "auto") == 0)
		sp_mode_pref = SP_PREF_AUTO;
	else if (strcmp(mode, "int3") == 0)
		sp_mode_pref = SP_PREF_INT3;
	else if (strcmp(mode, "jmp") == 0)
		sp_mode_pref = SP_PREF_JMP;
	else
		return -EINVAL;
	return 0;
}

API int selfprobe_set_log_level(const char *level)
{
	enum sp_log_level l;
	if (!level || sp_log_parse_level(level, &l) != 0)
		return -EINVAL;
	sp_log_level = l;
	sp_log_asked = true;
	return 0;
}

API void selfprobe_fini_plugins(void)
{
	static int done;
	if (done++)
		return;
	RUNTIME_BEGIN();
	sp_plugin_fini_all();
	RUNTIME_END();
}

API void selfprobe_report_error(const char *spec, const char *message)
{
	RUNTIME_BEGIN();
	sp_probe_error(spec, "%s", message);
	RUNTIME_END();
}

#define REPORT_FD_MIN 512

/* A copy of FD for writing a report, out of the program's range where the
 * limit allows: its other threads, still running at exit, close descriptor
 * numbers they once owned (CPython's test_subprocess cut a report short
 * that way, EBADF).  -errno when none can be had. */
static int report_fd(int fd)
{
	return sp_fd_copy_above(fd, REPORT_FD_MIN);
}

/* Every thread's trace lines out, before a report; lines dropped since the
 * last report (the program took the number of the trace output's copy of
 * stderr: trace.h) are said in its errors. */
static void trace_flush(void)
{
	static _Atomic uint64_t said;
	sp_trace_flush_all();
	uint64_t lost = sp_trace_lost(), before = atomic_exchange(&said, lost);
	if (lost > before)
		sp_probe_error("trace", "%" PRIu64 " trace lines dropped: the program closed the copy of its "
			       "stderr they went to, and a file of its own took that descriptor's number",
			       lost - before);
}

static int write_report_fd(int fd, bool json)
{
	sp_uret_settle();
	trace_flush();
	int copy = report_fd(fd);
	if (copy < 0)
		return copy;
	FILE *f = fdopen(copy, "w");
	if (!f) {
		int e = errno;
		close(copy);
		return -e;
	}
	if (json)
		sp_report_json(f);
	else
		sp_report_text(f);
	return fclose(f) == 0 ? 0 : -errno;
}

static int write_report(const char *pattern)
{
	sp_uret_settle();
	trace_flush();
	if (!pattern)   /* not through the application's stderr FILE: its state is the application's */
		return write_report_fd(2, false);
	char *path = sp_report_path(pattern);
	if (!path)
		return -ENOMEM;
	/* whole or not at all: a reader polling for it never sees it empty
	 * (outfile.h); numbered out of the program's range (report_fd) */
	struct sp_outfile out;
	FILE *f = sp_outfile_open(&out, path, REPORT_FD_MIN);
	int rc = f ? 0 : -errno;
	if (f) {
		switch (sp_report_output(path)) {
		case SP_OUT_TIMELINE: rc = sp_timeline_write(f, program_invocation_short_name); break;
		case SP_OUT_JSON:     sp_report_json(f); break;
		case SP_OUT_FOLDED:   sp_stack_report_folded(f); break;   /* flame graph input: the stacks only */
		case SP_OUT_TEXT:     sp_report_text(f); break;
		}
		rc = sp_outfile_close(&out, f, rc);
	}
	sp_free(path);
	return rc;
}

/* The entry points that do the runtime's own work, bracketed so that the
 * libc calls they make are not counted as the application's. */
API struct selfprobe_link *selfprobe_attach(const char *probe, selfprobe_handler_fn fn, void *data)
{
	RUNTIME_BEGIN();
	struct selfprobe_link *l = attach(probe, fn, data);
	int e = errno;
	RUNTIME_END();
	errno = e;
	return l;
}

API int selfprobe_detach(struct selfprobe_link *l)
{
	RUNTIME_BEGIN();
	int rc = detach(l);
	RUNTIME_END();
	return rc;
}

API int selfprobe_attach_spec(const char *spec)
{
	RUNTIME_BEGIN();
	sp_resolve_on_program(sp_bt_attach_item);   /* resolve does not call up into bt_run */
	sp_bt_register();
	int rc = sp_probe_attach_spec(spec);
	RUNTIME_END();
	return rc;
}

API int selfprobe_write_report_fd(int fd, bool json)
{
	RUNTIME_BEGIN();
	int rc = write_report_fd(fd, json);
	RUNTIME_END();
	return rc;
}

API int selfprobe_write_report(const char *pattern)
{
	RUNTIME_BEGIN();
	int rc = write_report(pattern);
	RUNTIME_END();
	return rc;
}

/* ---- the report at process end ---- */

static char *exit_path;          /* NULL: stderr (exit_id) */
/* stderr as it was at start, for the text report: a program may close its
 * stderr before it exits (gnulib's close_stdout does).  Held only where the
 * report goes to stderr (UPROBE_OUTPUT unset, beside a side output, or
 * instead of a file that cannot be written), never under the launcher,
 * which writes the report itself (it is attached first).  Its identity is
 * checked at exit: a program that closed it and opened a file of its own
 * at the number must not get the report in that file (fdid.h). */
static struct sp_fdid exit_id = SP_FDID_NONE;
static bool exit_path_refused;   /* said at start: not again at exit */
static _Atomic int exit_armed;   /* set_exit_report was called */

/* Can the report at PATTERN be written?  Asked at start, while the
 * program's stderr is surely open: refused only at exit, the report may
 * have no stderr left to be said on (gnulib's close_stdout closes it).
 * What shows only when writing (a full disk, /dev/full) is said at exit.
 * 0 or -errno, the path in *SHOWN (the caller frees it). */
static int report_writable(const char *pattern, char **shown)
{
	char *path = sp_report_path(pattern);
	*shown = path;
	if (!path || access(path, W_OK) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	char *dir = sp_strdup(path);
	if (!dir)
		return 0;
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir] = 0;   /* "/r.json": the root */
	int rc = access(slash ? dir : ".", W_OK | X_OK) == 0 ? 0 : -errno;
	sp_free(dir);
	return rc;
}

API int selfprobe_set_exit_report(const char *path)
{
	RUNTIME_BEGIN();
	sp_free(exit_path);
	exit_path = path ? sp_strdup(path) : NULL;
	/* under the launcher, which writes every report: neither a check nor
	 * a copy of stderr */
	bool mine = !sp_shm_launched();
	char *shown = NULL;
	int unwritable = path && mine ? report_writable(path, &shown) : 0;
	exit_path_refused = unwritable != 0;
	if (unwritable)   /* the report's only way out: stderr, kept for the exit */
		sp_say("cannot write the report to '%s': %s; the text report will follow on stderr",
		       shown, strerror(-unwritable));
	sp_free(shown);
	if (mine && (!path || sp_report_side_output(path) || unwritable) && exit_id.fd < 0) {
		int fd = fcntl(2, F_DUPFD_CLOEXEC, 10);
		if (fd >= 0 && !sp_fdid_remember(&exit_id, fd))
			close(fd);
	}
	if (sp_report_output(path) == SP_OUT_TIMELINE)
		sp_timeline_enable();
	sp_patch_set_fault_handler(sp_trap_install);   /* the exit hook patches */
	sp_exithook_install(selfprobe_exit_report);   /* after libc's last exit work */
	/* Go leaves by a raw exit_group: its report is written in runtime.exit */
	int go = sp_go_exit_hook_install(selfprobe_exit_report);
	if (go < 0)
		sp_probe_error("go", "cannot hook the Go runtime's exit: %s: the report may be lost",
			       strerror(-go));
	sp_report_exit_owner_is_me();
	static bool fork_registered;   /* a fork child reports too */
	if (!fork_registered) {
		fork_registered = true;
		sp_probe_on_fork_child(sp_report_atfork_child);
	}
	atomic_store(&exit_armed, 1);
	RUNTIME_END();
	return path && !exit_path ? -ENOMEM : 0;
}

API int selfprobe_attach_launcher(char **env, int argc, char **argv)
{
	RUNTIME_BEGIN();
	int rc = sp_shm_attach(env, argc, argv);
	if (rc == 0)
		sp_probe_publish_errors();   /* those of the configuration, before this */
	RUNTIME_END();
	if (rc && !sp_shm_launched())   /* its report goes where the preload's would */
		sp_say("cannot use the launcher's shared file (%s): this process reports by itself", strerror(-rc));
	else if (rc)   /* the launcher counts it as refused and says so */
		sp_err("no room in the launcher's shared file (%s): this process is not counted", strerror(-rc));
	return rc;
}

/* The full report into the launcher's file (WHICH: SP_SHM_REPORT_*). */
static void store_report(int which)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return;
	if (which == SP_SHM_REPORT_JSON)
		sp_report_json(f);
	else
		sp_report_text(f);
	if (fclose(f) == 0)
		sp_shm_store_report(which, buf, len);   /* else the launcher reads the counters */
	sp_free(buf);
}

/* Where the text report goes at exit: the copy of stderr from the start,
 * else (the program closed it, its number perhaps a file of its own now)
 * the stderr of now, as when no copy could be made; said in the report. */
static int exit_stderr(void)
{
	if (exit_id.fd < 0 || sp_fdid_still_ours(&exit_id))
		return exit_id.fd >= 0 ? exit_id.fd : 2;
	sp_probe_error("report", "the program closed the copy of its stderr kept for this report "
		       "(descriptor %d): written to its stderr at exit instead", exit_id.fd);
	return 2;
}

static void exit_report(void)
{
	/* once per process, and never in a vfork child: it shares the
	 * parent's memory, and a report would allocate in it */
	if (!atomic_load(&exit_armed) || !sp_report_exit_claim())
		return;
	sp_uret_settle();
	sp_bt_exit();   /* a program's maps, on its stdout, before the report */
	if (sp_shm_active()) {
		/* the launcher reports: full reports for it to use, then the
		 * section says they are complete */
		sp_uret_settle();
		trace_flush();
		store_report(SP_SHM_REPORT_JSON);
		store_report(SP_SHM_REPORT_TEXT);
		/* side outputs (timeline, folded stacks) are the launcher's to
		 * write, every process's in one file */
		sp_shm_exited();
	} else if (!sp_shm_launched()) {   /* launched without a section: counted as refused */
		bool to_stderr = !exit_path || sp_report_side_output(exit_path);
		int rc = exit_path ? selfprobe_write_report(exit_path) : 0;
		if (rc && !exit_path_refused) {
			/* no report reached its file: whoever runs this must hear
			 * of it, and gets the text report where the message went */
			char *path = sp_report_path(exit_path);
			sp_say("cannot write the report to '%s': %s%s", path ? path : exit_path, strerror(-rc),
			       to_stderr ? "" : "; the text report follows on stderr");
			sp_free(path);
		}
		to_stderr |= rc != 0;
		if (to_stderr && selfprobe_write_report_fd(exit_stderr(), false) != 0)
			sp_say("cannot write the report to stderr either");
	}
	selfprobe_fini_plugins();
}

API void selfprobe_exit_report(void)
{
	/* from the first check on (its getpid too), nothing here is the
	 * application's call */
	RUNTIME_BEGIN();
	exit_report();
	RUNTIME_END();
}

API bool selfprobe_exit_hooked(void)
{
	return sp_exithook_active();
}

API int selfprobe_set_bt_format(const char *format)
{
	if (!format || (strcmp(format, "text") != 0 && strcmp(format, "json") != 0))
		return -EINVAL;
	sp_bt_set_json(strcmp(format, "json") == 0);
	return 0;
}

API int selfprobe_set_timeline_events(unsigned long events)
{
	return sp_timeline_set_capacity(events);
}
