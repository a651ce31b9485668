/* shm — see shm.h. */
#include "shm.h"
#include "log.h"
#include "probe.h"
#include "stack.h"
#include "tstate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int shm_fd = -1;
static char *report_dir;          /* SELFPROBE_REPORT_DIR: full reports at exit */
static struct sp_shm_header *hdr;
static struct sp_shm_section *mine;
static struct sp_shm_record *records;
static struct sp_shm_error *errors;
static struct sp_shm_object *objects;

bool sp_shm_active(void)
{
	return mine != NULL;
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

/* A section of our own: descriptor, records, stripes. */
static int claim(const char *command, pid_t parent)
{
	uint32_t idx = atomic_fetch_add(&hdr->n_sections, 1);
	if (idx >= SP_SHM_SECTIONS)
		return -ENOSPC;
	struct sp_shm_section *s = &hdr->sections[idx];
	uint64_t rec_bytes = page_up((uint64_t)SP_SHM_RECORDS * sizeof(struct sp_shm_record));
	uint64_t stripe_bytes = (uint64_t)SP_STRIPE_BYTES * SP_N_SLOTS;
	uint64_t lat_bytes = page_up((uint64_t)SP_LAT_STRIPE_BYTES * SP_N_SLOTS);
	uint64_t err_bytes = page_up(SP_SHM_ERRORS * sizeof(struct sp_shm_error));
	uint64_t stack_bytes = page_up((uint64_t)SP_STACKS_MAX * sizeof(struct sp_stack_entry));
	uint64_t obj_bytes = page_up(SP_SHM_OBJECTS * sizeof(struct sp_shm_object));
	uint64_t total = rec_bytes + stripe_bytes + lat_bytes + err_bytes + stack_bytes + obj_bytes;
	uint64_t off = atomic_fetch_add(&hdr->next_free, total);
	if (off + total > SP_SHM_SIZE)
		return -ENOSPC;
	void *r = mmap(NULL, rec_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, (off_t)off);
	if (r == MAP_FAILED)
		return -errno;
	uint64_t err_off = off + rec_bytes + stripe_bytes + lat_bytes;
	uint64_t obj_off = err_off + err_bytes + stack_bytes;
	void *er = mmap(NULL, err_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, (off_t)err_off);
	void *ob = mmap(NULL, obj_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, (off_t)obj_off);
	if (er == MAP_FAILED || ob == MAP_FAILED) {
		int e = errno;
		munmap(r, rec_bytes);
		if (er != MAP_FAILED)
			munmap(er, err_bytes);
		if (ob != MAP_FAILED)
			munmap(ob, obj_bytes);
		return -e;
	}
	s->parent = parent;
	snprintf(s->command, sizeof(s->command), "%s", command ? command : "?");
	s->records_off = off;
	s->stripes_off = off + rec_bytes;
	s->stripe_bytes = SP_STRIPE_BYTES;
	s->n_stripes = SP_N_SLOTS;
	s->latency_off = off + rec_bytes + stripe_bytes;
	s->errors_off = err_off;
	atomic_store(&s->n_errors, 0);
	s->stacks_off = err_off + err_bytes;
	s->objects_off = obj_off;
	atomic_store(&s->n_objects, 0);
	atomic_store(&s->n_records, 0);
	atomic_store(&s->n_timelines, 0);
	atomic_store(&s->state, SP_SHM_RUNNING);
	atomic_store(&s->pid, getpid());   /* last: the launcher reads it as "ready" */
	if (records)
		munmap(records, rec_bytes);
	if (errors)
		munmap(errors, err_bytes);
	if (objects)
		munmap(objects, obj_bytes);
	records = r;
	errors = er;
	objects = ob;
	mine = s;
	return 0;
}

int sp_shm_attach(char **env, int argc, char **argv)
{
	(void)argc;
	const char *v = env_get(env, "SELFPROBE_SHM_FD");
	if (!v || !*v)
		return 0;
	int fd = atoi(v);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size < sizeof(struct sp_shm_header))
		return -EBADF;
	void *h = mmap(NULL, sizeof(*hdr), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED)
		return -errno;
	if (memcmp(((struct sp_shm_header *)h)->magic, SP_SHM_MAGIC, 8) != 0) {
		munmap(h, sizeof(*hdr));
		return -EINVAL;
	}
	shm_fd = fd;
	hdr = h;
	/* the same pid before an execve: that image is gone, its counts stay */
	uint32_t n = atomic_load(&hdr->n_sections);
	for (uint32_t i = 0; i < n && i < SP_SHM_SECTIONS; i++)
		if (atomic_load(&hdr->sections[i].pid) == getpid())
			atomic_store(&hdr->sections[i].state, SP_SHM_EXECED);
	const char *dir = env_get(env, "SELFPROBE_REPORT_DIR");
	if (dir && *dir)
		report_dir = strdup(dir);
	return claim(argv && argv[0] ? argv[0] : NULL, 0);
}

int sp_shm_stripes(uint64_t *offset)
{
	if (!mine)
		return -1;
	*offset = mine->stripes_off;
	return shm_fd;
}

int sp_shm_latency(uint64_t *offset)
{
	if (!mine)
		return -1;
	*offset = mine->latency_off;
	return shm_fd;
}

void *sp_shm_map_stripes(int fd, uint64_t off, size_t bytes, void *at)
{
	int fixed = at ? MAP_FIXED : 0;
	void *p = MAP_FAILED;
	if (fd >= 0)
		p = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE | fixed, fd, (off_t)off);
	if (p == MAP_FAILED && (fd < 0 || at))
		p = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed,
			 -1, 0);
	return p;
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

int sp_shm_stacks(uint64_t *offset)
{
	if (!mine)
		return -1;
	*offset = mine->stacks_off;
	return shm_fd;
}

void sp_shm_note_object(const char *path, uint64_t bias, uint64_t start, uint64_t end)
{
	if (!mine)
		return;
	uint32_t n = atomic_load(&mine->n_objects);
	for (uint32_t i = n; i-- > 0;)
		if (objects[i].start == start && objects[i].end == end && objects[i].bias == bias &&
		    strncmp(objects[i].path, path, sizeof(objects[i].path)) == 0)
			return;
	if (n >= SP_SHM_OBJECTS)
		return;
	objects[n] = (struct sp_shm_object){ .bias = bias, .start = start, .end = end };
	copy(objects[n].path, sizeof(objects[n].path), path);
	atomic_store(&mine->n_objects, n + 1);
}

void sp_shm_error(const char *spec, const char *message)
{
	if (!mine)
		return;
	uint32_t i = atomic_load(&mine->n_errors);
	if (i >= SP_SHM_ERRORS)
		return;
	copy(errors[i].spec, sizeof(errors[i].spec), spec);
	copy(errors[i].message, sizeof(errors[i].message), message);
	atomic_store(&mine->n_errors, i + 1);   /* published after it is whole */
}

void sp_shm_publish(struct sp_probe *p)
{
	if (!mine || p->internal)
		return;
	uint32_t i = atomic_load(&mine->n_records);
	if (i >= SP_SHM_RECORDS)
		return;
	struct sp_shm_record *r = &records[i];
	r->id = p->id;
	r->kind = (uint8_t)p->kind;
	r->action = (uint8_t)p->action;
	r->jmp = p->site->jmp;
	r->detached = 0;
	r->lat_slot = p->lat_slot;
	copy(r->spec, sizeof(r->spec), p->spec);
	copy(r->label, sizeof(r->label), p->label);
	copy(r->object, sizeof(r->object), p->object);
	copy(r->reason, sizeof(r->reason), p->site->jmp ? NULL : p->site->reason);
	p->shm_record = (int)i;
	atomic_store(&mine->n_records, i + 1);   /* published after it is whole */
}

void sp_shm_republish(struct sp_probe *p)
{
	if (!mine)
		return;
	if (p->shm_record < 0) {
		sp_shm_publish(p);
		return;
	}
	struct sp_shm_record *r = &records[p->shm_record];
	r->id = p->id;
	r->lat_slot = p->lat_slot;
	r->jmp = p->site->jmp;
	copy(r->reason, sizeof(r->reason), p->site->jmp ? NULL : p->site->reason);
	for (int k = 0; k < 4; k++)
		r->final[k] = p->final[k];
	r->final_lat = p->final_lat;
	__atomic_store_n(&r->detached, 0, __ATOMIC_RELEASE);   /* live again: last */
}

void sp_shm_final(struct sp_probe *p)
{
	if (!mine || p->shm_record < 0)
		return;
	struct sp_shm_record *r = &records[p->shm_record];
	for (int k = 0; k < 4; k++)
		r->final[k] = p->final[k];
	r->final_lat = p->final_lat;
	__atomic_store_n(&r->detached, 1, __ATOMIC_RELEASE);
}

void sp_shm_exited(void)
{
	if (mine)
		atomic_store(&mine->state, SP_SHM_EXITED);
}

int sp_shm_atfork_child(void)
{
	if (!mine)
		return 0;
	char command[128];
	memcpy(command, mine->command, sizeof(command));
	pid_t parent = atomic_load(&mine->pid);
	mine = NULL;
	return claim(command, parent);
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
	void *b = off + bytes <= SP_SHM_SIZE ?
		  mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, (off_t)off) : MAP_FAILED;
	/* the launcher reads a buffer whose offset is 0 as none */
	__atomic_store_n(&mine->timeline_off[i], b == MAP_FAILED ? 0 : off, __ATOMIC_RELEASE);
	return b == MAP_FAILED ? NULL : b;
}

const char *sp_shm_record_label(uint32_t i, int *kind)
{
	if (!mine || i >= atomic_load(&mine->n_records))
		return NULL;
	*kind = records[i].kind;
	return records[i].label;
}

const char *sp_shm_report_dir(void)
{
	return mine ? report_dir : NULL;
}
