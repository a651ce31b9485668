/* kcount — count probe hits with the kernel's uprobes: the e2e oracle.
 *
 *   kcount [--check] [--multi|--perf] [-o FILE] [-u PROBE]... -- CMD ARGS...
 *   PROBE := [ret:]PATH:SYMBOL | [ret:]PATH:0xOFFSET   (OFFSET is a file offset)
 *            followed by an optional ":ref=0xSEMOFFSET"
 *
 * The probes count (no sampling) in CMD's process, its threads and children,
 * from its execve on.  Two backends, the same counts:
 *
 *   multi  (the default when it works here, --multi to require it)  one BPF
 *          uprobe_multi link (Linux 6.6+) per probed file, per entry/return
 *          kind, per process, over all the file's offsets.  Its program is
 *          hand-assembled (below, no libbpf): the link's cookie of the site
 *          that fired is the probe's index, and the program atomically adds
 *          1 to that slot of an array map, which kcount reads at the end.
 *          Thousands of probes cost about what one does: a link over libc's
 *          3700 functions takes ~70 ms to create and ~0.2 s to close.
 *   perf   (--perf, and the fallback)  one perf event of the uprobe PMU
 *          (/sys/bus/event_source/devices/uprobe) per probe per task: config1
 *          is the path, config2 the file offset, the retprobe bit of config
 *          comes from format/retprobe.  Each event costs 0.1-0.35 s (closing
 *          one waits for a grace period under a global mutex): fine for tens
 *          of probes, minutes for libc:*.
 *
 * Which processes count.  The multi link is created with the process's pid:
 * the kernel then puts its breakpoints in that process's memory only and
 * runs the program only for that thread group (uprobe_multi's pid filter).
 * A link with no pid would patch every process on the machine that maps the
 * file (every one, for libc), make each of them trap on every probed call,
 * and expose them to the kernel's bugs (an EVEX-encoded first instruction is
 * single-stepped wrongly): a filter on the pid in the program would keep the
 * counts right but not the machine.  So one link per process; threads share
 * their process's.  Known gap (perf has none, its events are per thread):
 * once a process's leader thread has exited (pthread_exit in main) while
 * others run, a file the process maps afterwards gets no breakpoints (the
 * kernel's filter compares with the leader's mm, gone).
 *
 * Why not attr.inherit for perf: the uprobe PMU re-reads config1 (a pointer
 * to the path) in the *forking* task's address space when it clones an
 * inherited event, where the pointer means nothing: fork and pthread_create
 * then fail with EFAULT (seen on 6.x kernels).  And a multi link has no
 * inheritance at all.  So kcount follows the tasks itself:
 *
 *   fork → the child does PTRACE_TRACEME and stops → the parent sets
 *   TRACECLONE/FORK/VFORK/EXEC (perf: and opens the events on it, disabled +
 *   enable_on_exec) → the child execvp's CMD (multi: at the exec stop, before
 *   the new program's first instruction, the parent creates its links) → at
 *   every clone/fork/vfork stop the parent opens the events (perf: on the new
 *   task; multi: the links, when the new task is a process, not a thread)
 *   before it runs → when every traced task is gone, each probe's counts are
 *   summed over the tasks (perf) or read from the map (multi).
 *
 * Setting up before the task runs is what makes the count exact: nothing the
 * child runs before CMD is counted, and nothing CMD runs is missed.  Tracing
 * stops tasks only at clone/fork/exec, so it costs little.  A task whose
 * events or links cannot be set up makes the run fail (exit 2, no counts)
 * rather than count less.
 * Output: "PROBE COUNT" per probe, in argument order, on stdout or in FILE.
 * Exit status: CMD's (128+signal when it was killed); 2 for a usage or setup
 * error.  CMD's stdout and stderr are passed through untouched.
 *
 * Backend choice: without --multi or --perf, kcount first creates a multi
 * link on /bin/true's entry point (for its own pid, which does not map
 * /bin/true: nothing is patched) and uses multi when that works.
 *
 * --check: exit 0 when kernel uprobes work here (a probe on /bin/true's entry
 * point fires exactly once) with the backend chosen as above, printing its
 * name; else print the reason and exit 77 (CTest's skip).  "--check --multi"
 * answers for uprobe_multi alone.
 *
 * USDT sites: ":ref=0xSEMOFFSET" names the file offset of the probe's
 * semaphore (the note's semaphore address converted to a file offset of the
 * writable segment that holds it).  perf: it goes into config's
 * ref_ctr_offset field (format/ref_ctr_offset, "config:32-63"); multi: into
 * the link's ref_ctr_offsets, the array parallel to its offsets.  The kernel
 * then increments the semaphore in every process where the probe is
 * installed and decrements it on removal, as bpftrace and libbpf do for
 * USDT.  Without it, a probe guarded by *_ENABLED() never fires.
 *
 * Sites the kernel cannot count, with either backend: a first instruction
 * with a LOCK or CS/SS/DS/ES prefix is refused by x86 uprobes (silently, and
 * the count stays 0, when the file is mapped after the probe exists, as
 * every library is here), and an EVEX-encoded one is single-stepped wrongly
 * (the traced program misbehaves).  Callers leave them out
 * (tests/e2e/e2e_compat.py, Spec.kernel_safe).
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
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

/* ---- the multi backend: BPF uprobe_multi links --------------------------- */

/* Debian 12's <linux/bpf.h> predates uprobe_multi (Linux 6.6): the
 * constants and BPF_LINK_CREATE's layout for it, as the kernel has them
 * (bench/benchutil.c does the same). */
#define K_BPF_TRACE_UPROBE_MULTI 48
#define K_BPF_F_UPROBE_MULTI_RETURN 1U

struct k_link_create {
	uint32_t prog_fd, target_fd, attach_type, flags;
	uint64_t path, offsets, ref_ctr_offsets, cookies;   /* uprobe_multi */
	uint32_t cnt, um_flags, pid;
};

/* The probes of one link: one file, entries or returns.  Each site's
 * cookie is its probe's index, its slot in the counts map. */
struct mgroup {
	const char *path;
	bool ret;
	uint32_t n;
	uint64_t *offsets, *ref_ctrs, *cookies;
};

struct multi {
	int map_fd, prog_fd;
	struct mgroup *groups;
	int n_groups;
};

static long sys_bpf(int cmd, void *attr, size_t size)
{
	return syscall(SYS_bpf, cmd, attr, size);
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	return (struct bpf_insn){ .code = code, .dst_reg = dst, .src_reg = src, .off = off,
				  .imm = imm };
}

/* The program every link runs: counts[cookie] += 1, atomically (the
 * process's threads may hit the same site on several CPUs). */
static int multi_load_prog(int map_fd, char *err, size_t errlen)
{
	const struct bpf_insn prog[] = {
		/* r0 = bpf_get_attach_cookie(r1 = ctx) */
		insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_attach_cookie),
		/* *(u32 *)(r10 - 4) = r0: the key, on the stack */
		insn(BPF_STX | BPF_MEM | BPF_W, BPF_REG_10, BPF_REG_0, -4, 0),
		/* r1 = &counts (a 16-byte load of the map's fd) */
		insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd),
		insn(0, 0, 0, 0, 0),
		/* r2 = r10 - 4 */
		insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
		insn(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4),
		/* r0 = bpf_map_lookup_elem(r1, r2): the slot, NULL past the end */
		insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
		insn(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 2, 0),
		/* lock *(u64 *)(r0 + 0) += 1 */
		insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 1),
		insn(BPF_STX | BPF_ATOMIC | BPF_DW, BPF_REG_0, BPF_REG_1, 0, BPF_ADD),
		/* return 0 */
		insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
		insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	static char log[4096];
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_KPROBE;
	a.expected_attach_type = K_BPF_TRACE_UPROBE_MULTI;
	a.insns = (uintptr_t)prog;
	a.insn_cnt = sizeof(prog) / sizeof(prog[0]);
	a.license = (uintptr_t)"GPL";
	a.log_buf = (uintptr_t)log;
	a.log_size = sizeof(log);
	a.log_level = 1;
	snprintf(a.prog_name, sizeof(a.prog_name), "kcount");
	log[0] = '\0';
	long fd = sys_bpf(BPF_PROG_LOAD, &a, sizeof(a));
	if (fd < 0) {
		int e = errno;
		char *nl = strrchr(log, '\n');
		if (nl && nl[1] == '\0')
			*nl = '\0';
		snprintf(err, errlen, "bpf(PROG_LOAD): %s%s%.300s", strerror(e),
			 log[0] ? ": " : "", log);
		return -e;
	}
	return (int)fd;
}

static int multi_create_map(uint32_t n, char *err, size_t errlen)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = sizeof(uint32_t);
	a.value_size = sizeof(uint64_t);
	a.max_entries = n ? n : 1;
	snprintf(a.map_name, sizeof(a.map_name), "kcount");
	long fd = sys_bpf(BPF_MAP_CREATE, &a, sizeof(a));
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "bpf(MAP_CREATE, array of %u): %s", n, strerror(e));
		return -e;
	}
	return (int)fd;
}

static int multi_read(const struct multi *m, uint32_t k, uint64_t *count)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_fd = m->map_fd;
	a.key = (uintptr_t)&k;
	a.value = (uintptr_t)count;
	return sys_bpf(BPF_MAP_LOOKUP_ELEM, &a, sizeof(a)) ? -errno : 0;
}

/* A link of group G's sites for process PID (0: every process). */
static int multi_link(const struct multi *m, const struct mgroup *g, pid_t pid)
{
	struct k_link_create lc;

	memset(&lc, 0, sizeof(lc));
	lc.prog_fd = m->prog_fd;
	lc.attach_type = K_BPF_TRACE_UPROBE_MULTI;
	lc.path = (uintptr_t)g->path;
	lc.offsets = (uintptr_t)g->offsets;
	lc.ref_ctr_offsets = (uintptr_t)g->ref_ctrs;
	lc.cookies = (uintptr_t)g->cookies;
	lc.cnt = g->n;
	lc.um_flags = g->ret ? K_BPF_F_UPROBE_MULTI_RETURN : 0;
	lc.pid = pid;
	long fd = sys_bpf(BPF_LINK_CREATE, &lc, sizeof(lc));
	return fd < 0 ? -errno : (int)fd;
}

static struct mgroup *multi_group_of(struct multi *m, const struct kprobe_req *p)
{
	for (int i = 0; i < m->n_groups; i++)
		if (m->groups[i].ret == p->ret && !strcmp(m->groups[i].path, p->path))
			return &m->groups[i];
	struct mgroup *g = &m->groups[m->n_groups++];   /* sized for one per probe */
	g->path = p->path;
	g->ret = p->ret;
	return g;
}

/* Group PROBES by file and kind.  The arrays are sized for every probe. */
static int multi_groups(struct multi *m, const struct kprobe_req *probes, int n)
{
	m->groups = calloc(n ? n : 1, sizeof(*m->groups));
	if (!m->groups)
		return -ENOMEM;
	for (int k = 0; k < n; k++) {
		struct mgroup *g = multi_group_of(m, &probes[k]);
		if (!g->offsets) {
			g->offsets = calloc(n, sizeof(uint64_t));
			g->ref_ctrs = calloc(n, sizeof(uint64_t));
			g->cookies = calloc(n, sizeof(uint64_t));
			if (!g->offsets || !g->ref_ctrs || !g->cookies)
				return -ENOMEM;
		}
		g->offsets[g->n] = probes[k].offset;
		g->ref_ctrs[g->n] = probes[k].ref_ctr;
		g->cookies[g->n] = (uint64_t)k;
		g->n++;
	}
	return 0;
}

/* What the kernel would refuse in a link, checked before CMD runs (the
 * links are created at its exec): a missing file, an offset past its end. */
static int multi_validate(const struct multi *m, char *err, size_t errlen)
{
	for (int i = 0; i < m->n_groups; i++) {
		const struct mgroup *g = &m->groups[i];
		struct stat st;
		if (stat(g->path, &st)) {
			snprintf(err, errlen, "%s: %s", g->path, strerror(errno));
			return -errno;
		}
		if (!S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "%s: not a regular file", g->path);
			return -EINVAL;
		}
		for (uint32_t k = 0; k < g->n; k++) {
			if (g->offsets[k] >= (uint64_t)st.st_size ||
			    g->ref_ctrs[k] >= (uint64_t)st.st_size) {
				snprintf(err, errlen, "%s: offset 0x%" PRIx64 " (or its semaphore's) is past "
					 "the end of the file", g->path, g->offsets[k]);
				return -EINVAL;
			}
		}
	}
	return 0;
}

static void multi_close(struct multi *m)
{
	if (m->prog_fd > 0)
		close(m->prog_fd);
	if (m->map_fd > 0)
		close(m->map_fd);
	for (int i = 0; i < m->n_groups; i++) {
		free(m->groups[i].offsets);
		free(m->groups[i].ref_ctrs);
		free(m->groups[i].cookies);
	}
	free(m->groups);
	memset(m, 0, sizeof(*m));
}

/* The map, the program and the groups for PROBES; then, for PROBE_PATH
 * (not NULL), a link on PROBE_PATH:PROBE_OFF for kcount itself, closed at
 * once: whether this kernel takes uprobe_multi links with cookies and a pid
 * (kcount does not map PROBE_PATH, so nothing is patched). */
static int multi_setup(struct multi *m, const struct kprobe_req *probes, int n,
		       const char *probe_path, uint64_t probe_off, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	int fd = multi_create_map((uint32_t)n, err, errlen);
	if (fd < 0)
		return fd;
	m->map_fd = fd;
	fd = multi_load_prog(m->map_fd, err, errlen);
	if (fd < 0)
		goto fail;
	m->prog_fd = fd;
	if (multi_groups(m, probes, n)) {
		fd = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (probe_path) {
		uint64_t cookie = 0;
		struct mgroup g = { .path = probe_path, .n = 1, .offsets = &probe_off,
				    .cookies = &cookie };
		fd = multi_link(m, &g, getpid());
		if (fd < 0) {
			snprintf(err, errlen, "bpf(LINK_CREATE, uprobe_multi on %s): %s", probe_path,
				 strerror(-fd));
			goto fail;
		}
		close(fd);
	}
	return 0;
fail:
	multi_close(m);
	return fd;
}

/* ---- tasks ----------------------------------------------------------------- */

/* What counts, for the tasks that kcount follows.  perf: one event per probe
 * per task, since inherit cannot be used (see the top of the file), summed
 * over tasks at the end.  multi: one link per group per process, all adding
 * into one map. */
struct events {
	struct kprobe_req *probes;
	int n_probes;
	bool multi;
	int type, ret_bit;       /* perf: the uprobe PMU */
	struct multi m;
	int per_task;            /* fds per task: n_probes (perf) or m.n_groups (multi) */
	int *fds;                /* per_task per task, task-major */
	pid_t *tids;             /* tasks (perf) or processes (multi) set up */
	size_t n_tasks, cap;
	pid_t *started;          /* tasks whose first (attach) stop was seen */
	size_t n_started, cap_started;
	bool failed;             /* a task could not be set up: the counts are short */
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

/* The thread group (process) of task TID, from /proc; -errno when gone. */
static pid_t task_tgid(pid_t tid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	int rc = read_small_file(path, buf, sizeof(buf));
	if (rc)
		return rc;
	const char *s = strstr(buf, "\nTgid:");
	return s ? (pid_t)atoi(s + 6) : -EINVAL;
}

/* Slot I of TID's descriptors: probe I's perf event, or group I's link. */
static int open_slot(struct events *ev, int i, pid_t tid, bool on_exec, char *err, size_t errlen)
{
	int fd;
	if (ev->multi) {
		const struct mgroup *g = &ev->m.groups[i];
		fd = multi_link(&ev->m, g, tid);
		if (fd < 0)
			snprintf(err, errlen, "bpf(LINK_CREATE, uprobe_multi%s, %u sites in %s, "
				 "pid %d): %s", g->ret ? " return" : "", g->n, g->path, (int)tid,
				 strerror(-fd));
		return fd;
	}
	const struct kprobe_req *p = &ev->probes[i];
	fd = open_uprobe(p, tid, ev->type, ev->ret_bit, on_exec);
	if (fd < 0)
		snprintf(err, errlen, "perf_event_open(uprobe %s, offset 0x%" PRIx64 ", task %d): %s",
			 p->path, p->offset, (int)tid, strerror(-fd));
	return fd;
}

/* Set up the counting on TID (once).  perf: the main process's events wait
 * for its exec (ON_EXEC); a task created later counts from its first
 * instruction, as an inherited event would.  multi: only a process gets
 * links (a thread counts through its process's), created when it is
 * already the program to count: at the main process's exec, at a child's
 * creation. */
static int attach_task(struct events *ev, pid_t tid, bool on_exec, char *err, size_t errlen)
{
	if (ev->multi) {
		pid_t tgid = task_tgid(tid);
		if (tgid < 0) {
			snprintf(err, errlen, "task %d: no /proc/%d/status: %s", (int)tid, (int)tid,
				 strerror(-tgid));
			return tgid;
		}
		if (tgid != tid)
			return 0;
	}
	if (task_index(ev, tid) >= 0)
		return 0;
	if (ev->n_tasks == ev->cap) {
		size_t cap = ev->cap ? 2 * ev->cap : 16;
		int *fds = realloc(ev->fds, cap * ev->per_task * sizeof(int) + 1);
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
	int *fds = ev->fds + ev->n_tasks * ev->per_task;
	for (int i = 0; i < ev->per_task; i++) {
		fds[i] = open_slot(ev, i, tid, on_exec, err, errlen);
		if (fds[i] < 0) {
			int rc = fds[i];
			while (i--)
				close(fds[i]);
			return rc;
		}
	}
	ev->tids[ev->n_tasks++] = tid;
	return 0;
}

/* attach_task from the trace loop: a failure is reported and remembered
 * (the run goes on: stopping CMD halfway would change what it does). */
static void attach_or_fail(struct events *ev, pid_t tid, char *err, size_t errlen)
{
	if (attach_task(ev, tid, false, err, errlen)) {
		fprintf(stderr, "kcount: %s\n", err);
		ev->failed = true;
	}
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
			if (!ptrace(PTRACE_GETEVENTMSG, w, NULL, &msg))
				attach_or_fail(ev, (pid_t)msg, err, errlen);
		} else if (sig == SIGTRAP && event == PTRACE_EVENT_EXEC) {
			/* multi: the main process's links, now that it is CMD
			 * (W is the process's pid, whichever thread exec'd); a
			 * no-op for any process already set up */
			if (ev->multi)
				attach_or_fail(ev, w, err, errlen);
		} else if (sig == SIGTRAP && event) {
			/* other ptrace events: nothing to deliver */
		} else if (sig == SIGSTOP && !mark_started(ev, w)) {
			/* A new task's first stop: not a signal to deliver.  It
			 * may come before its creator's event. */
			attach_or_fail(ev, w, err, errlen);
		} else {
			inject = sig;
		}
		ptrace(PTRACE_CONT, w, NULL, (void *)(uintptr_t)inject);
	}
	return status;
}

/* Run CMD under EV's probes (the backend set up by the caller).  Returns
 * CMD's status, or -1 with ERR set when the counting could not be set up. */
static int run_counted(struct events *ev, char **cmd, char *err, size_t errlen)
{
	ev->per_task = ev->multi ? ev->m.n_groups : ev->n_probes;
	if (!ev->multi && pmu_info(&ev->type, &ev->ret_bit, err, errlen))
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
	/* multi: the links wait for the exec stop (see trace_loop) */
	if (!ev->multi && attach_task(ev, pid, true, err, errlen)) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return -1;
	}
	ptrace(PTRACE_CONT, pid, NULL, NULL);
	return trace_loop(ev, pid, err, errlen);
}

/* Probe K's count: summed over all tasks (perf), its map slot (multi). */
static int sum_count(const struct events *ev, int k, uint64_t *total)
{
	*total = 0;
	if (ev->multi) {
		int rc = multi_read(&ev->m, (uint32_t)k, total);
		errno = -rc;
		return rc ? -1 : 0;
	}
	for (size_t t = 0; t < ev->n_tasks; t++) {
		uint64_t c;
		if (read(ev->fds[t * ev->per_task + k], &c, sizeof(c)) != sizeof(c))
			return -1;
		*total += c;
	}
	return 0;
}

/* Close every event and link: for multi, what ends the counting (closing
 * a link waits for a grace period, once per link). */
static void release(struct events *ev)
{
	for (size_t i = 0; i < ev->n_tasks * (size_t)ev->per_task; i++)
		close(ev->fds[i]);
	free(ev->fds);
	free(ev->tids);
	free(ev->started);
	ev->fds = NULL;
	ev->tids = ev->started = NULL;
	ev->n_tasks = ev->cap = ev->n_started = ev->cap_started = 0;
	if (ev->multi)
		multi_close(&ev->m);
}

enum backend { BE_AUTO, BE_MULTI, BE_PERF };

/* Set EV up for BE; BE_AUTO: multi when a test link on PROBE_PATH works,
 * else perf.  0, or -1 with ERR set. */
static int choose_backend(struct events *ev, enum backend be, char *err, size_t errlen)
{
	char why[512] = "";
	uint64_t off;

	ev->multi = false;
	if (be == BE_PERF)
		return 0;
	if (entry_offset("/bin/true", &off, why, sizeof(why)) == 0 &&
	    multi_setup(&ev->m, ev->probes, ev->n_probes, "/bin/true", off, why,
			sizeof(why)) == 0) {
		ev->multi = true;
		return multi_validate(&ev->m, err, errlen) ? -1 : 0;
	}
	if (be == BE_MULTI) {
		snprintf(err, errlen, "uprobe_multi unavailable: %s", why);
		return -1;
	}
	return 0;
}

/* A probe on /bin/true's entry point, with backend BE (not BE_AUTO): 0 when
 * it counts 1, else -1 with ERR set. */
static int check_backend(enum backend be, char *err, size_t errlen)
{
	struct kprobe_req p = { .arg = "/bin/true:entry", .path = "/bin/true" };
	struct events ev = { .probes = &p, .n_probes = 1 };
	char *cmd[] = { "/bin/true", NULL };
	uint64_t count = 0;
	int rc = -1;

	if (entry_offset(p.path, &p.offset, err, errlen) || choose_backend(&ev, be, err, errlen))
		return -1;
	int st = run_counted(&ev, cmd, err, errlen);
	if (st >= 0 && !ev.failed) {
		if (st != 0 || sum_count(&ev, 0, &count) || count != 1)
			snprintf(err, errlen, "%s probe on /bin/true's entry: status %d, count %"
				 PRIu64 " (want 0 and 1)", ev.multi ? "uprobe_multi" : "perf", st, count);
		else
			rc = 0;
	}
	release(&ev);
	return rc;
}

static int check(enum backend be)
{
	char err[512] = "", perr[512] = "";

	if (be != BE_PERF && check_backend(BE_MULTI, err, sizeof(err)) == 0) {
		printf("kernel uprobes work: backend multi (uprobe_multi links)\n");
		return 0;
	}
	if (be != BE_MULTI && check_backend(BE_PERF, perr, sizeof(perr)) == 0) {
		printf("kernel uprobes work: backend perf%s%s%s\n", err[0] ? " (multi: " : "", err,
		       err[0] ? ")" : "");
		return 0;
	}
	printf("kernel uprobes unavailable: %s%s%s\n", err, err[0] && perr[0] ? "; " : "", perr);
	return EXIT_SKIP;
}

static void usage(void)
{
	fprintf(stderr, "usage: kcount [--check] [--multi|--perf] [-o FILE] "
		"[-u [ret:]PATH:SYMBOL|[ret:]PATH:0xOFFSET[:ref=0xSEMOFFSET]]... -- CMD ARGS...\n");
	exit(EXIT_SETUP);
}

static int write_counts(struct events *ev, const char *outpath)
{
	FILE *out = outpath ? fopen(outpath, "we") : stdout;
	if (!out) {
		fprintf(stderr, "kcount: %s: %s\n", outpath, strerror(errno));
		return -1;
	}
	for (int k = 0; k < ev->n_probes; k++) {
		uint64_t count;
		if (sum_count(ev, k, &count)) {
			fprintf(stderr, "kcount: read counter of %s: %s\n", ev->probes[k].arg,
				strerror(errno));
			return -1;
		}
		fprintf(out, "%s %" PRIu64 "\n", ev->probes[k].arg, count);
	}
	if (fflush(out) || (outpath && fclose(out))) {
		fprintf(stderr, "kcount: write %s: %s\n", outpath ? outpath : "stdout", strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct kprobe_req *probes = calloc(argc, sizeof(*probes));
	const char *outpath = NULL;
	enum backend be = BE_AUTO;
	bool want_check = false;
	char err[512];
	int n = 0, i;

	if (!probes)
		return EXIT_SETUP;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--check")) {
			want_check = true;
		} else if (!strcmp(argv[i], "--multi")) {
			be = BE_MULTI;
		} else if (!strcmp(argv[i], "--perf")) {
			be = BE_PERF;
		} else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
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
	if (want_check)
		return check(be);
	if (i + 1 >= argc)
		usage();

	struct events ev = { .probes = probes, .n_probes = n };
	int st = -1;
	if (!choose_backend(&ev, be, err, sizeof(err)))
		st = run_counted(&ev, argv + i + 1, err, sizeof(err));
	if (st < 0) {
		fprintf(stderr, "kcount: %s\n", err);
		return EXIT_SETUP;
	}
	if (ev.failed) {
		fprintf(stderr, "kcount: counting could not be set up on every task: no counts\n");
		return EXIT_SETUP;
	}
	int rc = write_counts(&ev, outpath);
	release(&ev);
	return rc ? EXIT_SETUP : st;
}
