/* sp_rlimit — a program that needs most of its address-space limit
 * (RLIMIT_AS), for e2e_rlimit.py: the runtime must leave it what it has
 * unprobed.
 *
 *   sp_rlimit ALLOC_MIB THREADS CALLS STATS [fork]
 *
 * THREADS threads (0: the main thread alone) each call rl_work() CALLS
 * times (each call one malloc and one free), so that every one of them hits
 * the probes; once they are joined the program maps ALLOC_MIB MiB of
 * anonymous memory (touching one page per MiB: little cost, but the
 * mapping's whole size counts against RLIMIT_AS) and unmaps it.  With
 * "fork", a child forked after the threads does the same work and the
 * same mapping, and its parent waits for it.  Output (stdout) is the same
 * unprobed and probed; each process writes its VmSize before the mapping,
 * its VmPeak at the end and its /proc/self/maps to STATS (the child to
 * STATS.child; a process that fails before its mapping, its VmSize then),
 * which the test reads to say how far off a probed run is.
 * Exit 0, or 1 when a mapping, a thread or the fork failed.  CALLS >= 1. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t alloc_mib;
static long calls;
static void *volatile sink;   /* keeps each malloc/free pair from being elided */

__attribute__((noinline)) void rl_work(long i)
{
	void *p = malloc(32 + (size_t)(i & 63));
	sink = p;
	free(p);
}

/* The threads' first calls one at a time, and no thread ends before all
 * made theirs: each thread then has a malloc arena of its own (64 MiB of
 * address space each), created one after the other, so that the unprobed
 * peak is the same every run (an arena freed by an ended thread is reused,
 * and arenas made at once overlap their reservations). */
static pthread_mutex_t first = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t done;

static void *worker(void *arg)
{
	pthread_mutex_lock(&first);
	rl_work(0);
	pthread_mutex_unlock(&first);
	for (long i = 1; i < calls; i++)
		rl_work(i);
	if (arg)
		pthread_barrier_wait(&done);
	return NULL;
}

/* /proc/self/status's FIELD in kB, or -1. */
static long status_kb(const char *field)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	size_t len = strlen(field);
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, field, len) && l[len] == ':')
			return strtol(l + len + 1, NULL, 10);
	return -1;
}

/* The numbers and the maps, for the test (not on stdout: they differ
 * probed, and stdout is compared with the unprobed run's). */
static void write_stats(const char *path, long before_kb)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	fprintf(f, "VmSizeBeforeAlloc %ld\nVmPeak %ld\n", before_kb, status_kb("VmPeak"));
	FILE *m = fopen("/proc/self/maps", "r");
	char line[1024];
	while (m && fgets(line, sizeof(line), m))
		fprintf(f, "map %s", line);
	if (m)
		fclose(m);
	fclose(f);
}

/* The big mapping, touched at one page per MiB.  0, or 1 after saying why. */
static int big_alloc(const char *who, const char *stats)
{
	long before = status_kb("VmSize");
	size_t bytes = alloc_mib << 20;
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("%s: mapping %zu MiB failed: %s\n", who, alloc_mib, strerror(errno));
		write_stats(stats, before);
		return 1;
	}
	for (size_t off = 0; off < bytes; off += (size_t)1 << 20)
		p[off] = 1;
	munmap(p, bytes);
	printf("%s: mapped %zu MiB\n", who, alloc_mib);
	write_stats(stats, before);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: sp_rlimit ALLOC_MIB THREADS CALLS STATS [fork]\n");
		return 2;
	}
	alloc_mib = strtoul(argv[1], NULL, 10);
	int nthreads = atoi(argv[2]);
	calls = atol(argv[3]);
	const char *stats = argv[4];
	int do_fork = argc > 5 && !strcmp(argv[5], "fork");

	if (nthreads == 0)
		worker(NULL);
	pthread_t tids[64];
	if (nthreads > 64)
		nthreads = 64;
	if (nthreads > 0)
		pthread_barrier_init(&done, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		int e = pthread_create(&tids[i], NULL, worker, &done);
		if (e) {
			printf("thread %d: %s\n", i, strerror(e));
			write_stats(stats, status_kb("VmSize"));
			return 1;
		}
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(tids[i], NULL);
	printf("%d threads, %ld calls each\n", nthreads, calls);
	fflush(stdout);

	if (do_fork) {
		pid_t pid = fork();
		if (pid < 0) {
			printf("fork: %s\n", strerror(errno));
			write_stats(stats, status_kb("VmSize"));
			return 1;
		}
		if (pid == 0) {
			char path[4096];
			snprintf(path, sizeof(path), "%s.child", stats);
			worker(NULL);
			int rc = big_alloc("child", path);
			fflush(stdout);
			exit(rc);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
			printf("child: failed (status %#x)\n", st);
			write_stats(stats, status_kb("VmSize"));
			return 1;
		}
	}
	return big_alloc("parent", stats);
}
