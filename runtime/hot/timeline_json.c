/* timeline_json — binary timeline events (timeline.h) as Chrome Trace
 * Event Format JSON: {"traceEvents": [...], "displayTimeUnit": "ns",
 * "otherData": {...}}.  Shared by the runtime (a process writing its own
 * timeline) and the launcher (every process's, from the shared file).
 *
 * Times are microseconds (the format's unit) with nanosecond decimals;
 * pid/tid are the real ones, so each thread is a track of its process.
 * Integer arguments are hex strings (pointers and sizes read best so);
 * USDT arguments, typed by their notes, are signed decimal numbers, and
 * their float arguments numbers with a fraction. */
#include "timeline.h"
#include "json.h"
#include "probe.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


static void micros(FILE *f, const char *key, uint64_t ns)
{
	fprintf(f, ", \"%s\": %" PRIu64 ".%03" PRIu64, key, ns / 1000, ns % 1000);
}

static void event_start(struct sp_tl_writer *w, const char *name, const char *ph)
{
	fprintf(w->f, "%s\n{\"name\": ", w->sep);
	sp_json_str(w->f, name);
	fprintf(w->f, ", \"ph\": \"%s\"", ph);
	w->sep = ",";
}

void sp_tl_json_begin(struct sp_tl_writer *w, FILE *f)
{
	*w = (struct sp_tl_writer){ .f = f, .sep = "" };
	fputs("{\"traceEvents\": [", f);
}

void sp_tl_json_process(struct sp_tl_writer *w, int pid, const char *name)
{
	event_start(w, "process_name", "M");
	fprintf(w->f, ", \"pid\": %d, \"tid\": %d, \"args\": {\"name\": ", pid, pid);
	sp_json_str(w->f, name ? name : "?");
	fputs("}}", w->f);
}

/* A float argument as a JSON number: the fewest digits that read back as
 * the same value (a float's 9 and a double's 17 at most); JSON has no NaN
 * or infinity, so those are strings. */
static void float_arg(FILE *f, unsigned ftype, int64_t bits)
{
	double d;
	int max;
	if (ftype == SP_TL_F32) {
		float x;
		uint32_t w = (uint32_t)bits;
		memcpy(&x, &w, 4);
		d = x;
		max = 9;
	} else {
		memcpy(&d, &bits, 8);
		max = 17;
	}
	if (isnan(d) || isinf(d)) {
		fprintf(f, "\"%s\"", isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
		return;
	}
	char buf[40];
	for (int digits = ftype == SP_TL_F32 ? 6 : 15; digits <= max; digits++) {
		snprintf(buf, sizeof(buf), "%.*g", digits, d);
		if (ftype == SP_TL_F32 ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
			break;
	}
	fputs(buf, f);
}

static void args(FILE *f, const struct sp_tl_event *e, enum sp_tl_type type)
{
	fputs(", \"args\": {", f);
	const char *sep = "";
	for (int i = 0; i < e->nargs && i < SP_TL_MAX_ARGS; i++) {
		if (SP_TL_FTYPE(e, i) != SP_TL_INT) {
			fprintf(f, "%s\"arg%d\": ", sep, i);
			float_arg(f, SP_TL_FTYPE(e, i), e->arg[i]);
		} else if (e->flags & SP_TL_SIGNED)
			fprintf(f, "%s\"arg%d\": %" PRId64, sep, i, e->arg[i]);
		else
			fprintf(f, "%s\"arg%d\": \"0x%" PRIx64 "\"", sep, i, (uint64_t)e->arg[i]);
		sep = ", ";
	}
	if (type == SP_TL_SPAN && (e->flags & SP_TL_RET))
		fprintf(f, "%s\"retval\": \"0x%" PRIx64 "\"", sep, e->ret);
	else if (type == SP_TL_OPEN)
		fprintf(f, "%s\"return\": \"not seen\"", sep);
	fputc('}', f);
}

void sp_tl_json_buffer(struct sp_tl_writer *w, const struct sp_tl_buf *b, sp_tl_label_fn label, void *ctx)
{
	uint64_t n = atomic_load_explicit(&((struct sp_tl_buf *)b)->n, memory_order_acquire);
	if (n > b->cap)
		n = b->cap;
	w->threads++;
	w->dropped += atomic_load(&((struct sp_tl_buf *)b)->dropped);
	char tname[40];
	snprintf(tname, sizeof(tname), "%.16s (%d)", b->name, b->tid);
	event_start(w, "thread_name", "M");
	fprintf(w->f, ", \"pid\": %d, \"tid\": %d, \"args\": {\"name\": ", b->pid, b->tid);
	sp_json_str(w->f, tname);
	fputs("}}", w->f);
	for (uint64_t i = 0; i < n; i++) {
		const struct sp_tl_event *e = &b->ev[i];
		enum sp_tl_type type = atomic_load_explicit(&((struct sp_tl_event *)e)->type, memory_order_acquire);
		int kind = 0;
		const char *name = label(ctx, e->label, &kind);
		if (!name || type == SP_TL_FREE)
			continue;
		event_start(w, name, type == SP_TL_SPAN ? "X" : "i");
		fputs(", \"cat\": ", w->f);
		sp_json_str(w->f, sp_kind_name((enum sp_probe_kind)kind));
		fprintf(w->f, ", \"pid\": %d, \"tid\": %d", b->pid, b->tid);
		micros(w->f, "ts", e->ts_ns);
		if (type == SP_TL_SPAN)
			micros(w->f, "dur", e->dur_ns);
		else
			fputs(", \"s\": \"t\"", w->f);
		args(w->f, e, type);
		fputc('}', w->f);
		w->events++;
	}
}

int sp_tl_json_end(struct sp_tl_writer *w)
{
	fprintf(w->f, "\n],\n\"displayTimeUnit\": \"ns\",\n\"otherData\": {\"generator\": \"libselfprobe\", "
		      "\"events\": %" PRIu64 ", \"threads\": %" PRIu64 ", \"dropped\": %" PRIu64 "}}\n",
		w->events, w->threads, w->dropped);
	return fflush(w->f) == 0 && !ferror(w->f) ? 0 : -EIO;
}
