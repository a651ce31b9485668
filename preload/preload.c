/* preload — the LD_PRELOAD front end: environment → attach → report.
 *
 * UPROBE_SPEC    probes (items separated by ';' or newlines, or @FILE)
 * UPROBE_OUTPUT  report destination: unset = text on stderr; *.json = JSON;
 *                other = text; "%p" = pid
 *                *.trace.json = the trace/latency probes' timeline (Chrome Trace
 *                Event Format) and *.folded = folded stacks, each with the
 *                text report on stderr
 * UPROBE_TRACE_EVENTS  the timeline's events kept per thread (65536)
 * UPROBE_MODE    auto | int3 | jmp
 * UPROBE_LOG     error | warn | info | debug: messages on stderr (unset: none;
 *                they are in the report's errors and reasons)
 * UPROBE_CONTROL 1: serve the control channel (`selfprobe attach/detach/top
 *                PID`, runtime/api/control.h), with or without UPROBE_SPEC
 *
 * Nothing happens without UPROBE_SPEC or UPROBE_CONTROL=1.  Under secure execution (setuid,
 * setgid, file capabilities: AT_SECURE) the environment is attacker
 * controlled, so it is ignored, and we say so.  Uses only the public API.
 */
#include "selfprobe.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

static int active;

static void complain(const char *what, const char *value, const char *expected)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s='%s' is not one of %s; using the default", what, value, expected);
	selfprobe_report_error(what, msg);   /* on stderr too when UPROBE_LOG is set */
}

/* The environment as the dynamic linker hands it to constructors: we run
 * before libc's own constructor (-z initfirst, so that hits in the other
 * libraries' constructors are seen too), when environ is not set yet. */
static char **env;

static const char *env_get(const char *name)
{
	size_t n = strlen(name);
	for (char **e = env; e && *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

__attribute__((constructor)) static void preload_init(int argc, char **argv, char **envp)
{
	env = envp;
	const char *spec = env_get("UPROBE_SPEC");
	const char *control = env_get("UPROBE_CONTROL");
	if (getauxval(AT_SECURE)) {
		if (spec || control || env_get("UPROBE_OUTPUT") || env_get("UPROBE_MODE") || env_get("UPROBE_LOG"))
			fprintf(stderr, "selfprobe: secure execution (setuid/setgid/capabilities): "
					"UPROBE_* environment ignored, nothing probed\n");
		return;
	}
	bool control_on = false;
	if (control && *control && strcmp(control, "0") != 0) {
		if (strcmp(control, "1") != 0)
			complain("UPROBE_CONTROL", control, "1, 0");
		else
			control_on = selfprobe_control_start() == 0;
	}
	if (!spec) {
		/* probes come later, through the channel: under `selfprobe run
		 * --control` their counts go to the launcher's file like any */
		if (control_on)
			selfprobe_attach_launcher(envp, argc, argv);
		return;
	}
	active = 1;
	/* messages on stderr only when asked for: the program's stderr is
	 * the program's (a bad value still asked for them, at "error") */
	const char *log = env_get("UPROBE_LOG");
	if (log && *log && selfprobe_set_log_level(log) != 0) {
		selfprobe_set_log_level("error");
		complain("UPROBE_LOG", log, "error, warn, info, debug");
	}
	const char *mode = env_get("UPROBE_MODE");
	if (mode && *mode && selfprobe_set_mode(mode) != 0)
		complain("UPROBE_MODE", mode, "auto, int3, jmp");
	const char *events = env_get("UPROBE_TRACE_EVENTS");
	char *end = NULL;
	unsigned long n_events = events ? strtoul(events, &end, 10) : 0;
	if (events && *events && (*end || selfprobe_set_timeline_events(n_events) != 0))
		complain("UPROBE_TRACE_EVENTS", events, "a number of events per thread, 1 to 67108864");
	const char *btf = env_get("UPROBE_BT_FORMAT");
	if (btf && *btf && selfprobe_set_bt_format(btf) != 0)
		complain("UPROBE_BT_FORMAT", btf, "text, json");
	/* the launcher first: under it, the report is the launcher's to write */
	selfprobe_attach_launcher(envp, argc, argv);   /* a no-op outside `selfprobe run` */
	const char *out = env_get("UPROBE_OUTPUT");
	selfprobe_set_exit_report(out && *out ? out : NULL);
	selfprobe_attach_spec(spec);
}

/* The dynamic linker runs our destructor before those of libraries that do
 * not depend on us, and their calls count too.  So the destructor only
 * registers the report as an exit handler: glibc's exit runs handlers
 * registered while it is running them, and this one comes after _dl_fini,
 * i.e. after every library's destructor — unless the runtime reports at the
 * very end of exit() by itself (runtime/mech/exithook.h), after libc's stdio
 * cleanup too.  (_exit skips all of this; the runtime writes the report
 * from its _exit then.) */
extern int __cxa_atexit(void (*fn)(void *), void *arg, void *dso);

static void report_at_exit(void *unused)
{
	(void)unused;
	selfprobe_exit_report();
}

__attribute__((destructor)) static void preload_fini(void)
{
	/* The runtime reports at the end of exit() by itself where it can;
	 * else, no DSO handle: atexit() would tie the handler to this library
	 * and its own __cxa_finalize would run it right away. */
	if (active && !selfprobe_exit_hooked() && __cxa_atexit(report_at_exit, NULL, NULL) != 0)
		selfprobe_exit_report();   /* exit is past its handlers: now or never */
}
