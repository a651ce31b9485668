/* selfprobe — the launcher.
 *
 *   selfprobe run -e SPEC [-e SPEC]... [-f FILE] [-o OUT] [--mode M] -- CMD ARGS...
 *   selfprobe list [--json] [--functions|--usdt] OBJECT [GLOB]
 *   selfprobe check [-x PROGRAM] PROBE
 *
 * `run` sets LD_PRELOAD (libselfprobe.so next to this binary: ../lib) and
 * the UPROBE_* environment, then execs CMD.  `list` and `check` read files
 * (runtime/core/analyze.c): nothing is loaded or patched.
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze.h"
#include "run.h"
#include "attach.h"
#include "insn.h"
#include "json.h"
#include "reloc.h"
#include "spec.h"

#ifndef SELFPROBE_VERSION_STRING
#define SELFPROBE_VERSION_STRING "0.1.0"
#endif

static const char ENV_TEXT[] =
	"Environment (set by `run`, read by libselfprobe.so in the program):\n"
	"  UPROBE_SPEC    probes: items separated by ';' or newlines, or @FILE\n"
	"  UPROBE_OUTPUT  report: unset = stderr (text); *.json = JSON; other = text; %p = pid;\n"
	"                 *.trace.json = timeline, *.folded = folded stacks (report on stderr)\n"
	"  UPROBE_TRACE_EVENTS  timeline events kept per thread (default 65536)\n"
	"  UPROBE_MODE    auto (jmp where safe, else int3), int3, jmp (warn for each int3 probe)\n"
	"  UPROBE_LOG     error, warn, info, debug: messages on stderr (unset: none, see the report)\n"
	"  UPROBE_BT_FORMAT  a bpftrace program's output: text (default) or json\n"
	"  UPROBE_CONTROL 1: serve the control channel (selfprobe attach/detach/top PID)\n"
	"  UPROBE_CACHE   start-up cache directory (default ~/.cache/selfprobe; off: none)\n"
	"  UPROBE_PLUGIN_ARGS  the string plugins' selfprobe_plugin_init receives\n"
	"  LD_PRELOAD     `run` puts libselfprobe.so first, keeping what was there\n";

static const char PROBE_TEXT[] =
	"Probes (bpftrace's names):\n"
	"  uprobe:[OBJECT:]SYMBOL-GLOB[+OFFSET]   function entry (or an offset into it)\n"
	"  uprobe:[OBJECT:]0xADDR                 an ELF virtual address\n"
	"  uretprobe:[OBJECT:]SYMBOL-GLOB         function return\n"
	"  usession:[OBJECT:]SYMBOL-GLOB          entry and return, one handler\n"
	"  usdt:[OBJECT:]PROVIDER:NAME            a sys/sdt.h probe\n"
	"  OBJECT: a path, or a library name ('libc' -> libc.so.6); omitted: the main program\n"
	"  actions (run only): =count (default), =latency, =trace, =stack, =PLUGIN.so:FUNCTION\n";

static void usage_main(FILE *f)
{
	fputs("usage: selfprobe COMMAND [OPTIONS] [ARGS...]\n"
	      "\n"
	      "User-space uprobes inside the process: run a program with probes, list what a\n"
	      "file offers, and check which path (jmp or int3) a probe would take and why.\n"
	      "\n"
	      "Commands:\n"
	      "  run     run a program with probes attached and report at exit\n"
	      "  list    list the functions and USDT notes of a file, with each one's path\n"
	      "  check   explain one probe: decoded site, relocation plan, safety checks, path\n"
	      "  attach  probe a process that is already running, report at the end\n"
	      "  detach  remove the probes 'attach' left in a process, and report\n"
	      "  top     live hits per second of the probes in a running process\n"
	      "  help    'selfprobe help COMMAND' = 'selfprobe COMMAND --help'\n"
	      "\n"
	      "Options:\n"
	      "  -h, --help      this text (COMMAND --help: that command's)\n"
	      "  -V, --version   print the version\n"
	      "\n"
	      "Examples:\n"
	      "  selfprobe run -e 'uprobe:libc:malloc' -- ls /\n"
	      "  selfprobe list libc 'str*'\n"
	      "  selfprobe check uprobe:libc:malloc\n"
	      "\n", f);
	fputs(ENV_TEXT, f);
	fputs("\nExit status: run: the program's (127/126: it could not be started); list,\n"
	      "check, attach, detach, top: see their --help; 2: usage error (an unknown\n"
	      "option, an option without its value or with a bad one, an unreadable -f FILE).\n"
	      "See selfprobe(1).\n", f);
}

static void usage_attach(FILE *f)
{
	fputs("usage: selfprobe attach PID -e SPEC [-e SPEC]... [-f FILE]... [-o OUT] [--duration S]\n"
	      "                        [--metrics 127.0.0.1:PORT] [--no-wait]\n"
	      "\n"
	      "Attach probes to the running process PID (of your user, or any as root), count for\n"
	      "S seconds or until Ctrl-C, detach (every patched byte restored) and report the\n"
	      "attached interval.  A process started under 'selfprobe run --control' or\n"
	      "UPROBE_CONTROL=1 is reached through its control channel; one started without\n"
	      "libselfprobe.so gets it loaded with ptrace (a new thread of its own dlopens it).\n"
	      "\n"
	      "  -e SPEC         probe items, as for run (repeatable)\n"
	      "  -f FILE         probe items from FILE, read here, as for run (repeatable)\n"
	      "  -o OUT          the report: *.json = JSON, else text (default: text on stdout)\n"
	      "  --duration S    detach after S seconds, S > 0 (default: at Ctrl-C or SIGTERM)\n"
	      "  --metrics ADDR  serve OpenMetrics on http://ADDR/metrics while attached\n"
	      "  --no-wait       attach and return; 'selfprobe detach PID' reports later\n"
	      "\n"
	      "Exit status: 0; 1: the process could not be attached (the reason on stderr,\n"
	      "the process left as it was) or a spec item failed in it; 2: usage error.\n", f);
}

static void usage_detach(FILE *f)
{
	fputs("usage: selfprobe detach PID [-o OUT]\n"
	      "\n"
	      "Detach the probes 'selfprobe attach' left in PID and write the report of the\n"
	      "attached interval (-o OUT: *.json = JSON, else text; default text on stdout).\n"
	      "Exit status: 0; 1: nothing attached, or the process cannot be reached;\n"
	      "2: usage error.\n", f);
}

static void usage_top(FILE *f)
{
	fputs("usage: selfprobe top PID [-e SPEC]... [-f FILE]... [--metrics ADDR] [--iterations N]\n"
	      "\n"
	      "Every second: hits per second, totals, missed hits and latency percentiles (from\n"
	      "the log2 histograms of =latency probes) of each probe attached to PID.  With -e,\n"
	      "attaches those first (as 'attach' does); without, shows what 'attach --no-wait'\n"
	      "attached.  q or Ctrl-C detaches.  --iterations N: N screens (N >= 1), then detach.\n"
	      "\n"
	      "Exit status: 0; 1: the process cannot be attached, an item failed in it, or it\n"
	      "ended while shown; 2: usage error.\n", f);
}

static void usage_run(FILE *f)
{
	fputs("usage: selfprobe run -e SPEC [-e SPEC]... [-f FILE]... [-o OUT] [--mode auto|int3|jmp]\n"
	      "                     [--interval SEC] [--bt-format text|json] [--metrics ADDR]\n"
	      "                     [--control] -- CMD [ARGS...]\n"
	      "\n"
	      "Run CMD with libselfprobe.so preloaded and the probes attached.  The counters\n"
	      "live in memory shared with this launcher, which writes the report when the\n"
	      "program ends — however it ends (exit, _exit, a crash, SIGKILL).  Every process\n"
	      "the program forks or execs gets a section of its own.  Ctrl-C stops the\n"
	      "program and prints the report.\n"
	      "\n"
	      "Options:\n"
	      "  -e SPEC      probes to attach (UPROBE_SPEC grammar, items separated by ';'); repeatable\n"
	      "  -f FILE      read probes from FILE (one item a line, '#' comments); repeatable, with -e:\n"
	      "               every -e and -f in their order; a bpftrace program (a '{') is alone\n"
	      "  -o OUT       report file: *.json = JSON, other = text, %p = pid (default: stderr);\n"
	      "               *.trace.json: the timeline of =trace and =latency probes (Chrome Trace\n"
	      "               Event Format: Perfetto, chrome://tracing), every process's, the report\n"
	      "               on stderr; *.folded: the =stack probes' folded stacks (flame graphs)\n"
	      "  --mode M     auto (jmp where safe, else int3; default), int3, jmp (warn for each int3)\n"
	      "  --interval SEC  print the counts so far every SEC seconds, on stderr\n"
	      "  --bt-format F  a bpftrace program's output: text (default) or json (bpftrace's\n"
	      "               -f json lines; UPROBE_BT_FORMAT)\n"
	      "  --metrics ADDR  serve OpenMetrics on http://ADDR/metrics while it runs (every\n"
	      "               process's counts; ADDR: 127.0.0.1:PORT)\n"
	      "  --control    serve the control channel: 'selfprobe attach/detach/top PID' later\n"
	      "               (UPROBE_CONTROL=1); -e is then optional\n"
	      "  --           ends the options: CMD and its arguments follow\n"
	      "  -h, --help   this text\n"
	      "\n", f);
	fputs(PROBE_TEXT, f);
	fputs("\nExamples:\n"
	      "  selfprobe run -e 'uprobe:libc:malloc' -- ls /\n"
	      "  selfprobe run -e 'uprobe:libc:malloc=latency' -e 'uprobe:libc:free' -o /tmp/m-%p.json -- sort big.txt\n"
	      "  selfprobe run -e 'usdt:./app:myprov:*=trace' --mode int3 -- ./app\n"	      "  selfprobe run -e 'usession:libc:malloc=trace' -o /tmp/malloc.trace.json -- ls /\n"
	      "  selfprobe run -e 'uprobe:libc:malloc=stack' -o /tmp/malloc.folded -- ls /\n"
	      "  selfprobe run -f probes.d/my.probes -- ./app\n"
	      "\n", f);
	fputs(ENV_TEXT, f);
	fputs("\nExit status: the program's; 127: CMD not found; 126: CMD could not be run;\n"
	      "2: usage error.\n", f);
}

static void usage_list(FILE *f)
{
	fputs("usage: selfprobe list [--json] [--functions | --usdt] OBJECT [GLOB]\n"
	      "\n"
	      "List the functions of OBJECT whose names match GLOB (fnmatch, default '*'), with\n"
	      "address, size and the path a probe on its entry would take (jmp, int3, none, or\n"
	      "ifunc: decided at run time by the IFUNC resolver) and, when not jmp, why; then the\n"
	      "USDT notes (provider:name, address, semaphore, argument specs) whose provider:name\n"
	      "or name matches GLOB.  Works on files no process has loaded: nothing is run.\n"
	      "\n"
	      "OBJECT is a path, a library name ('libc' -> libc.so.6, searched in LD_LIBRARY_PATH,\n"
	      "the ldconfig cache and the usual library directories) or a program in PATH.\n"
	      "\n"
	      "Options:\n"
	      "  --json        one JSON object: {\"object\", \"functions\": [{\"name\", \"address\",\n"
	      "                \"size\", \"mode\", \"patch\", \"reason\", \"ifunc\"}], \"usdt\": [{\"provider\",\n"
	      "                \"name\", \"address\", \"semaphore\", \"args\", \"mode\", \"patch\", \"reason\"}]}\n"
	      "  --functions   functions only\n"
	      "  --usdt        USDT notes only\n"
	      "  -h, --help    this text\n"
	      "\n"
	      "Examples:\n"
	      "  selfprobe list libc 'mem*'\n"
	      "  selfprobe list /usr/bin/sqlite3 'sqlite3_*' --json\n"
	      "  selfprobe list --usdt /usr/bin/python3\n"
	      "\n"
	      "Environment: LD_LIBRARY_PATH and PATH, to find OBJECT by name.\n"
	      "\n"
	      "Exit status: 0: listed (even when nothing matches); 1: OBJECT not found or not a\n"
	      "readable ELF file; 2: usage error.\n", f);
}

static void usage_check(FILE *f)
{
	fputs("usage: selfprobe check [--json] [-x PROGRAM] PROBE\n"
	      "\n"
	      "Explain what a probe would do, from the file alone: the site's instructions\n"
	      "(AT&T syntax; '*' marks the jmp window), the relocation plan of the window (its\n"
	      "copy at a nominal trampoline address, disassembled), every safety check with its\n"
	      "result, and the path the probe would take (jmp, int3 or none) with the reason.\n"
	      "A glob checks every matching function.  What only the live process knows (a free\n"
	      "trampoline page within +-2 GiB, other probes' windows, an IFUNC's implementation)\n"
	      "is shown as not checked.\n"
	      "\n"
	      "Options:\n"
	      "  -x PROGRAM    the main program, for probes that name no object\n"
	      "  --json        the same as one JSON object per site, in an array: [{\"probe\",\n"
	      "                \"object\", \"symbol\", \"address\", \"mode\", \"patch\", \"pad\" (hop),\n"
	      "                \"reason\", \"window\": [{\"address\", \"insn\"}], \"checks\": [{\"check\",\n"
	      "                \"result\", \"detail\"}]}]\n"
	      "  -h, --help    this text\n"
	      "\n", f);
	fputs(PROBE_TEXT, f);
	fputs("\nExamples:\n"
	      "  selfprobe check uprobe:libc:malloc\n"
	      "  selfprobe check uprobe:/bin/ls:0x4000\n"
	      "  selfprobe check -x ./app 'uprobe:parse_*'\n"
	      "  selfprobe check usdt:/usr/bin/python3:python:function__entry\n"
	      "\n"
	      "Environment: LD_LIBRARY_PATH and PATH, to find OBJECT by name.\n"
	      "\n"
	      "Exit status: 0: every site can be probed (jmp, int3, or an IFUNC decided at run\n"
	      "time); 1: a site cannot be probed, or the object, symbol or note is missing;\n"
	      "2: usage error (bad probe syntax, unknown option).\n", f);
}

/* ---- list and check: output helpers ---- */

static void hex_bytes(const uint8_t *b, size_t n, char *out, size_t len)
{
	size_t used = 0;
	out[0] = 0;
	for (size_t i = 0; i < n && used + 4 < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%02x", i ? " " : "", b[i]);
}

/* Open the file NAME designates; 0, or 1 with a message printed. */
static int open_object(const char *name, struct sp_an_object **o)
{
	char path[PATH_MAX], err[1024];
	if (sp_analyze_resolve(name, path, sizeof(path), err, sizeof(err)) != 0 ||
	    sp_analyze_open(path, o, err, sizeof(err)) != 0) {
		fprintf(stderr, "selfprobe: %s\n", err);
		return 1;
	}
	return 0;
}

/* ---- list ---- */

struct list_opts {
	bool json, functions, usdt;
};

struct reason_count {
	const char *reason;
	size_t n;
};

static int by_count(const void *a, const void *b)
{
	const struct reason_count *x = a, *y = b;
	if (x->n != y->n)
		return x->n < y->n ? 1 : -1;
	return strcmp(x->reason, y->reason);
}

/* The int3 sites that remain (each address once, aliases aside), grouped
 * by reason, most frequent first: what stands between them and the jmp. */
static void int3_table(const struct sp_sym **syms, const struct sp_an_site *v, long n)
{
	struct reason_count *rs = calloc((size_t)n + 1, sizeof(*rs));
	size_t k = 0, total = 0;
	for (long i = 0; rs && i < n; i++) {
		if (v[i].mode != SP_AN_INT3 || (i && syms[i]->value == syms[i - 1]->value))
			continue;
		total++;
		size_t j = 0;
		while (j < k && strcmp(rs[j].reason, v[i].reason))
			j++;
		if (j == k)
			rs[k++] = (struct reason_count){ v[i].reason, 0 };
		rs[j].n++;
	}
	if (!total) {
		free(rs);
		return;
	}
	qsort(rs, k, sizeof(*rs), by_count);
	printf("\n# int3 sites by reason (%zu address%s):\n%6s  %s\n", total, total == 1 ? "" : "es",
	       "SITES", "REASON");
	for (size_t j = 0; j < k; j++)
		printf("%6zu  %s\n", rs[j].n, rs[j].reason);
	free(rs);
}

static void list_functions(struct sp_an_object *o, const char *glob, const struct list_opts *op)
{
	/* every name, aliases included (bpftrace -l lists malloc and
	 * __libc_malloc): a probe names one, and the hazard rules go by name */
	const struct sp_elf *e = o->elf;
	const struct sp_sym **syms = calloc(e->n_syms + 1, sizeof(*syms));
	long n = 0;
	for (size_t i = 0; syms && i < e->n_syms; i++) {
		const struct sp_sym *y = &e->syms[i];
		if (fnmatch(glob, y->name, 0) != 0)
			continue;
		if (n && syms[n - 1]->value == y->value && !strcmp(syms[n - 1]->name, y->name))
			continue;   /* the same symbol from .symtab and .dynsym */
		syms[n++] = y;
	}
	struct sp_an_site *v = calloc((size_t)n + 1, sizeof(*v));
	if (!v || !syms) {
		perror("selfprobe");
		exit(1);
	}
	int w = 8;
	size_t count[4] = { 0 };
	for (long i = 0; i < n; i++) {
		sp_analyze_site(o, syms[i], syms[i]->value, &v[i]);
		count[v[i].mode]++;
		int l = (int)strlen(syms[i]->name);
		if (l > w)
			w = l > 48 ? 48 : l;
	}
	if (op->json) {
		fputs("\"functions\": [", stdout);
		for (long i = 0; i < n; i++) {
			printf("%s\n  {\"name\": ", i ? "," : "");
			sp_json_str(stdout, syms[i]->name);
			printf(", \"address\": \"%#" PRIx64 "\", \"size\": %" PRIu64 ", \"mode\": \"%s\", \"patch\": ",
			       syms[i]->value, syms[i]->size, sp_an_mode_name(v[i].mode));
			sp_json_str(stdout, sp_an_patch_name(&v[i]));
			fputs(", \"reason\": ", stdout);
			sp_json_str(stdout, v[i].reason);
			printf(", \"ifunc\": %s}", syms[i]->is_ifunc ? "true" : "false");
		}
		fputs("]", stdout);
	} else {
		long addrs = 0;
		for (long i = 0; i < n; i++)
			addrs += i == 0 || syms[i]->value != syms[i - 1]->value;
		printf("# %s: %ld function%s matching '%s' (%ld address%s): %zu jmp, %zu int3, %zu ifunc, "
		       "%zu not probeable\n", o->path, n, n == 1 ? "" : "s", glob, addrs, addrs == 1 ? "" : "es",
		       count[SP_AN_JMP], count[SP_AN_INT3], count[SP_AN_RUNTIME], count[SP_AN_NONE]);
		if (n)
			printf("%-*s  %-18s  %8s  %-5s  %-5s  %s\n", w, "FUNCTION", "ADDRESS", "SIZE", "MODE", "PATCH",
			       "REASON");
		for (long i = 0; i < n; i++) {
			const char *patch = sp_an_patch_name(&v[i]);
			printf("%-*s  0x%016" PRIx64 "  %8" PRIu64 "  %-5s  %-*s", w, syms[i]->name,
			       syms[i]->value, syms[i]->size, sp_an_mode_name(v[i].mode), v[i].reason ? 5 : 0,
			       patch ? patch : "-");
			if (v[i].reason && syms[i]->is_ifunc)
				printf("  (resolved at run time)\n");
			else if (v[i].reason)
				printf("  %s\n", v[i].reason);
			else
				printf("\n");
		}
		int3_table(syms, v, n);
	}
	free(v);
	free(syms);
}

static bool note_matches(const struct sp_usdt_note *n, const char *glob)
{
	char full[512];
	snprintf(full, sizeof(full), "%s:%s", n->provider, n->name);
	return fnmatch(glob, full, 0) == 0 || fnmatch(glob, n->name, 0) == 0;
}

static void list_usdt(struct sp_an_object *o, const char *glob, const struct list_opts *op)
{
	size_t shown = 0;
	int w = 12;
	for (size_t i = 0; i < o->notes.n; i++)
		if (note_matches(&o->notes.v[i], glob)) {
			int l = (int)(strlen(o->notes.v[i].provider) + strlen(o->notes.v[i].name) + 1);
			if (l > w)
				w = l > 48 ? 48 : l;
		}
	if (op->json)
		fputs("\"usdt\": [", stdout);
	for (size_t i = 0; i < o->notes.n; i++) {
		const struct sp_usdt_note *n = &o->notes.v[i];
		if (!note_matches(n, glob))
			continue;
		struct sp_an_site s;
		sp_analyze_site(o, NULL, n->pc, &s);
		if (op->json) {
			printf("%s\n  {\"provider\": ", shown ? "," : "");
			sp_json_str(stdout, n->provider);
			fputs(", \"name\": ", stdout);
			sp_json_str(stdout, n->name);
			printf(", \"address\": \"%#" PRIx64 "\", \"semaphore\": ", n->pc);
			if (n->semaphore)
				printf("\"%#" PRIx64 "\"", n->semaphore);
			else
				fputs("null", stdout);
			fputs(", \"args\": ", stdout);
			sp_json_str(stdout, n->args);
			printf(", \"mode\": \"%s\", \"patch\": ", sp_an_mode_name(s.mode));
			sp_json_str(stdout, sp_an_patch_name(&s));
			fputs(", \"reason\": ", stdout);
			sp_json_str(stdout, s.reason);
			fputs("}", stdout);
		} else {
			if (!shown)
				printf("%s# %s: USDT notes matching '%s'\n%-*s  %-18s  %-18s  %-5s  %s\n",
				       op->usdt ? "" : "\n", o->path, glob, w, "PROVIDER:NAME", "ADDRESS",
				       "SEMAPHORE", "MODE", "ARGS");
			char pn[512], sem[32];
			snprintf(pn, sizeof(pn), "%s:%s", n->provider, n->name);
			if (n->semaphore)
				snprintf(sem, sizeof(sem), "0x%016" PRIx64, n->semaphore);
			else
				snprintf(sem, sizeof(sem), "-");
			printf("%-*s  0x%016" PRIx64 "  %-18s  %-5s  %s\n", w, pn, n->pc, sem,
			       sp_an_mode_name(s.mode), n->args && *n->args ? n->args : "-");
			if (s.reason)
				printf("%-*s  %s: %s\n", w, "", sp_an_mode_name(s.mode), s.reason);
		}
		shown++;
	}
	if (op->json)
		fputs("]", stdout);
	else if (!shown)
		printf("%s# %s: no USDT notes matching '%s'\n", op->usdt ? "" : "\n", o->path, glob);
}

static int cmd_list(int argc, char **argv)
{
	struct list_opts op = { 0 };
	const char *pos[2] = { NULL, NULL };
	int n_pos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage_list(stdout);
			return 0;
		} else if (!strcmp(a, "--json"))
			op.json = true;
		else if (!strcmp(a, "--functions"))
			op.functions = true;
		else if (!strcmp(a, "--usdt"))
			op.usdt = true;
		else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "selfprobe list: unknown option '%s'\n", a);
			usage_list(stderr);
			return 2;
		} else if (n_pos < 2)
			pos[n_pos++] = a;
		else {
			fprintf(stderr, "selfprobe list: too many arguments ('%s')\n", a);
			usage_list(stderr);
			return 2;
		}
	}
	if (!n_pos) {
		fprintf(stderr, "selfprobe list: no OBJECT\n");
		usage_list(stderr);
		return 2;
	}
	if (op.functions && op.usdt) {
		fprintf(stderr, "selfprobe list: --functions and --usdt exclude each other\n");
		return 2;
	}
	const char *glob = pos[1] ? pos[1] : "*";
	struct sp_an_object *o;
	if (open_object(pos[0], &o))
		return 1;
	if (op.json) {
		fputs("{\"object\": ", stdout);
		sp_json_str(stdout, o->path);
		fputs(", ", stdout);
	}
	if (!op.usdt)
		list_functions(o, glob, &op);
	if (op.json && !op.usdt && !op.functions)
		fputs(",\n", stdout);
	if (!op.functions)
		list_usdt(o, glob, &op);
	if (op.json)
		fputs("}\n", stdout);
	sp_analyze_close(o);
	return 0;
}

/* ---- check ---- */

/* Instructions from the site: the window (or, when the planner refused,
 * the bytes a jmp would cover) and AFTER more. */
static void print_site_insns(const struct sp_an_object *o, const struct sp_an_site *s, int after)
{
	size_t avail;
	const uint8_t *code = sp_analyze_text(o, s->addr, &avail);
	uint64_t win_end = s->addr + (s->have_window ? s->w.len : SP_JMP_LEN);
	uint64_t fend = s->func_size ? s->func + s->func_size : 0;
	printf("site instructions (AT&T; * = displaced by the %s):\n",
	       s->path == SP_PATH_HOP ? "hop's 2-byte jmp" : "5-byte jmp");
	size_t off = 0;
	while (code && off < avail) {
		uint64_t a = s->addr + off;
		if (a >= win_end && after-- <= 0)
			break;
		if (fend && a == fend)
			printf("    -- end of %s --\n", s->sym ? s->sym->name : "the function");
		struct sp_insn in;
		char text[128], hex[64];
		if (sp_insn_decode(code + off, avail - off < 15 ? avail - off : 15, a, &in) != 0) {
			printf("  %c 0x%" PRIx64 ":  %02x                    (does not decode)\n",
			       a < win_end ? '*' : ' ', a, code[off]);
			off++;
			continue;
		}
		sp_insn_format(&in, text, sizeof(text));
		hex_bytes(in.bytes, in.len, hex, sizeof(hex));
		printf("  %c 0x%" PRIx64 ":  %-24s %s\n", a < win_end ? '*' : ' ', a, hex, text);
		off += in.len;
	}
}

static void print_reloc(const struct sp_an_object *o, const struct sp_an_site *s)
{
	if (!s->have_window) {
		printf("relocation plan: none (the jmp window was refused)\n");
		return;
	}
	uint64_t dest = sp_analyze_tramp_addr(o, s->addr);
	uint8_t buf[SP_RELOC_MAX];
	struct sp_reloc_map map;
	const char *reason = NULL;
	int n = sp_reloc_window(&s->w, dest, buf, sizeof(buf), &map, &reason);
	printf("relocation plan: %u instruction%s, %u bytes%s; copy at the nominal trampoline address 0x%" PRIx64 ":\n",
	       s->w.n_insns, s->w.n_insns == 1 ? "" : "s", s->w.len,
	       s->w.flow_ends ? " (flow ends in the window: no jump back)" : "", dest);
	if (n < 0) {
		printf("    refused: %s\n", reason ? reason : strerror(-n));
		return;
	}
	for (int i = 0; i < map.n; i++)
		printf("    site+%u -> copy+%u\n", map.orig_off[i], map.new_off[i]);
	int off = 0;
	while (off < n) {
		struct sp_insn in;
		char text[128], hex[64];
		if (sp_insn_decode(buf + off, (size_t)(n - off), dest + (uint64_t)off, &in) != 0) {
			printf("    0x%" PRIx64 ":  %02x (data)\n", dest + (uint64_t)off, buf[off]);
			off++;
			continue;
		}
		sp_insn_format(&in, text, sizeof(text));
		hex_bytes(in.bytes, in.len, hex, sizeof(hex));
		printf("    0x%" PRIx64 ":  %-24s %s\n", dest + (uint64_t)off, hex, text);
		off += in.len;
		/* jmp *0(%rip) is followed by its absolute target */
		if (in.len == 6 && in.bytes[0] == 0xff && in.bytes[1] == 0x25 && !memcmp(in.bytes + 2, "\0\0\0\0", 4) &&
		    off + 8 <= n) {
			uint64_t t;
			memcpy(&t, buf + off, 8);
			printf("    0x%" PRIx64 ":  .quad 0x%" PRIx64 "\n", dest + (uint64_t)off, t);
			off += 8;
		}
	}
}

static const char *result_tag(enum sp_check_result r)
{
	return r == SP_CHECK_PASS ? "[ok]  " : r == SP_CHECK_FAIL ? "[FAIL]" : "[--]  ";
}

static void print_site(const struct sp_an_object *o, const char *spec, const char *label,
		       const struct sp_an_site *s)
{
	printf("probe:    %s\nobject:   %s\nsite:     %s at 0x%" PRIx64, spec, o->path, label, s->addr);
	if (s->sym && s->func_size)
		printf(" (in %s, 0x%" PRIx64 "..0x%" PRIx64 ", %" PRIu64 " bytes)", s->sym->name, s->func,
		       s->func + s->func_size, s->func_size);
	else if (s->sym)
		printf(" (in %s, size unknown)", s->sym->name);
	printf("\n");
	if (s->mode != SP_AN_RUNTIME) {
		print_site_insns(o, s, 3);
		print_reloc(o, s);
	}
	printf("checks:\n");
	for (int i = 0; i < s->n_checks; i++)
		printf("  %s %s%s%s\n", result_tag(s->checks[i].result), s->checks[i].name,
		       s->checks[i].detail ? ": " : "", s->checks[i].detail ? s->checks[i].detail : "");
	printf("path:     %s", sp_an_mode_name(s->mode));
	if (s->mode == SP_AN_JMP)
		printf(" (patch %s)", sp_an_patch_name(s));
	if (s->path == SP_PATH_HOP)
		printf(": jmp rel8 to a jmp rel32 in the padding at 0x%" PRIx64, s->pad);
	if (s->mode == SP_AN_INT3 && s->resume)
		printf(" (resume: %s)", s->resume);
	if (s->reason)
		printf(": %s", s->reason);
	printf("\n");
}

static void json_site(const struct sp_an_object *o, const char *spec, const char *label,
		      const struct sp_an_site *s, bool first)
{
	printf("%s\n {\"probe\": ", first ? "" : ",");
	sp_json_str(stdout, spec);
	fputs(", \"object\": ", stdout);
	sp_json_str(stdout, o->path);
	fputs(", \"symbol\": ", stdout);
	sp_json_str(stdout, label);
	printf(", \"address\": \"%#" PRIx64 "\", \"mode\": \"%s\", \"patch\": ", s->addr, sp_an_mode_name(s->mode));
	sp_json_str(stdout, sp_an_patch_name(s));
	if (s->path == SP_PATH_HOP)
		printf(", \"pad\": \"%#" PRIx64 "\"", s->pad);
	fputs(", \"reason\": ", stdout);
	sp_json_str(stdout, s->reason);
	fputs(", \"window\": [", stdout);
	for (int i = 0; s->have_window && i < s->w.n_insns; i++) {
		char text[128];
		sp_insn_format(&s->w.insns[i], text, sizeof(text));
		printf("%s{\"address\": \"%#" PRIx64 "\", \"insn\": ", i ? ", " : "", (uint64_t)s->w.insns[i].addr);
		sp_json_str(stdout, text);
		fputs("}", stdout);
	}
	fputs("], \"checks\": [", stdout);
	for (int i = 0; i < s->n_checks; i++) {
		static const char *const res[] = { "pass", "fail", "not checked" };
		printf("%s{\"check\": ", i ? ", " : "");
		sp_json_str(stdout, s->checks[i].name);
		printf(", \"result\": \"%s\", \"detail\": ", res[s->checks[i].result]);
		sp_json_str(stdout, s->checks[i].detail);
		fputs("}", stdout);
	}
	fputs("]}", stdout);
}

/* The symbol + offset ITEM names, as targets.c sp_target_fill checks it.
 * 0, or 1 with a message. */
static int check_offset(const struct sp_an_object *o, const struct sp_sym *sym, uint64_t off)
{
	if (!off)
		return 0;
	if (!sym->size) {
		fprintf(stderr, "selfprobe: %s has no known size: cannot check that +%#" PRIx64
			" is an instruction boundary\n", sym->name, off);
		return 1;
	}
	if (off >= sym->size) {
		fprintf(stderr, "selfprobe: offset +%#" PRIx64 " is past the end of %s (size %#" PRIx64 ")\n",
			off, sym->name, sym->size);
		return 1;
	}
	size_t avail;
	const uint8_t *code = sp_analyze_text(o, sym->value, &avail);
	char why[256];
	if (!code || avail < sym->size) {
		fprintf(stderr, "selfprobe: %s is not inside the object's executable text\n", sym->name);
		return 1;
	}
	if (sp_insn_boundary(code, sym->size, sym->value, off, why, sizeof(why)) != 0) {
		fprintf(stderr, "selfprobe: %s+%#" PRIx64 ": %s\n", sym->name, off, why);
		return 1;
	}
	return 0;
}

struct check_out {
	bool json;
	int n_sites, n_bad;
};

static void emit(struct check_out *co, const struct sp_an_object *o, const char *spec,
		 const char *label, const struct sp_an_site *s)
{
	if (co->json)
		json_site(o, spec, label, s, co->n_sites == 0);
	else {
		if (co->n_sites)
			printf("\n");
		print_site(o, spec, label, s);
	}
	co->n_sites++;
	if (s->mode == SP_AN_NONE)
		co->n_bad++;
}

static int check_usdt(struct sp_an_object *o, const struct sp_spec_item *it, struct check_out *co)
{
	for (size_t i = 0; i < o->notes.n; i++) {
		const struct sp_usdt_note *n = &o->notes.v[i];
		if (fnmatch(it->provider, n->provider, 0) || fnmatch(it->name, n->name, 0))
			continue;
		struct sp_an_site s;
		char label[512];
		snprintf(label, sizeof(label), "%s:%s", n->provider, n->name);
		sp_analyze_site(o, NULL, n->pc, &s);
		emit(co, o, it->probe_text, label, &s);
	}
	if (!co->n_sites) {
		fprintf(stderr, "selfprobe: no USDT probe %s:%s in %s%s\n", it->provider, it->name, o->path,
			o->notes.n ? "" : " (it has no .note.stapsdt)");
		return 1;
	}
	return 0;
}

static int check_symbols(struct sp_an_object *o, const struct sp_spec_item *it, struct check_out *co)
{
	bool wants_return = it->kind != SP_KIND_UPROBE;
	if (it->has_address) {
		const struct sp_sym *sym = sp_elf_containing(o->elf, it->address);
		if (!sym) {
			fprintf(stderr, "selfprobe: address %#" PRIx64 " is not inside any function of %s\n",
				it->address, o->path);
			return 1;
		}
		if (sym->is_ifunc) {
			fprintf(stderr, "selfprobe: address %#" PRIx64 " is inside the IFUNC resolver %s; "
				"name the symbol instead\n", it->address, sym->name);
			return 1;
		}
		if (wants_return && it->address != sym->value) {
			fprintf(stderr, "selfprobe: return probes attach at a function entry: %#" PRIx64
				" is %s+%#" PRIx64 "\n", it->address, sym->name, it->address - sym->value);
			return 1;
		}
		if (check_offset(o, sym, it->address - sym->value))
			return 1;
		struct sp_an_site s;
		char label[512];
		snprintf(label, sizeof(label), it->address == sym->value ? "%s" : "%s+%#" PRIx64, sym->name,
			 it->address - sym->value);
		sp_analyze_site(o, sym, it->address, &s);
		emit(co, o, it->probe_text, label, &s);
		return 0;
	}
	const struct sp_sym **syms = NULL;
	long n = sp_elf_match(o->elf, it->name, &syms);
	if (n <= 0) {
		fprintf(stderr, strpbrk(it->name, "*?[") ? "selfprobe: no function matches '%s' in %s\n"
							: "selfprobe: symbol '%s' not found in %s\n",
			it->name, o->path);
		free(syms);
		return 1;
	}
	int rc = 0;
	for (long i = 0; i < n; i++) {
		const struct sp_sym *sym = syms[i];
		if (!sym->is_ifunc && check_offset(o, sym, it->offset)) {
			rc = 1;
			continue;
		}
		struct sp_an_site s;
		char label[512];
		snprintf(label, sizeof(label), it->offset ? "%s+%#" PRIx64 : "%s", sym->name, it->offset);
		sp_analyze_site(o, sym, sym->value + it->offset, &s);
		emit(co, o, it->probe_text, label, &s);
	}
	free(syms);
	return rc;
}

static int cmd_check(int argc, char **argv)
{
	const char *probe = NULL, *program = NULL;
	struct check_out co = { 0 };
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage_check(stdout);
			return 0;
		} else if (!strcmp(a, "--json"))
			co.json = true;
		else if (!strcmp(a, "-x")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "selfprobe check: -x needs a value\n");
				return 2;
			}
			program = argv[++i];
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "selfprobe check: unknown option '%s'\n", a);
			usage_check(stderr);
			return 2;
		} else if (!probe)
			probe = a;
		else {
			fprintf(stderr, "selfprobe check: one PROBE at a time ('%s')\n", a);
			return 2;
		}
	}
	if (!probe) {
		fprintf(stderr, "selfprobe check: no PROBE\n");
		usage_check(stderr);
		return 2;
	}
	struct sp_spec_item it;
	char *perr = NULL;
	memset(&it, 0, sizeof(it));
	if (sp_spec_parse_probe(probe, &it, &perr) != 0) {
		fprintf(stderr, "selfprobe check: %s: %s\n", probe, perr ? perr : "malformed probe");
		free(perr);
		return 2;
	}
	const char *objname = it.object ? it.object : program;
	if (!objname) {
		fprintf(stderr, "selfprobe check: %s names no object and there is no main program here: "
			"name it in the probe (uprobe:OBJECT:...) or give -x PROGRAM\n", probe);
		sp_spec_item_free(&it);
		return 2;
	}
	struct sp_an_object *o;
	if (open_object(objname, &o)) {
		sp_spec_item_free(&it);
		return 1;
	}
	if (co.json)
		fputs("[", stdout);
	int rc = it.kind == SP_KIND_USDT ? check_usdt(o, &it, &co) : check_symbols(o, &it, &co);
	if (co.json)
		fputs("]\n", stdout);
	sp_analyze_close(o);
	sp_spec_item_free(&it);
	return rc || co.n_bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage_main(stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("selfprobe %s\n", SELFPROBE_VERSION_STRING);
		return 0;
	}
	if (!strcmp(cmd, "help")) {
		const char *of = argc > 2 ? argv[2] : "";
		void (*u)(FILE *) = !strcmp(of, "run") ? usage_run : !strcmp(of, "list") ? usage_list
				  : !strcmp(of, "check") ? usage_check : !strcmp(of, "attach") ? usage_attach
				  : !strcmp(of, "detach") ? usage_detach : !strcmp(of, "top") ? usage_top
				  : argc > 2 ? NULL : usage_main;
		if (!u) {
			fprintf(stderr, "selfprobe: unknown command '%s'\n", of);
			return 2;
		}
		u(stdout);
		return 0;
	}
	if (!strcmp(cmd, "run"))
		return sp_cli_run(argc - 2, argv + 2, usage_run);
	if (!strcmp(cmd, "list"))
		return cmd_list(argc - 2, argv + 2);
	if (!strcmp(cmd, "check"))
		return cmd_check(argc - 2, argv + 2);
	if (!strcmp(cmd, "attach"))
		return sp_cli_attach(argc - 2, argv + 2, usage_attach);
	if (!strcmp(cmd, "detach"))
		return sp_cli_detach(argc - 2, argv + 2, usage_detach);
	if (!strcmp(cmd, "top"))
		return sp_cli_top(argc - 2, argv + 2, usage_top);
	fprintf(stderr, "selfprobe: unknown command '%s'\n", cmd);
	usage_main(stderr);
	return 2;
}
