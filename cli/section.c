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
/* A stripe's counters and histograms (stripes.h: its chunk without the
 * bpftrace parts, which btparts.c reads) */
static size_t stripe_bytes(const struct sp_section *v)
{
	return v->s->stripe_bytes - SP_PART_BYTES;
}

/* The exclusive stripes mapped: those claimed when the section was opened */
static size_t low_bytes(const struct sp_section *v)
{
	return v->n_low ? (v->n_low - 1) * v->s->stripe_bytes + stripe_bytes(v) : 0;
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
	/* only the stripes the process gave out, never the others: a
	 * launcher under an address-space limit reads them too (all of them
	 * are 800 MiB), and reading one would allocate its pages of the file */
	uint32_t used = atomic_load(&w->stripes_used);
	v->n_low = used < s->n_stripes - 1 ? used : s->n_stripes - 1;
	v->stripes = map(fd, s->stripes_off, low_bytes(v));
	bool shared = atomic_load(&w->shared_used);
	if (shared)
		v->shared = map(fd, s->stripes_off + (uint64_t)(s->n_stripes - 1) * s->stripe_bytes, stripe_bytes(v));
	v->errors = map(fd, s->errors_off, errors_bytes(v));
	v->stacks.area = map(fd, s->stacks_off, stack_bytes);
	v->stacks.objs = map(fd, s->objects_off, objects_bytes(v));
	if ((v->n_records && !v->records) || (v->n_low && !v->stripes) ||
	    (shared && !v->shared)) {
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
	unmap(v->stripes, low_bytes(v));
	unmap(v->shared, stripe_bytes(v));
	unmap(v->errors, errors_bytes(v));
	unmap(v->stacks.area, stack_bytes);
	unmap(v->stacks.objs, objects_bytes(v));
	*v = (struct sp_section){ 0 };
}

/* Stripe K's counters, its histograms SP_STRIPE_BYTES on, or NULL after
 * the last: the exclusive stripes the process had given out when the
 * section was opened (tstate.c), then the shared one if it was given. */
static const char *stripe(const struct sp_section *v, int k)
{
	if ((uint32_t)k < v->n_low)
		return v->stripes + (size_t)k * v->s->stripe_bytes;
	return (uint32_t)k == v->n_low ? v->shared : NULL;
}

void sp_section_counts(const struct sp_section *v, const struct sp_shm_record *r, uint64_t *c)
{
	memcpy(c, r->final, SP_N_COUNTERS * sizeof(*c));
	if (__atomic_load_n(&r->detached, __ATOMIC_ACQUIRE))
		return;
	for (int k = 0; (uint32_t)k <= v->n_low; k++) {
		const char *at = stripe(v, k);
		const struct sp_count *cc = at ? (const struct sp_count *)(const void *)at + r->id : NULL;
		for (int j = 0; cc && j < SP_N_COUNTERS; j++)
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
		for (int k = 0; (uint32_t)k <= v->n_low; k++) {
			const char *at = stripe(v, k);
			struct sp_lat live;
			sp_latency_sum(at ? at + SP_STRIPE_BYTES : NULL, (uint32_t)r->lat_slot, &live);
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
