/* kcount — count probe hits with the kernel's uprobes: the e2e oracle.
 *
 *   kcount [--check] [-o FILE] [-u PROBE]... -- CMD ARGS...
 *   PROBE := [ret:]PATH:SYMBOL | [ret:]PATH:0xOFFSET   (OFFSET is a file offset)
 *            followed by an optional ":ref=0xSEMOFFSET"
 *
 * Each PROBE becomes one perf event of the uprobe PMU
 * (/sys/bus/event_source/devices/uprobe): config1 is the path, config2 the
 * file offset, the retprobe bit of config comes from format/retprobe.  The
 * events count (no sampling) in CMD's process, its threads and children,
 * from its execve on.
 *
 * Why not attr.inherit: the uprobe PMU re-reads config1 (a pointer to the
 * path) in the *forking* task's address space when it clones an inherited
 * event, where the pointer means nothing: fork and pthread_create then fail
 * with EFAULT (seen on 6.x kernels).  So kcount follows the tasks itself:
 *
 *   fork → the child does PTRACE_TRACEME and stops → the parent opens the
 *   events on it (disabled + enable_on_exec) and sets TRACECLONE/FORK/VFORK
 *   → the child execvp's CMD → at every clone/fork/vfork stop the parent
 *   opens the events on the new task before it runs → when every traced task
 *   is gone, each probe's counts are summed over the tasks.
 *
 * Opening the events before the task runs is what makes the count exact:
 * nothing the child runs before CMD is counted, and nothing CMD runs is
 * missed.  Tracing stops tasks only at clone/fork/exec, so it costs little.
 * Output: "PROBE COUNT" per probe, in argument order, on stdout or in FILE.
 * Exit status: CMD's (128+signal when it was killed); 2 for a usage or setup
 * error.  CMD's stdout and stderr are passed through untouched.
 *
 * --check: exit 0 when kernel uprobes work here (a probe on /bin/true's entry
 * point fires exactly once), else print the reason and exit 77 (CTest's skip).
 *
 * USDT sites: ":ref=0xSEMOFFSET" names the file offset of the probe's
 * semaphore (the note's semaphore address converted to a file offset of the
 * writable segment that holds it).  It goes into config's ref_ctr_offset
 * field (format/ref_ctr_offset, "config:32-63"): the kernel then increments
 * the semaphore in every process that maps the site while the probe exists
 * and decrements it on removal, as bpftrace and libbpf do for USDT.  Without
 * it, a probe guarded by *_ENABLED() never fires.
 *
 * Symbols are resolved with the project's elfsym module (sp_elf_open,
 * sp_elf_lookup, sp_elf_vaddr_to_offset only).  An IFUNC symbol is refused:
 * its value is the resolver, not the function that runs; name the
 * implementation's file offset instead.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "elfsym.h"

#define EXIT_SETUP 2
#define EXIT_SKIP 77
#define PMU_DIR "/sys/bus/event_source/devices/uprobe"

struct kprobe_req {
	const char *arg;     /* as given, echoed in the output */
	char *path;          /* owned */
	uint64_t offset;     /* file offset */
	uint64_t ref_ctr;    /* file offset of a USDT semaphore, 0: none */
	bool ret;
};

static int read_small_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int err = n < 0 ? -errno : 0;
	close(fd);
	if (err)
		return err;
	buf[n] = '\0';
	return 0;
}

/* The first bit of config that holds ref_ctr_offset ("config:32-63"), or
 * -1 when this kernel has no such field (before 4.20). */
static int ref_ctr_shift(void)
{
	char buf[64];
	int lo, hi;
	if (read_small_file(PMU_DIR "/format/ref_ctr_offset", buf, sizeof(buf)) ||
	    sscanf(buf, "config:%d-%d", &lo, &hi) != 2 || lo < 0 || hi != 63 || lo > hi)
		return -1;
	return lo;
}

/* The uprobe PMU's type and the bit of config that selects a retprobe. */
static int pmu_info(int *type, int *ret_bit, char *err, size_t errlen)
{
	char buf[64];
	int rc = read_small_file(PMU_DIR "/type", buf, sizeof(buf));
	if (rc) {
		snprintf(err, errlen, "%s/type: %s", PMU_DIR, strerror(-rc));
		return rc;
	}
	*type = atoi(buf);
	rc = read_small_file(PMU_DIR "/format/retprobe", buf, sizeof(buf));
	/* "config:0" */
	if (rc || sscanf(buf, "config:%d", ret_bit) != 1 || *ret_bit < 0 || *ret_bit > 63) {
		snprintf(err, errlen, "%s/format/retprobe: %s", PMU_DIR,
			 rc ? strerror(-rc) : "unexpected format");
		return rc ? rc : -EINVAL;
	}
	return 0;
}

static int open_uprobe(const struct kprobe_req *p, pid_t pid, int type, int ret_bit,
		       bool on_exec)
{
	struct perf_event_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = type;
	attr.config = p->ret ? 1ULL << ret_bit : 0;
	if (p->ref_ctr) {
		int shift = ref_ctr_shift();
		if (shift < 0 || p->ref_ctr >> (64 - shift))
			return -EOPNOTSUPP;
		attr.config |= p->ref_ctr << shift;
	}
	attr.config1 = (uint64_t)(uintptr_t)p->path;   /* uprobe_path */
	attr.config2 = p->offset;                      /* probe_offset */
	attr.disabled = on_exec;
	attr.enable_on_exec = on_exec;
	long fd = syscall(SYS_perf_event_open, &attr, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	return fd < 0 ? -errno : (int)fd;
}

/* SYMBOL or 0xOFFSET in PATH → file offset. */
static int resolve(struct kprobe_req *p, const char *loc, char *err, size_t errlen)
{
	if (strncmp(loc, "0x", 2) == 0 || strncmp(loc, "0X", 2) == 0) {
		char *end;
		errno = 0;
		p->offset = strtoull(loc + 2, &end, 16);
		if (errno || end == loc + 2 || *end) {
			snprintf(err, errlen, "bad offset '%s'", loc);
			return -EINVAL;
		}
		return 0;
	}
	struct sp_elf *e;
	char eerr[256] = "";
	int rc = sp_elf_open(p->path, &e, eerr, sizeof(eerr));
	if (rc) {
		snprintf(err, errlen, "%s: %s", p->path, eerr[0] ? eerr : strerror(-rc));
		return rc;
	}
	const struct sp_sym *s = sp_elf_lookup(e, loc);
	if (!s) {
		snprintf(err, errlen, "%s: no symbol '%s'", p->path, loc);
		rc = -ENOENT;
	} else if (s->is_ifunc) {
		snprintf(err, errlen, "%s: '%s' is an IFUNC (its value is the resolver); "
			 "give the implementation's file offset", p->path, loc);
		rc = -EINVAL;
	} else if (sp_elf_vaddr_to_offset(e, s->value, &p->offset)) {
		snprintf(err, errlen, "%s: '%s' at 0x%" PRIx64 " is in no PT_LOAD segment",
			 p->path, loc, s->value);
		rc = -ENOENT;
	}
	sp_elf_close(e);
	return rc;
}

/* A trailing ":ref=0xHEX" of S (length *LEN): parsed into *REF and cut
 * from *LEN.  0 when there is none. */
static int parse_ref(const char *s, size_t *len, uint64_t *ref, char *err, size_t errlen)
{
	const char *colon = memrchr(s, ':', *len);
	if (!colon || strncmp(colon, ":ref=", 5) != 0)
		return 0;
	const char *hex = colon + 5;
	char *end;
	errno = 0;
	*ref = strncmp(hex, "0x", 2) == 0 ? strtoull(hex + 2, &end, 16) : 0;
	if (strncmp(hex, "0x", 2) != 0 || errno || end == hex + 2 || *end || *ref == 0) {
		snprintf(err, errlen, "bad semaphore offset '%s' (want ref=0xHEX, not 0)", hex);
		return -EINVAL;
	}
	*len = colon - s;
	return 0;
}

/* [ret:]PATH:LOC[:ref=0xHEX] — PATH may itself hold ':', LOC never does. */
static int parse_probe(const char *arg, struct kprobe_req *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->arg = arg;
	const char *s = arg;
	if (strncmp(s, "ret:", 4) == 0) {
		p->ret = true;
		s += 4;
	}
	size_t len = strlen(s);
	int rc = parse_ref(s, &len, &p->ref_ctr, err, errlen);
	if (rc)
		return rc;
	const char *colon = memrchr(s, ':', len);
	if (!colon || colon == s || colon + 1 == s + len) {
		snprintf(err, errlen, "bad probe '%s' (want [ret:]PATH:SYMBOL or [ret:]PATH:0xOFFSET, "
			 "then optionally :ref=0xSEMOFFSET)", arg);
		return -EINVAL;
	}
	if (p->ref_ctr && ref_ctr_shift() < 0) {
		snprintf(err, errlen, "'%s': this kernel's uprobe PMU has no ref_ctr_offset", arg);
		return -EOPNOTSUPP;
	}
	p->path = strndup(s, colon - s);
	char *loc = strndup(colon + 1, s + len - colon - 1);
	rc = p->path && loc ? resolve(p, loc, err, errlen) : -ENOMEM;
	free(loc);
	return rc;
}

/* The file offset of PATH's entry point, read from its ELF headers. */
static int entry_offset(const char *path, uint64_t *off, char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	int rc = -ENOEXEC;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
		goto out;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + (uint64_t)i * sizeof(ph)) != sizeof(ph))
			goto out;
		if (ph.p_type == PT_LOAD && eh.e_entry >= ph.p_vaddr &&
		    eh.e_entry < ph.p_vaddr + ph.p_filesz) {
			*off = eh.e_entry - ph.p_vaddr + ph.p_offset;
			rc = 0;
			goto out;
		}
	}
out:
	if (rc)
		snprintf(err, errlen, "%s: cannot find the entry point's file offset", path);
	close(fd);
	return rc;
}

/* The counting events: one per probe per task, since inherit cannot be used
 * (see the top of the file).  Counts are summed over tasks at the end. */
struct events {
	struct kprobe_req *probes;
	int n_probes, type, ret_bit;
	int *fds;                /* n_probes per task, task-major */
	pid_t *tids;
	size_t n_tasks, cap;
	pid_t *started;          /* tasks whose first (attach) stop was seen */
	size_t n_started, cap_started;
};

/* Record TID's first stop; true if it had already been seen. */
static bool mark_started(struct events *ev, pid_t tid)
{
	for (size_t i = 0; i < ev->n_started; i++)
		if (ev->started[i] == tid)
			return true;
	if (ev->n_started == ev->cap_started) {
		size_t cap = ev->cap_started ? 2 * ev->cap_started : 16;
		pid_t *p = realloc(ev->started, cap * sizeof(pid_t));
		if (!p)
			return false;
		ev->started = p;
		ev->cap_started = cap;
	}
	ev->started[ev->n_started++] = tid;
	return false;
}

static int task_index(const struct events *ev, pid_t tid)
{
	for (size_t i = 0; i < ev->n_tasks; i++)
		if (ev->tids[i] == tid)
			return (int)i;
	return -1;
}

/* Open every probe's event on TID (once).  The main process's events wait
 * for its exec (ON_EXEC); a task created later counts from its first
 * instruction, as an inherited event would. */
static int attach_task(struct events *ev, pid_t tid, bool on_exec, char *err, size_t errlen)
{
	if (task_index(ev, tid) >= 0)
		return 0;
	if (ev->n_tasks == ev->cap) {
		size_t cap = ev->cap ? 2 * ev->cap : 16;
		int *fds = realloc(ev->fds, cap * ev->n_probes * sizeof(int) + 1);
		pid_t *tids = realloc(ev->tids, cap * sizeof(pid_t));
		if (fds)
			ev->fds = fds;
		if (tids)
			ev->tids = tids;
		if (!fds || !tids) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		ev->cap = cap;
	}
	int *fds = ev->fds + ev->n_tasks * ev->n_probes;
	for (int i = 0; i < ev->n_probes; i++) {
		fds[i] = open_uprobe(&ev->probes[i], tid, ev->type, ev->ret_bit, on_exec);
		if (fds[i] < 0) {
			int rc = fds[i];
			snprintf(err, errlen, "perf_event_open(uprobe %s, offset 0x%" PRIx64 ", task %d): %s",
				 ev->probes[i].path, ev->probes[i].offset, (int)tid, strerror(-rc));
			while (i--)
				close(fds[i]);
			return rc;
		}
	}
	ev->tids[ev->n_tasks++] = tid;
	return 0;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The child: become a tracee, stop until the parent has set up, exec CMD. */
static void child_exec(char **cmd)
{
	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL)) {
		fprintf(stderr, "kcount: ptrace(TRACEME): %s\n", strerror(errno));
		_exit(EXIT_SETUP);
	}
	raise(SIGSTOP);
	execvp(cmd[0], cmd);
	fprintf(stderr, "kcount: exec %s: %s\n", cmd[0], strerror(errno));
	_exit(127);
}

static int decode_status(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Follow every tracee until all are gone; returns the main child's status. */
static int trace_loop(struct events *ev, pid_t pid, char *err, size_t errlen)
{
	int status = EXIT_SETUP, st;
	pid_t w;
	while ((w = waitpid(-1, &st, __WALL)) != -1 || errno == EINTR) {
		if (w < 0)
			continue;
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			if (w == pid)
				status = decode_status(st);
			continue;
		}
		if (!WIFSTOPPED(st))
			continue;
		int sig = WSTOPSIG(st), event = st >> 16, inject = 0;
		unsigned long msg;
		if (sig == SIGTRAP && (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK ||
				       event == PTRACE_EVENT_VFORK)) {
			/* The new task is stopped (or will be, before its first
			 * instruction): its events are in place before it runs. */
			if (!ptrace(PTRACE_GETEVENTMSG, w, NULL, &msg) &&
			    attach_task(ev, (pid_t)msg, false, err, errlen))
				fprintf(stderr, "kcount: %s\n", err);
		} else if (sig == SIGTRAP && event) {
			/* PTRACE_EVENT_EXEC and the like: nothing to deliver */
		} else if (sig == SIGSTOP && !mark_started(ev, w)) {
			/* A new task's first stop: not a signal to deliver.  It
			 * may come before its creator's event. */
			if (attach_task(ev, w, false, err, errlen))
				fprintf(stderr, "kcount: %s\n", err);
		} else {
			inject = sig;
		}
		ptrace(PTRACE_CONT, w, NULL, (void *)(uintptr_t)inject);
	}
	return status;
}

/* Run CMD under EV's probes.  Returns CMD's status, or -1 with ERR set when
 * the events could not be opened. */
static int run_counted(struct events *ev, char **cmd, char *err, size_t errlen)
{
	if (pmu_info(&ev->type, &ev->ret_bit, err, errlen))
		return -1;
	raise_fd_limit();
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		child_exec(cmd);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st)) {
		snprintf(err, errlen, "child did not stop for tracing (status 0x%x)", st);
		return -1;
	}
	long opts = PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
		    PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
	if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)opts)) {
		snprintf(err, errlen, "ptrace(SETOPTIONS): %s", strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return -1;
	}
	mark_started(ev, pid);
	if (attach_task(ev, pid, true, err, errlen)) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return -1;
	}
	ptrace(PTRACE_CONT, pid, NULL, NULL);
	return trace_loop(ev, pid, err, errlen);
}

/* Probe K's count, summed over all tasks. */
static int sum_count(const struct events *ev, int k, uint64_t *total)
{
	*total = 0;
	for (size_t t = 0; t < ev->n_tasks; t++) {
		uint64_t c;
		if (read(ev->fds[t * ev->n_probes + k], &c, sizeof(c)) != sizeof(c))
			return -1;
		*total += c;
	}
	return 0;
}

static int check(void)
{
	char err[512] = "";
	struct kprobe_req p = { .arg = "/bin/true:entry", .path = "/bin/true" };
	struct events ev = { .probes = &p, .n_probes = 1 };
	char *cmd[] = { "/bin/true", NULL };
	uint64_t count = 0;

	if (entry_offset(p.path, &p.offset, err, sizeof(err)))
		goto skip;
	int st = run_counted(&ev, cmd, err, sizeof(err));
	if (st < 0)
		goto skip;
	if (st != 0 || sum_count(&ev, 0, &count) || count != 1) {
		snprintf(err, sizeof(err), "probe on /bin/true's entry: status %d, count %" PRIu64
			 " (want 0 and 1)", st, count);
		goto skip;
	}
	return 0;
skip:
	printf("kernel uprobes unavailable: %s\n", err);
	return EXIT_SKIP;
}

static void usage(void)
{
	fprintf(stderr, "usage: kcount [--check] [-o FILE] "
		"[-u [ret:]PATH:SYMBOL|[ret:]PATH:0xOFFSET[:ref=0xSEMOFFSET]]... -- CMD ARGS...\n");
	exit(EXIT_SETUP);
}

int main(int argc, char **argv)
{
	struct kprobe_req *probes = calloc(argc, sizeof(*probes));
	const char *outpath = NULL;
	char err[512];
	int n = 0, i;

	if (!probes)
		return EXIT_SETUP;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--check"))
			return check();
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			outpath = argv[++i];
		} else if (!strcmp(argv[i], "-u") && i + 1 < argc) {
			if (parse_probe(argv[++i], &probes[n], err, sizeof(err))) {
				fprintf(stderr, "kcount: %s\n", err);
				return EXIT_SETUP;
			}
			n++;
		} else {
			usage();
		}
	}
	if (i + 1 >= argc)
		usage();

	struct events ev = { .probes = probes, .n_probes = n };
	int st = run_counted(&ev, argv + i + 1, err, sizeof(err));
	if (st < 0) {
		fprintf(stderr, "kcount: %s\n", err);
		return EXIT_SETUP;
	}
	FILE *out = outpath ? fopen(outpath, "we") : stdout;
	if (!out) {
		fprintf(stderr, "kcount: %s: %s\n", outpath, strerror(errno));
		return EXIT_SETUP;
	}
	for (int k = 0; k < n; k++) {
		uint64_t count;
		if (sum_count(&ev, k, &count)) {
			fprintf(stderr, "kcount: read counter of %s: %s\n", probes[k].arg, strerror(errno));
			return EXIT_SETUP;
		}
		fprintf(out, "%s %" PRIu64 "\n", probes[k].arg, count);
	}
	if (fflush(out) || (outpath && fclose(out))) {
		fprintf(stderr, "kcount: write %s: %s\n", outpath ? outpath : "stdout", strerror(errno));
		return EXIT_SETUP;
	}
	return st;
}
