/* shm — see shm.h. */
#include "shm.h"
#include "heap.h"
#include "fdid.h"
#include "log.h"
#include "rawsys.h"
#include "shmchunks.h"
#include "stripes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char *shm_path;            /* SELFPROBE_SHM: reopened for each mapping */
static struct sp_shm_header *hdr;
static struct sp_shm_section *mine;   /* our own section's descriptor, mapped alone */
/* Our section's records, errors and objects, mapped in chunks as they are
 * taken (shmchunks.h): a process's address space grows with the probes it
 * has, not by the most a section may hold. */
static struct sp_chunks records, errors, objects;
/* The section's errors say once that a probe got no record (sp_shm_record_next). */
static bool told_no_record;
static uint32_t mine_idx;          /* our section's index in the file */
/* Our own file (no launcher): the control channel hands it out.  Its
 * descriptor stays open (close-on-exec, above 10): it is the only way to
 * hand the file to a client, and a fork child closes it. */
static bool own, want_own;
/* Checked before each use: a program that closed every descriptor may have
 * opened one of its own at that number (mapping or handing out that one
 * would be its file, not ours). */
static struct sp_fdid own_id = SP_FDID_NONE;

bool sp_shm_active(void)
{
	return mine != NULL && !own;
}

bool sp_shm_has_section(void)
{
	return mine != NULL;
}

bool sp_shm_launched(void)
{
	return hdr != NULL && !own;
}

static long sys_close(int fd)
{
	return sp_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
}

/* The launcher's socket address (cli/shmserve.h), made once at attach:
 * the file is asked there in signal context too (sp_shm_map_raw). */
static struct sockaddr_un launcher_addr;
static socklen_t launcher_alen;   /* 0: none (no launcher's file) */

static void note_launcher(void)
{
	int launcher;
	if (!shm_path || sscanf(shm_path, "/proc/%d/fd/", &launcher) != 1)
		return;
	launcher_addr.sun_family = AF_UNIX;
	int n = snprintf(launcher_addr.sun_path + 1, sizeof(launcher_addr.sun_path) - 1, SP_SHM_SOCK_FMT,
			 launcher);
	launcher_alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* The file from the launcher's socket: for a process that may not reopen
 * it by name, having changed user before its exec.  The descriptor, or
 * ERR (the reopening's -errno: it says why).  Raw system calls, as
 * open_file. */
static int file_from_launcher(int err)
{
	if (!launcher_alen)
		return err;
	int s = (int)sp_syscall6(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, 0, 0, 0);
	if (s < 0)
		return err;
	int fd = err;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char room[CMSG_SPACE(sizeof(int))];
	} c;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.room,
			    .msg_controllen = sizeof(c.room) };
	if (sp_syscall6(SYS_connect, s, (long)&launcher_addr, launcher_alen, 0, 0, 0) == 0 &&
	    sp_syscall6(SYS_recvmsg, s, (long)&m, MSG_CMSG_CLOEXEC, 0, 0, 0) == 1) {
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
		    h->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(h), sizeof(int));
	}
	sys_close(s);
	return fd;
}

/* The file, for as long as a mapping takes: no descriptor of ours stays
 * open for the program to see (or to inherit across exec).  Raw system
 * calls (rawsys.h): a thread's first hit maps its stripe with it
 * (stripemem.h), and a record, an error or an object may be taken in a
 * hit (shmchunks.h), in a signal handler or inside a probed call, where
 * libc's open may be a probed call and errno is the program's.  The
 * descriptor or -errno. */
static int open_file(void)
{
	if (own) {
		if (!sp_fdid_still_ours(&own_id))
			return -EBADF;
		return (int)sp_syscall6(SYS_fcntl, own_id.fd, F_DUPFD_CLOEXEC, 0, 0, 0, 0);
	}
	if (!shm_path)
		return -ENOENT;
	int fd = (int)sp_syscall6(SYS_openat, AT_FDCWD, (long)shm_path, O_RDWR | O_CLOEXEC, 0, 0, 0);
	return fd == -EACCES || fd == -EPERM ? file_from_launcher(fd) : fd;
}

/* Element I of A (one of our section's arrays), its chunk mapped if it is
 * not yet; NULL (-errno in *ERR, or 0: past the array) if it cannot be.
 * Signal-safe: see shmchunks.h for where it runs. */
static void *take(struct sp_chunks *a, uint32_t i, int *err)
{
	void *e = sp_chunks_at(a, i);
	if (e || i >= a->cap) {
		*err = 0;
		return e;
	}
	int fd = open_file();
	if (fd < 0) {
		*err = fd;
		return NULL;
	}
	e = sp_chunks_take(a, i, fd, err);
	sys_close(fd);
	return e;
}

static void *map_at(int fd, uint64_t off, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
	return p == MAP_FAILED ? NULL : p;
}

static const char *env_get(char **env, const char *name)
{
	size_t n = strlen(name);
	for (char **e = env; e && *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

static uint64_t page_up(uint64_t v)
{
	return (v + 4095) & ~(uint64_t)4095;
}

/* The sizes of a section's arrays of records, errors and objects in the
 * file (each mapped in chunks: shmchunks.h). */
#define REC_BYTES page_up((uint64_t)SP_SHM_RECORDS * sizeof(struct sp_shm_record))
#define ERR_BYTES page_up(SP_SHM_ERRORS * sizeof(struct sp_shm_error))
#define OBJ_BYTES page_up(SP_SHM_OBJECTS * sizeof(struct sp_shm_object))

/* Elements in the first chunk of each array: a process with a few probes
 * maps 108 KiB of records, 4 KiB of errors, 16 KiB of objects (the whole
 * arrays: 107 MiB, 128 KiB, 1 MiB).  The stack table (stack.h, 18.75 MiB)
 * is not in chunks: an open-addressed hash table, any of whose slots a
 * stack may take, mapped whole by stack.c once a stack probe exists
 * (sp_stack_prepare) — as much as without the launcher, in private
 * memory. */
#define REC_FIRST 64
#define ERR_FIRST 8
#define OBJ_FIRST 64

/* Our section's mappings in this process: its descriptor (if S), and the
 * chunks of its arrays. */
static void unmap_section(void *s)
{
	if (s)
		munmap(s, SP_SHM_SECTION_STRIDE);
	sp_chunks_unmap(&records);
	sp_chunks_unmap(&errors);
	sp_chunks_unmap(&objects);
}

/* No room for this process: the launcher counts it as not counted. */
static int refuse(void)
{
	atomic_fetch_add(&hdr->n_refused, 1);
	return -ENOSPC;
}

/* A section of our own: descriptor, records, stripes (FD: the file). */
static int claim(int fd, const char *command, pid_t parent)
{
	uint32_t idx = atomic_fetch_add(&hdr->n_sections, 1);
	if (idx >= SP_SHM_SECTIONS)
		return refuse();
	uint64_t rec_bytes = REC_BYTES;
	uint64_t chunk_bytes = (uint64_t)SP_CHUNK_BYTES * SP_N_SLOTS;
	uint64_t err_bytes = ERR_BYTES;
	uint64_t stack_bytes = page_up(sizeof(struct sp_stack_area));
	uint64_t obj_bytes = OBJ_BYTES;
	uint64_t total = rec_bytes + chunk_bytes + err_bytes + stack_bytes + obj_bytes;
	uint64_t off = atomic_fetch_add(&hdr->next_free, total);
	if (off + total > SP_SHM_SIZE)
		return refuse();
	uint64_t err_off = off + rec_bytes + chunk_bytes;
	uint64_t obj_off = err_off + err_bytes + stack_bytes;
	/* the arrays are mapped as they are taken (shmchunks.h), not here */
	struct sp_shm_section *s = map_at(fd, sp_shm_section_off(hdr, idx), SP_SHM_SECTION_STRIDE);
	if (!s) {
		int e = errno;
		atomic_fetch_add(&hdr->n_refused, 1);
		return -e;
	}
	s->parent = parent;
	snprintf(s->command, sizeof(s->command), "%s", command ? command : "?");
	s->records_off = off;
	s->chunks_off = off + rec_bytes;
	s->stripes_off = s->chunks_off + SP_PART_BYTES;
	s->stripe_bytes = SP_CHUNK_BYTES;
	s->n_stripes = SP_N_SLOTS;
	atomic_store(&s->stripes_used, 0);
	atomic_store(&s->shared_used, 0);
	s->latency_off = s->stripes_off + SP_STRIPE_BYTES;
	s->errors_off = err_off;
	atomic_store(&s->n_errors, 0);
	s->stacks_off = err_off + err_bytes;
	s->objects_off = obj_off;
	atomic_store(&s->n_objects, 0);
	atomic_store(&s->n_records, 0);
	atomic_store(&s->n_timelines, 0);
	atomic_store(&s->bt_ran, 0);
	atomic_store(&s->bt_maps, 0);
	memset(s->bt_part_off, 0, sizeof(s->bt_part_off));
	atomic_store(&s->bt_ran_off, 0);
	atomic_store(&s->state, SP_SHM_RUNNING);
	atomic_store(&s->pid, getpid());   /* last: the launcher reads it as "ready" */
	atomic_store(&hdr->pids[idx], getpid());
	mine_idx = idx;
	/* a fork child's mappings of the parent's section go (never written) */
	unmap_section(mine);
	sp_chunks_init(&records, off, sizeof(struct sp_shm_record), SP_SHM_RECORDS, REC_FIRST);
	sp_chunks_init(&errors, err_off, sizeof(struct sp_shm_error), SP_SHM_ERRORS, ERR_FIRST);
	sp_chunks_init(&objects, obj_off, sizeof(struct sp_shm_object), SP_SHM_OBJECTS, OBJ_FIRST);
	told_no_record = false;
	mine = s;
	return 0;
}

/* The same pid before an execve: that image is gone, its counts stay. */
static void mark_execed(int fd)
{
	uint32_t n = atomic_load(&hdr->n_sections);
	for (uint32_t i = 0; i < n && i < SP_SHM_SECTIONS; i++) {
		if (atomic_load(&hdr->pids[i]) != getpid())
			continue;
		struct sp_shm_section *s = map_at(fd, sp_shm_section_off(hdr, i), SP_SHM_SECTION_STRIDE);
		if (s) {
			atomic_store(&s->state, SP_SHM_EXECED);
			munmap(s, SP_SHM_SECTION_STRIDE);
		}
	}
}

int sp_shm_attach(char **env, int argc, char **argv)
{
	(void)argc;
	const char *v = env_get(env, SP_SHM_ENV);
	if (!v || !*v)
		return 0;
	if (!(shm_path = sp_strdup(v)))
		return -ENOMEM;
	note_launcher();
	int fd = open_file();
	if (fd < 0)
		return fd;
	struct stat st;
	void *h = MAP_FAILED;
	int rc = -EBADF;
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= sizeof(struct sp_shm_header)) {
		h = mmap(NULL, sizeof(*hdr), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		rc = h == MAP_FAILED ? -errno : 0;
	}
	if (rc == 0 && memcmp(((struct sp_shm_header *)h)->magic, SP_SHM_MAGIC, 8) != 0) {
		munmap(h, sizeof(*hdr));
		rc = -EINVAL;
	}
	if (rc == 0) {
		hdr = h;
		mark_execed(fd);
		rc = claim(fd, argv && argv[0] ? argv[0] : NULL, 0);
	}
	close(fd);
	return rc;
}

void sp_shm_want_own(void)
{
	want_own = true;
}

/* Our own file, laid out as the launcher's (cli/run.c) with one section:
 * the client reads it with the launcher's reader.  0 or -errno (then the
 * counters stay in private memory). */
static int create_own(void)
{
	int fd = memfd_create("selfprobe-counters", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* out of the low numbers a program reuses (a closed 0-2, dup2 targets) */
	int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	close(fd);
	if (high < 0)
		return -errno;
	fd = high;
	uint64_t sections_off = page_up(sizeof(*hdr));
	struct stat st;
	struct sp_shm_header *h = MAP_FAILED;
	if (ftruncate(fd, (off_t)SP_SHM_SIZE) == 0 && fstat(fd, &st) == 0)
		h = mmap(NULL, sizeof(*hdr), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED) {
		int e = errno;
		close(fd);
		return -e;
	}
	h->sections_off = sections_off;
	atomic_store(&h->next_free, sections_off + SP_SHM_SECTION_STRIDE);   /* one section: ours */
	memcpy(h->magic, SP_SHM_MAGIC, 8);
	hdr = h;
	own = true;
	sp_fdid_remember(&own_id, fd);   /* stat'ed above: cannot fail */
	int rc = claim(fd, "", 0);
	if (rc) {
		munmap(h, sizeof(*hdr));
		close(fd);
		hdr = NULL;
		own = false;
		own_id.fd = -1;
	}
	return rc;
}

/* The counters' first use: our own file, when the control channel wants
 * one and no launcher gave us a section. */
static void ensure_own(void)
{
	if (want_own && !hdr && !mine)
		create_own();
}

int sp_shm_handout(uint32_t *section)
{
	int fd = -1;
	if (own) {
		if (!sp_fdid_still_ours(&own_id))
			return -EBADF;
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", own_id.fd);
		fd = open(path, O_RDONLY | O_CLOEXEC);   /* a read-only description: the client only reads */
	} else if (mine && shm_path)
		fd = open(shm_path, O_RDONLY | O_CLOEXEC);
	else
		return -ENOENT;
	if (fd < 0)
		return -errno;
	*section = mine_idx;
	return fd;
}

/* Our own file can no longer be mapped (the program closed its
 * descriptor): what is mapped stays, new mappings are private memory. */
static bool own_lost(void)
{
	return own && !sp_fdid_still_ours(&own_id);
}

int sp_shm_stripes(uint64_t *offset)
{
	ensure_own();
	if (!mine || own_lost())
		return -1;
	*offset = mine->chunks_off;
	return 0;
}

void *sp_shm_map_raw(int shared, uint64_t off, size_t bytes, void *at)
{
	int fixed = at ? MAP_FIXED : 0;
	if (shared < 0)
		return sp_sys_mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed,
				   -1, 0);
	int fd = open_file();
	if (fd < 0)
		return MAP_FAILED;
	void *p = sp_sys_mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE | fixed, fd, (long)off);
	sys_close(fd);
	return p;
}

void *sp_shm_map_stripes(int shared, uint64_t off, size_t bytes, void *at)
{
	void *p = shared >= 0 ? sp_shm_map_raw(shared, off, bytes, at) : MAP_FAILED;
	if (p == MAP_FAILED && (shared < 0 || at))
		p = sp_shm_map_raw(-1, 0, bytes, at);
	return p;
}

void sp_shm_copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

int sp_shm_bt_alloc(uint64_t bytes, uint64_t *off)
{
	if (!mine || !hdr || own)   /* our own file carries counts only (shm.h) */
		return -1;
	bytes = page_up(bytes);
	uint64_t o = atomic_fetch_add(&hdr->next_free, bytes);
	if (o + bytes > SP_SHM_SIZE)
		return -1;
	*off = o;
	return 0;
}

void sp_shm_bt_parts(uint32_t i, uint64_t off, uint64_t stride, uint32_t n, bool keyed)
{
	if (!mine || i >= SP_SHM_BT_MAPS)
		return;
	mine->bt_part_off[i] = off;
	mine->bt_part_stride[i] = stride;
	mine->bt_part_n[i] = n;
	mine->bt_part_keyed[i] = keyed;
}

void sp_shm_bt_ran_at(uint64_t off)
{
	if (mine)
		atomic_store(&mine->bt_ran_off, off);
}

int sp_shm_bt_map(uint32_t i, uint64_t bytes, uint64_t *off)
{
	uint64_t o;
	if (i >= SP_SHM_BT_MAPS || sp_shm_bt_alloc(bytes, &o) != 0)
		return -1;
	bytes = page_up(bytes);
	mine->bt_map_off[i] = o;
	mine->bt_map_bytes[i] = bytes;
	if (atomic_load(&mine->bt_maps) <= i)
		atomic_store(&mine->bt_maps, i + 1);
	*off = o;
	return 0;
}

void sp_shm_bt_ran(void)
{
	if (mine && !atomic_load_explicit(&mine->bt_ran, memory_order_relaxed))
		atomic_store(&mine->bt_ran, 1);
}

int sp_shm_stacks(uint64_t *offset)
{
	if (!mine || own)   /* our own file carries counts, not stacks: those stay private */
		return -1;
	*offset = mine->stacks_off;
	return 0;
}

void sp_shm_note_object(const char *path, uint64_t bias, uint64_t start, uint64_t end)
{
	if (!mine)
		return;
	uint32_t n = atomic_load(&mine->n_objects);
	for (uint32_t i = n; i-- > 0;) {
		const struct sp_shm_object *o = sp_chunks_at(&objects, i);
		if (o->start == start && o->end == end && o->bias == bias &&
		    strncmp(o->path, path, sizeof(o->path)) == 0)
			return;
	}
	int err;
	struct sp_shm_object *o = take(&objects, n, &err);
	if (!o)   /* full, or no room in the address space: not symbolised by the launcher */
		return;
	*o = (struct sp_shm_object){ .bias = bias, .start = start, .end = end };
	sp_shm_copy(o->path, sizeof(o->path), path);
	atomic_store(&mine->n_objects, n + 1);
}

void sp_shm_error(const char *spec, const char *message)
{
	if (!mine)
		return;
	uint32_t i = atomic_load(&mine->n_errors);
	int err;
	struct sp_shm_error *e = take(&errors, i, &err);
	if (!e)
		return;
	sp_shm_copy(e->spec, sizeof(e->spec), spec);
	sp_shm_copy(e->message, sizeof(e->message), message);
	atomic_store(&mine->n_errors, i + 1);   /* published after it is whole */
}

uint32_t sp_shm_errors_count(void)
{
	return mine ? atomic_load(&mine->n_errors) : 0;
}

struct sp_shm_record *sp_shm_record(int i)
{
	/* a record below n_records is in a chunk mapped before it was counted */
	return mine && i >= 0 && (uint32_t)i < atomic_load(&mine->n_records) ? sp_chunks_at(&records, (uint32_t)i)
									      : NULL;
}

struct sp_shm_record *sp_shm_record_next(uint32_t *i, const char *spec)
{
	if (!mine)
		return NULL;
	*i = atomic_load(&mine->n_records);
	int err;
	struct sp_shm_record *r = take(&records, *i, &err);
	if (!r && !told_no_record) {
		/* the probe counts as any; the launcher's report built from the
		 * file for a process that could not write its own lacks it */
		char m[320];
		if (err)
			snprintf(m, sizeof(m), "no record in the shared counters file (mapping it failed: %s): "
				 "its counts, and those of later probes without one, are only in the process's own "
				 "report", strerrordesc_np(-err));   /* a static string: no locale, no buffer */
		else
			snprintf(m, sizeof(m), "no record in the shared counters file (%u a process at most): its "
				 "counts, and those of later probes, are only in the process's own report",
				 SP_SHM_RECORDS);
		told_no_record = true;
		sp_shm_error(spec, m);
	}
	return r;
}

void sp_shm_record_commit(uint32_t i)
{
	atomic_store(&mine->n_records, i + 1);   /* published after it is whole */
}

void sp_shm_stripes_used(int used, bool shared)
{
	if (!mine)
		return;
	uint32_t u = atomic_load(&mine->stripes_used);
	while (u < (uint32_t)used && !atomic_compare_exchange_weak(&mine->stripes_used, &u, (uint32_t)used))
		;
	if (shared)
		atomic_store(&mine->shared_used, 1);
}

void sp_shm_exited(void)
{
	if (mine)
		atomic_store(&mine->state, SP_SHM_EXITED);
}

/* A fork child of a process with its own file: the file is the parent's,
 * handed out by the parent's channel; the child (no channel) counts in
 * private memory again. */
static void drop_own(void)
{
	unmap_section(mine);
	munmap(hdr, sizeof(*hdr));
	/* the program may have closed it and opened a file of its own at its
	 * number (closefrom, then open) before forking: not ours to close */
	if (sp_fdid_still_ours(&own_id))
		close(own_id.fd);
	mine = NULL;
	hdr = NULL;
	own = false;
	own_id.fd = -1;
}

int sp_shm_atfork_child(void)
{
	want_own = false;
	if (own)
		drop_own();
	if (!mine)
		return 0;
	char command[128];
	memcpy(command, mine->command, sizeof(command));
	pid_t parent = atomic_load(&mine->pid);
	int fd = open_file();
	int rc = fd < 0 ? fd : claim(fd, command, parent);
	if (fd >= 0)
		close(fd);
	if (rc) {   /* the parent's section is not ours: nothing shared */
		if (fd < 0)
			atomic_fetch_add(&hdr->n_refused, 1);
		unmap_section(mine);
		mine = NULL;
	}
	return rc;
}

void *sp_shm_alloc_timeline(size_t bytes)
{
	if (!mine)
		return NULL;
	uint32_t i = atomic_fetch_add(&mine->n_timelines, 1);
	if (i >= SP_SHM_TIMELINES) {
		atomic_store(&mine->n_timelines, SP_SHM_TIMELINES);
		return NULL;
	}
	bytes = page_up(bytes);
	uint64_t off = atomic_fetch_add(&hdr->next_free, bytes);
	int fd = off + bytes <= SP_SHM_SIZE ? open_file() : -1;
	void *b = fd >= 0 ? map_at(fd, off, bytes) : NULL;
	if (fd >= 0)
		close(fd);
	/* the launcher reads a buffer whose offset is 0 as none */
	__atomic_store_n(&mine->timeline_off[i], b ? off : 0, __ATOMIC_RELEASE);
	return b;
}

const char *sp_shm_record_label(uint32_t i, int *kind)
{
	if (!mine || i >= atomic_load(&mine->n_records))
		return NULL;
	const struct sp_shm_record *r = sp_chunks_at(&records, i);
	*kind = r->kind;
	return r->label;
}

int sp_shm_store_report(int which, const void *buf, size_t len)
{
	if (!mine || which < 0 || which > 1)
		return -EINVAL;
	uint64_t bytes = page_up(len ? len : 1);
	uint64_t off = atomic_fetch_add(&hdr->next_free, bytes);
	if (off + bytes > SP_SHM_SIZE)
		return -ENOSPC;
	int fd = open_file();
	if (fd < 0)
		return fd;
	void *p = map_at(fd, off, bytes);
	int rc = p ? 0 : -errno;
	close(fd);
	if (rc)
		return rc;
	memcpy(p, buf, len);
	munmap(p, bytes);
	mine->report_off[which] = off;
	mine->report_len[which] = len;   /* read once the state says EXITED */
	return 0;
}
