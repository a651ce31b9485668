/* selfprobe — the launcher.
 *
 *   selfprobe run -e SPEC [-e SPEC]... [-f FILE] [-o OUT] [--mode M] -- CMD ARGS...
 *
 * Sets LD_PRELOAD (libselfprobe.so next to this binary: ../lib) and the
 * UPROBE_* environment, then execs CMD.  `list` and `check` arrive with
 * their own issue.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fputs("usage: selfprobe run -e SPEC [-e SPEC]... [-f FILE] [-o OUT] [--mode auto|int3|jmp] -- CMD [ARGS...]\n"
	      "\n"
	      "  -e SPEC      probes to attach (UPROBE_SPEC grammar); repeatable\n"
	      "  -f FILE      read probes from FILE ('#' comments)\n"
	      "  -o OUT       report file: *.json = JSON, other = text, %p = pid (default: stderr)\n"
	      "  --mode M     auto (jmp where safe), int3, jmp\n"
	      "  -h, --help   this text\n", f);
}

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

static int cmd_run(int argc, char **argv)
{
	char *spec = NULL;
	int i;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if ((strcmp(a, "-e") == 0 || strcmp(a, "-f") == 0 || strcmp(a, "-o") == 0 ||
		     strcmp(a, "--mode") == 0) && i + 1 >= argc) {
			fprintf(stderr, "selfprobe: %s needs a value\n", a);
			return 2;
		}
		if (strcmp(a, "-e") == 0)
			spec = append(spec, argv[++i]);
		else if (strcmp(a, "-f") == 0) {
			char buf[PATH_MAX + 2];
			snprintf(buf, sizeof(buf), "@%s", argv[++i]);
			spec = append(spec, buf);
		} else if (strcmp(a, "-o") == 0)
			setenv("UPROBE_OUTPUT", argv[++i], 1);
		else if (strcmp(a, "--mode") == 0)
			setenv("UPROBE_MODE", argv[++i], 1);
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
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
	if (!spec) {
		fprintf(stderr, "selfprobe: no probes (-e SPEC or -f FILE)\n");
		return 2;
	}
	setenv("UPROBE_SPEC", spec, 1);
	const char *lib = library_path();
	const char *old = getenv("LD_PRELOAD");
	if (old && *old) {
		char *both = NULL;
		if (asprintf(&both, "%s:%s", lib, old) < 0)
			return 127;
		setenv("LD_PRELOAD", both, 1);
	} else
		setenv("LD_PRELOAD", lib, 1);
	execvp(argv[i], argv + i);
	fprintf(stderr, "selfprobe: cannot run '%s': %s\n", argv[i], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 2, argv + 2);
	if (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "check") == 0) {
		fprintf(stderr, "selfprobe: '%s' is not implemented yet\n", argv[1]);
		return 2;
	}
	fprintf(stderr, "selfprobe: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
