/* section — see section.h. */
#include "section.h"
#include "control.h"
#include "json.h"
#include "report.h"
#include "spec.h"
#include "latency.h"
#include "tstate.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>

static const size_t stack_bytes = sizeof(struct sp_stack_area);

static size_t records_bytes(const struct sp_section *v) { return v->n_records * sizeof(*v->records); }
/* From stripe 0's counters to the end of the last stripe's histograms
 * (stripes.h: each stripe's chunk holds both). */
static size_t stripes_bytes(const struct sp_section *v)
{
	return v->s->stripe_bytes * v->s->n_stripes - SP_PART_BYTES;
}
static size_t errors_bytes(const struct sp_section *v) { return v->n_errors * sizeof(*v->errors); }
static size_t objects_bytes(const struct sp_section *v) { return v->stacks.n_objs * sizeof(*v->stacks.objs); }

/* LEN bytes at OFF read-only, or NULL (also for LEN 0). */
static const void *map(int fd, uint64_t off, size_t len)
{
	if (!len)
		return NULL;
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_NORESERVE, fd, (off_t)off);
	return p == MAP_FAILED ? NULL : p;
}

static void unmap(const void *p, size_t len)
{
	if (p)
		munmap((void *)p, len);
}

int sp_section_open(int fd, const struct sp_shm_section *s, struct sp_section *v)
{
	struct sp_shm_section *w = (struct sp_shm_section *)s;   /* atomics are read, never written */
	*v = (struct sp_section){ .fd = fd, .s = s, .stacks.other_process = true };
	v->n_records = atomic_load(&w->n_records);
	v->n_errors = atomic_load(&w->n_errors);
	v->stacks.n_objs = atomic_load(&w->n_objects);
	if (v->n_errors > SP_SHM_ERRORS)
		v->n_errors = SP_SHM_ERRORS;
	if (v->stacks.n_objs > SP_SHM_OBJECTS)
		v->stacks.n_objs = SP_SHM_OBJECTS;
	v->records = map(fd, s->records_off, records_bytes(v));
	v->stripes = map(fd, s->stripes_off, stripes_bytes(v));
	v->errors = map(fd, s->errors_off, errors_bytes(v));
	v->stacks.area = map(fd, s->stacks_off, stack_bytes);
	v->stacks.objs = map(fd, s->objects_off, objects_bytes(v));
	if ((v->n_records && !v->records) || !v->stripes) {
		int e = errno;
		sp_section_close(v);
		return -e;
	}
	if (!v->errors)
		v->n_errors = 0;
	if (!v->stacks.objs)
		v->stacks.n_objs = 0;
	return 0;
}

void sp_section_close(struct sp_section *v)
{
	unmap(v->records, records_bytes(v));
	unmap(v->stripes, stripes_bytes(v));
	unmap(v->errors, errors_bytes(v));
	unmap(v->stacks.area, stack_bytes);
	unmap(v->stacks.objs, objects_bytes(v));
	*v = (struct sp_section){ 0 };
}

/* The stripe after K (-1: the first) that may hold counts: those the
 * process says it gave out (tstate.c), never the others — reading one
 * would allocate its page of the shared file. */
static int next_stripe(const struct sp_section *v, int k)
{
	struct sp_shm_section *w = (struct sp_shm_section *)v->s;
	int n = (int)v->s->n_stripes, used = (int)atomic_load(&w->stripes_used);
	if (used > n - 1)
		used = n - 1;
	if (k + 1 < used)
		return k + 1;
	return k < n - 1 && atomic_load(&w->shared_used) ? n - 1 : n;
}

void sp_section_counts(const struct sp_section *v, const struct sp_shm_record *r, uint64_t *c)
{
	memcpy(c, r->final, SP_N_COUNTERS * sizeof(*c));
	if (__atomic_load_n(&r->detached, __ATOMIC_ACQUIRE))
		return;
	for (int k = next_stripe(v, -1); k < (int)v->s->n_stripes; k = next_stripe(v, k)) {
		const struct sp_count *cc = (const struct sp_count *)(v->stripes + k * v->s->stripe_bytes) + r->id;
		for (int j = 0; j < SP_N_COUNTERS; j++)
			c[j] += cc->v[j];
	}
}

bool sp_section_latency(const struct sp_section *v, const struct sp_shm_record *r, bool live_only,
			struct sp_lat *out)
{
	if (r->action != SP_ACT_LATENCY)
		return false;
	if (live_only)
		memset(out, 0, sizeof(*out));
	else
		*out = r->final_lat;
	if (!__atomic_load_n(&r->detached, __ATOMIC_ACQUIRE) && r->lat_slot >= 0) {
		for (int k = next_stripe(v, -1); k < (int)v->s->n_stripes; k = next_stripe(v, k)) {
			struct sp_lat live;
			sp_latency_sum(v->stripes + (size_t)k * v->s->stripe_bytes + (v->s->latency_off - v->s->stripes_off),
				       (uint32_t)r->lat_slot, &live);
			sp_latency_merge(out, &live);
		}
	}
	return true;
}

static bool has_stacks(const struct sp_section *v, const struct sp_shm_record *r)
{
	return r->action == SP_ACT_STACK && v->stacks.area;
}

static const char *const patch_names[] = { "int3", "jmp5", "hop" };

/* The entry as the process's own report writes it (runtime/api/report.c,
 * sp_report_json): the same fields in the same order, however it ended. */
static void probe_json(FILE *f, const struct sp_section *v, uint32_t i)
{
	const struct sp_shm_record *r = &v->records[i];
	uint64_t c[SP_N_COUNTERS];
	sp_section_counts(v, r, c);
	fprintf(f, "%s\n  {\"spec\": ", i ? "," : "");
	sp_json_str(f, r->spec);
	fprintf(f, ", \"kind\": \"%s\", \"object\": ", sp_kind_name((enum sp_probe_kind)r->kind));
	sp_json_str(f, r->object);
	fputs(", \"symbol\": ", f);
	sp_json_str(f, r->has_symbol ? r->symbol : NULL);
	fprintf(f, ", \"address\": \"%#" PRIx64 "\", \"mode\": \"%s\", \"patch\": \"%s\", \"reason\": ",
		r->address, r->jmp ? "jmp" : "int3", patch_names[r->patch < 3 ? r->patch : 0]);
	sp_json_str(f, r->reason[0] ? r->reason : NULL);
	fprintf(f, ", \"action\": \"%s\", \"hits\": %" PRIu64 ", \"missed\": %" PRIu64,
		r->handler ? "handler" : sp_action_name((enum sp_action_kind)r->action), c[SP_HITS], c[SP_MISSED]);
	if (r->wants_return)
		fprintf(f, ", \"returns\": %" PRIu64 ", \"lost\": %" PRIu64,
			r->kind == SP_KIND_USESSION ? c[SP_RETURNS] : c[SP_HITS], c[SP_LOST]);
	struct sp_lat l;
	if (sp_section_latency(v, r, false, &l))
		sp_report_latency_json(f, &l);
	if (has_stacks(v, r))
		sp_stack_view_json(f, &v->stacks, NULL, (int)i, 20);
	if (__atomic_load_n(&r->faulted, __ATOMIC_ACQUIRE))
		fprintf(f, ", \"fault\": {\"signal\": %d, \"address\": \"%#" PRIx64 "\"}", r->fault_sig,
			r->fault_addr);
	if (r->implementation[0]) {
		fputs(", \"implementation\": ", f);
		sp_json_str(f, r->implementation);
	}
	bool detached = __atomic_load_n(&r->detached, __ATOMIC_ACQUIRE);
	fprintf(f, ", \"attached\": %s%s}", detached ? "false" : "true",
		detached && r->unloaded ? ", \"unloaded\": true" : "");
}

static void probe_text(FILE *f, const struct sp_section *v, uint32_t i)
{
	const struct sp_shm_record *r = &v->records[i];
	uint64_t c[SP_N_COUNTERS];
	sp_section_counts(v, r, c);
	sp_report_counts_text(f, r->label, r->kind, c);
	if (__atomic_load_n(&r->faulted, __ATOMIC_ACQUIRE))
		fprintf(f, "@fault[%s]: signal %d at %#" PRIx64 ": its handler was disabled\n", r->label,
			r->fault_sig, r->fault_addr);
	struct sp_lat l;
	if (sp_section_latency(v, r, false, &l))
		sp_report_histogram_text(f, r->label, &l);
	if (has_stacks(v, r))
		sp_stack_view_text(f, &v->stacks, NULL, (int)i, r->label, 10);
}

void sp_section_tsv(FILE *f, const struct sp_section *v)
{
	for (uint32_t i = 0; i < v->n_records; i++) {
		const struct sp_shm_record *r = &v->records[i];
		uint64_t c[SP_N_COUNTERS];
		sp_section_counts(v, r, c);
		struct sp_lat l;
		bool lat = sp_section_latency(v, r, false, &l);
		sp_control_tsv_row(f, c, lat ? &l : NULL, sp_kind_name((enum sp_probe_kind)r->kind), r->spec,
				   r->object, r->has_symbol ? r->symbol : NULL, r->label);
	}
}

void sp_section_report(FILE *f, const struct sp_section *v, bool json)
{
	if (json)
		fputs("\"probes\": [", f);
	for (uint32_t i = 0; i < v->n_records; i++)
		(json ? probe_json : probe_text)(f, v, i);
	if (json)
		fputs("],\n \"errors\": [", f);
	for (uint32_t i = 0; i < v->n_errors; i++) {
		const struct sp_shm_error *e = &v->errors[i];
		if (json) {
			fprintf(f, "%s\n  ", i ? "," : "");
			sp_report_error_json(f, e->spec, e->message);
		} else
			fprintf(f, "@error[%s]: %s\n", e->spec, e->message);
	}
	if (json)
		fputc(']', f);
}

static const char *record_label(void *ctx, uint32_t i, int *kind)
{
	const struct sp_section *v = ctx;
	if (i >= v->n_records)
		return NULL;
	*kind = v->records[i].kind;
	return v->records[i].label;
}

void sp_section_timeline(const struct sp_section *v, struct sp_tl_writer *w)
{
	uint32_t n = atomic_load(&((struct sp_shm_section *)v->s)->n_timelines);
	for (uint32_t i = 0; i < n && i < SP_SHM_TIMELINES; i++) {
		uint64_t off = __atomic_load_n(&v->s->timeline_off[i], __ATOMIC_ACQUIRE);
		const struct sp_tl_buf *head = off ? map(v->fd, off, sizeof(*head)) : NULL;
		if (!head)
			continue;
		uint64_t cap = head->cap;
		unmap(head, sizeof(*head));
		if (!cap)
			continue;   /* the thread died making it */
		const struct sp_tl_buf *b = map(v->fd, off, sp_tl_buf_bytes(cap));
		if (!b)
			continue;
		sp_tl_json_buffer(w, b, record_label, (void *)v);
		unmap(b, sp_tl_buf_bytes(cap));
	}
}

static const char *entry_label(const struct sp_stack_entry *e, void *ctx)
{
	int kind;
	return record_label(ctx, (uint32_t)e->record, &kind);
}

void sp_section_folded(FILE *f, const struct sp_section *v)
{
	sp_stack_view_folded(f, &v->stacks, entry_label, (void *)v);
}
