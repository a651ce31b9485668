/* benchutil.c — helpers shared by the benches; see bench.h. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <link.h>
#include <linux/perf_event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- file offsets of loaded code ---------------------------------------- */

struct addr_query {
	uintptr_t addr;
	const char *name;
	uint64_t off;
	bool found;
};

static int find_object(struct dl_phdr_info *info, size_t size, void *data)
{
	struct addr_query *q = data;
	(void)size;

	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD || q->addr < start || q->addr >= start + ph->p_filesz)
			continue;
		q->name = info->dlpi_name;
		q->off = q->addr - start + ph->p_offset;
		q->found = true;
		return 1;
	}
	return 0;
}

int bench_addr_to_file(const void *addr, char *path, size_t pathlen, uint64_t *off)
{
	struct addr_query q = { .addr = (uintptr_t)addr };

	dl_iterate_phdr(find_object, &q);
	if (!q.found)
		return -ENOENT;
	/* The executable's entry has an empty name; the kernel wants a path it
	 * can resolve to the same inode, so use the real one. */
	if (!q.name || !q.name[0]) {
		char buf[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);

		if (n < 0)
			return -errno;
		buf[n] = '\0';
		snprintf(path, pathlen, "%s", buf);
	} else if (!realpath(q.name, path)) {
		snprintf(path, pathlen, "%s", q.name);
	}
	*off = q.off;
	return 0;
}

/* ---- USDT notes ---------------------------------------------------------- */

static int vaddr_to_off(Elf *e, uint64_t vaddr, uint64_t *off)
{
	size_t n;

	if (elf_getphdrnum(e, &n))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(e, i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_memsz) {
			*off = vaddr - ph.p_vaddr + ph.p_offset;
			return 0;
		}
	}
	return -ERANGE;
}

/* The run-time address of .stapsdt.base, against which a note's pc is
 * adjusted (prelink may have moved the file since the note was written). */
static uint64_t stapsdt_base(Elf *e, size_t shstrndx)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh))
			continue;
		name = elf_strptr(e, shstrndx, sh.sh_name);
		if (name && !strcmp(name, ".stapsdt.base"))
			return sh.sh_addr;
	}
	return 0;
}

/* One note's descriptor: pc, base, semaphore (3 addresses), then provider and
 * name as NUL-terminated strings, then the argument string. */
static bool match_note(const char *desc, size_t len, const char *provider,
		       const char *name, uint64_t addr[3])
{
	const char *prov, *nm;

	if (len < 3 * 8 + 2)
		return false;
	memcpy(addr, desc, 3 * 8);
	prov = desc + 24;
	nm = memchr(prov, '\0', len - 24);
	if (!nm || ++nm >= desc + len || !memchr(nm, '\0', desc + len - nm))
		return false;
	return !strcmp(prov, provider) && !strcmp(nm, name);
}

static int find_note(Elf *e, const char *provider, const char *name, struct bench_usdt *out)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(e, &shstrndx))
		return -EINVAL;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		GElf_Nhdr nh;
		size_t pos = 0, name_off, desc_off;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		if (!(d = elf_getdata(scn, NULL)))
			continue;
		while ((pos = gelf_getnote(d, pos, &nh, &name_off, &desc_off)) > 0) {
			uint64_t a[3];

			if (nh.n_type != 3 || nh.n_namesz != 8 ||
			    memcmp((char *)d->d_buf + name_off, "stapsdt", 8))
				continue;
			if (!match_note((char *)d->d_buf + desc_off, nh.n_descsz, provider, name, a))
				continue;
			a[0] += stapsdt_base(e, shstrndx) - a[1];
			if (vaddr_to_off(e, a[0], &out->pc_off))
				return -ERANGE;
			out->sema_off = 0;
			if (a[2] && vaddr_to_off(e, a[2], &out->sema_off))
				return -ERANGE;
			return 0;
		}
	}
	return -ENOENT;
}

int bench_usdt_find(const char *path, const char *provider, const char *name,
		    struct bench_usdt *out)
{
	int fd, err;
	Elf *e;

	elf_version(EV_CURRENT);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	e = elf_begin(fd, ELF_C_READ, NULL);
	err = e ? find_note(e, provider, name, out) : -EINVAL;
	if (e)
		elf_end(e);
	close(fd);
	return err;
}

/* ---- kernel uprobes ------------------------------------------------------ */

/* A format file such as .../format/retprobe holds "config:0" or
 * "config:32-63": the first bit of the field in attr.config. */
static int read_sysfs_int(const char *path, const char *prefix)
{
	char buf[64];
	int v = -1;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && !strncmp(buf, prefix, strlen(prefix)))
		v = atoi(buf + strlen(prefix));
	fclose(f);
	return v;
}

int bench_kuprobe_open(const char *path, uint64_t off, bool retprobe,
		       uint64_t ref_ctr_off, bool inherit)
{
	static int type = -2, ret_bit = -1, ref_bit = -1;
	struct perf_event_attr attr;
	int fd;

	if (type == -2) {
		type = read_sysfs_int("/sys/bus/event_source/devices/uprobe/type", "");
		ret_bit = read_sysfs_int("/sys/bus/event_source/devices/uprobe/format/retprobe",
					 "config:");
		ref_bit = read_sysfs_int("/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset",
					 "config:");
	}
	if (type < 0)
		return -ENODEV;         /* no uprobe PMU: kernel without CONFIG_UPROBE_EVENTS */
	if (retprobe && ret_bit < 0)
		return -EOPNOTSUPP;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = type;
	attr.config = retprobe ? 1ULL << ret_bit : 0;
	if (ref_ctr_off && ref_bit >= 0)
		attr.config |= ref_ctr_off << ref_bit;
	attr.config1 = (uintptr_t)path;     /* uprobe_path */
	attr.config2 = off;                 /* probe_offset */
	attr.inherit = inherit;
	fd = syscall(SYS_perf_event_open, &attr, 0 /* this process */, -1 /* any cpu */,
		     -1, PERF_FLAG_FD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int64_t bench_kuprobe_read(int fd)
{
	uint64_t v;

	return read(fd, &v, sizeof(v)) == sizeof(v) ? (int64_t)v : -1;
}

/* Debian 12's <linux/bpf.h> predates uprobe_multi (Linux 6.6): the
 * constants and the BPF_LINK_CREATE layout we need, as the kernel has them. */
#define K_BPF_PROG_LOAD 5
#define K_BPF_LINK_CREATE 28
#define K_BPF_PROG_TYPE_KPROBE 2
#define K_BPF_TRACE_UPROBE_MULTI 48

struct k_prog_load {
	uint32_t prog_type, insn_cnt;
	uint64_t insns, license;
	uint32_t log_level, log_size;
	uint64_t log_buf;
	uint32_t kern_version, prog_flags;
	char prog_name[16];
	uint32_t prog_ifindex, expected_attach_type;
};

struct k_link_create {
	uint32_t prog_fd, target_fd, attach_type, flags;
	uint64_t path, offsets, ref_ctr_offsets, cookies;   /* uprobe_multi */
	uint32_t cnt, um_flags, pid;
};

int bench_kmulti_attach(const char *path, const uint64_t *offs, unsigned n, int *prog_fd)
{
	/* r0 = 0; exit */
	static const uint64_t insns[2] = { 0x00000000000000b7ULL, 0x0000000000000095ULL };
	struct k_prog_load pl;
	struct k_link_create lc;
	int fd;

	memset(&pl, 0, sizeof(pl));
	pl.prog_type = K_BPF_PROG_TYPE_KPROBE;
	pl.insn_cnt = 2;
	pl.insns = (uintptr_t)insns;
	pl.license = (uintptr_t)"GPL";
	pl.expected_attach_type = K_BPF_TRACE_UPROBE_MULTI;
	*prog_fd = syscall(SYS_bpf, K_BPF_PROG_LOAD, &pl, sizeof(pl));
	if (*prog_fd < 0)
		return -errno;
	memset(&lc, 0, sizeof(lc));
	lc.prog_fd = *prog_fd;
	lc.attach_type = K_BPF_TRACE_UPROBE_MULTI;
	lc.path = (uintptr_t)path;
	lc.offsets = (uintptr_t)offs;
	lc.cnt = n;
	lc.pid = getpid();
	fd = syscall(SYS_bpf, K_BPF_LINK_CREATE, &lc, sizeof(lc));
	if (fd < 0) {
		fd = -errno;
		close(*prog_fd);
	}
	return fd;
}

/* ---- statistics, time, memory -------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void bench_stats(double *v, int n, struct bench_stats *out)
{
	double sum = 0, sq = 0;

	qsort(v, n, sizeof(*v), cmp_double);
	for (int i = 0; i < n; i++)
		sum += v[i];
	out->mean = sum / n;
	for (int i = 0; i < n; i++)
		sq += (v[i] - out->mean) * (v[i] - out->mean);
	out->stddev = n > 1 ? sqrt(sq / (n - 1)) : 0;
	out->median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	out->min = v[0];
	out->max = v[n - 1];
}

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void bench_sleep(double seconds)
{
	struct timespec ts = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

long bench_rss_bytes(void)
{
	long size, resident = -1;
	FILE *f = fopen("/proc/self/statm", "re");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}
