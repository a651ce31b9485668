/* report — see report.h.  The JSON fields are the design's contract:
 * version, pid, probes[{spec, kind, object, symbol, address, mode, patch, reason,
 * action, hits, missed}], errors[{spec, message}]; fields may be added
 * (implementation: the IFUNC implementation chosen), never renamed. */
#include "report.h"
#include "heap.h"
#include "json.h"
#include "loadwatch.h"
#include "probe.h"
#include "registry.h"
#include "shm.h"
#include "stack.h"
#include "timeline.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *mode_name(const struct sp_probe *p)
{
	return p->site->jmp ? "jmp" : "int3";
}

/* What the site's bytes hold: the 5-byte jmp, a hop (jmp rel8 to a jmp
 * rel32 in padding), or an int3. */
static const char *patch_name(const struct sp_site *s)
{
	return !s->jmp ? "int3" : s->hop ? "hop" : "jmp5";
}

static void probe_latency(const struct sp_probe *p, struct sp_lat *l)
{
	*l = sp_probe_final_lat(p);   /* earlier attachments */
	if (p->lat_slot >= 0) {
		struct sp_lat live;
		sp_latency_read((uint32_t)p->lat_slot, &live);
		sp_latency_merge(l, &live);
	}
}

/* Bucket k holds [2^(k-1), 2^k) ns; bucket 0 holds 0. */
static uint64_t bucket_lo(int k) { return k ? (uint64_t)1 << (k - 1) : 0; }
static uint64_t bucket_hi(int k) { return (uint64_t)1 << k; }

/* "512", "4K", "1M" — bpftrace's labels for a power of two. */
static void pow2_label(char *buf, size_t len, uint64_t v)
{
	static const char *const units[] = { "", "K", "M", "G", "T", "P", "E" };
	int u = 0;
	while (v >= 1024 && v % 1024 == 0 && u < 6) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%" PRIu64 "%s", v, units[u]);
}

/* bpftrace's hist() drawing, in nanoseconds. */
void sp_report_histogram_text(FILE *f, const char *label, const struct sp_lat *l)
{
	fprintf(f, "@latency_ns[%s]: count %" PRIu64, label, l->count);
	if (l->count)
		fprintf(f, ", min %" PRIu64 ", avg %" PRIu64 ", max %" PRIu64, l->min_ns_plus1 - 1,
			l->sum_ns / l->count, l->max_ns);
	fputc('\n', f);
	int first = -1, last = -1;
	uint64_t peak = 0;
	for (int k = 0; k < SP_LAT_BUCKETS; k++)
		if (l->bucket[k]) {
			if (first < 0)
				first = k;
			last = k;
			if (l->bucket[k] > peak)
				peak = l->bucket[k];
		}
	for (int k = first; first >= 0 && k <= last; k++) {
		char lo[24], hi[24], range[56];
		pow2_label(lo, sizeof(lo), bucket_lo(k));
		pow2_label(hi, sizeof(hi), bucket_hi(k));
		snprintf(range, sizeof(range), "[%s, %s)", lo, hi);
		int bar = (int)(l->bucket[k] * 52 / peak);
		fprintf(f, "%-20s %8" PRIu64 " |", range, l->bucket[k]);
		for (int b = 0; b < 52; b++)
			fputc(b < bar ? '@' : ' ', f);
		fputs("|\n", f);
	}
}

void sp_report_error_json(FILE *f, const char *spec, const char *message)
{
	fputs("{\"spec\": ", f);
	sp_json_str(f, spec);
	fputs(", \"message\": ", f);
	sp_json_str(f, message);
	fputc('}', f);
}

void sp_report_latency_json(FILE *f, const struct sp_lat *l)
{
	fprintf(f, ", \"latency\": {\"unit\": \"ns\", \"count\": %" PRIu64 ", \"sum\": %" PRIu64, l->count,
		l->sum_ns);
	if (l->count)
		fprintf(f, ", \"min\": %" PRIu64 ", \"avg\": %" PRIu64 ", \"max\": %" PRIu64,
			l->min_ns_plus1 - 1, l->sum_ns / l->count, l->max_ns);
	fputs(", \"buckets\": [", f);
	const char *sep = "";
	for (int k = 0; k < SP_LAT_BUCKETS; k++)
		if (l->bucket[k]) {
			fprintf(f, "%s{\"lo\": %" PRIu64 ", \"hi\": %" PRIu64 ", \"count\": %" PRIu64 "}", sep,
				bucket_lo(k), bucket_hi(k), l->bucket[k]);
			sep = ", ";
		}
	fputs("]}", f);
}

/* Items whose object never appeared: an error only now, at the report
 * (until then they were waiting for a dlopen). */
struct never_ctx {
	FILE *f;
	bool json;
	const char *sep;
};

static void never_loaded(const struct sp_spec_item *item, void *vctx)
{
	struct never_ctx *c = vctx;
	if (sp_shm_active())
		return;   /* not an error in one process: the launcher says it once, over all */
	char msg[512];
	snprintf(msg, sizeof(msg), "'%s' was never loaded: nothing attached", item->object);
	if (c->json) {
		fprintf(c->f, "%s\n  {\"spec\": ", c->sep);
		sp_json_str(c->f, item->text);
		fputs(", \"message\": ", c->f);
		sp_json_str(c->f, msg);
		fputc('}', c->f);
		c->sep = ",";
	} else
		fprintf(c->f, "@error[%s]: %s\n", item->text, msg);
}

void sp_report_counts_text(FILE *f, const char *label, int kind, const uint64_t *c)
{
	fprintf(f, "@count[%s]: %" PRIu64 "\n", label, c[SP_HITS]);
	if (kind == SP_KIND_USESSION)
		fprintf(f, "@returns[%s]: %" PRIu64 "\n", label, c[SP_RETURNS]);
	if (c[SP_MISSED])
		fprintf(f, "@missed[%s]: %" PRIu64 "\n", label, c[SP_MISSED]);
	if (c[SP_LOST])
		fprintf(f, "@lost[%s]: %" PRIu64 "\n", label, c[SP_LOST]);
}

void sp_report_text(FILE *f)
{
	sp_probe_coexist_report();
	for (struct sp_probe *p = sp_probe_first(); p; p = p->next) {
		if (p->internal)
			continue;
		uint64_t c[SP_N_COUNTERS];
		sp_probe_counts(p, c);
		sp_report_counts_text(f, p->label, p->kind, c);
		if (atomic_load(&p->faulted))
			fprintf(f, "@fault[%s]: signal %d at %#" PRIxPTR ": its handler was disabled\n", p->label,
				p->fault_sig, p->fault_addr);
		if (p->action == SP_ACT_LATENCY) {
			struct sp_lat l;
			probe_latency(p, &l);
			sp_report_histogram_text(f, p->label, &l);
		}
		if (p->action == SP_ACT_STACK)
			sp_stack_report_text(f, p, SP_STACK_TOP_TEXT);
	}
	if (sp_timeline_on()) {
		uint64_t ev, dropped, threads;
		sp_timeline_totals(&ev, &dropped, &threads);
		fprintf(f, "@timeline: %" PRIu64 " events from %" PRIu64 " threads, %" PRIu64 " dropped\n", ev,
			threads, dropped);
	}
	for (struct sp_error *e = sp_error_first(); e; e = e->next)   /* nothing was said before */
		fprintf(f, "@error[%s]: %s\n", e->spec, e->message);
	struct never_ctx nc = { f, false, "" };
	sp_loadwatch_each_unattached(never_loaded, &nc);
	fflush(f);
}


void sp_report_json(FILE *f)
{
	sp_probe_coexist_report();
	fprintf(f, "{\"version\": 1, \"pid\": %d,\n \"probes\": [", (int)getpid());
	/* each probe's fields gathered in memory (json.h sp_outbuf); what
	 * another module writes to F directly comes after a flush */
	char small[1024];
	struct sp_outbuf ob = { f, sp_malloc(64 << 10), 64 << 10, 0 }, *o = &ob;
	if (!ob.b)
		ob.b = small, ob.cap = sizeof(small);
	const char *sep = "";
	for (struct sp_probe *p = sp_probe_first(); p; p = p->next) {
		if (p->internal)
			continue;
		uint64_t c[SP_N_COUNTERS];
		sp_probe_counts(p, c);
		sp_outbuf_str(o, sep);
		sp_outbuf_str(o, "\n  {\"spec\": ");
		sp_json_str_buf(o, p->spec);
		sp_outbuf_str(o, ", \"kind\": \"");
		sp_outbuf_str(o, sp_kind_name(p->kind));
		sp_outbuf_str(o, "\", \"object\": ");
		sp_json_str_buf(o, p->object);
		sp_outbuf_str(o, ", \"symbol\": ");
		sp_json_str_buf(o, p->symbol);
		sp_outbuf_str(o, ", \"address\": \"");
		sp_outbuf_hex(o, p->site->addr);
		sp_outbuf_str(o, "\", \"mode\": \"");
		sp_outbuf_str(o, mode_name(p));
		sp_outbuf_str(o, "\", \"patch\": \"");
		sp_outbuf_str(o, patch_name(p->site));
		sp_outbuf_str(o, "\", \"reason\": ");
		sp_json_str_buf(o, sp_site_reason(p->site));
		sp_outbuf_str(o, ", \"action\": \"");
		sp_outbuf_str(o, p->fn && p->action == SP_ACT_COUNT ? "handler" : sp_action_name(p->action));
		sp_outbuf_str(o, "\", \"hits\": ");
		sp_outbuf_u64(o, c[SP_HITS]);
		sp_outbuf_str(o, ", \"missed\": ");
		sp_outbuf_u64(o, c[SP_MISSED]);
		if (p->wants_return) {
			sp_outbuf_str(o, ", \"returns\": ");
			sp_outbuf_u64(o, p->kind == SP_KIND_USESSION ? c[SP_RETURNS] : c[SP_HITS]);
			sp_outbuf_str(o, ", \"lost\": ");
			sp_outbuf_u64(o, c[SP_LOST]);
		}
		if (p->action == SP_ACT_LATENCY || p->action == SP_ACT_STACK || atomic_load(&p->faulted))
			sp_outbuf_flush(o);
		if (p->action == SP_ACT_LATENCY) {
			struct sp_lat l;
			probe_latency(p, &l);
			sp_report_latency_json(f, &l);
		}
		if (p->action == SP_ACT_STACK)
			sp_stack_report_json(f, p, SP_STACK_TOP_JSON);
		if (atomic_load(&p->faulted))
			fprintf(f, ", \"fault\": {\"signal\": %d, \"address\": \"%#" PRIxPTR "\"}",
				p->fault_sig, p->fault_addr);
		if (p->implementation) {
			sp_outbuf_str(o, ", \"implementation\": ");
			sp_json_str_buf(o, p->implementation);
		}
		sp_outbuf_str(o, ", \"attached\": ");
		sp_outbuf_str(o, p->attached ? "true" : "false");
		sp_outbuf_str(o, p->unloaded ? ", \"unloaded\": true}" : "}");
		sep = ",";
	}
	sp_outbuf_flush(o);
	if (ob.b != small)
		sp_free(ob.b);
	fputs("]", f);
	if (sp_timeline_on()) {
		uint64_t ev, dropped, threads;
		sp_timeline_totals(&ev, &dropped, &threads);
		fprintf(f, ",\n \"timeline\": {\"events\": %" PRIu64 ", \"threads\": %" PRIu64
			   ", \"dropped\": %" PRIu64 "}", ev, threads, dropped);
	}
	fputs(",\n \"errors\": [", f);
	sep = "";
	for (struct sp_error *e = sp_error_first(); e; e = e->next) {
		fprintf(f, "%s\n  ", sep);
		sp_report_error_json(f, e->spec, e->message);
		sep = ",";
	}
	struct never_ctx nc = { f, true, sep };
	sp_loadwatch_each_unattached(never_loaded, &nc);
	fputs("]}\n", f);
	fflush(f);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

enum sp_output sp_report_output(const char *path)
{
	if (!path)
		return SP_OUT_TEXT;
	if (ends_with(path, ".trace.json"))   /* before ".json" */
		return SP_OUT_TIMELINE;
	if (ends_with(path, ".json"))
		return SP_OUT_JSON;
	if (ends_with(path, ".folded"))
		return SP_OUT_FOLDED;
	return SP_OUT_TEXT;
}

char *sp_report_path(const char *pattern)
{
	size_t cap = strlen(pattern) + 32, n = 0;
	char *out = sp_malloc(cap);
	if (!out)
		return NULL;
	for (const char *c = pattern; *c; c++) {
		if (n + 24 >= cap) {
			char *o = sp_realloc(out, cap *= 2);
			if (!o) {
				sp_free(out);
				return NULL;
			}
			out = o;
		}
		if (c[0] == '%' && c[1] == 'p') {
			n += (size_t)snprintf(out + n, cap - n, "%d", (int)getpid());
			c++;
		} else if (c[0] == '%' && c[1] == '%') {
			out[n++] = '%';
			c++;
		} else
			out[n++] = *c;
	}
	out[n] = 0;
	return out;
}

static pid_t exit_owner;      /* the process whose exit writes the report */
static pid_t exit_written;    /* the process that wrote it */

void sp_report_exit_owner_is_me(void)
{
	exit_owner = getpid();
}

int sp_report_exit_claim(void)
{
	pid_t me = getpid();
	if (me != exit_owner || exit_written == me)
		return 0;
	exit_written = me;
	return 1;
}

void sp_report_atfork_child(void)
{
	/* fork (not vfork) ran our atfork handler: this child reports too */
	if (exit_owner)
		exit_owner = getpid();
}
