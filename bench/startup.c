/* startup.c — bench-startup: what the preload costs a process at start-up.
 * Runs a program (/bin/true) many times, interleaving three configurations so
 * that drift hits them alike:
 *
 *   bare        no preload
 *   empty       LD_PRELOAD=libselfprobe.so, UPROBE_SPEC empty
 *   libc-100    LD_PRELOAD=libselfprobe.so, 100 probes on libc functions
 *               (names taken from libc's .dynsym: defined global functions,
 *               one name per address, IFUNCs left out)
 *
 * and reports the median wall time of fork+exec+exit (posix_spawn to
 * waitpid) and its ratio to bare.  The report goes to /dev/null
 * (UPROBE_OUTPUT) during the timed runs; one checked run first writes JSON to
 * a temporary file and counts the probes attached and the errors.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <link.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_LIBC 100
#define MAX_RUNS 100000

extern char **environ;

enum config { BARE, EMPTY, LIBC100, N_CONFIGS };
static const char *const config_names[N_CONFIGS] = { "bare", "empty spec", "100 libc probes" };

struct sym { const char *name; uint64_t value; };

static int by_value(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct sym *)a)->name, ((const struct sym *)b)->name);
}

static int find_libc(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	if (info->dlpi_name && strstr(info->dlpi_name, "/libc.so")) {
		snprintf(data, PATH_MAX, "%s", info->dlpi_name);
		return 1;
	}
	return 0;
}

/* Append "uprobe:libc:NAME;" for N_LIBC functions of libc's .dynsym, spread
 * evenly over the alphabet.  0 or -1. */
static int libc_spec(char *spec, size_t len, char *err, size_t errlen)
{
	char path[PATH_MAX] = "";
	struct sym *syms = NULL;
	size_t n = 0, uniq = 0, pos = 0;
	Elf_Scn *scn = NULL;
	Elf *e = NULL;
	int fd, ret = -1;

	dl_iterate_phdr(find_libc, path);
	elf_version(EV_CURRENT);
	if (!path[0] || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "libc not found");
		return -1;
	}
	if (!(e = elf_begin(fd, ELF_C_READ, NULL)))
		goto out;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || !(d = elf_getdata(scn, NULL)))
			continue;
		syms = calloc(sh.sh_size / sizeof(Elf64_Sym) + 1, sizeof(*syms));
		for (size_t i = 0; syms && i < sh.sh_size / sizeof(Elf64_Sym); i++) {
			GElf_Sym s;
			const char *name;

			if (!gelf_getsym(d, i, &s) || GELF_ST_TYPE(s.st_info) != STT_FUNC ||
			    GELF_ST_BIND(s.st_info) != STB_GLOBAL || s.st_shndx == SHN_UNDEF)
				continue;
			if (!(name = elf_strptr(e, sh.sh_link, s.st_name)) || !name[0] || name[0] == '_')
				continue;
			syms[n].name = name;
			syms[n++].value = s.st_value;
		}
	}
	/* one name per address: probing two aliases would be one site twice */
	qsort(syms, n, sizeof(*syms), by_value);
	for (size_t i = 0; i < n; i++)
		if (!uniq || syms[i].value != syms[uniq - 1].value)
			syms[uniq++] = syms[i];
	if (uniq < N_LIBC) {
		snprintf(err, errlen, "only %zu functions in %s", uniq, path);
		goto out;
	}
	qsort(syms, uniq, sizeof(*syms), by_name);
	for (size_t i = 0; i < N_LIBC; i++)
		pos += snprintf(spec + pos, pos < len ? len - pos : 0, "uprobe:libc:%s;",
				syms[i * uniq / N_LIBC].name);
	ret = pos < len ? 0 : -1;
	if (ret)
		snprintf(err, errlen, "spec too long");
out:
	if (ret && !err[0])
		snprintf(err, errlen, "cannot read %s", path);
	free(syms);
	if (e)
		elf_end(e);
	close(fd);
	return ret;
}

/* The environment of a configuration: ours without LD_PRELOAD and UPROBE_*,
 * plus the configuration's variables. */
static char **make_env(enum config c, const char *lib, const char *spec, const char *output)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	if (!(env = calloc(n + 4, sizeof(*env))))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], "UPROBE_", 7))
			env[k++] = environ[i];
	if (c != BARE) {
		if (asprintf(&env[k++], "LD_PRELOAD=%s", lib) < 0 ||
		    asprintf(&env[k++], "UPROBE_SPEC=%s", c == LIBC100 ? spec : "") < 0 ||
		    asprintf(&env[k++], "UPROBE_OUTPUT=%s", output) < 0)
			return NULL;
	}
	return env;
}

/* Spawn PROG with ENV, wait; the wall time in microseconds, or -1. */
static double run_once(const char *prog, char **env, int *status)
{
	posix_spawn_file_actions_t fa;
	char *argv[] = { (char *)prog, NULL };
	double t0 = bench_now();
	pid_t pid;
	int err;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	err = posix_spawn(&pid, prog, &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	if (err || waitpid(pid, status, 0) != pid)
		return -1;
	return (bench_now() - t0) * 1e6;
}

static size_t count_substr(const char *s, const char *sub)
{
	size_t n = 0;

	while ((s = strstr(s, sub))) {
		n++;
		s += strlen(sub);
	}
	return n;
}

/* One run with a JSON report: how many probes attached, how many errors. */
static void check_config(enum config c, const char *prog, const char *lib, const char *spec)
{
	char path[64], buf[1 << 16];
	char **env;
	int status = -1;
	ssize_t n = 0;
	int fd;

	snprintf(path, sizeof(path), "/tmp/bench-startup-%d.json", (int)getpid());
	unlink(path);
	if (!(env = make_env(c, lib, spec, path)) || run_once(prog, env, &status) < 0) {
		printf("check %-16s: cannot run %s\n", config_names[c], prog);
		return;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	unlink(path);
	printf("check %-16s: exit status %d, report %s: %zu probes, %zu errors\n", config_names[c],
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1, n > 0 ? "written" : "MISSING",
	       count_substr(buf, "\"kind\""), count_substr(buf, "\"message\""));
}

int main(int argc, char **argv)
{
	static char spec[N_LIBC * 64];
	static double t[N_CONFIGS][MAX_RUNS];
	const char *prog = "/bin/true";
	char lib[PATH_MAX] = "", real[PATH_MAX], err[256] = "";
	struct bench_stats st[N_CONFIGS];
	char **env[N_CONFIGS];
	int runs = 200, c, failed[N_CONFIGS] = { 0 };
	struct stat sb;

	while ((c = getopt(argc, argv, "n:l:p:h")) != -1) {
		switch (c) {
		case 'n': runs = atoi(optarg); break;
		case 'l': snprintf(lib, sizeof(lib), "%s", optarg); break;
		case 'p': prog = optarg; break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"usage: bench-startup [-n RUNS (200)] [-l LIBSELFPROBE] [-p PROGRAM]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (runs < 1 || runs > MAX_RUNS)
		return 2;
	if (!lib[0]) {
		char exe[PATH_MAX - 64];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

		exe[n > 0 ? n : 0] = '\0';
		if (strrchr(exe, '/'))
			*strrchr(exe, '/') = '\0';
		snprintf(lib, sizeof(lib), "%s/../lib/libselfprobe.so", exe);
	}
	if (realpath(lib, real))
		memcpy(lib, real, sizeof(lib));
	if (libc_spec(spec, sizeof(spec), err, sizeof(err))) {
		printf("bench-startup: n/a (%s)\n", err);
		return 0;
	}
	printf("bench-startup: %s, %d runs of each configuration, interleaved; preload %s\n",
	       prog, runs, lib);
	if (stat(lib, &sb)) {
		printf("bench-startup: preload n/a (%s: %s)\n", lib, strerror(errno));
		return 0;
	}
	check_config(EMPTY, prog, lib, spec);
	check_config(LIBC100, prog, lib, spec);
	for (int k = 0; k < N_CONFIGS; k++)
		if (!(env[k] = make_env(k, lib, spec, "/dev/null")))
			return 1;
	for (int i = 0; i < runs; i++) {
		for (int k = 0; k < N_CONFIGS; k++) {
			int status;

			t[k][i] = run_once(prog, env[k], &status);
			if (t[k][i] < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
				failed[k]++;
		}
	}
	printf("\n%-16s %12s %12s %12s %12s %10s\n", "configuration", "median us", "mean us",
	       "stddev us", "added us", "vs bare");
	for (int k = 0; k < N_CONFIGS; k++) {
		bench_stats(t[k], runs, &st[k]);
		printf("%-16s %12.1f %12.1f %12.1f %12.1f %9.2fx", config_names[k], st[k].median,
		       st[k].mean, st[k].stddev, st[k].median - st[BARE].median,
		       st[k].median / st[BARE].median);
		if (failed[k])
			printf("  (%d runs failed)", failed[k]);
		printf("\n");
	}
	return 0;
}
