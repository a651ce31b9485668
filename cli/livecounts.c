/* livecounts — see livecounts.h. */
#include "livecounts.h"
#include "section.h"

#include "control.h"
#include "json.h"
#include "latency.h"
#include "report.h"
#include "shm.h"
#include "spec.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct sp_livecounts {
	int fd;
	pid_t pid;
	char comm[64];
	const struct sp_shm_header *h;
	const struct sp_shm_section *s;
	uint64_t link;
	double since;
	uint32_t errors_from;
	/* each record's counts before the session: listed in the answer, or
	 * taken when first seen (a probe attached during the session: its
	 * earlier attachments' final counts) */
	uint64_t (*base)[SP_N_COUNTERS];
	uint8_t *known;   /* base[i] is set; 2: the record was the session's at its start */
	pthread_mutex_t lock;
};

/* The answer's numbers after "KEY": (the answer is ours: no full JSON parser) */
static const char *after(const char *body, const char *key)
{
	const char *q = strstr(body, key);
	return q ? q + strlen(key) : NULL;
}

static int parse_base(struct sp_livecounts *lc, const char *body)
{
	const char *q = after(body, "\"base\": [");
	if (!q)
		return -1;
	while (*q == '[') {
		char *end;
		unsigned long rec = strtoul(q + 1, &end, 10);
		if (end == q + 1 || rec >= SP_SHM_RECORDS)
			return -1;
		q = end;
		for (int k = 0; k < SP_N_COUNTERS; k++) {
			if (*q != ',')
				return -1;
			lc->base[rec][k] = strtoull(q + 1, &end, 10);
			q = end;
		}
		if (*q != ']')
			return -1;
		lc->known[rec] = 2;
		q++;
		while (*q == ',' || *q == ' ')
			q++;
	}
	return *q == ']' ? 0 : -1;
}

struct sp_livecounts *sp_livecounts_open(int fd, const char *body, pid_t pid, const char *comm, char *why,
					 size_t n)
{
	struct sp_livecounts *lc = calloc(1, sizeof(*lc));
	const char *sec = after(body, "\"section\": "), *link = after(body, "\"link\": "),
		   *since = after(body, "\"since\": "), *errs = after(body, "\"errors_from\": ");
	if (!lc || !(lc->base = calloc(SP_SHM_RECORDS, sizeof(*lc->base))) ||
	    !(lc->known = calloc(SP_SHM_RECORDS, 1))) {
		snprintf(why, n, "out of memory");
		goto fail;
	}
	lc->fd = fd;
	lc->pid = pid;
	snprintf(lc->comm, sizeof(lc->comm), "%s", comm ? comm : "");
	pthread_mutex_init(&lc->lock, NULL);
	if (!sec || !link || !since || !errs || parse_base(lc, body) != 0) {
		snprintf(why, n, "the counters file's description is not understood: %.200s", body);
		goto fail;
	}
	unsigned long idx = strtoul(sec, NULL, 10);
	lc->link = strtoull(link, NULL, 10);
	lc->since = strtod(since, NULL);
	lc->errors_from = (uint32_t)strtoul(errs, NULL, 10);
	void *h = mmap(NULL, sizeof(*lc->h), PROT_READ, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED) {
		snprintf(why, n, "cannot map the counters file: %s", strerror(errno));
		goto fail;
	}
	lc->h = h;
	if (memcmp(lc->h->magic, SP_SHM_MAGIC, 8) != 0 || idx >= SP_SHM_SECTIONS) {
		snprintf(why, n, "the counters file is not of this selfprobe (%.8s, not %s)", lc->h->magic,
			 SP_SHM_MAGIC);
		goto fail;
	}
	void *s = mmap(NULL, SP_SHM_SECTION_STRIDE, PROT_READ, MAP_SHARED, fd,
		       (off_t)sp_shm_section_off(lc->h, (uint32_t)idx));
	if (s == MAP_FAILED) {
		snprintf(why, n, "cannot map the process's section: %s", strerror(errno));
		goto fail;
	}
	lc->s = s;
	return lc;
fail:
	if (lc)
		lc->fd = fd;
	sp_livecounts_close(lc);
	return NULL;
}

void sp_livecounts_close(struct sp_livecounts *lc)
{
	if (!lc)
		return;
	if (lc->s)
		munmap((void *)lc->s, SP_SHM_SECTION_STRIDE);
	if (lc->h)
		munmap((void *)lc->h, sizeof(*lc->h));
	if (lc->fd >= 0)
		close(lc->fd);
	free(lc->base);
	free(lc->known);
	free(lc);
}

double sp_livecounts_seconds(const struct sp_livecounts *lc)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9 - lc->since;
}

/* Record I's session counts into C, or false: not a probe of the session
 * (control.c's in_session: the session's link, and attached or there at its
 * start).  Lock held. */
static bool session_counts(struct sp_livecounts *lc, const struct sp_section *v, uint32_t i, uint64_t *c)
{
	const struct sp_shm_record *r = &v->records[i];
	bool detached = __atomic_load_n(&r->detached, __ATOMIC_ACQUIRE);
	if (r->link != lc->link || (detached && lc->known[i] != 2))
		return false;
	if (!lc->known[i]) {
		memcpy(lc->base[i], r->final, sizeof(lc->base[i]));
		lc->known[i] = 1;
	}
	sp_section_counts(v, r, c);
	for (int k = 0; k < SP_N_COUNTERS; k++)
		c[k] -= c[k] >= lc->base[i][k] ? lc->base[i][k] : c[k];
	return true;
}

/* The live histogram (this attachment's alone, as the channel's report). */
static bool live_latency(const struct sp_section *v, uint32_t i, struct sp_lat *l)
{
	const struct sp_shm_record *r = &v->records[i];
	return !__atomic_load_n(&r->detached, __ATOMIC_ACQUIRE) && sp_section_latency(v, r, true, l);
}

static void probe_json(FILE *f, const struct sp_section *v, uint32_t i, const uint64_t *c, const char *sep)
{
	const struct sp_shm_record *r = &v->records[i];
	fprintf(f, "%s\n  {\"spec\": ", sep);
	sp_json_str(f, r->spec);
	fputs(", \"label\": ", f);
	sp_json_str(f, r->label);
	fprintf(f, ", \"kind\": \"%s\", \"object\": ", sp_kind_name((enum sp_probe_kind)r->kind));
	sp_json_str(f, r->object);
	fputs(", \"symbol\": ", f);
	sp_json_str(f, r->has_symbol ? r->symbol : NULL);
	fprintf(f, ", \"address\": \"%#" PRIx64 "\", \"action\": \"%s\", \"hits\": %" PRIu64 ", \"missed\": %" PRIu64
		", \"returns\": %" PRIu64 ", \"lost\": %" PRIu64,
		r->address, sp_action_name((enum sp_action_kind)r->action), c[SP_HITS], c[SP_MISSED], c[SP_RETURNS],
		c[SP_LOST]);
	struct sp_lat l;
	if (live_latency(v, i, &l))
		sp_report_latency_json(f, &l);
	fprintf(f, ", \"attached\": %s}", __atomic_load_n(&r->detached, __ATOMIC_ACQUIRE) ? "false" : "true");
}

enum form { FORM_TSV, FORM_JSON, FORM_TEXT };

static char *render(struct sp_livecounts *lc, enum form form, double seconds)
{
	struct sp_section v;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	pthread_mutex_lock(&lc->lock);
	if (sp_section_open(lc->fd, lc->s, &v) != 0) {
		pthread_mutex_unlock(&lc->lock);
		fclose(f);
		free(buf);
		return NULL;
	}
	if (form == FORM_JSON) {
		fprintf(f, "{\"version\": 1, \"pid\": %d, \"comm\": ", (int)lc->pid);
		sp_json_str(f, lc->comm);
		fprintf(f, ", \"seconds\": %.6f, \"probes\": [", seconds);
	} else if (form == FORM_TEXT)
		fprintf(f, "Attached to %d (%s) for %.3f s:\n", (int)lc->pid, lc->comm, seconds);
	else
		fprintf(f, "%d\t%.6f\t%s\n", (int)lc->pid, seconds, lc->comm);
	const char *sep = "";
	for (uint32_t i = 0; i < v.n_records; i++) {
		uint64_t c[SP_N_COUNTERS];
		if (!session_counts(lc, &v, i, c))
			continue;
		const struct sp_shm_record *r = &v.records[i];
		struct sp_lat l;
		if (form == FORM_JSON) {
			probe_json(f, &v, i, c, sep);
			sep = ",";
		} else if (form == FORM_TEXT) {
			sp_report_counts_text(f, r->label, r->kind, c);
			if (live_latency(&v, i, &l))
				sp_report_histogram_text(f, r->label, &l);
		} else {
			bool lat = live_latency(&v, i, &l);
			sp_control_tsv_row(f, c, lat ? &l : NULL, sp_kind_name((enum sp_probe_kind)r->kind), r->spec,
					   r->object, r->has_symbol ? r->symbol : NULL, r->label);
		}
	}
	/* the errors met during the session (the file keeps SP_SHM_ERRORS) */
	if (form == FORM_JSON)
		fputs("],\n \"errors\": [", f);
	sep = "";
	for (uint32_t i = lc->errors_from; form != FORM_TSV && i < v.n_errors; i++) {
		const struct sp_shm_error *e = &v.errors[i];
		if (form == FORM_JSON) {
			fputs(sep, f);
			sp_report_error_json(f, e->spec, e->message);
			sep = ", ";
		} else
			fprintf(f, "@error[%s]: %s\n", e->spec, e->message);
	}
	if (form == FORM_JSON)
		fputs("]}\n", f);
	sp_section_close(&v);
	pthread_mutex_unlock(&lc->lock);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *sp_livecounts_tsv(struct sp_livecounts *lc)
{
	return render(lc, FORM_TSV, sp_livecounts_seconds(lc));
}

char *sp_livecounts_report(struct sp_livecounts *lc, bool json, double seconds)
{
	return render(lc, json ? FORM_JSON : FORM_TEXT, seconds);
}
