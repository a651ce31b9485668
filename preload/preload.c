/* preload — the LD_PRELOAD front end: environment → attach → report.
 *
 * UPROBE_SPEC    probes (items separated by ';' or newlines, or @FILE)
 * UPROBE_OUTPUT  report destination: unset = text on stderr; *.json = JSON;
 *                other = text; "%p" = pid
 * UPROBE_MODE    auto | int3 | jmp
 * UPROBE_LOG     error | warn | info | debug
 *
 * Nothing happens without UPROBE_SPEC.  Under secure execution (setuid,
 * setgid, file capabilities: AT_SECURE) the environment is attacker
 * controlled, so it is ignored, and we say so.  Uses only the public API.
 */
#include "selfprobe.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

static char *report_path;   /* NULL: stderr */
static int report_fd = -1;  /* our own copy of stderr: programs often close
			     * fd 2 at exit (gnulib's close_stdout) before
			     * our destructor runs */
static int active;

static void complain(const char *what, const char *value, const char *expected)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s='%s' is not one of %s; using the default", what, value, expected);
	fprintf(stderr, "selfprobe: %s\n", msg);
	selfprobe_report_error(what, msg);
}

__attribute__((constructor(101))) static void preload_init(void)
{
	const char *spec = getenv("UPROBE_SPEC");
	if (getauxval(AT_SECURE)) {
		if (spec || getenv("UPROBE_OUTPUT") || getenv("UPROBE_MODE") || getenv("UPROBE_LOG"))
			fprintf(stderr, "selfprobe: secure execution (setuid/setgid/capabilities): "
					"UPROBE_* environment ignored, nothing probed\n");
		return;
	}
	if (!spec)
		return;
	active = 1;
	const char *log = getenv("UPROBE_LOG");
	if (log && *log && selfprobe_set_log_level(log) != 0)
		complain("UPROBE_LOG", log, "error, warn, info, debug");
	const char *mode = getenv("UPROBE_MODE");
	if (mode && *mode && selfprobe_set_mode(mode) != 0)
		complain("UPROBE_MODE", mode, "auto, int3, jmp");
	const char *out = getenv("UPROBE_OUTPUT");
	if (out && *out)
		report_path = strdup(out);
	else
		report_fd = fcntl(2, F_DUPFD_CLOEXEC, 10);
	selfprobe_attach_spec(spec);
}

__attribute__((destructor)) static void preload_fini(void)
{
	if (!active)
		return;
	if (report_path)
		selfprobe_write_report(report_path);
	else if (report_fd >= 0)
		selfprobe_write_report_fd(report_fd, false);
}
